/* Parsing and rewriting: the `parse` stage, the NAT rewrites and the L2
 * rewrites that every entry program shares. */
#ifndef ATOLL_DATAPLANE_EBPF_ATOLL_PACKET_H_
#define ATOLL_DATAPLANE_EBPF_ATOLL_PACKET_H_

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "atoll_maps.h"
#include "atoll_types.h"

/* ICMP (RFC 792). <linux/icmp.h> pulls in libc headers a BPF target lacks. */
struct icmphdr {
  __u8 type;
  __u8 code;
  __sum16 checksum;
  union {
    struct {
      __be16 id;
      __be16 sequence;
    } echo;
    __be32 gateway;
  } un;
};
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

/* skb->pkt_type, from <linux/if_packet.h> (which the tc headers lack). */
#ifndef PACKET_HOST
#define PACKET_HOST 0
#define PACKET_OTHERHOST 3
#endif

#define ATL_IP_OFF ETH_HLEN
#define ATL_IP_CSUM_OFF (ATL_IP_OFF + 10)
#define ATL_IP_SADDR_OFF (ATL_IP_OFF + 12)
#define ATL_IP_DADDR_OFF (ATL_IP_OFF + 16)
#define ATL_IP_MF 0x2000
#define ATL_IP_OFFSET 0x1fff

/* A parsed IPv4 packet. For an ICMP error, `inner` is the quoted packet's
 * flow (RFC 792: its IP header and first 8 bytes) and `flow` is unused. */
struct atl_pkt {
  struct atl_ct_key flow;
  struct atl_ct_key inner;
  __u32 l4_off;       /* the outer L4 header */
  __u32 inner_l3_off; /* an ICMP error's quoted IP header */
  __u32 inner_l4_off;
  __u8 tcp_flags;
  __u8 icmp_error;
  __u8 ttl;
};

static __always_inline void atl_count_drop(__u32 reason) {
  __u64 *n = bpf_map_lookup_elem(&atl_drops, &reason);
  if (n) *n += 1;
}

/* Records where the packet goes for BPF_PROG_TEST_RUN (atoll_types.h). */
static __always_inline void atl_record(struct __sk_buff *skb, __u32 verdict, __u32 a, __u32 b) {
  skb->cb[0] = verdict;
  skb->cb[1] = a;
  skb->cb[2] = b;
}

static __always_inline int atl_drop(struct __sk_buff *skb, __u32 reason) {
  atl_count_drop(reason);
  atl_record(skb, ATL_VERDICT_DROP, reason, 0);
  return TC_ACT_SHOT;
}

static __always_inline int atl_pass(struct __sk_buff *skb) {
  atl_record(skb, ATL_VERDICT_PASS, 0, 0);
  return TC_ACT_OK;
}

/* atl_pass for a pod's frame to the router MAC, which is not the veth's own:
 * the stack would take it as another host's (PACKET_OTHERHOST) and drop it. */
static __always_inline int atl_pass_to_host(struct __sk_buff* skb) {
  bpf_skb_change_type(skb, PACKET_HOST);
  return atl_pass(skb);
}

static __always_inline int atl_is_icmp_error(__u8 type) {
  return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB ||
         type == ICMP_SOURCE_QUENCH;
}

/* The ports of a flow. ICMP echo puts its identifier in both, so that a
 * request and its reply are each other's reverse. Returns 0 or a drop reason
 * + 1. */
static __always_inline int atl_parse_l4(void *data, void *data_end, __u32 l4_off, __u8 proto,
                                        struct atl_ct_key *flow, __u8 *tcp_flags) {
  void *l4 = data + l4_off;
  if (proto == IPPROTO_TCP) {
    struct tcphdr *tcp = l4;
    if ((void *)(tcp + 1) > data_end) return ATL_DROP_MALFORMED + 1;
    flow->sport = tcp->source;
    flow->dport = tcp->dest;
    if (tcp_flags) *tcp_flags = ((__u8 *)tcp)[13];
  } else if (proto == IPPROTO_UDP) {
    struct udphdr *udp = l4;
    if ((void *)(udp + 1) > data_end) return ATL_DROP_MALFORMED + 1;
    flow->sport = udp->source;
    flow->dport = udp->dest;
  } else if (proto == IPPROTO_ICMP) {
    struct icmphdr *icmp = l4;
    if ((void *)(icmp + 1) > data_end) return ATL_DROP_MALFORMED + 1;
    if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY) {
      flow->sport = icmp->un.echo.id;
      flow->dport = icmp->un.echo.id;
    }
  }
  return 0;
}

