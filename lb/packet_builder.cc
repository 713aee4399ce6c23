#include "lb/packet_builder.h"

#include <cstdio>
#include <cstdlib>

#include "lb/checksum.h"

namespace atl::lb {
namespace {

void Put16(std::vector<uint8_t>& v, size_t off, uint16_t x) {
  v[off] = static_cast<uint8_t>(x >> 8);
  v[off + 1] = static_cast<uint8_t>(x);
}
void Append16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
void Store(std::vector<uint8_t>& v, size_t off, uint16_t native) {
  std::memcpy(&v[off], &native, 2);
}
uint16_t LoadNative(const uint8_t* p) {
  uint16_t x;
  std::memcpy(&x, p, 2);
  return x;
}

IpAddr MustParse(std::string_view text) {
  auto a = IpAddr::Parse(text);
  if (!a) {
    std::fprintf(stderr, "PacketBuilder: bad address literal \"%.*s\"\n",
                 static_cast<int>(text.size()), text.data());
    std::abort();
  }
  return *a;
}

}  // namespace

PacketBuilder& PacketBuilder::Ethernet(const Mac& src, const Mac& dst) {
  ethernet_ = true;
  src_mac_ = src;
  dst_mac_ = dst;
  return *this;
}
PacketBuilder& PacketBuilder::NoEthernet() {
  ethernet_ = false;
  return *this;
}
PacketBuilder& PacketBuilder::Vlan(uint16_t vid) {
  vlans_.push_back(vid);
  return *this;
}
PacketBuilder& PacketBuilder::Ip(std::string_view src, std::string_view dst) {
  return Ip(MustParse(src), MustParse(dst));
}
PacketBuilder& PacketBuilder::Ip(const IpAddr& src, const IpAddr& dst) {
  src_ = src;
  dst_ = dst;
  return *this;
}
PacketBuilder& PacketBuilder::Ttl(uint8_t ttl) {
  ttl_ = ttl;
  return *this;
}
PacketBuilder& PacketBuilder::Ipv4Options(std::vector<uint8_t> options) {
  ip_options_ = std::move(options);
  while (ip_options_.size() % 4 != 0) ip_options_.push_back(0);
  return *this;
}
PacketBuilder& PacketBuilder::Fragment(uint16_t offset_units, bool more) {
  fragment_ = true;
  frag_offset_ = offset_units;
  more_fragments_ = more;
  return *this;
}
PacketBuilder& PacketBuilder::Ipv6Ext(IpProto proto, uint8_t len8) {
  exts_.push_back({proto, len8});
  return *this;
}
PacketBuilder& PacketBuilder::Tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
  proto_ = IpProto::kTcp;
  sport_ = sport;
  dport_ = dport;
  tcp_flags_ = flags;
  return *this;
}
PacketBuilder& PacketBuilder::Udp(uint16_t sport, uint16_t dport) {
  proto_ = IpProto::kUdp;
  sport_ = sport;
  dport_ = dport;
  return *this;
}
PacketBuilder& PacketBuilder::Sctp(uint16_t sport, uint16_t dport) {
  proto_ = IpProto::kSctp;
  sport_ = sport;
  dport_ = dport;
  return *this;
}
PacketBuilder& PacketBuilder::IcmpEcho(bool request, uint16_t id, uint16_t seq) {
  // ICMP or ICMPv6 and the echo type are settled in Build(), when the family
  // is known whichever order Ip() and IcmpEcho() were called in.
  proto_ = IpProto::kIcmp;
  icmp_echo_request_ = request;
  icmp_code_ = 0;
  icmp_id_ = id;
  icmp_seq_ = seq;
  return *this;
}
PacketBuilder& PacketBuilder::IcmpError(uint8_t type, uint8_t code, std::vector<uint8_t> quoted) {
  proto_ = IpProto::kIcmp;  // of the packet's family, settled in Build()
  icmp_echo_request_.reset();
  icmp_type_ = type;
  icmp_code_ = code;
  icmp_id_ = icmp_seq_ = 0;
  payload_ = std::move(quoted);
  return *this;
}
PacketBuilder& PacketBuilder::Payload(size_t len, uint8_t fill) {
  payload_.assign(len, fill);
  return *this;
}
PacketBuilder& PacketBuilder::Payload(std::vector<uint8_t> bytes) {
  payload_ = std::move(bytes);
  return *this;
}

