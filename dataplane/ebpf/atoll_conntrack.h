/* The `conntrack` stage: two entries per flow (atoll_types.h), timeouts per
 * protocol state, and the rewrite of a packet that matched one. */
#ifndef ATOLL_DATAPLANE_EBPF_ATOLL_CONNTRACK_H_
#define ATOLL_DATAPLANE_EBPF_ATOLL_CONNTRACK_H_

#include "atoll_packet.h"

#define ATL_SEC 1000000000ull
#define ATL_TCP_FIN 0x01
#define ATL_TCP_SYN 0x02
#define ATL_TCP_RST 0x04
#define ATL_TCP_ACK 0x10

/* netfilter's defaults (nf_conntrack_proto_tcp.c, _udp.c, _icmp.c), which
 * kube-proxy users know: an unanswered SYN 2 min, established 5 days,
 * closing 2 min; UDP 30 s one way and 120 s once answered; ICMP 30 s. */
static __always_inline __u64 atl_ct_lifetime(__u8 proto, __u8 state) {
  if (proto == IPPROTO_TCP) {
    if (state == ATL_TCP_ESTABLISHED) return 432000 * ATL_SEC;
    return 120 * ATL_SEC;
  }
  if (proto == IPPROTO_UDP) return (state == ATL_TCP_ESTABLISHED ? 120 : 30) * ATL_SEC;
  return 30 * ATL_SEC;
}

/* How long ago `then` was. Another CPU may have stamped an entry after this
 * packet read the clock, so `then` can be later than `now`: that is no time
 * at all, not the 584 years an unsigned difference would make of it (which
 * once expired a busy flow's entries in the middle of a bulk transfer). */
static __always_inline __u64 atl_age(__u64 now, __u64 then) {
  return now > then ? now - then : 0;
}

/* The live entry for a packet's flow, or NULL: an expired entry is gone. */
static __always_inline struct atl_ct *atl_ct_lookup(const struct atl_ct_key *k, __u64 now) {
  struct atl_ct *e = bpf_map_lookup_elem(&atl_ct, k);
  if (!e) return NULL;
  if (atl_age(now, e->last_seen_ns) > atl_ct_lifetime(k->proto, e->tcp_state)) return NULL;
  return e;
}

/* A packet matched `e`: it keeps the entry alive and moves its state. */
static __always_inline void atl_ct_seen(struct atl_ct *e, const struct atl_pkt *p, __u64 now) {
  if (now > e->last_seen_ns) e->last_seen_ns = now;
  if (p->flow.proto == IPPROTO_TCP) {
    if (p->tcp_flags & ATL_TCP_RST)
      e->tcp_state = ATL_TCP_RESET;
    else if (p->tcp_flags & ATL_TCP_FIN) {
      if (e->tcp_state != ATL_TCP_RESET) e->tcp_state = ATL_TCP_CLOSING;
    } else if (e->tcp_state == ATL_TCP_SYN_SENT && (p->tcp_flags & ATL_TCP_ACK))
      e->tcp_state = ATL_TCP_ESTABLISHED;
  } else if (e->flags & ATL_CT_REPLY) {
    e->tcp_state = ATL_TCP_ESTABLISHED; /* answered */
  }
}

/* The packet after `e`'s rewrite. */
static __always_inline struct atl_ct_key atl_ct_rewritten(const struct atl_ct_key *k,
                                                          const struct atl_ct *e) {
  struct atl_ct_key to = *k;
  if (e->flags & ATL_CT_SNAT) {
    to.saddr = e->nat_saddr;
    to.sport = e->nat_sport;
  }
  if (e->flags & ATL_CT_DNAT) {
    to.daddr = e->nat_daddr;
    to.dport = e->nat_dport;
  }
  return to;
}

/* Whether a live flow holds `k`, which a new flow whose first packet has
 * `tcp_flags` wants as its reply tuple. A TCP connection that is over (a
 * RST, or a FIN each way) gives its tuple up to a new connection's SYN, as
 * Linux lets a SYN reuse a tuple in TIME_WAIT (and lb::ConntrackShard::Insert
 * does). Each entry sees its own direction's packets: the flow's other entry
 * says what came the other way. */
