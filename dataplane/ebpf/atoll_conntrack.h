/* The `conntrack` stage: two entries per flow (atoll_types.h), timeouts per
 * protocol state, and the rewrite of a packet that matched one. */
#ifndef ATOLL_DATAPLANE_EBPF_ATOLL_CONNTRACK_H_
#define ATOLL_DATAPLANE_EBPF_ATOLL_CONNTRACK_H_

#include "atoll_packet.h"
#include "lb/conntrack_timeouts.h"

#define ATL_SEC 1000000000ull
#define ATL_TCP_FIN 0x01
#define ATL_TCP_SYN 0x02
#define ATL_TCP_RST 0x04
#define ATL_TCP_ACK 0x10

/* How long an entry lives after its last packet, by its state: the timeouts
 * of every backend (lb/conntrack_timeouts.h). An entry sees only its own
 * direction: a TCP entry's SYN_SENT lasts until that direction's first ACK,
 * a UDP entry is "replied" (ESTABLISHED) once it is the reply's entry and has
 * carried a packet. */
static __always_inline __u64 atl_ct_lifetime(__u8 proto, __u8 state) {
  if (proto == IPPROTO_TCP) {
    switch (state) {
      case ATL_TCP_ESTABLISHED:
        return ATL_CT_TCP_ESTABLISHED_S * ATL_SEC;
      case ATL_TCP_CLOSING:
        return ATL_CT_TCP_FIN_WAIT_S * ATL_SEC;
      case ATL_TCP_RESET:
        return ATL_CT_TCP_CLOSING_S * ATL_SEC;
      default:
        return ATL_CT_TCP_SYN_S * ATL_SEC;
    }
  }
  if (proto == IPPROTO_UDP)
    return (state == ATL_TCP_ESTABLISHED ? ATL_CT_UDP_REPLIED_S : ATL_CT_UDP_UNREPLIED_S) * ATL_SEC;
  if (proto == IPPROTO_ICMP) return ATL_CT_ICMP_S * ATL_SEC;
  return ATL_CT_OTHER_S * ATL_SEC;
}

/* How long ago `then` was. Another CPU may have stamped an entry after this
 * packet read the clock, so `then` can be later than `now`: that is no time
 * at all, not the 584 years an unsigned difference would make of it (which
 * once expired a busy flow's entries in the middle of a bulk transfer). */
