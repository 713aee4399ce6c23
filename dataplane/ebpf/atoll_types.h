/* The eBPF dataplane's map keys, values and constants: the one definition,
 * included by the BPF C (atoll.bpf.c) and by the C++ that fills
 * the maps (ebpf_dataplane.cc), which static_asserts their sizes. Plain C with
 * fixed-width kernel types; byte order is written beside every field.
 *
 * IPv4 only for now: the keys hold 4-byte addresses. */
#ifndef ATOLL_DATAPLANE_EBPF_ATOLL_TYPES_H_
#define ATOLL_DATAPLANE_EBPF_ATOLL_TYPES_H_

#include <linux/types.h>

/* Capacities, also the maps' max_entries. */
#define ATL_MAX_SERVICES 65536     /* frontends (one per address, port, protocol, scope) */
#define ATL_MAX_BACKEND_SLOTS 262144 /* backend entries of all services together */
#define ATL_MAX_MAGLEV_ENTRIES 1048576 /* atl_maglev entries: 4M slots of all services (8 MiB) */
#define ATL_MAX_CT 262144          /* conntrack entries (two per flow) */
#define ATL_MAX_AFFINITY 65536
#define ATL_MAX_PODS 4096          /* pod ports on one host */
#define ATL_MAX_PREFIXES 16384     /* segment CIDRs and remote blocks */
#define ATL_MAX_SEGMENT_PAIRS 16384 /* admitted (source, destination) segment pairs */
#define ATL_MAX_NODES 4096

/* The overlay's UDP port (IANA, RFC 7348 section 5); the VXLAN device listens on it. */
#define ATL_VXLAN_PORT 4789

/* Service scope (lb::Scope): ClusterIP traffic from pods is internal; NodePort,
 * externalIPs and LoadBalancer IPs from outside are external. */
enum atl_scope {
  ATL_SCOPE_INTERNAL = 0,
  ATL_SCOPE_EXTERNAL = 1,
};

/* A service frontend. addr 0 is a NodePort: it answers on every node address. */
struct atl_svc_key {
  __be32 addr;  /* network order */
  __be16 port;  /* network order */
  __u8 proto;   /* IPPROTO_TCP, IPPROTO_UDP */
  __u8 scope;   /* enum atl_scope */
};

/* Written last, after its backends and Maglev slots: a lookup that finds it
 * finds them complete. */
struct atl_svc {
  __u32 id;               /* host order; stable while the frontend exists */
  __u32 backend_offset;   /* host order; first entry in atl_backends */
  __u32 backend_count;    /* host order; 0: no eligible backend, dropped */
  __u32 maglev_offset;    /* host order; first entry in atl_maglev */
  __u32 maglev_size;      /* host order; a prime (lb::kMaglevSizes) */
  __u32 affinity_timeout; /* host order, seconds; 0: no session affinity */
  __u32 flags;            /* host order; ATL_SVC_* */
};
#define ATL_SVC_KEEP_SOURCE 1 /* externalTrafficPolicy Local: no SNAT, local backends */

/* An eligible backend of a service, at backend_offset + i in atl_backends. */
struct atl_backend {
  __be32 addr;  /* network order */
  __be16 port;  /* network order */
  __u8 flags;   /* ATL_BACKEND_* */
  __u8 pad;
};
#define ATL_BACKEND_LOCAL 1 /* the backend runs on this host */

/* Maglev slots, four to an entry of atl_maglev: an array's elements are 8
 * bytes apart in its memory-mapped form, whatever their size. Slot i of a
 * service is backend[i % 4] of entry maglev_offset + i / 4, and holds the index
 * of a backend within the service's list (lb::MaglevSlot), host order. */
#define ATL_MAGLEV_PER_ENTRY 4
struct atl_maglev_entry {
  __u16 backend[ATL_MAGLEV_PER_ENTRY];
};

/* A flow as a packet carries it, in both directions. */
struct atl_ct_key {
  __be32 saddr;  /* network order */
  __be32 daddr;  /* network order */
  __be16 sport;  /* network order; ICMP echo: the identifier */
  __be16 dport;  /* network order; ICMP echo: the identifier */
  __u8 proto;
  __u8 pad[3];
};

/* A conntrack entry. Each flow has two: the original direction (as the first
 * packet arrived) and the reply direction (the original after NAT, reversed).
 * A packet that matches one gets that entry's rewrite. */
struct atl_ct {
  __u64 last_seen_ns;  /* host order, bpf_ktime_get_ns() */
  __be32 nat_saddr;    /* network order; the rewrite, when flags has ATL_CT_SNAT */
  __be32 nat_daddr;    /* network order; the rewrite, when flags has ATL_CT_DNAT */
  __be16 nat_sport;    /* network order */
  __be16 nat_dport;    /* network order */
  __be32 tunnel;       /* network order; the flow came through the overlay from
                          this underlay address: its other direction goes back there */
  __u32 vni;           /* host order; the VNI for `tunnel` */
  __u8 flags;          /* ATL_CT_* */
  __u8 tcp_state;      /* enum atl_tcp_state */
  __u8 pad[6];
};
#define ATL_CT_REPLY 1    /* this is the reply direction's entry */
#define ATL_CT_SNAT 2     /* rewrite the source to nat_saddr:nat_sport */
#define ATL_CT_DNAT 4     /* rewrite the destination to nat_daddr:nat_dport */
#define ATL_CT_EXTERNAL 8 /* admitted by an external frontend (NodePort, externalIP) */

