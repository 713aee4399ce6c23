/* The eBPF dataplane's tc programs (DESIGN.md "Dataplane pipeline"):
 *   atl_from_pod      ingress of a pod's host-side veth: what a pod sends
 *   atl_from_overlay  ingress of the VXLAN collect_md device: from other hosts
 *   atl_from_uplink   ingress of the host uplink: NodePort, externalIPs, and
 *                     replies to flows SNATed out of the cluster
 * The stages live in the atoll_*.h headers, named as in the DPDK backend. */
#include "atoll_route.h"

/* From <linux/if_arp.h>, which pulls in libc headers a BPF target lacks. */
#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum atl_origin { ATL_FROM_POD, ATL_FROM_OVERLAY, ATL_FROM_UPLINK };

/* Added to bpf_ktime_get_ns() for every time the programs keep (set before
 * loading; 0 for the agent). The fixtures run the clock a day ahead, so that
 * they can date an entry hours back on a machine booted minutes ago: the
 * clock counts from boot and has no earlier time to give. */
const volatile __u64 atl_clock_offset_ns = 0;

/* ARP for IPv4 over Ethernet (RFC 826). */
struct atl_arp {
  __be16 htype, ptype;
  __u8 hlen, plen;
  __be16 op;
  __u8 sha[ETH_ALEN];
  __be32 spa;
  __u8 tha[ETH_ALEN];
  __be32 tpa;
} __attribute__((packed));

/* The dataplane answers every ARP request a pod makes for another address
 * (its gateway, a peer of its segment) with the router MAC, and routes. A
 * probe or announcement about the pod's own address gets no answer. */
static __always_inline int atl_answer_arp(struct __sk_buff *skb, const struct atl_pod *port,
                                          const struct atl_config *cfg) {
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct atl_arp *arp = data + ETH_HLEN;
  if ((void *)(arp + 1) > data_end) return atl_drop(skb, ATL_DROP_MALFORMED);
  if (arp->htype != bpf_htons(ARPHRD_ETHER) || arp->ptype != bpf_htons(ETH_P_IP) ||
      arp->hlen != ETH_ALEN || arp->plen != 4)
    return atl_drop(skb, ATL_DROP_MALFORMED);
  if (arp->op != bpf_htons(ARPOP_REQUEST) || arp->spa == 0 || arp->tpa == port->addr) {
    atl_record(skb, ATL_VERDICT_DROP, 0, 0);
    return TC_ACT_SHOT; /* nothing to answer; not an error */
  }
  if (arp->spa != port->addr || !atl_mac_equal(arp->sha, port->mac))
    return atl_drop(skb, ATL_DROP_SPOOFED);

  struct atl_arp reply = *arp;
  reply.op = bpf_htons(ARPOP_REPLY);
  __builtin_memcpy(reply.sha, cfg->router_mac, ETH_ALEN);
  reply.spa = arp->tpa;
  __builtin_memcpy(reply.tha, arp->sha, ETH_ALEN);
  reply.tpa = arp->spa;
  if (atl_set_macs(skb, port->mac, cfg->router_mac) < 0 ||
      bpf_skb_store_bytes(skb, ETH_HLEN, &reply, sizeof(reply), 0) < 0)
    return atl_drop(skb, ATL_DROP_MALFORMED);
  atl_record(skb, ATL_VERDICT_REPLY, skb->ifindex, 0);
  return bpf_redirect(skb->ifindex, 0);
}

/* An ICMP error about a flow conntrack knows is translated as the flow was
 * and follows the flow's reply; any other is routed as it is. */
