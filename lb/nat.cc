#include "lb/nat.h"

#include <arpa/inet.h>

#include <cstring>

namespace atl::lb {
namespace {

uint16_t LoadNative(const uint8_t* p) {
  uint16_t x;
  std::memcpy(&x, p, 2);
  return x;
}
void StoreNative(uint8_t* p, uint16_t x) { std::memcpy(p, &x, 2); }

// Overwrites `len` bytes at `at` and records the change in `delta`.
void Patch(uint8_t* at, const uint8_t* new_bytes, size_t len, ChecksumDelta* delta) {
  delta->Add(at, new_bytes, len);
  std::memcpy(at, new_bytes, len);
}
void PatchPort(uint8_t* at, uint16_t port, ChecksumDelta* delta) {
  const uint8_t be[2] = {static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
  Patch(at, be, 2, delta);
}

// Where the transport checksum of `ip` sits, or -1 for none we maintain.
int L4ChecksumOffset(const IpHeaders& ip) {
  switch (ip.proto) {
    case IpProto::kTcp:
      return 16;
    case IpProto::kUdp:
      return 6;
    // ICMP in IPv6 or ICMPv6 in IPv4 is opaque to the parser; its bytes are
    // not ours to change.
    case IpProto::kIcmp:
      return ip.family == Family::kIpv4 ? 2 : -1;
    case IpProto::kIcmpV6:
      return ip.family == Family::kIpv6 ? 2 : -1;
    default:
      return -1;
  }
}

struct HeaderDeltas {
  ChecksumDelta addrs;  // covered by the IPv4 header and by pseudo-headers
  ChecksumDelta ports;  // covered by the transport checksum only
};

// Rewrites the addresses of the IP header `ip` to those of `to`.
void PatchAddresses(uint8_t* packet, const IpHeaders& ip, const FlowKey& to, HeaderDeltas* d) {
  uint8_t* l3 = packet + ip.l3_offset;
  if (ip.family == Family::kIpv4) {
    if (to.src != ip.key.src) Patch(l3 + 12, to.src.v4_bytes(), 4, &d->addrs);
    if (to.dst != ip.key.dst) Patch(l3 + 16, to.dst.v4_bytes(), 4, &d->addrs);
    StoreNative(l3 + 10, d->addrs.Apply(LoadNative(l3 + 10)));
  } else {
    if (to.src != ip.key.src) Patch(l3 + 8, to.src.bytes.data(), 16, &d->addrs);
    if (to.dst != ip.key.dst) Patch(l3 + 24, to.dst.bytes.data(), 16, &d->addrs);
  }
}

// Rewrites the ports (or the echo identifier) of `ip`'s transport header, as
// far as `end` holds it.
void PatchPorts(uint8_t* packet, const IpHeaders& ip, const FlowKey& to, size_t end,
                HeaderDeltas* d) {
  if (!ip.has_l4) return;
  uint8_t* l4 = packet + ip.l4_offset;
  if (ip.proto == IpProto::kIcmp || ip.proto == IpProto::kIcmpV6) {
    if (to.src_port != ip.key.src_port && ip.l4_offset + 6u <= end)
      PatchPort(l4 + 4, to.src_port, &d->ports);
    return;
  }
  if (to.src_port != ip.key.src_port) PatchPort(l4, to.src_port, &d->ports);
  if (to.dst_port != ip.key.dst_port) PatchPort(l4 + 2, to.dst_port, &d->ports);
}

// Folds the deltas into the transport checksum of `ip` when the buffer holds
// it; records the change of the checksum field itself in `outer` if given.
void PatchL4Checksum(uint8_t* packet, const IpHeaders& ip, size_t end, const HeaderDeltas& d,
                     ChecksumDelta* outer) {
  const int off = L4ChecksumOffset(ip);
  if (off < 0 || ip.non_first_fragment || ip.l4_offset + static_cast<size_t>(off) + 2 > end) return;
  uint8_t* field = packet + ip.l4_offset + off;
  const uint16_t old = LoadNative(field);
  // A UDP checksum of zero means none was computed (RFC 768; for IPv6 tunnel
  // protocols RFC 6935 allows it too): it stays zero.
  if (ip.proto == IpProto::kUdp && old == 0) return;
  ChecksumDelta total = d.ports;
  // ICMPv4 has no pseudo-header; every other checksum here has one.
  if (ip.proto != IpProto::kIcmp) total.Add(d.addrs);
  uint16_t updated = total.Apply(old);
  if (ip.proto == IpProto::kUdp && updated == 0) updated = 0xffff;
  if (outer != nullptr) {
    const uint8_t* nb = reinterpret_cast<const uint8_t*>(&updated);
    outer->Add(field, nb, 2);
  }
  StoreNative(field, updated);
}

bool Translatable(const IpHeaders& ip, const FlowKey& to) {
  if (to.src.IsV4() != ip.key.src.IsV4() || to.dst.IsV4() != ip.key.dst.IsV4()) return false;
  // The checksum of a source-routed packet covers its final destination, not
  // the address in the header, so an incremental update would be wrong.
  if (ip.source_routed) return false;
  if (ip.proto == IpProto::kSctp && ip.has_l4 &&
      (to.src_port != ip.key.src_port || to.dst_port != ip.key.dst_port)) {
    return false;
  }
  return true;
}

// A plain IPv4 TCP or UDP packet (ParsedPacket::plain_ipv4) to an IPv4
// target: nearly every packet translated. The steps of the general path
// below, for this case alone (the same bytes: the sums add each field that
// changes, as Patch does there).
bool IsPlainIpv4L4(const ParsedPacket& parsed, const FlowKey& to) {
  return parsed.plain_ipv4 && to.src.IsV4() && to.dst.IsV4();
}
// The target of a rewrite: `key` itself, or its reverse read in place.
template <bool kReversed>
struct Target {
  const FlowKey& key;
  const IpAddr& src() const { return kReversed ? key.dst : key.src; }
  const IpAddr& dst() const { return kReversed ? key.src : key.dst; }
  uint16_t src_port() const { return kReversed ? key.dst_port : key.src_port; }
  uint16_t dst_port() const { return kReversed ? key.src_port : key.dst_port; }
};
// A sum of 16-bit terms folded to 16 bits (one's complement), as
// Ipv4RewriteSums keeps it.
uint16_t FoldSum(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>((sum & 0xffff) + (sum >> 16));
}

// What ChecksumDelta::Add takes for each field that changes (native-order
// 16-bit words), without its loop: conntrack sums two directions per new flow.
template <bool kReversed>
Ipv4RewriteSums SumTo(const FlowKey& from, const Target<kReversed>& to) {
  const auto addr = [](const IpAddr& o, const IpAddr& n) -> uint32_t {
    uint32_t ow;
    uint32_t nw;
    std::memcpy(&ow, o.v4_bytes(), 4);
    std::memcpy(&nw, n.v4_bytes(), 4);
    if (ow == nw) return 0;
    ow = ~ow;
    return (ow & 0xffff) + (ow >> 16) + (nw & 0xffff) + (nw >> 16);
  };
  const auto port = [](uint16_t o, uint16_t n) -> uint32_t {
    if (o == n) return 0;
    return static_cast<uint16_t>(~htons(o)) + uint32_t{htons(n)};
  };
  const uint32_t addrs = addr(from.src, to.src()) + addr(from.dst, to.dst());
  const uint32_t ports = port(from.src_port, to.src_port()) + port(from.dst_port, to.dst_port());
  return {FoldSum(addrs), FoldSum(addrs + ports)};
}

// Writes every field of the target, changed or not, and adds `sums`.
template <bool kReversed>
void RewritePlainIpv4L4(uint8_t* packet, const IpHeaders& ip, const Target<kReversed>& to,
                        Ipv4RewriteSums sums) {
  uint8_t* l3 = packet + ip.l3_offset;
  uint8_t* l4 = packet + ip.l4_offset;
  std::memcpy(l3 + 12, to.src().v4_bytes(), 4);
  std::memcpy(l3 + 16, to.dst().v4_bytes(), 4);
  StoreNative(l3 + 10, ChecksumAddFolded(LoadNative(l3 + 10), sums.l3));
  const uint8_t ports[4] = {
      static_cast<uint8_t>(to.src_port() >> 8), static_cast<uint8_t>(to.src_port()),
      static_cast<uint8_t>(to.dst_port() >> 8), static_cast<uint8_t>(to.dst_port())};
  std::memcpy(l4, ports, 4);
  uint8_t* field = l4 + (ip.proto == IpProto::kTcp ? 16 : 6);
  const uint16_t old = LoadNative(field);
  if (ip.proto == IpProto::kUdp && old == 0) return;  // no checksum: it stays none
  uint16_t updated = ChecksumAddFolded(old, sums.l4);
  if (ip.proto == IpProto::kUdp && updated == 0) updated = 0xffff;
  StoreNative(field, updated);
}

}  // namespace

Ipv4RewriteSums SumIpv4Rewrite(const FlowKey& from, const FlowKey& to) {
  return SumTo(from, Target<false>{to});
}

Ipv4RewriteSums SumIpv4RewriteToReverseOf(const FlowKey& from, const FlowKey& tuple) {
  return SumTo(from, Target<true>{tuple});
}

std::array<Ipv4RewriteSums, 2> SumIpv4FlowRewrites(const FlowKey& original, const FlowKey& reply) {
  // SumTo's terms, from one sum per field: changing x to y adds ~x and y, and
  // the halves of ~x sum to 0x1fffe less those of x (0xffff less the port).
  const auto halves = [](const IpAddr& a) -> uint32_t {
    uint32_t w;
    std::memcpy(&w, a.v4_bytes(), 4);
    return (w & 0xffff) + (w >> 16);
  };
  const auto same = [](const IpAddr& a, const IpAddr& b) {
    return std::memcmp(a.v4_bytes(), b.v4_bytes(), 4) == 0;
  };
  // Each pair: a field of the original and the reply's field it becomes.
  const uint32_t os = halves(original.src), od = halves(original.dst);
  const uint32_t rs = halves(reply.src), rd = halves(reply.dst);
  const bool src_same = same(original.src, reply.dst);
  const bool dst_same = same(original.dst, reply.src);
  const uint32_t addrs0 = (src_same ? 0 : 0x1fffe - os + rd) + (dst_same ? 0 : 0x1fffe - od + rs);
  const uint32_t addrs1 = (src_same ? 0 : 0x1fffe - rd + os) + (dst_same ? 0 : 0x1fffe - rs + od);
  const uint32_t osp = htons(original.src_port), odp = htons(original.dst_port);
  const uint32_t rsp = htons(reply.src_port), rdp = htons(reply.dst_port);
  const bool sport_same = osp == rdp;
  const bool dport_same = odp == rsp;
  const uint32_t ports0 =
      (sport_same ? 0 : 0xffff - osp + rdp) + (dport_same ? 0 : 0xffff - odp + rsp);
  const uint32_t ports1 =
      (sport_same ? 0 : 0xffff - rdp + osp) + (dport_same ? 0 : 0xffff - rsp + odp);
  return {
      {{FoldSum(addrs0), FoldSum(addrs0 + ports0)}, {FoldSum(addrs1), FoldSum(addrs1 + ports1)}}};
}

bool RewriteFlow(uint8_t* packet, const ParsedPacket& parsed, const FlowKey& to) {
  const IpHeaders& ip = parsed.ip;
  if (IsPlainIpv4L4(parsed, to)) {
    RewritePlainIpv4L4(packet, ip, Target<false>{to}, SumIpv4Rewrite(ip.key, to));
    return true;
  }
  if (!Translatable(ip, to)) return false;
  const size_t end = ip.l3_offset + ip.l3_len;
  HeaderDeltas d;
  PatchAddresses(packet, ip, to, &d);
  if (!ip.non_first_fragment) {
    PatchPorts(packet, ip, to, end, &d);
    PatchL4Checksum(packet, ip, end, d, nullptr);
  }
  return true;
}

bool RewriteFlowToReverseOf(uint8_t* packet, const ParsedPacket& parsed, const FlowKey& tuple,
                            Ipv4RewriteSums sums) {
  if (IsPlainIpv4L4(parsed, tuple)) {
    RewritePlainIpv4L4(packet, parsed.ip, Target<true>{tuple}, sums);
    return true;
  }
  return RewriteFlow(packet, parsed, tuple.Reversed());
}

bool RewriteIcmpError(uint8_t* packet, const ParsedPacket& parsed, const FlowKey& quoted_to,
                      const IpAddr& outer_src, const IpAddr& outer_dst) {
  if (!parsed.icmp_error) return false;
  const IpHeaders& outer = parsed.ip;
  const IpHeaders& inner = parsed.inner;
  FlowKey outer_to = outer.key;
  outer_to.src = outer_src;
  outer_to.dst = outer_dst;
  if (!Translatable(inner, quoted_to) || !Translatable(outer, outer_to)) return false;
  const size_t end = outer.l3_offset + outer.l3_len;

  // Everything changed inside the ICMP message must be folded into its checksum.
  ChecksumDelta icmp;
  HeaderDeltas in;
  uint8_t* inner_l3 = packet + inner.l3_offset;
  uint16_t inner_ip_csum = 0;
  if (inner.family == Family::kIpv4) inner_ip_csum = LoadNative(inner_l3 + 10);
  PatchAddresses(packet, inner, quoted_to, &in);
  if (inner.family == Family::kIpv4) {
    const uint16_t now = LoadNative(inner_l3 + 10);
    icmp.Add(reinterpret_cast<const uint8_t*>(&inner_ip_csum),
             reinterpret_cast<const uint8_t*>(&now), 2);
  }
  if (!inner.non_first_fragment) {
    PatchPorts(packet, inner, quoted_to, end, &in);
    PatchL4Checksum(packet, inner, end, in, &icmp);
  }
  icmp.Add(in.addrs);
  icmp.Add(in.ports);

  HeaderDeltas out;
  PatchAddresses(packet, outer, outer_to, &out);
  // ICMPv6 covers the outer pseudo-header too (RFC 4443 section 2.3).
  if (outer.family == Family::kIpv6) icmp.Add(out.addrs);
  uint8_t* csum = packet + outer.l4_offset + 2;
  StoreNative(csum, icmp.Apply(LoadNative(csum)));
  return true;
}

}  // namespace atl::lb