enum atl_tcp_state {
  ATL_TCP_SYN_SENT = 0, /* seen one way only */
  ATL_TCP_ESTABLISHED = 1,
  ATL_TCP_CLOSING = 2, /* this direction's FIN seen */
  ATL_TCP_RESET = 3,   /* a RST seen: the connection is over */
};

/* Session affinity (sessionAffinity: ClientIP): the backend a client had. */
struct atl_affinity_key {
  __be32 client;  /* network order */
  __u32 svc_id;   /* host order */
};
struct atl_affinity {
  __u64 last_seen_ns; /* host order */
  __be32 addr;        /* network order; the backend, checked against the */
  __be16 port;        /* network order;   service's current list */
  __u16 pad;
};

/* A pod port: the host side of a pod's veth. Keyed by the host-side ifindex
 * (atl_pod_ports: what a pod may send) and by the pod's address (atl_pods:
 * where a packet to it goes). */
struct atl_pod {
  __be32 addr;      /* network order; the pod's only source address */
  __u32 ifindex;    /* host order; the host side */
  __u32 segment;    /* host order; the segment id (VNI) */
  __u8 mac[6];      /* the pod side's, the only source MAC it may use */
  __u8 pad[2];
};

/* Longest-prefix keys: segment CIDRs (atl_segments) and remote blocks
 * (atl_remote_blocks). */
struct atl_lpm_key {
  __u32 prefixlen; /* host order */
  __be32 addr;     /* network order */
};

struct atl_segment {
  __u32 id;       /* host order; the VNI */
  __be32 gateway; /* network order; answered by the dataplane, SNAT for hairpin */
  __be32 egress;  /* network order; SNAT address leaving the cluster, 0: the node's */
  __u8 flags;     /* ATL_SEGMENT_* */
  __u8 pad[3];
};
#define ATL_SEGMENT_ISOLATED 1

/* Addresses of a segment on another host: encapsulate to that host. */
struct atl_remote_block {
  __be32 underlay; /* network order; the remote tunnel endpoint */
  __u32 vni;       /* host order */
};

/* An isolated segment admits another: (source segment, destination segment). */
struct atl_admit_key {
  __u32 src; /* host order */
  __u32 dst; /* host order */
};

/* Host-wide settings (atl_config, one entry). */
struct atl_config {
  __be32 node_addr;       /* network order; SNAT source for NodePort and egress */
  __u32 overlay_ifindex;  /* host order; the VXLAN collect_md device */
  __u32 uplink_ifindex;   /* host order; 0: none, the VXLAN device encapsulates */
  __u8 router_mac[6];     /* answers ARP for gateways and peers; source of routed frames */
  __u8 pad[2];
};

/* Why a packet was dropped: one counter each (atl_drops, per CPU). */
enum atl_drop_reason {
  ATL_DROP_MALFORMED = 0,     /* truncated or inconsistent headers */
  ATL_DROP_UNSUPPORTED,       /* not IPv4 or ARP (IPv6 is not routed yet) */
  ATL_DROP_UNKNOWN_PORT,      /* from an interface that is no pod port */
  ATL_DROP_SPOOFED,           /* source MAC or address not the pod's own */
  ATL_DROP_FRAGMENT,          /* a non-first IPv4 fragment: no ports to balance on */
  ATL_DROP_NO_BACKEND,        /* a service with no eligible backend */
  ATL_DROP_ISOLATED,          /* an isolated segment refused the source */
  ATL_DROP_NO_ROUTE,          /* destination in the pod CIDR but on no host */
  ATL_DROP_VNI_MISMATCH,      /* overlay packet whose VNI is not its pod's segment */
  ATL_DROP_NAT_EXHAUSTED,     /* no free source port for SNAT */
  ATL_DROP_FIB,               /* the host has no route out */
  ATL_DROP_REASONS,
};

/* What the last program run decided, written to skb->cb so that
 * BPF_PROG_TEST_RUN (which performs no redirect and keeps no tunnel key) can
 * tell where a packet would go. The packet path never reads it. */
enum atl_verdict {
  ATL_VERDICT_DROP = 1,    /* cb[1]: enum atl_drop_reason */
  ATL_VERDICT_PASS = 2,    /* to the host stack */
  ATL_VERDICT_DELIVER = 3, /* cb[1]: pod ifindex */
  ATL_VERDICT_ENCAP = 4,   /* cb[1]: VNI, cb[2]: underlay (network order) */
  ATL_VERDICT_OUT = 5,     /* cb[1]: ifindex, after a FIB lookup */
  ATL_VERDICT_REPLY = 6,   /* answered (ARP) back out of the ingress port */
};

#endif /* ATOLL_DATAPLANE_EBPF_ATOLL_TYPES_H_ */