std::vector<uint8_t> PacketBuilder::Build() const {
  const bool v4 = src_.IsV4();
  const bool icmp = proto_ == IpProto::kIcmp || proto_ == IpProto::kIcmpV6;
  const IpProto proto = icmp ? (v4 ? IpProto::kIcmp : IpProto::kIcmpV6) : proto_;
  uint8_t icmp_type = icmp_type_;
  if (icmp_echo_request_)
    icmp_type = v4 ? (*icmp_echo_request_ ? 8 : 0) : (*icmp_echo_request_ ? 128 : 129);

  // Transport header and data first: the IP header needs their length.
  std::vector<uint8_t> l4;
  switch (proto) {
    case IpProto::kTcp:
      l4.resize(kTcpMinHeaderLen);
      Put16(l4, 0, sport_);
      Put16(l4, 2, dport_);
      Put16(l4, 4, 0x1234);  // sequence number, arbitrary
      l4[12] = 5 << 4;
      l4[13] = tcp_flags_;
      Put16(l4, 14, 65535);  // window
      break;
    case IpProto::kUdp:
      l4.resize(kUdpHeaderLen);
      Put16(l4, 0, sport_);
      Put16(l4, 2, dport_);
      Put16(l4, 4, static_cast<uint16_t>(kUdpHeaderLen + payload_.size()));
      break;
    case IpProto::kSctp:
      l4.resize(kSctpCommonHeaderLen);
      Put16(l4, 0, sport_);
      Put16(l4, 2, dport_);
      // The CRC32c is left zero: nothing in lb verifies or rewrites SCTP.
      break;
    default:
      l4.resize(kIcmpHeaderLen);
      l4[0] = icmp_type;
      l4[1] = icmp_code_;
      Put16(l4, 4, icmp_id_);
      Put16(l4, 6, icmp_seq_);
      break;
  }
  l4.insert(l4.end(), payload_.begin(), payload_.end());
  if (proto == IpProto::kIcmp) {
    Store(l4, 2, ChecksumFinish(ChecksumAdd(0, l4.data(), l4.size())));
  } else if (proto != IpProto::kSctp) {
    const size_t csum_off = proto == IpProto::kTcp ? 16 : proto == IpProto::kUdp ? 6 : 2;
    uint16_t c = L4Checksum(src_, dst_, proto, l4.data(), l4.size());
    if (proto == IpProto::kUdp && c == 0) c = 0xffff;  // RFC 768: zero means "none"
    Store(l4, csum_off, c);
  }

  std::vector<uint8_t> ip;
  if (v4) {
    const size_t ihl = kIpv4MinHeaderLen + ip_options_.size();
    ip.resize(ihl);
    ip[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
    Put16(ip, 2, static_cast<uint16_t>(ihl + l4.size()));
    Put16(ip, 4, 0x4242);  // identification
    Put16(ip, 6, static_cast<uint16_t>((more_fragments_ ? 0x2000 : 0) | (frag_offset_ & 0x1fff)));
    ip[8] = ttl_;
    ip[9] = static_cast<uint8_t>(proto);
    std::memcpy(&ip[12], src_.v4_bytes(), 4);
    std::memcpy(&ip[16], dst_.v4_bytes(), 4);
    std::copy(ip_options_.begin(), ip_options_.end(), ip.begin() + kIpv4MinHeaderLen);
    Store(ip, 10, Ipv4HeaderChecksum(ip.data(), ihl));
  } else {
    std::vector<Ext> exts = exts_;
    if (fragment_) exts.push_back({IpProto::kFragment, 1});
    ip.resize(kIpv6HeaderLen);
    ip[0] = 0x60;
    ip[7] = ttl_;
    std::memcpy(&ip[8], src_.bytes.data(), 16);
    std::memcpy(&ip[24], dst_.bytes.data(), 16);
    size_t next_field = 6;
    for (const Ext& e : exts) {
      ip[next_field] = static_cast<uint8_t>(e.proto);
      next_field = ip.size();
      const size_t at = ip.size();
      ip.resize(at + (e.proto == IpProto::kFragment ? 8 : 8 * static_cast<size_t>(e.len8)));
      if (e.proto == IpProto::kFragment) {
        Put16(ip, at + 2, static_cast<uint16_t>(frag_offset_ << 3 | (more_fragments_ ? 1 : 0)));
        Put16(ip, at + 4, 0x4242);
      } else {
        // RFC 4302 section 2.2: AH counts 4-byte units less 2; the others
        // 8-byte units less 1 (RFC 8200 section 4.3).
        ip[at + 1] = static_cast<uint8_t>(e.proto == IpProto::kAh ? 2 * e.len8 - 2 : e.len8 - 1);
        if (e.len8 > 0) ip[at + 2] = 1;  // a PadN option (RFC 8200 section 4.2) ...
        ip[at + 3] = static_cast<uint8_t>(8 * e.len8 - 4);  // ... filling the header
      }
    }
    ip[next_field] = static_cast<uint8_t>(proto);
    Put16(ip, 4, static_cast<uint16_t>(ip.size() - kIpv6HeaderLen + l4.size()));
  }

  std::vector<uint8_t> out;
  if (ethernet_) {
    out.insert(out.end(), dst_mac_.begin(), dst_mac_.end());
    out.insert(out.end(), src_mac_.begin(), src_mac_.end());
    for (uint16_t vid : vlans_) {
      Append16(out, kEtherTypeVlan);
      Append16(out, vid);
    }
    Append16(out, v4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
  }
  out.insert(out.end(), ip.begin(), ip.end());
  out.insert(out.end(), l4.begin(), l4.end());
  return out;
}

bool ChecksumsValid(const std::vector<uint8_t>& frame, bool ethernet) {
  ParsedPacket p;
  const DropReason r = ethernet ? ParseEthernet(frame.data(), frame.size(), &p)
                                : ParseIp(frame.data(), frame.size(), &p);
  if (r != DropReason::kNone || !p.is_ip()) return false;
  const uint8_t* l3 = frame.data() + p.ip.l3_offset;
  if (p.ip.family == Family::kIpv4 &&
      LoadNative(l3 + 10) != Ipv4HeaderChecksum(l3, static_cast<size_t>(l3[0] & 0xf) * 4)) {
    return false;
  }
  if (p.ip.non_first_fragment) return true;
  size_t csum_off;
  switch (p.ip.proto) {
    case IpProto::kTcp:
      csum_off = 16;
      break;
    case IpProto::kUdp:
      csum_off = 6;
      break;
    case IpProto::kIcmp:
      csum_off = 2;
      break;
    case IpProto::kIcmpV6:
      csum_off = 2;
      break;
    default:
      return true;
  }
  // ICMP in IPv6 or ICMPv6 in IPv4 is opaque to the parser, which does not
  // check that it holds even a checksum field; it has none we maintain.
  const bool icmp_of_other_family =
      (p.ip.proto == IpProto::kIcmp && p.ip.family != Family::kIpv4) ||
      (p.ip.proto == IpProto::kIcmpV6 && p.ip.family != Family::kIpv6);
  if (icmp_of_other_family) return true;
  const uint8_t* l4 = frame.data() + p.ip.l4_offset;
  const size_t l4_len = p.ip.l3_offset + p.ip.l3_len - p.ip.l4_offset;
  std::vector<uint8_t> copy(l4, l4 + l4_len);
  const uint16_t stored = LoadNative(l4 + csum_off);
  // Zero means "none" for IPv4 (RFC 768); IPv6 requires one (RFC 8200 section 8.1).
  if (p.ip.proto == IpProto::kUdp && p.ip.family == Family::kIpv4 && stored == 0) return true;
  copy[csum_off] = copy[csum_off + 1] = 0;
  uint16_t want =
      p.ip.proto == IpProto::kIcmp
          ? ChecksumFinish(ChecksumAdd(0, copy.data(), copy.size()))
          : L4Checksum(p.ip.key.src, p.ip.key.dst, p.ip.proto, copy.data(), copy.size());
  if (p.ip.proto == IpProto::kUdp && want == 0) want = 0xffff;
  if (stored != want) return false;
  if (p.icmp_error && p.inner.family == Family::kIpv4) {
    const uint8_t* in = frame.data() + p.inner.l3_offset;
    if (LoadNative(in + 10) != Ipv4HeaderChecksum(in, static_cast<size_t>(in[0] & 0xf) * 4))
      return false;
  }
  return true;
}

}  // namespace atl::lb