static __always_inline int atl_icmp_error(struct __sk_buff *skb, struct atl_pkt *p,
                                          enum atl_origin origin, __u32 src_segment,
                                          const struct atl_config *cfg, __u64 now) {
  struct atl_ct_key sent_back = atl_reverse(&p->inner);
  struct atl_ct *ct = atl_ct_lookup(&sent_back, now);
  if (ct) {
    struct atl_ct_key rewritten = atl_ct_rewritten(&sent_back, ct);
    struct atl_ct_key quoted_to = atl_reverse(&rewritten);
    __be32 saddr = p->flow.saddr == p->inner.daddr ? quoted_to.daddr : p->flow.saddr;
    if (atl_nat_icmp_error(skb, p, &quoted_to) < 0) return atl_drop(skb, ATL_DROP_MALFORMED);
    return atl_route(skb, saddr, quoted_to.saddr, ct, cfg);
  }
  if (origin == ATL_FROM_UPLINK) return atl_pass(skb);
  if (!atl_isolation_allows(src_segment, atl_segment_of(p->flow.daddr)))
    return atl_drop(skb, ATL_DROP_ISOLATED);
  if (origin == ATL_FROM_OVERLAY && !bpf_map_lookup_elem(&atl_pods, &p->flow.daddr))
    return atl_drop(skb, ATL_DROP_NO_ROUTE);
  return atl_route(skb, p->flow.saddr, p->flow.daddr, NULL, cfg);
}

/* service_lb's translation of a new flow to backend `b` of `svc` (NULL: to
 * its own destination), then isolation and snat's address: the tuple it goes
 * on as (`*to`, its source port not chosen yet), or a drop reason + 1. */
static __always_inline int atl_destine(const struct atl_pkt *p, const struct atl_svc *svc,
                                       const struct atl_backend *b, enum atl_origin origin,
                                       __u32 src_segment, __u32 vni,
                                       const struct atl_config *cfg, struct atl_ct_key *to) {
  *to = p->flow;
  int external = 0;
  if (b) {
    to->daddr = b->addr;
    to->dport = b->port;
    if (origin == ATL_FROM_UPLINK) {
      /* An external frontend admits its clients; with policy Cluster the
       * source becomes this node, so that replies come back through it. */
      external = 1;
      if (!(svc->flags & ATL_SVC_KEEP_SOURCE)) to->saddr = cfg->node_addr;
    } else if (b->addr == p->flow.saddr) {
      /* Hairpin: a pod reaching itself through a service would see its own
       * address as the source, which its stack drops: it sees the gateway. */
      struct atl_segment *seg = atl_segment_of(p->flow.saddr);
      if (seg) to->saddr = seg->gateway;
    }
  }

  /* isolation, on the final destination */
  struct atl_segment *dst_segment = atl_segment_of(to->daddr);
  if (!external && !atl_isolation_allows(src_segment, dst_segment)) return ATL_DROP_ISOLATED + 1;
  if (origin == ATL_FROM_OVERLAY) {
    /* Another host sends only to pods of this one, in the segment of the VNI. */
    struct atl_pod *pod = bpf_map_lookup_elem(&atl_pods, &to->daddr);
    if (!pod) return ATL_DROP_NO_ROUTE + 1;
    if (pod->segment != vni) return ATL_DROP_VNI_MISMATCH + 1;
  } else if (!dst_segment && origin == ATL_FROM_POD) {
    /* snat: leaving the cluster as the namespace's egress IP or the node. */
    struct atl_segment *seg = atl_segment_of(p->flow.saddr);
    to->saddr = seg && seg->egress ? seg->egress : cfg->node_addr;
  }
  return 0;
}

/* conntrack → (a new flow: service_lb → isolation → snat → record) → NAT → route.
 * `src_segment` is the sender's segment (0: a host or outside); `tunnel` and
 * `vni` say which host sent a packet that came by the overlay. */