static __always_inline int atl_ct_taken(const struct atl_ct_key *k, __u8 tcp_flags, __u64 now) {
  struct atl_ct *e = atl_ct_lookup(k, now);
  if (!e) return 0;
  if (k->proto != IPPROTO_TCP || (tcp_flags & (ATL_TCP_SYN | ATL_TCP_ACK)) != ATL_TCP_SYN)
    return 1;
  if (e->tcp_state == ATL_TCP_RESET) return 0;
  struct atl_ct_key sent = atl_ct_rewritten(k, e);
  struct atl_ct_key other = atl_reverse(&sent);
  struct atl_ct *o = atl_ct_lookup(&other, now);
  if (!o || o->tcp_state == ATL_TCP_RESET) return 0;
  return !(e->tcp_state == ATL_TCP_CLOSING && o->tcp_state == ATL_TCP_CLOSING);
}

/* Records a new flow: `orig` as its first packet came, translated to `to`.
 * `flags` (ATL_CT_EXTERNAL) go to both entries; `tunnel` and `vni` (0: none)
 * say where the first packet came from, for the reply entry. -1: the reply
 * tuple is another flow's (atl_ct_taken), or the map refused. */
static __always_inline int atl_ct_create(const struct atl_ct_key *orig,
                                         const struct atl_ct_key *to, __u8 flags,
                                         __be32 tunnel, __u32 vni, __u8 tcp_flags, __u64 now) {
  struct atl_ct fwd = {.last_seen_ns = now, .flags = flags};
  struct atl_ct rev = {.last_seen_ns = now, .flags = flags | ATL_CT_REPLY, .tunnel = tunnel,
                       .vni = vni};
  /* A TCP flow picked up without its SYN (conntrack lost it) is taken as
   * established, as netfilter's loose mode does. */
  if (orig->proto == IPPROTO_TCP && !(tcp_flags & ATL_TCP_SYN)) {
    fwd.tcp_state = ATL_TCP_ESTABLISHED;
    rev.tcp_state = ATL_TCP_ESTABLISHED;
  }
  if (to->saddr != orig->saddr || to->sport != orig->sport) {
    fwd.flags |= ATL_CT_SNAT;
    fwd.nat_saddr = to->saddr;
    fwd.nat_sport = to->sport;
    rev.flags |= ATL_CT_DNAT;
    rev.nat_daddr = orig->saddr;
    rev.nat_dport = orig->sport;
  }
  if (to->daddr != orig->daddr || to->dport != orig->dport) {
    fwd.flags |= ATL_CT_DNAT;
    fwd.nat_daddr = to->daddr;
    fwd.nat_dport = to->dport;
    rev.flags |= ATL_CT_SNAT;
    rev.nat_saddr = orig->daddr;
    rev.nat_sport = orig->dport;
  }
  /* The caller found the reply tuple free, but another CPU may have taken it
   * since: a flow holding it keeps it, an expired one gives it up. */
  struct atl_ct_key reply = atl_reverse(to);
  if (bpf_map_update_elem(&atl_ct, &reply, &rev, BPF_NOEXIST) < 0 &&
      (atl_ct_taken(&reply, tcp_flags, now) ||
       bpf_map_update_elem(&atl_ct, &reply, &rev, BPF_ANY) < 0))
    return -1;
  if (bpf_map_update_elem(&atl_ct, orig, &fwd, BPF_ANY) < 0) return -1;
  return 0;
}

/* A source port for SNAT to `addr` whose reply direction no live flow uses:
 * the flow's own port when free, else a few hashed tries in the ephemeral
 * range (IANA 49152-65535, RFC 6335 section 6). 0: none found. The tries
 * start from the original source (`client`), so that clients sharing a
 * source port get different sequences. */
static __always_inline __be16 atl_snat_port(const struct atl_ct_key *flow, __be32 addr,
                                            __be32 client, __u64 now) {
  struct atl_ct_key reply = {.saddr = flow->daddr, .daddr = addr, .sport = flow->dport,
                             .dport = flow->sport, .proto = flow->proto};
  if (!atl_ct_lookup(&reply, now)) return flow->sport;
  __u32 h = client ^ ((__u32)flow->sport << 16) ^ (__u32)now;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    h = h * 2654435761u + 0x9e3779b9u;
    reply.dport = bpf_htons(49152 + (h >> 16) % 16384);
    if (!atl_ct_lookup(&reply, now)) return reply.dport;
  }
  return 0;
}

#endif /* ATOLL_DATAPLANE_EBPF_ATOLL_CONNTRACK_H_ */
