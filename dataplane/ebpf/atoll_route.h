/* The `isolation` and `route` stages and what follows them: deliver to a
 * local pod, encapsulate to the host that has the destination, or hand the
 * packet to the host's routing (after SNAT) when it leaves the cluster. */
#ifndef ATOLL_DATAPLANE_EBPF_ATOLL_ROUTE_H_
#define ATOLL_DATAPLANE_EBPF_ATOLL_ROUTE_H_

#include "atoll_lb.h"

#ifndef AF_INET
#define AF_INET 2
#endif

static __always_inline struct atl_config *atl_config_get(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&atl_config, &zero);
}

static __always_inline struct atl_segment *atl_segment_of(__be32 addr) {
  struct atl_lpm_key key = {.prefixlen = 32, .addr = addr};
  return bpf_map_lookup_elem(&atl_segments, &key);
}

/* DESIGN.md "Isolation": an isolated segment accepts its own segment, the
 * hosts (node addresses, and flows an external frontend admitted) and the
 * segments it admits. `src_segment` is 0 for a source in no segment. */
static __always_inline int atl_isolation_allows(__u32 src_segment, const struct atl_segment *dst) {
  if (!dst || !(dst->flags & ATL_SEGMENT_ISOLATED) || src_segment == dst->id) return 1;
  if (src_segment == 0) return 1; /* a host: the NodePort SNAT or this node */
  struct atl_admit_key key = {.src = src_segment, .dst = dst->id};
  return bpf_map_lookup_elem(&atl_admit, &key) != NULL;
}

/* Straight into the pod's namespace: every program runs at tc ingress, so
 * the frame can go from here to the ingress of the pod's end of the veth
 * without another pass through this CPU's backlog. It was addressed to the
 * router MAC, not to the device it arrived on, so it is made PACKET_HOST
 * first, or the pod's IP layer would drop it as another host's. */
static __always_inline int atl_deliver(struct __sk_buff *skb, const struct atl_pod *pod,
                                       const struct atl_config *cfg) {
  if (atl_set_macs(skb, pod->mac, cfg->router_mac) < 0) return atl_drop(skb, ATL_DROP_MALFORMED);
  atl_record(skb, ATL_VERDICT_DELIVER, pod->ifindex, 0);
  bpf_skb_change_type(skb, PACKET_HOST);
  return bpf_redirect_peer(pod->ifindex, 0);
}

/* RFC 7348's headers in front of the inner frame, which keeps its Ethernet
 * header; the outer Ethernet header is the frame's own, readdressed. */
struct atl_vxlan_encap {
  struct iphdr ip;
  struct udphdr udp;
  __be32 flags; /* ATL_VXLAN_FLAG_VNI: the VNI is valid */
  __be32 vni;   /* the VNI in the upper 24 bits */
  struct ethhdr inner;
} __attribute__((packed));
#define ATL_VXLAN_FLAG_VNI 0x08000000

/* To the host that has `daddr`: the outer headers are written here and the
 * frame goes out of the uplink through its neighbour table, so neither host
 * runs the packet through a VXLAN device and its IP and UDP layers a second
 * time. Without an uplink (a host with no underlay configured) the VXLAN
 * device adds them from the tunnel key. */