static __always_inline int atl_process(struct __sk_buff *skb, enum atl_origin origin,
                                       __u32 src_segment, __be32 tunnel, __u32 vni,
                                       const struct atl_config *cfg) {
  struct atl_pkt p;
  int err = atl_parse_ipv4(skb, &p);
  if (err) {
    if (origin == ATL_FROM_UPLINK) return atl_pass(skb); /* the host's to judge */
    return atl_drop(skb, err - 1);
  }
  __u64 now = bpf_ktime_get_ns() + atl_clock_offset_ns;
  if (p.icmp_error) return atl_icmp_error(skb, &p, origin, src_segment, cfg, now);

  /* conntrack: an established flow is translated as it was and is not judged again. */
  struct atl_ct *ct = atl_ct_lookup(&p.flow, now);
  if (ct && atl_ct_reopens(&p, ct)) ct = NULL;
  if (ct) {
    atl_ct_seen(ct, &p, now);
    struct atl_ct_key to = atl_ct_rewritten(&p.flow, ct);
    if (atl_nat(skb, &p, &to) < 0) return atl_drop(skb, ATL_DROP_MALFORMED);
    return atl_route(skb, to.saddr, to.daddr, ct, cfg);
  }

  /* service_lb */
  struct atl_svc *svc = NULL;
  __u32 chosen = 0;
  __u8 ct_flags = 0;
  if (origin != ATL_FROM_OVERLAY) {
    __u8 scope = origin == ATL_FROM_POD ? ATL_SCOPE_INTERNAL : ATL_SCOPE_EXTERNAL;
    svc = atl_lb_lookup(p.flow.daddr, p.flow.dport, p.flow.proto, scope);
    if (svc) {
      int pick = atl_lb_select(svc, &p.flow, now);
      if (pick < 0) return atl_drop(skb, ATL_DROP_NO_BACKEND);
      chosen = pick;
      if (origin == ATL_FROM_UPLINK) ct_flags |= ATL_CT_EXTERNAL;
    } else if (origin == ATL_FROM_UPLINK) {
      return atl_pass(skb); /* the host's own traffic */
    } else if (bpf_map_lookup_elem(&atl_node_addrs, &p.flow.daddr)) {
      /* A pod reaching its own host, or answering it (the host reaches its
       * pods through their veths, outside the dataplane): the host stack
       * takes it as addressed to it, from the pod's own address. */
      return atl_pass_to_host(skb);
    }
  }

  /* Two flows never share a reply tuple, or their replies could not be told
   * apart: a service flow whose reply tuple a live flow holds tries the
   * service's next backend, judged by isolation as the first (SNAT chooses a
   * free port instead). As the DPDK pipeline and lb::Worker do. */
  struct atl_ct_key to;
  int snat;
  for (__u32 tried = 0;; tried++) {
    struct atl_backend *b = NULL;
    if (svc) {
      b = atl_backend_at(svc, (chosen + tried) % svc->backend_count);
      if (!b) return atl_drop(skb, ATL_DROP_NO_BACKEND);
    }
    err = atl_destine(&p, svc, b, origin, src_segment, vni, cfg, &to);
    if (err) return atl_drop(skb, err - 1);
    snat = to.saddr != p.flow.saddr && p.flow.proto != IPPROTO_ICMP;
    if (snat) break;
    struct atl_ct_key reply = atl_reverse(&to);
    if (!atl_ct_taken(&reply, p.tcp_flags, now)) break;
    if (!svc || tried + 1 >= svc->backend_count || tried + 1 >= ATL_MAX_BACKEND_TRIES)
      return atl_drop(skb, ATL_DROP_NAT_EXHAUSTED);
  }
  if (snat) {
    to.sport = atl_snat_port(&to, to.saddr, p.flow.saddr, now);
    if (!to.sport) return atl_drop(skb, ATL_DROP_NAT_EXHAUSTED);
  }

  if (atl_ct_create(&p.flow, &to, ct_flags, tunnel, vni, p.tcp_flags, now) < 0)
    return atl_drop(skb, ATL_DROP_NAT_EXHAUSTED);
  if (atl_nat(skb, &p, &to) < 0) return atl_drop(skb, ATL_DROP_MALFORMED);
  return atl_route(skb, to.saddr, to.daddr, NULL, cfg);
}

SEC("tc")
int atl_from_pod(struct __sk_buff *skb) {
  struct atl_config *cfg = atl_config_get();
  if (!cfg) return atl_drop(skb, ATL_DROP_UNKNOWN_PORT);
  __u32 ifindex = skb->ifindex;
  struct atl_pod *port = bpf_map_lookup_elem(&atl_pod_ports, &ifindex);
  if (!port) return atl_drop(skb, ATL_DROP_UNKNOWN_PORT);

  /* spoof_check: the pod's own MAC, and below its own address. */
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return atl_drop(skb, ATL_DROP_MALFORMED);
  if (!atl_mac_equal(eth->h_source, port->mac))
    return atl_drop(skb, ATL_DROP_SPOOFED);
  if (eth->h_proto == bpf_htons(ETH_P_ARP)) return atl_answer_arp(skb, port, cfg);
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return atl_drop(skb, ATL_DROP_UNSUPPORTED);
  struct iphdr *ip = data + ETH_HLEN;
  if ((void *)(ip + 1) > data_end) return atl_drop(skb, ATL_DROP_MALFORMED);
  if (ip->saddr != port->addr) return atl_drop(skb, ATL_DROP_SPOOFED);
  return atl_process(skb, ATL_FROM_POD, port->segment, 0, 0, cfg);
}