/* The `parse` stage for an IPv4 frame. Returns 0 or a drop reason + 1. */
static __always_inline int atl_parse_ipv4(struct __sk_buff *skb, struct atl_pkt *p) {
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct iphdr *ip = data + ATL_IP_OFF;
  if ((void *)(ip + 1) > data_end) return ATL_DROP_MALFORMED + 1;
  /* RFC 791 section 3.1: version 4, a header of at least five words, no
   * longer than the datagram, which the frame holds. */
  if (ip->version != 4 || ip->ihl < 5) return ATL_DROP_MALFORMED + 1;
  __u32 tot_len = bpf_ntohs(ip->tot_len);
  if (tot_len < ip->ihl * 4u || ATL_IP_OFF + tot_len > skb->len) return ATL_DROP_MALFORMED + 1;
  if (bpf_ntohs(ip->frag_off) & ATL_IP_OFFSET) return ATL_DROP_FRAGMENT + 1;

  __builtin_memset(p, 0, sizeof(*p));
  p->flow.saddr = ip->saddr;
  p->flow.daddr = ip->daddr;
  p->flow.proto = ip->protocol;
  p->ttl = ip->ttl;
  p->l4_off = ATL_IP_OFF + (ip->ihl & 0xf) * 4;
  int err = atl_parse_l4(data, data_end, p->l4_off, p->flow.proto, &p->flow, &p->tcp_flags);
  if (err || p->flow.proto != IPPROTO_ICMP) return err;

  struct icmphdr *icmp = data + p->l4_off;
  if ((void *)(icmp + 1) > data_end) return ATL_DROP_MALFORMED + 1;
  if (!atl_is_icmp_error(icmp->type)) return 0;
  /* The quoted datagram: its header and at least 8 bytes (RFC 792). */
  p->icmp_error = 1;
  p->inner_l3_off = p->l4_off + sizeof(struct icmphdr);
  struct iphdr *inner = data + p->inner_l3_off;
  if ((void *)(inner + 1) > data_end) return ATL_DROP_MALFORMED + 1;
  if (inner->version != 4 || inner->ihl < 5) return ATL_DROP_MALFORMED + 1;
  p->inner.saddr = inner->saddr;
  p->inner.daddr = inner->daddr;
  p->inner.proto = inner->protocol;
  p->inner_l4_off = p->inner_l3_off + (inner->ihl & 0xf) * 4;
  /* Only the 8 quoted bytes are certain: read ports from them alone. */
  __be16 *ports = data + p->inner_l4_off;
  if ((void *)(ports + 4) > data_end) return ATL_DROP_MALFORMED + 1;
  if (p->inner.proto == IPPROTO_TCP || p->inner.proto == IPPROTO_UDP) {
    p->inner.sport = ports[0];
    p->inner.dport = ports[1];
  } else if (p->inner.proto == IPPROTO_ICMP) {
    p->inner.sport = ports[2]; /* the echo identifier */
    p->inner.dport = ports[2];
  }
  return 0;
}

static __always_inline struct atl_ct_key atl_reverse(const struct atl_ct_key *k) {
  struct atl_ct_key r = {
      .saddr = k->daddr, .daddr = k->saddr, .sport = k->dport, .dport = k->sport,
      .proto = k->proto};
  return r;
}

/* Offset of the L4 checksum and the flags its updates need; 0 when the
 * protocol has none we rewrite. */
static __always_inline __u32 atl_l4_csum(__u8 proto, __u32 l4_off, __u64 *flags) {
  if (proto == IPPROTO_TCP) {
    *flags = BPF_F_PSEUDO_HDR;
    return l4_off + offsetof(struct tcphdr, check);
  }
  if (proto == IPPROTO_UDP) {
    *flags = BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0; /* 0: no checksum (RFC 768) */
    return l4_off + offsetof(struct udphdr, check);
  }
  if (proto == IPPROTO_ICMP) {
    *flags = 0; /* no pseudo-header in ICMP's checksum */
    return l4_off + offsetof(struct icmphdr, checksum);
  }
  return 0;
}