static __always_inline int atl_encap(struct __sk_buff *skb, __be32 daddr, __be32 underlay,
                                     __u32 vni, const struct atl_config *cfg) {
  __u8 mac[ETH_ALEN];
  atl_pod_mac(daddr, mac);
  if (atl_set_macs(skb, mac, cfg->router_mac) < 0) return atl_drop(skb, ATL_DROP_MALFORMED);
  atl_record(skb, ATL_VERDICT_ENCAP, vni, underlay);
  if (!cfg->uplink_ifindex) {
    struct bpf_tunnel_key key = {.remote_ipv4 = bpf_ntohl(underlay), .tunnel_id = vni,
                                 .tunnel_ttl = 64};
    if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
      return atl_drop(skb, ATL_DROP_NO_ROUTE);
    return bpf_redirect(cfg->overlay_ifindex, 0);
  }

  /* The outer source port spreads flows over the underlay's paths (RFC 7348
   * section 5): a hash of the inner addresses and ports. */
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct iphdr *ip = data + ETH_HLEN;
  if ((void *)(ip + 1) + 4 > data_end) return atl_drop(skb, ATL_DROP_MALFORMED);
  __u32 ports = *(__u32 *)((void *)(ip + 1));
  __u32 hash = ip->saddr ^ ip->daddr ^ ports;
  hash ^= hash >> 16;
  const __u32 inner_len = skb->len - ETH_HLEN;

  if (bpf_skb_adjust_room(skb, sizeof(struct atl_vxlan_encap), BPF_ADJ_ROOM_MAC,
                          BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
                              BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
                              BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN)) < 0)
    return atl_drop(skb, ATL_DROP_MALFORMED);
  struct atl_vxlan_encap h = {};
  h.ip.version = 4;
  h.ip.ihl = 5;
  h.ip.tot_len = bpf_htons(sizeof(h) + inner_len);
  h.ip.ttl = 64;
  h.ip.protocol = IPPROTO_UDP;
  h.ip.saddr = cfg->node_addr;
  h.ip.daddr = underlay;
  struct iphdr outer = h.ip;
  h.ip.check = atl_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&outer, sizeof(outer), 0));
  h.udp.source = bpf_htons(49152 | (hash & 0x3fff));
  h.udp.dest = bpf_htons(ATL_VXLAN_PORT);
  h.udp.len = bpf_htons(sizeof(h) - sizeof(h.ip) + inner_len); /* checksum 0: none (IPv4) */
  h.flags = bpf_htonl(ATL_VXLAN_FLAG_VNI);
  h.vni = bpf_htonl(vni << 8);
  __builtin_memcpy(h.inner.h_dest, mac, ETH_ALEN);
  __builtin_memcpy(h.inner.h_source, cfg->router_mac, ETH_ALEN);
  h.inner.h_proto = bpf_htons(ETH_P_IP);
  if (bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), 0) < 0)
    return atl_drop(skb, ATL_DROP_MALFORMED);
  /* No next hop given: the kernel routes the outer destination, so a remote
   * host behind a router (an underlay of several subnets) is reached through
   * that router's neighbour entry, not an ARP for the host itself. */
  return bpf_redirect_neigh(cfg->uplink_ifindex, NULL, 0, 0);
}

/* Out of the cluster through the host's routing table and neighbours. */
static __always_inline int atl_out(struct __sk_buff *skb, __be32 saddr, __be32 daddr) {
  struct bpf_fib_lookup fib = {.family = AF_INET, .ipv4_src = saddr, .ipv4_dst = daddr,
                               .ifindex = skb->ifindex, .tot_len = skb->len - ETH_HLEN};
  long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
  if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
    if (atl_set_macs(skb, fib.dmac, fib.smac) < 0) return atl_drop(skb, ATL_DROP_MALFORMED);
    atl_record(skb, ATL_VERDICT_OUT, fib.ifindex, 0);
    return bpf_redirect(fib.ifindex, 0);
  }
  if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
    /* The kernel resolves the neighbour and sends. */
    atl_record(skb, ATL_VERDICT_OUT, fib.ifindex, 0);
    return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
  }
  return atl_drop(skb, ATL_DROP_FIB);
}

/* `route` for a packet already translated, whose destination is `daddr`:
 * a local pod, a remote block, back through the tunnel it came from
 * (`ct` of a flow that arrived by the overlay), or out of the cluster. */
static __always_inline int atl_route(struct __sk_buff *skb, __be32 saddr, __be32 daddr,
                                     const struct atl_ct *ct, const struct atl_config *cfg) {
  struct atl_pod *pod = bpf_map_lookup_elem(&atl_pods, &daddr);
  if (pod) return atl_deliver(skb, pod, cfg);
  struct atl_lpm_key key = {.prefixlen = 32, .addr = daddr};
  struct atl_remote_block *remote = bpf_map_lookup_elem(&atl_remote_blocks, &key);
  if (remote) return atl_encap(skb, daddr, remote->underlay, remote->vni, cfg);
  if (ct && ct->tunnel) return atl_encap(skb, daddr, ct->tunnel, ct->vni, cfg);
  if (atl_segment_of(daddr)) return atl_drop(skb, ATL_DROP_NO_ROUTE);
  return atl_out(skb, saddr, daddr);
}

#endif /* ATOLL_DATAPLANE_EBPF_ATOLL_ROUTE_H_ */
