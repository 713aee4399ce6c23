/* The `service_lb` stage: the frontend a new flow is addressed to, and its
 * backend by session affinity or the service's Maglev table (lb/maglev.h),
 * with the flow hash of lb/flow_hash.h so that both backends choose alike. */
#ifndef ATOLL_DATAPLANE_EBPF_ATOLL_LB_H_
#define ATOLL_DATAPLANE_EBPF_ATOLL_LB_H_

#include "atoll_conntrack.h"

/* lookup3 / jhash2 over four words (lb::Jhash2). */
static __always_inline __u32 atl_rol32(__u32 x, int k) { return (x << k) | (x >> (32 - k)); }

static __always_inline __u32 atl_flow_hash(const struct atl_ct_key *f, __u32 seed) {
  __u32 a = 0xdeadbeef + (4 << 2) + seed, b = a, c = a;
  a += f->saddr; /* the address bytes as a native word, as lb::FlowHash reads them */
  b += f->daddr;
  c += ((__u32)bpf_ntohs(f->sport) << 16) | bpf_ntohs(f->dport);
  a -= c; a ^= atl_rol32(c, 4);  c += b;
  b -= a; b ^= atl_rol32(a, 6);  a += c;
  c -= b; c ^= atl_rol32(b, 8);  b += a;
  a -= c; a ^= atl_rol32(c, 16); c += b;
  b -= a; b ^= atl_rol32(a, 19); a += c;
  c -= b; c ^= atl_rol32(b, 4);  b += a;
  a += f->proto;
  c ^= b; c -= atl_rol32(b, 14);
  a ^= c; a -= atl_rol32(c, 11);
  b ^= a; b -= atl_rol32(a, 25);
  c ^= b; c -= atl_rol32(b, 16);
  a ^= c; a -= atl_rol32(c, 4);
  b ^= a; b -= atl_rol32(a, 14);
  c ^= b; c -= atl_rol32(b, 24);
  return c;
}

/* The frontend for a packet to addr:port, falling back to a NodePort (addr 0)
 * when addr is one of this node's. */
static __always_inline struct atl_svc *atl_lb_lookup(__be32 addr, __be16 port, __u8 proto,
                                                     __u8 scope) {
  if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) return NULL;
  struct atl_svc_key key = {.addr = addr, .port = port, .proto = proto, .scope = scope};
  struct atl_svc *svc = bpf_map_lookup_elem(&atl_services, &key);
  if (svc || scope != ATL_SCOPE_EXTERNAL) return svc;
  if (!bpf_map_lookup_elem(&atl_node_addrs, &addr)) return NULL;
  key.addr = 0;
  return bpf_map_lookup_elem(&atl_services, &key);
}

static __always_inline struct atl_backend *atl_backend_at(const struct atl_svc *svc, __u32 i) {
  if (i >= svc->backend_count) return NULL;
  __u32 at = svc->backend_offset + i;
  return bpf_map_lookup_elem(&atl_backends, &at);
}

/* The most backends of a service a loop visits: the verifier wants a bound. */
#define ATL_MAX_BACKEND_SCAN 256
/* The most backends a new flow tries when their reply tuples are taken (see
 * atl_process): 16 flows from one client port to one service's backends.
 * Each try costs the verifier about 2,000 instructions, and more, so it is
 * kept small; the DPDK pipeline tries as many (Pipeline::kMaxBackendTries). */
#define ATL_MAX_BACKEND_TRIES 16

/* The index of a new flow's backend; -1 when the service has none. */
static __always_inline int atl_lb_select(const struct atl_svc *svc, const struct atl_ct_key *flow,
                                         __u64 now) {
  if (svc->backend_count == 0 || svc->maglev_size == 0) return -1;
  struct atl_affinity_key akey = {.client = flow->saddr, .svc_id = svc->id};
  if (svc->affinity_timeout) {
    /* The client's backend while it is still one of the service's. */
    struct atl_affinity *a = bpf_map_lookup_elem(&atl_affinity, &akey);
    if (a && atl_age(now, a->last_seen_ns) <= (__u64)svc->affinity_timeout * ATL_SEC) {
      for (__u32 i = 0; i < ATL_MAX_BACKEND_SCAN && i < svc->backend_count; i++) {
        struct atl_backend *b = atl_backend_at(svc, i);
        if (b && b->addr == a->addr && b->port == a->port) {
          if (now > a->last_seen_ns) a->last_seen_ns = now;
          return i;
        }
      }
    }
  }
  __u32 hash = atl_flow_hash(flow, 0);
  __u32 slot = (__u32)(((__u64)hash * svc->maglev_size) >> 32); /* lb::ReduceHash */
  __u32 entry = svc->maglev_offset + slot / ATL_MAGLEV_PER_ENTRY;
  struct atl_maglev_entry *slots = bpf_map_lookup_elem(&atl_maglev, &entry);
  if (!slots) return -1;
  __u32 index = slots->backend[slot % ATL_MAGLEV_PER_ENTRY];
  struct atl_backend *b = atl_backend_at(svc, index);
  if (!b) return -1;
  if (svc->affinity_timeout) {
    struct atl_affinity a = {.last_seen_ns = now, .addr = b->addr, .port = b->port};
    bpf_map_update_elem(&atl_affinity, &akey, &a, BPF_ANY);
  }
  return index;
}

#endif /* ATOLL_DATAPLANE_EBPF_ATOLL_LB_H_ */