/* From another host. The underlay is trusted: the sender's segment is the
 * one its source address belongs to. */
static __always_inline int atl_overlay(struct __sk_buff *skb, __be32 remote, __u32 vni) {
  struct atl_config *cfg = atl_config_get();
  if (!cfg) return atl_drop(skb, ATL_DROP_UNKNOWN_PORT);
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return atl_drop(skb, ATL_DROP_MALFORMED);
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return atl_drop(skb, ATL_DROP_UNSUPPORTED);
  struct iphdr *ip = data + ETH_HLEN;
  if ((void *)(ip + 1) > data_end) return atl_drop(skb, ATL_DROP_MALFORMED);
  struct atl_segment *src = atl_segment_of(ip->saddr);
  return atl_process(skb, ATL_FROM_OVERLAY, src ? src->id : 0, remote, vni, cfg);
}

SEC("tc")
int atl_from_overlay(struct __sk_buff *skb) {
  struct bpf_tunnel_key key = {};
  if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
    return atl_drop(skb, ATL_DROP_MALFORMED);
  return atl_overlay(skb, bpf_htonl(key.remote_ipv4), key.tunnel_id);
}

/* atl_from_overlay for BPF_PROG_TEST_RUN, which cannot attach a tunnel key:
 * the VNI in cb[0], the sender's underlay address in cb[1]. Never attached. */
SEC("tc")
int atl_from_overlay_test(struct __sk_buff *skb) {
  return atl_overlay(skb, skb->cb[1], skb->cb[0]);
}

#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7) /* Linux 6.3; the headers may be older */
#endif

/* The overlay's packets to this node (UDP to its address and port 4789):
 * the outer headers come off here and the inner frame goes on as from the
 * overlay, straight to its pod. */
static __always_inline int atl_decap(struct __sk_buff *skb, const struct atl_config *cfg) {
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct atl_vxlan_encap *h = data + ETH_HLEN;
  if ((void *)(h + 1) + sizeof(struct iphdr) > data_end) return atl_drop(skb, ATL_DROP_MALFORMED);
  if (h->flags != bpf_htonl(ATL_VXLAN_FLAG_VNI)) return atl_drop(skb, ATL_DROP_MALFORMED);
  if (h->inner.h_proto != bpf_htons(ETH_P_IP)) return atl_drop(skb, ATL_DROP_UNSUPPORTED);
  const __be32 remote = h->ip.saddr;
  const __u32 vni = bpf_ntohl(h->vni) >> 8;
  if (bpf_skb_adjust_room(skb, -(__s32)sizeof(struct atl_vxlan_encap), BPF_ADJ_ROOM_MAC,
                          BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV4) < 0)
    return atl_drop(skb, ATL_DROP_MALFORMED);
  return atl_overlay(skb, remote, vni);
}

SEC("tc")
int atl_from_uplink(struct __sk_buff *skb) {
  struct atl_config *cfg = atl_config_get();
  if (!cfg) return TC_ACT_OK;
  /* A unicast frame for another MAC (the underlay flooded it) is the host's:
   * its stack drops it, or gives it to a device of that MAC on the uplink.
   * Balanced here too, its flow would have a backend on each host that saw it. */
  if (skb->pkt_type == PACKET_OTHERHOST) return atl_pass(skb);
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) return atl_pass(skb);
  struct iphdr *ip = data + ETH_HLEN;
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) <= data_end && ip->ihl == 5 && ip->protocol == IPPROTO_UDP &&
      udp->dest == bpf_htons(ATL_VXLAN_PORT) && ip->daddr == cfg->node_addr &&
      !(ip->frag_off & bpf_htons(0x3fff)))
    return atl_decap(skb, cfg);
  return atl_process(skb, ATL_FROM_UPLINK, 0, 0, 0, cfg);
}