static __always_inline __u64 atl_age(__u64 now, __u64 then) {
  return now > then ? now - then : 0;
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

/* Whether `e` outlived its state's lifetime; its flow may live on through
 * its other entry (atl_ct_lookup). */
static __always_inline int atl_ct_expired(__u8 proto, const struct atl_ct *e, __u64 now) {
  return atl_age(now, e->last_seen_ns) > atl_ct_lifetime(proto, e->tcp_state);
}

/* The other direction's key of the flow whose entry for `k` is `e`: the
 * reverse of what `e` rewrites `k` to. */
static __always_inline struct atl_ct_key atl_ct_partner_key(const struct atl_ct_key *k,
                                                            const struct atl_ct *e) {
  struct atl_ct_key sent = atl_ct_rewritten(k, e);
  return atl_reverse(&sent);
}

/* The other direction's entry of the flow whose entry for `k` is `e`, or
 * NULL: the entry at atl_ct_partner_key, if it leads back to `k` (a tuple
 * once the flow's may be another flow's since). */
static __always_inline struct atl_ct *atl_ct_partner(const struct atl_ct_key *k,
                                                     const struct atl_ct *e) {
  struct atl_ct_key other = atl_ct_partner_key(k, e);
  struct atl_ct *o = bpf_map_lookup_elem(&atl_ct, &other);
  if (!o) return NULL;
  struct atl_ct_key back = atl_ct_rewritten(&other, o);
  if (back.saddr != k->daddr || back.daddr != k->saddr || back.sport != k->dport ||
      back.dport != k->sport)
    return NULL;
  return o;
}

/* The entry for a packet's flow while the flow lives, or NULL. A flow lives
 * while either of its entries does, each by its own state's lifetime: each
 * entry sees only its own direction, and a flow that talks one way only (a
 * UDP stream answering one request) must not lose the other direction, as
 * lb::ConntrackShard keeps one lifetime for both. */
static __always_inline struct atl_ct *atl_ct_lookup(const struct atl_ct_key *k, __u64 now) {
  struct atl_ct *e = bpf_map_lookup_elem(&atl_ct, k);
  if (!e) return NULL;
  if (!atl_ct_expired(k->proto, e, now)) return e;
  struct atl_ct *o = atl_ct_partner(k, e);
  return o && !atl_ct_expired(k->proto, o, now) ? e : NULL;
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

/* The first packet of a TCP connection: a SYN alone (lb::IsOpeningSyn). */
static __always_inline int atl_opening_syn(__u8 proto, __u8 tcp_flags) {
  return proto == IPPROTO_TCP &&
         (tcp_flags & (ATL_TCP_SYN | ATL_TCP_ACK | ATL_TCP_RST)) == ATL_TCP_SYN;
}

/* Whether the TCP connection of entry `e` and its partner `o` (or NULL) is
 * over: a RST, a FIN each way, or its other half gone. A new connection's SYN
 * may take its tuples, as Linux lets a SYN reuse a tuple in TIME_WAIT
 * (lb::IsFinished). Each entry sees its own direction's packets: the other
 * entry says what came the other way. A flow that lost one entry (the LRU
 * map evicted it) cannot translate that direction any more, so it counts as
 * over; lb::ConntrackShard keeps a flow whole or not at all. */
static __always_inline int atl_ct_finished(const struct atl_ct *e, const struct atl_ct *o) {
  return !o || e->tcp_state == ATL_TCP_RESET || o->tcp_state == ATL_TCP_RESET ||
         (e->tcp_state == ATL_TCP_CLOSING && o->tcp_state == ATL_TCP_CLOSING);
}

/* Whether a live flow holds `k`, which a new flow whose first packet has
 * `tcp_flags` wants as its reply tuple: not a finished TCP connection's to a
 * new connection's SYN (lb::ConntrackShard::Insert). The flow's other entry
 * keeps it alive as atl_ct_lookup says. */
static __always_inline int atl_ct_taken(const struct atl_ct_key *k, __u8 tcp_flags, __u64 now) {
  struct atl_ct *e = bpf_map_lookup_elem(&atl_ct, k);
  if (!e) return 0;
  struct atl_ct *o = atl_ct_partner(k, e);
  if (atl_ct_expired(k->proto, e, now) && (!o || atl_ct_expired(k->proto, o, now))) return 0;
  return !atl_opening_syn(k->proto, tcp_flags) || !atl_ct_finished(e, o);
}

/* A client recycling the port of a finished connection opens a new one: the
 * old flow's entries go and the SYN is balanced afresh, or it would follow
 * the old backend even after that left the service, for as long as the
 * client keeps retrying (kubernetes/kubernetes#81775; lb::Reopens). `e` is
 * the entry the packet matched; it is gone when this says 1. */
static __always_inline int atl_ct_reopens(const struct atl_pkt *p, const struct atl_ct *e) {
  if ((e->flags & ATL_CT_REPLY) || !atl_opening_syn(p->flow.proto, p->tcp_flags)) return 0;
  struct atl_ct *o = atl_ct_partner(&p->flow, e);
  if (!atl_ct_finished(e, o)) return 0;
  if (o) {
    struct atl_ct_key other = atl_ct_partner_key(&p->flow, e);
    bpf_map_delete_elem(&atl_ct, &other);
  }
  bpf_map_delete_elem(&atl_ct, &p->flow);
  return 1;
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
  /* A first packet carrying RST or FIN moves its entry on at once, as any
   * packet would (atl_ct_seen; lb::ConntrackShard::Insert): a stray one does
   * not pin the flow for the established timeout, and a connection picked up
   * as it closes is over once the other side's FIN comes. */
  if (orig->proto == IPPROTO_TCP && (tcp_flags & ATL_TCP_RST))
    fwd.tcp_state = ATL_TCP_RESET;
  else if (orig->proto == IPPROTO_TCP && (tcp_flags & ATL_TCP_FIN))
    fwd.tcp_state = ATL_TCP_CLOSING;
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