/* Rewrites an address of the IP header at `ip_off`, and the checksums that
 * cover it: the header's, and `l4_csum_off`'s (0: none) with `l4_flags`. */
static __always_inline int atl_set_addr(struct __sk_buff *skb, __u32 ip_off, __u32 field_off,
                                        __be32 old, __be32 new, __u32 l4_csum_off,
                                        __u64 l4_flags) {
  if (old == new) return 0;
  if (l4_csum_off &&
      bpf_l4_csum_replace(skb, l4_csum_off, old, new, l4_flags | sizeof(new)) < 0)
    return -1;
  if (bpf_l3_csum_replace(skb, ip_off + 10, old, new, sizeof(new)) < 0) return -1;
  return bpf_skb_store_bytes(skb, ip_off + field_off, &new, sizeof(new), 0);
}

static __always_inline int atl_set_port(struct __sk_buff *skb, __u32 port_off, __be16 old,
                                        __be16 new, __u32 l4_csum_off, __u64 l4_flags) {
  if (old == new) return 0;
  if (l4_csum_off && bpf_l4_csum_replace(skb, l4_csum_off, old, new,
                                         (l4_flags & BPF_F_MARK_MANGLED_0) | sizeof(new)) < 0)
    return -1;
  return bpf_skb_store_bytes(skb, port_off, &new, sizeof(new), 0);
}

/* Gives the packet `flow`'s addresses and ports `to`'s: the NAT rewrite of
 * the conntrack entry it matched or created. */
static __always_inline int atl_nat(struct __sk_buff *skb, const struct atl_pkt *p,
                                   const struct atl_ct_key *to) {
  __u64 flags = 0;
  __u32 csum = atl_l4_csum(p->flow.proto, p->l4_off, &flags);
  __u64 addr_flags = p->flow.proto == IPPROTO_ICMP ? 0 : flags;
  __u32 addr_csum = p->flow.proto == IPPROTO_ICMP ? 0 : csum;
  if (atl_set_addr(skb, ATL_IP_OFF, 12, p->flow.saddr, to->saddr, addr_csum, addr_flags) ||
      atl_set_addr(skb, ATL_IP_OFF, 16, p->flow.daddr, to->daddr, addr_csum, addr_flags))
    return -1;
  if (p->flow.proto == IPPROTO_TCP || p->flow.proto == IPPROTO_UDP) {
    if (atl_set_port(skb, p->l4_off, p->flow.sport, to->sport, csum, flags) ||
        atl_set_port(skb, p->l4_off + 2, p->flow.dport, to->dport, csum, flags))
      return -1;
  } else if (p->flow.proto == IPPROTO_ICMP) {
    /* Echo: one identifier; a source rewrite (SNAT) owns it. */
    __be16 id = to->sport != p->flow.sport ? to->sport : to->dport;
    if (atl_set_port(skb, p->l4_off + offsetof(struct icmphdr, un.echo.id), p->flow.sport, id,
                     csum, 0))
      return -1;
  }
  return 0;
}

static __always_inline __sum16 atl_csum_fold(__s64 csum) {
  __u32 sum = (__u32)csum;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__sum16)~sum;
}

/* The quoted TCP or UDP checksum after the quoted addresses and ports change
 * (RFC 1624 incremental update), when the quote holds it (an ICMP error
 * carries at least 8 bytes of L4 header: a UDP checksum always, a TCP one
 * often) and it is in use; then the ICMP checksum for that field's change. */
static __always_inline int atl_fix_quoted_l4_csum(struct __sk_buff *skb, const struct atl_pkt *p,
                                                  const struct atl_ct_key *to, __u32 icmp_csum) {
  __u32 off = p->inner_l4_off + (p->inner.proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
                                                               : offsetof(struct udphdr, check));
  __sum16 old_sum;
  if (bpf_skb_load_bytes(skb, off, &old_sum, sizeof(old_sum)) < 0) return 0; /* cut off */
  if (p->inner.proto == IPPROTO_UDP && old_sum == 0) return 0;               /* unused */
  struct {
    __be32 saddr, daddr;
    __be16 sport, dport;
  } from = {p->inner.saddr, p->inner.daddr, p->inner.sport, p->inner.dport},
    next = {to->saddr, to->daddr, to->sport, to->dport};
  __s64 sum = bpf_csum_diff((__be32 *)&from, sizeof(from), (__be32 *)&next, sizeof(next),
                            (__u16)~old_sum);
  if (sum < 0) return -1;
  __sum16 new_sum = atl_csum_fold(sum);
  if (bpf_skb_store_bytes(skb, off, &new_sum, sizeof(new_sum), 0) < 0 ||
      bpf_l4_csum_replace(skb, icmp_csum, old_sum, new_sum, sizeof(new_sum)) < 0)
    return -1;
  return 0;
}

/* The reverse translation of an ICMP error about a translated flow (RFC 5508
 * section 4.2; what netfilter's nf_nat_icmp_reply_translation does): the
 * quoted packet is what the other side sent, `quoted_to` is what it must
 * read as, and the outer destination follows the quoted source. The outer
 * source follows the quoted destination only when the error came from that
 * host itself, not from a router on the way. */
static __always_inline int atl_nat_icmp_error(struct __sk_buff *skb, const struct atl_pkt *p,
                                              const struct atl_ct_key *quoted_to) {
  __u32 icmp_csum = p->l4_off + offsetof(struct icmphdr, checksum);
  __u32 inner_ip_csum = p->inner_l3_off + 10;
  /* Each change inside the quote changes the ICMP checksum twice: the field,
   * and the quoted header's checksum that covers it. */
  __be16 old_sum = 0, new_sum = 0;
  if (bpf_skb_load_bytes(skb, inner_ip_csum, &old_sum, 2) < 0) return -1;
  if (atl_set_addr(skb, p->inner_l3_off, 12, p->inner.saddr, quoted_to->saddr, 0, 0) ||
      atl_set_addr(skb, p->inner_l3_off, 16, p->inner.daddr, quoted_to->daddr, 0, 0))
    return -1;
  if (bpf_skb_load_bytes(skb, inner_ip_csum, &new_sum, 2) < 0) return -1;
  if (bpf_l4_csum_replace(skb, icmp_csum, p->inner.saddr, quoted_to->saddr, 4) < 0 ||
      bpf_l4_csum_replace(skb, icmp_csum, p->inner.daddr, quoted_to->daddr, 4) < 0 ||
      bpf_l4_csum_replace(skb, icmp_csum, old_sum, new_sum, 2) < 0)
    return -1;
  if (p->inner.proto == IPPROTO_TCP || p->inner.proto == IPPROTO_UDP) {
    if (atl_fix_quoted_l4_csum(skb, p, quoted_to, icmp_csum) < 0) return -1;
    if (atl_set_port(skb, p->inner_l4_off, p->inner.sport, quoted_to->sport, icmp_csum, 0) ||
        atl_set_port(skb, p->inner_l4_off + 2, p->inner.dport, quoted_to->dport, icmp_csum, 0))
      return -1;
  }
  __be32 outer_saddr = p->flow.saddr == p->inner.daddr ? quoted_to->daddr : p->flow.saddr;
  if (atl_set_addr(skb, ATL_IP_OFF, 12, p->flow.saddr, outer_saddr, 0, 0) ||
      atl_set_addr(skb, ATL_IP_OFF, 16, p->flow.daddr, quoted_to->saddr, 0, 0))
    return -1;
  return 0;
}

/* A routed frame's Ethernet addresses. */
static __always_inline int atl_set_macs(struct __sk_buff *skb, const __u8 *dst, const __u8 *src) {
  __u8 macs[ETH_ALEN * 2];
  __builtin_memcpy(macs, dst, ETH_ALEN);
  __builtin_memcpy(macs + ETH_ALEN, src, ETH_ALEN);
  return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
}

/* BPF has no memcmp. */
static __always_inline int atl_mac_equal(const __u8 *a, const __u8 *b) {
  return *(const __u32 *)a == *(const __u32 *)b &&
         *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/* A pod's MAC is 0a:58 and its IPv4 address (the CNI server gives it). */
static __always_inline void atl_pod_mac(__be32 addr, __u8 *mac) {
  mac[0] = 0x0a;
  mac[1] = 0x58;
  __builtin_memcpy(mac + 2, &addr, 4);
}

#endif /* ATOLL_DATAPLANE_EBPF_ATOLL_PACKET_H_ */
