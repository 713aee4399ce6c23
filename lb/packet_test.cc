#include "lb/packet.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lb/checksum.h"
#include "lb/packet_builder.h"
#include "lb/test_support.h"

namespace atl::lb {
namespace {

using namespace test_support;  // NOLINT(google-build-using-namespace): test helpers

// Byte surgery on built packets, for the malformed fixtures. The parser does
// not verify checksums (that is for the endpoints), so none are fixed up.
std::vector<uint8_t> With(std::vector<uint8_t> bytes, size_t at, std::initializer_list<uint8_t> values) {
  std::copy(values.begin(), values.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at));
  return bytes;
}
std::vector<uint8_t> Cut(std::vector<uint8_t> bytes, size_t len) {
  bytes.resize(len);
  return bytes;
}
// Shortens the IP packet at `l3` to `l3_len` bytes and makes its length field
// agree, so that only the layer above is short.
std::vector<uint8_t> ShrinkIp(std::vector<uint8_t> bytes, size_t l3, size_t l3_len) {
  bytes.resize(l3 + l3_len);
  if (bytes[l3] >> 4 == 4) {
    bytes[l3 + 2] = static_cast<uint8_t>(l3_len >> 8);
    bytes[l3 + 3] = static_cast<uint8_t>(l3_len);
  } else {
    bytes[l3 + 4] = static_cast<uint8_t>((l3_len - kIpv6HeaderLen) >> 8);
    bytes[l3 + 5] = static_cast<uint8_t>(l3_len - kIpv6HeaderLen);
  }
  return bytes;
}

// Sets the protocol of the IPv4 packet at kL3, keeping its header checksum
// right so that the packet stays valid in every other respect.
std::vector<uint8_t> WithIpv4Protocol(std::vector<uint8_t> bytes, uint8_t proto) {
  bytes[kL3 + 9] = proto;
  const uint16_t csum = Ipv4HeaderChecksum(&bytes[kL3], kIpv4MinHeaderLen);
  std::memcpy(&bytes[kL3 + 10], &csum, 2);
  return bytes;
}

// An ARP request (RFC 826) for V from C: a frame the parser passes on as not IP.
std::vector<uint8_t> ArpRequest(std::initializer_list<uint16_t> vlans = {}) {
  std::vector<uint8_t> f = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1};
  for (uint16_t vid : vlans) f.insert(f.end(), {0x81, 0x00, static_cast<uint8_t>(vid >> 8), static_cast<uint8_t>(vid)});
  f.insert(f.end(), {0x08, 0x06,                    // ARP
                     0x00, 0x01, 0x08, 0x00, 6, 4,  // Ethernet, IPv4
                     0x00, 0x01,                    // request
                     0x02, 0, 0, 0, 0, 1, 198, 18, 0, 10, 0, 0, 0, 0, 0, 0, 198, 18, 64, 1});
  return f;
}

// Packets reused by several fixtures.
std::vector<uint8_t> V4Tcp() { return PacketBuilder().Ip(kClient4, kVip4).Tcp(40000, 80).Build(); }
std::vector<uint8_t> V4Udp(size_t payload = 32) {
  return PacketBuilder().Ip(kClient4, kVip4).Udp(40001, 53).Payload(payload).Build();
}
std::vector<uint8_t> V6Tcp() { return PacketBuilder().Ip(kClient6, kVip6).Tcp(40000, 443).Build(); }
std::vector<uint8_t> V6Udp() { return PacketBuilder().Ip(kClient6, kVip6).Udp(40001, 53).Payload(32).Build(); }
// The packets a backend's error quotes: C's packets after DNAT to B.
std::vector<uint8_t> QuotedV4Tcp() {
  return PacketBuilder().NoEthernet().Ip(kClient4, kBackend4).Tcp(40000, 8080).Payload(12).Build();
}
std::vector<uint8_t> QuotedV4Udp() {
  return PacketBuilder().NoEthernet().Ip(kClient4, kBackend4).Udp(40001, 5353).Payload(32).Build();
}
std::vector<uint8_t> QuotedV6Tcp() {
  return PacketBuilder().NoEthernet().Ip(kClient6, kBackend6).Tcp(40000, 8443).Build();
}
std::vector<uint8_t> QuotedV6Udp() {
  return PacketBuilder().NoEthernet().Ip(kClient6, kBackend6).Udp(40001, 5353).Payload(32).Build();
}
std::vector<uint8_t> V4Error(std::vector<uint8_t> quote, uint8_t type = 3, uint8_t code = 3) {
  return PacketBuilder().Ip(kBackend4, kClient4).IcmpError(type, code, std::move(quote)).Build();
}
std::vector<uint8_t> V6Error(std::vector<uint8_t> quote, uint8_t type = 1, uint8_t code = 4) {
  return PacketBuilder().Ip(kBackend6, kClient6).IcmpError(type, code, std::move(quote)).Build();
}
std::vector<uint8_t> V6WithExts(int count) {
  PacketBuilder b;
  b.Ip(kClient6, kVip6);
  for (int i = 0; i < count; ++i) b.Ipv6Ext(IpProto::kDestOpts);
  return b.Udp(40001, 53).Build();
}

// What a parse of a well-formed packet yields. Every field is compared.
struct Want {
  uint16_t ethertype = kEtherTypeIpv4;
  uint8_t vlan_count = 0;
  uint16_t vlan_id = 0;
  FlowKey key{};            // ports zero without a transport header
  bool has_l4 = true;
  uint16_t l4_offset = 0;   // compared when has_l4
  uint32_t l3_len = 0;      // zero: the IP packet runs to the end of the buffer
  bool fragment = false;
  bool non_first_fragment = false;
  bool has_ip_options = false;
  uint8_t ttl = 64;
  uint8_t tcp_flags = 0;
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  bool icmp_error = false;
  FlowKey inner_key{};
  bool inner_has_l4 = false;
  uint16_t inner_l3_offset = 0;
  uint16_t inner_l4_offset = 0;  // compared when inner_has_l4
};

struct Valid {
  std::string name;
  std::vector<uint8_t> bytes;
  Want want;
  bool ethernet = true;
};
// gtest names a failing fixture by this rather than by its bytes.
void PrintTo(const Valid& c, std::ostream* os) { *os << c.name; }

std::vector<Valid> ValidPackets() {
  using P = IpProto;
  const uint16_t v6 = kEtherTypeIpv6;
  return {
      // Transport protocols over IPv4 and IPv6.
      {"Ipv4Tcp", V4Tcp(), {.key = Key(kClient4, 40000, kVip4, 80, P::kTcp), .l4_offset = kL4v4, .tcp_flags = kTcpSyn}},
      {"Ipv4TcpSynAck", PacketBuilder().Ip(kVip4, kClient4).Tcp(80, 40000, kTcpSyn | kTcpAck).Build(),
       {.key = Key(kVip4, 80, kClient4, 40000, P::kTcp), .l4_offset = kL4v4, .tcp_flags = kTcpSyn | kTcpAck}},
      {"Ipv4Udp", V4Udp(), {.key = Key(kClient4, 40001, kVip4, 53, P::kUdp), .l4_offset = kL4v4}},
      {"Ipv4Sctp", PacketBuilder().Ip(kClient4, kVip4).Sctp(40002, 38412).Build(),
       {.key = Key(kClient4, 40002, kVip4, 38412, P::kSctp), .l4_offset = kL4v4}},
      // ICMP echo carries its identifier in both ports.
      {"Ipv4EchoRequest", PacketBuilder().Ip(kClient4, kVip4).IcmpEcho(true, 0x1234).Payload(16).Build(),
       {.key = Key(kClient4, 0x1234, kVip4, 0x1234, P::kIcmp), .l4_offset = kL4v4, .icmp_type = 8}},
      {"Ipv4EchoReply", PacketBuilder().Ip(kVip4, kClient4).IcmpEcho(false, 0x1234).Build(),
       {.key = Key(kVip4, 0x1234, kClient4, 0x1234, P::kIcmp), .l4_offset = kL4v4, .icmp_type = 0}},
      {"Ipv6Tcp", V6Tcp(),
       {.ethertype = v6, .key = Key(kClient6, 40000, kVip6, 443, P::kTcp), .l4_offset = kL4v6, .tcp_flags = kTcpSyn}},
      {"Ipv6Udp", V6Udp(), {.ethertype = v6, .key = Key(kClient6, 40001, kVip6, 53, P::kUdp), .l4_offset = kL4v6}},
      {"Ipv6Sctp", PacketBuilder().Ip(kClient6, kVip6).Sctp(40002, 38412).Build(),
       {.ethertype = v6, .key = Key(kClient6, 40002, kVip6, 38412, P::kSctp), .l4_offset = kL4v6}},
      {"Ipv6EchoRequest", PacketBuilder().Ip(kClient6, kVip6).Ttl(255).IcmpEcho(true, 7).Build(),
       {.ethertype = v6, .key = Key(kClient6, 7, kVip6, 7, P::kIcmpV6), .l4_offset = kL4v6, .ttl = 255,
        .icmp_type = 128}},
      {"Ipv6EchoReply", PacketBuilder().Ip(kVip6, kClient6).IcmpEcho(false, 7).Build(),
       {.ethertype = v6, .key = Key(kVip6, 7, kClient6, 7, P::kIcmpV6), .l4_offset = kL4v6, .icmp_type = 129}},
      // Protocols without ports are forwarded on addresses alone.
      {"Ipv4Esp", WithIpv4Protocol(V4Udp(), 50),
       {.key = Key(kClient4, 0, kVip4, 0, P::kEsp), .has_l4 = false}},
      {"Ipv4CarryingIcmpv6IsOpaque", WithIpv4Protocol(V4Udp(), 58),
       {.key = Key(kClient4, 0, kVip4, 0, P::kIcmpV6), .has_l4 = false}},

      // 802.1Q: the outermost VID is reported, without the priority bits.
      {"VlanIpv4Tcp", PacketBuilder().Vlan(100).Ip(kClient4, kVip4).Tcp(40000, 80).Build(),
       {.vlan_count = 1, .vlan_id = 100, .key = Key(kClient4, 40000, kVip4, 80, P::kTcp), .l4_offset = kL4v4 + 4,
        .tcp_flags = kTcpSyn}},
      {"VlanIdWithoutPriority", PacketBuilder().Vlan(0xe000 | 100).Ip(kClient4, kVip4).Udp(40001, 53).Build(),
       {.vlan_count = 1, .vlan_id = 100, .key = Key(kClient4, 40001, kVip4, 53, P::kUdp), .l4_offset = kL4v4 + 4}},
      {"DoubleTaggedIpv6Udp", PacketBuilder().Vlan(100).Vlan(200).Ip(kClient6, kVip6).Udp(40001, 53).Build(),
       {.ethertype = v6, .vlan_count = 2, .vlan_id = 100, .key = Key(kClient6, 40001, kVip6, 53, P::kUdp),
        .l4_offset = kL4v6 + 8}},
      {"QinQOuterTag", With(PacketBuilder().Vlan(100).Vlan(200).Ip(kClient4, kVip4).Udp(40001, 53).Build(), 12, {0x88, 0xa8}),
       {.vlan_count = 2, .vlan_id = 100, .key = Key(kClient4, 40001, kVip4, 53, P::kUdp), .l4_offset = kL4v4 + 8}},
      {"Arp", ArpRequest(), {.ethertype = 0x0806, .has_l4 = false, .ttl = 0}},
      {"VlanArp", ArpRequest({100}), {.ethertype = 0x0806, .vlan_count = 1, .vlan_id = 100, .has_l4 = false, .ttl = 0}},

      // IPv4 options move the transport header.
      {"Ipv4RouterAlertOption", PacketBuilder().Ip(kClient4, kVip4).Ipv4Options({0x94, 0x04, 0, 0}).Udp(40001, 53).Build(),
       {.key = Key(kClient4, 40001, kVip4, 53, P::kUdp), .l4_offset = kL4v4 + 4, .has_ip_options = true}},
      {"Ipv4LongestOptions", PacketBuilder().Ip(kClient4, kVip4).Ipv4Options(std::vector<uint8_t>(40, 1)).Tcp(40000, 80).Build(),
       {.key = Key(kClient4, 40000, kVip4, 80, P::kTcp), .l4_offset = kL4v4 + 40, .has_ip_options = true,
        .tcp_flags = kTcpSyn}},
      // Ethernet pads short frames to 60 bytes; the padding is not IP payload.
      {"Ipv4WithEthernetPadding", Cut(V4Udp(0), 60),
       {.key = Key(kClient4, 40001, kVip4, 53, P::kUdp), .l4_offset = kL4v4, .l3_len = 28}},

      // Fragments: only the first carries the transport header.
      {"Ipv4FirstFragment", PacketBuilder().Ip(kClient4, kVip4).Fragment(0, true).Tcp(40000, 80).Payload(64).Build(),
       {.key = Key(kClient4, 40000, kVip4, 80, P::kTcp), .l4_offset = kL4v4, .fragment = true, .tcp_flags = kTcpSyn}},
      {"Ipv4MiddleFragment", PacketBuilder().Ip(kClient4, kVip4).Fragment(185, true).Payload(64).Build(),
       {.key = Key(kClient4, 0, kVip4, 0, P::kUdp), .has_l4 = false, .fragment = true, .non_first_fragment = true}},
      {"Ipv4LastFragment", PacketBuilder().Ip(kClient4, kVip4).Fragment(370, false).Tcp(1, 2).Build(),
       {.key = Key(kClient4, 0, kVip4, 0, P::kTcp), .has_l4 = false, .fragment = true, .non_first_fragment = true}},

      // IPv6 extension headers (RFC 8200 section 4) are walked to the transport header.
      {"Ipv6HopByHop", PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(P::kHopByHop).Tcp(40000, 443).Build(),
       {.ethertype = v6, .key = Key(kClient6, 40000, kVip6, 443, P::kTcp), .l4_offset = kL4v6 + 8, .tcp_flags = kTcpSyn}},
      {"Ipv6Routing", PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(P::kRouting, 2).Udp(40001, 53).Build(),
       {.ethertype = v6, .key = Key(kClient6, 40001, kVip6, 53, P::kUdp), .l4_offset = kL4v6 + 16}},
      {"Ipv6DestOpts", PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(P::kDestOpts).Udp(40001, 53).Build(),
       {.ethertype = v6, .key = Key(kClient6, 40001, kVip6, 53, P::kUdp), .l4_offset = kL4v6 + 8}},
      // AH counts its length in 4-byte units (RFC 4302 section 2.2).
      {"Ipv6Ah", PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(P::kAh, 2).Tcp(40000, 443).Build(),
       {.ethertype = v6, .key = Key(kClient6, 40000, kVip6, 443, P::kTcp), .l4_offset = kL4v6 + 16, .tcp_flags = kTcpSyn}},
      {"Ipv6ExtChainThenFirstFragment",
       PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(P::kHopByHop).Ipv6Ext(P::kRouting).Ipv6Ext(P::kDestOpts)
           .Fragment(0, true).Tcp(40000, 443).Payload(64).Build(),
       {.ethertype = v6, .key = Key(kClient6, 40000, kVip6, 443, P::kTcp), .l4_offset = kL4v6 + 32, .fragment = true,
        .tcp_flags = kTcpSyn}},
      {"Ipv6NonFirstFragment", PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(P::kHopByHop).Fragment(100, false).Payload(64).Build(),
       {.ethertype = v6, .key = Key(kClient6, 0, kVip6, 0, P::kUdp), .has_l4 = false, .fragment = true,
        .non_first_fragment = true}},
      {"Ipv6AtomicFragment", PacketBuilder().Ip(kClient6, kVip6).Fragment(0, false).Udp(40001, 53).Build(),
       {.ethertype = v6, .key = Key(kClient6, 40001, kVip6, 53, P::kUdp), .l4_offset = kL4v6 + 8, .fragment = true}},
      {"Ipv6MostExtHeaders", V6WithExts(kMaxIpv6ExtHeaders),
       {.ethertype = v6, .key = Key(kClient6, 40001, kVip6, 53, P::kUdp), .l4_offset = kL4v6 + 8 * kMaxIpv6ExtHeaders}},

      // ICMP errors from B (or a router) about C's packets, as B saw them.
      {"IcmpPortUnreachableQuotingUdp", V4Error(QuotedV4Udp()),
       {.key = Key(kBackend4, 0, kClient4, 0, P::kIcmp), .has_l4 = false, .icmp_type = 3, .icmp_code = 3,
        .icmp_error = true, .inner_key = Key(kClient4, 40001, kBackend4, 5353, P::kUdp), .inner_has_l4 = true,
        .inner_l3_offset = kL4v4 + 8, .inner_l4_offset = kL4v4 + 28}},
      {"IcmpUnreachableQuotingTcp", V4Error(QuotedV4Tcp(), 3, 1),
       {.key = Key(kBackend4, 0, kClient4, 0, P::kIcmp), .has_l4 = false, .icmp_type = 3, .icmp_code = 1,
        .icmp_error = true, .inner_key = Key(kClient4, 40000, kBackend4, 8080, P::kTcp), .inner_has_l4 = true,
        .inner_l3_offset = kL4v4 + 8, .inner_l4_offset = kL4v4 + 28}},
      // RFC 792 promises only the IP header and 8 bytes of the datagram.
      {"IcmpFragNeededQuotingTcpMinimum", V4Error(Cut(QuotedV4Tcp(), 28), 3, 4),
       {.key = Key(kBackend4, 0, kClient4, 0, P::kIcmp), .has_l4 = false, .icmp_type = 3, .icmp_code = 4,
        .icmp_error = true, .inner_key = Key(kClient4, 40000, kBackend4, 8080, P::kTcp), .inner_has_l4 = true,
        .inner_l3_offset = kL4v4 + 8, .inner_l4_offset = kL4v4 + 28}},
      {"IcmpTimeExceededFromRouter",
       PacketBuilder().Ip(kRouter4, kClient4).Ttl(255).IcmpError(11, 0, QuotedV4Tcp()).Build(),
       {.key = Key(kRouter4, 0, kClient4, 0, P::kIcmp), .has_l4 = false, .ttl = 255, .icmp_type = 11,
        .icmp_error = true, .inner_key = Key(kClient4, 40000, kBackend4, 8080, P::kTcp), .inner_has_l4 = true,
        .inner_l3_offset = kL4v4 + 8, .inner_l4_offset = kL4v4 + 28}},
      {"IcmpErrorQuotingEcho",
       V4Error(PacketBuilder().NoEthernet().Ip(kClient4, kBackend4).IcmpEcho(true, 99).Build(), 3, 1),
       {.key = Key(kBackend4, 0, kClient4, 0, P::kIcmp), .has_l4 = false, .icmp_type = 3, .icmp_code = 1,
        .icmp_error = true, .inner_key = Key(kClient4, 99, kBackend4, 99, P::kIcmp), .inner_has_l4 = true,
        .inner_l3_offset = kL4v4 + 8, .inner_l4_offset = kL4v4 + 28}},
      // A quote without ports is kept; it just matches no flow.
      {"IcmpErrorQuotingNonFirstFragment",
       V4Error(PacketBuilder().NoEthernet().Ip(kClient4, kBackend4).Fragment(10, false).Payload(16).Build(), 11, 1),
       {.key = Key(kBackend4, 0, kClient4, 0, P::kIcmp), .has_l4 = false, .icmp_type = 11, .icmp_code = 1,
        .icmp_error = true, .inner_key = Key(kClient4, 0, kBackend4, 0, P::kUdp), .inner_has_l4 = false,
        .inner_l3_offset = kL4v4 + 8}},
      {"Icmpv6PortUnreachableQuotingUdp", V6Error(QuotedV6Udp()),
       {.ethertype = v6, .key = Key(kBackend6, 0, kClient6, 0, P::kIcmpV6), .has_l4 = false, .icmp_type = 1,
        .icmp_code = 4, .icmp_error = true, .inner_key = Key(kClient6, 40001, kBackend6, 5353, P::kUdp),
        .inner_has_l4 = true, .inner_l3_offset = kL4v6 + 8, .inner_l4_offset = kL4v6 + 48}},
      {"Icmpv6PacketTooBigQuotingTcpWithExt",
       V6Error(PacketBuilder().NoEthernet().Ip(kClient6, kBackend6).Ipv6Ext(P::kDestOpts).Tcp(40000, 8443).Build(), 2, 0),
       {.ethertype = v6, .key = Key(kBackend6, 0, kClient6, 0, P::kIcmpV6), .has_l4 = false, .icmp_type = 2,
        .icmp_error = true, .inner_key = Key(kClient6, 40000, kBackend6, 8443, P::kTcp), .inner_has_l4 = true,
        .inner_l3_offset = kL4v6 + 8, .inner_l4_offset = kL4v6 + 56}},
      {"Icmpv6TimeExceededFromRouter", PacketBuilder().Ip(kRouter6, kClient6).IcmpError(3, 0, QuotedV6Tcp()).Build(),
       {.ethertype = v6, .key = Key(kRouter6, 0, kClient6, 0, P::kIcmpV6), .has_l4 = false, .icmp_type = 3,
        .icmp_error = true, .inner_key = Key(kClient6, 40000, kBackend6, 8443, P::kTcp), .inner_has_l4 = true,
        .inner_l3_offset = kL4v6 + 8, .inner_l4_offset = kL4v6 + 48}},

      // L3 packets (no Ethernet) through ParseIp.
      {"L3Ipv4Tcp", PacketBuilder().NoEthernet().Ip(kClient4, kVip4).Tcp(40000, 80).Build(),
       {.key = Key(kClient4, 40000, kVip4, 80, P::kTcp), .l4_offset = kIpv4MinHeaderLen, .tcp_flags = kTcpSyn},
       false},
      {"L3Ipv6UdpWithExt", PacketBuilder().NoEthernet().Ip(kClient6, kVip6).Ipv6Ext(P::kHopByHop).Udp(40001, 53).Build(),
       {.ethertype = v6, .key = Key(kClient6, 40001, kVip6, 53, P::kUdp), .l4_offset = kIpv6HeaderLen + 8},
       false},
      {"L3Icmpv4Error", PacketBuilder().NoEthernet().Ip(kBackend4, kClient4).IcmpError(3, 3, QuotedV4Udp()).Build(),
       {.key = Key(kBackend4, 0, kClient4, 0, P::kIcmp), .has_l4 = false, .icmp_type = 3, .icmp_code = 3,
        .icmp_error = true, .inner_key = Key(kClient4, 40001, kBackend4, 5353, P::kUdp), .inner_has_l4 = true,
        .inner_l3_offset = 28, .inner_l4_offset = 48},
       false},
  };
}

DropReason Parse(const std::vector<uint8_t>& bytes, bool ethernet, ParsedPacket* p) {
  return ethernet ? ParseEthernet(bytes.data(), bytes.size(), p) : ParseIp(bytes.data(), bytes.size(), p);
}

class ParseValid : public ::testing::TestWithParam<Valid> {};

TEST_P(ParseValid, YieldsTheHeadersBuilt) {
  const Valid& c = GetParam();
  const Want& w = c.want;
  ParsedPacket p;
  const DropReason r = Parse(c.bytes, c.ethernet, &p);
  ASSERT_EQ(r, DropReason::kNone) << DropReasonName(r);
  EXPECT_EQ(p.ethertype, w.ethertype);
  EXPECT_EQ(p.vlan_count, w.vlan_count);
  EXPECT_EQ(p.vlan_id, w.vlan_id);
  if (!p.is_ip()) return;

  const uint16_t l3 = c.ethernet ? static_cast<uint16_t>(kEthHeaderLen + kVlanTagLen * w.vlan_count) : 0;
  EXPECT_EQ(p.ip.family, w.ethertype == kEtherTypeIpv4 ? Family::kIpv4 : Family::kIpv6);
  EXPECT_EQ(p.ip.key, w.key) << p.ip.key.ToString() << " want " << w.key.ToString();
  EXPECT_EQ(p.ip.proto, w.key.proto);
  EXPECT_EQ(p.ip.l3_offset, l3);
  EXPECT_EQ(p.ip.l3_len, w.l3_len != 0 ? w.l3_len : c.bytes.size() - l3);
  EXPECT_EQ(p.ip.has_l4, w.has_l4);
  if (w.has_l4) { EXPECT_EQ(p.ip.l4_offset, w.l4_offset); }
  EXPECT_EQ(p.ip.fragment, w.fragment);
  EXPECT_EQ(p.ip.non_first_fragment, w.non_first_fragment);
  EXPECT_EQ(p.ip.has_ip_options, w.has_ip_options);
  EXPECT_EQ(p.ttl, w.ttl);
  EXPECT_EQ(p.tcp_flags, w.tcp_flags);
  EXPECT_EQ(p.icmp_type, w.icmp_type);
  EXPECT_EQ(p.icmp_code, w.icmp_code);
  EXPECT_EQ(p.icmp_error, w.icmp_error);
  if (w.icmp_error) {
    EXPECT_EQ(p.inner.key, w.inner_key) << p.inner.key.ToString() << " want " << w.inner_key.ToString();
    EXPECT_EQ(p.inner.family, p.ip.family);
    EXPECT_EQ(p.inner.has_l4, w.inner_has_l4);
    EXPECT_EQ(p.inner.l3_offset, w.inner_l3_offset);
    if (w.inner_has_l4) { EXPECT_EQ(p.inner.l4_offset, w.inner_l4_offset); }
    EXPECT_EQ(p.inner.l3_offset + p.inner.l3_len, p.ip.l3_offset + p.ip.l3_len);
  }
  // The builder's checksums are right, and so the check of them must agree.
  EXPECT_TRUE(ChecksumsValid(c.bytes, c.ethernet));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParseValid, ::testing::ValuesIn(ValidPackets()),
                         [](const auto& info) { return info.param.name; });

struct Malformed {
  std::string name;
  std::vector<uint8_t> bytes;
  DropReason want;
  bool ethernet = true;
};
void PrintTo(const Malformed& c, std::ostream* os) { *os << c.name; }

std::vector<Malformed> MalformedPackets() {
  using D = DropReason;
  using P = IpProto;
  const auto v4_error_quoting = [](std::vector<uint8_t> quote) { return V4Error(std::move(quote)); };
  const auto v6_error_quoting = [](std::vector<uint8_t> quote) { return V6Error(std::move(quote)); };
  return {
      {"EthTruncated", Cut(V4Tcp(), kEthHeaderLen - 1), D::kEthTruncated},
      {"EmptyL3Buffer", {}, D::kIpv4Truncated, false},
      {"VlanTagTruncated", Cut(PacketBuilder().Vlan(100).Ip(kClient4, kVip4).Tcp(1, 2).Build(), 17), D::kVlanTruncated},
      {"SecondVlanTagTruncated", Cut(PacketBuilder().Vlan(100).Vlan(200).Ip(kClient4, kVip4).Tcp(1, 2).Build(), 21),
       D::kVlanTruncated},
      {"ThreeVlanTags", PacketBuilder().Vlan(1).Vlan(2).Vlan(3).Ip(kClient4, kVip4).Tcp(1, 2).Build(), D::kTooManyVlanTags},

      {"Ipv4EtherTypeCarryingIpv6", With(V6Tcp(), 12, {0x08, 0x00}), D::kIpVersionMismatch},
      {"Ipv6EtherTypeCarryingIpv4", With(V4Tcp(), 12, {0x86, 0xdd}), D::kIpVersionMismatch},
      {"L3Version5", With(PacketBuilder().NoEthernet().Ip(kClient4, kVip4).Tcp(1, 2).Build(), 0, {0x55}),
       D::kIpVersionMismatch, false},

      {"Ipv4Truncated", Cut(V4Tcp(), kL3 + kIpv4MinHeaderLen - 1), D::kIpv4Truncated},
      {"L3Ipv4Truncated", Cut(PacketBuilder().NoEthernet().Ip(kClient4, kVip4).Tcp(1, 2).Build(), 19),
       D::kIpv4Truncated, false},
      {"Ipv4HeaderLengthBelowMinimum", With(V4Tcp(), kL3, {0x44}), D::kIpv4BadHeaderLength},
      {"Ipv4HeaderLengthBeyondPacket", With(V4Udp(0), kL3, {0x4f}), D::kIpv4BadHeaderLength},
      {"Ipv4TotalLengthBelowHeader", With(V4Tcp(), kL3 + 2, {0, 19}), D::kIpv4BadTotalLength},
      {"Ipv4TotalLengthBeyondFrame", Cut(V4Udp(), V4Udp().size() - 1), D::kIpv4BadTotalLength},

      {"Ipv6Truncated", Cut(V6Tcp(), kL3 + kIpv6HeaderLen - 1), D::kIpv6Truncated},
      {"Ipv6PayloadLengthBeyondFrame", Cut(V6Udp(), V6Udp().size() - 1), D::kIpv6BadPayloadLength},
      {"Ipv6ExtHeaderCut", ShrinkIp(PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(P::kHopByHop).Tcp(1, 2).Build(), kL3, 44),
       D::kIpv6ExtTruncated},
      {"Ipv6ExtLengthBeyondPacket",
       With(PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(P::kHopByHop).Tcp(1, 2).Build(), kL4v6 + 1, {10}),
       D::kIpv6ExtTruncated},
      {"Ipv6TooManyExtHeaders", V6WithExts(kMaxIpv6ExtHeaders + 1), D::kIpv6TooManyExtHeaders},

      {"Ipv4TcpTruncated", ShrinkIp(V4Tcp(), kL3, 20 + 19), D::kL4Truncated},
      // A first fragment too short to hold the TCP flags (RFC 1858 section 3.1).
      {"Ipv4TinyFirstFragment",
       ShrinkIp(PacketBuilder().Ip(kClient4, kVip4).Fragment(0, true).Tcp(1, 2).Build(), kL3, 20 + 16), D::kL4Truncated},
      {"Ipv6TcpTruncated", ShrinkIp(V6Tcp(), kL3, 40 + 19), D::kL4Truncated},
      {"Ipv4UdpTruncated", ShrinkIp(V4Udp(0), kL3, 20 + 7), D::kL4Truncated},
      {"Ipv6UdpTruncated", ShrinkIp(V6Udp(), kL3, 40 + 7), D::kL4Truncated},
      {"Ipv4SctpTruncated", ShrinkIp(PacketBuilder().Ip(kClient4, kVip4).Sctp(1, 2).Build(), kL3, 20 + 11),
       D::kL4Truncated},
      {"Ipv4IcmpTruncated", ShrinkIp(PacketBuilder().Ip(kClient4, kVip4).IcmpEcho(true, 1).Build(), kL3, 20 + 7),
       D::kL4Truncated},
      {"Ipv6IcmpTruncated", ShrinkIp(PacketBuilder().Ip(kClient6, kVip6).IcmpEcho(true, 1).Build(), kL3, 40 + 7),
       D::kL4Truncated},

      {"TcpDataOffsetBelowMinimum", With(V4Tcp(), kL4v4 + 12, {0x40}), D::kTcpBadDataOffset},
      {"TcpDataOffsetBeyondPacket", With(V4Tcp(), kL4v4 + 12, {0x60}), D::kTcpBadDataOffset},
      {"Ipv6TcpDataOffsetBeyondPacket", With(V6Tcp(), kL4v6 + 12, {0xf0}), D::kTcpBadDataOffset},
      {"UdpLengthBelowHeader", With(V4Udp(), kL4v4 + 4, {0, 7}), D::kUdpBadLength},
      {"UdpLengthBeyondPacket", With(V4Udp(), kL4v4 + 4, {0, 8 + 33}), D::kUdpBadLength},
      {"Ipv6UdpLengthBeyondPacket", With(V6Udp(), kL4v6 + 4, {0x01, 0x00}), D::kUdpBadLength},

      // The quote of an ICMP error is checked as strictly as RFC 792 allows.
      {"IcmpErrorWithoutQuote", v4_error_quoting({}), D::kIcmpInnerMalformed},
      {"IcmpErrorQuoteShorterThanIpHeader", v4_error_quoting(Cut(QuotedV4Tcp(), 19)), D::kIcmpInnerMalformed},
      {"IcmpErrorQuoteOfOtherVersion", v4_error_quoting(Cut(QuotedV6Tcp(), 48)), D::kIcmpInnerMalformed},
      {"IcmpErrorQuoteHeaderLengthBelowMinimum", v4_error_quoting(With(QuotedV4Tcp(), 0, {0x44})),
       D::kIcmpInnerMalformed},
      {"IcmpErrorQuoteHeaderLengthBeyondQuote", v4_error_quoting(With(Cut(QuotedV4Tcp(), 28), 0, {0x48})),
       D::kIcmpInnerMalformed},
      {"IcmpErrorQuoteTotalLengthBelowHeader", v4_error_quoting(With(QuotedV4Tcp(), 2, {0, 19})),
       D::kIcmpInnerMalformed},
      {"IcmpErrorQuoteTcpCutBeforePortsEnd", v4_error_quoting(Cut(QuotedV4Tcp(), 20 + 7)), D::kIcmpInnerMalformed},
      {"IcmpErrorQuoteUdpLengthBelowHeader", v4_error_quoting(With(QuotedV4Udp(), 20 + 4, {0, 7})),
       D::kIcmpInnerMalformed},
      {"IcmpErrorQuoteSctpCut",
       v4_error_quoting(Cut(PacketBuilder().NoEthernet().Ip(kClient4, kBackend4).Sctp(1, 2).Build(), 20 + 7)),
       D::kIcmpInnerMalformed},
      {"IcmpErrorQuoteEchoCut",
       v4_error_quoting(Cut(PacketBuilder().NoEthernet().Ip(kClient4, kBackend4).IcmpEcho(true, 1).Build(), 20 + 6)),
       D::kIcmpInnerMalformed},
      {"Icmpv6ErrorWithoutQuote", v6_error_quoting({}), D::kIcmpInnerMalformed},
      {"Icmpv6ErrorQuoteShorterThanIpv6Header", v6_error_quoting(Cut(QuotedV6Udp(), 39)), D::kIcmpInnerMalformed},
      {"Icmpv6ErrorQuoteOfOtherVersion", v6_error_quoting(QuotedV4Udp()), D::kIcmpInnerMalformed},
      {"Icmpv6ErrorQuoteTooManyExtHeaders",
       v6_error_quoting([] {
         PacketBuilder b;
         b.NoEthernet().Ip(kClient6, kBackend6);
         for (int i = 0; i <= kMaxIpv6ExtHeaders; ++i) b.Ipv6Ext(IpProto::kHopByHop);
         return b.Udp(1, 2).Build();
       }()),
       D::kIcmpInnerMalformed},
      {"Icmpv6ErrorQuoteExtCut",
       v6_error_quoting(Cut(PacketBuilder().NoEthernet().Ip(kClient6, kBackend6).Ipv6Ext(P::kRouting, 2).Udp(1, 2).Build(), 50)),
       D::kIcmpInnerMalformed},
      {"Icmpv6ErrorQuoteUdpCut", v6_error_quoting(Cut(QuotedV6Udp(), 40 + 5)), D::kIcmpInnerMalformed},
  };
}

class ParseMalformed : public ::testing::TestWithParam<Malformed> {};

TEST_P(ParseMalformed, IsDroppedForItsReason) {
  const Malformed& c = GetParam();
  ParsedPacket p;
  const DropReason got = Parse(c.bytes, c.ethernet, &p);
  EXPECT_EQ(got, c.want) << "got " << DropReasonName(got) << ", want " << DropReasonName(c.want);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParseMalformed, ::testing::ValuesIn(MalformedPackets()),
                         [](const auto& info) { return info.param.name; });

// The bytes a transport header must have for the parser to report its ports:
// the full fixed header, or the first 8 bytes of one quoted in an ICMP error.
size_t L4HeaderLen(IpProto proto, bool quoted) {
  if (quoted) return 8;
  switch (proto) {
    case IpProto::kTcp: return kTcpMinHeaderLen;
    case IpProto::kSctp: return kSctpCommonHeaderLen;
    case IpProto::kUdp: return kUdpHeaderLen;
    default: return kIcmpHeaderLen;
  }
}

// What holds of any parse, whatever the input: every offset handed out lies
// inside the buffer, with room for the header it names.
void ExpectInBounds(const ParsedPacket& p, size_t len, const std::string& what) {
  if (!p.is_ip()) return;
  const size_t end = p.ip.l3_offset + p.ip.l3_len;
  ASSERT_LE(end, len) << what;
  if (p.ip.has_l4) {
    ASSERT_LE(p.ip.l4_offset + L4HeaderLen(p.ip.proto, false), end) << what;
  }
  if (p.icmp_error) {
    ASSERT_TRUE(p.ip.l4_offset + kIcmpHeaderLen <= p.inner.l3_offset) << what;
    ASSERT_LE(p.inner.l3_offset + p.inner.l3_len, end) << what;
    if (p.inner.has_l4) { ASSERT_LE(p.inner.l4_offset + L4HeaderLen(p.inner.proto, true), end) << what; }
  }
}

// Every valid fixture cut short at each length: never a read past the end
// (ASan builds catch one), and an IP packet missing any byte is dropped.
TEST(ParseSweep, TruncationsAreDroppedAndStayInBounds) {
  for (const Valid& c : ValidPackets()) {
    ParsedPacket full;
    ASSERT_EQ(Parse(c.bytes, c.ethernet, &full), DropReason::kNone) << c.name;
    const size_t ip_end = full.is_ip() ? full.ip.l3_offset + full.ip.l3_len : 0;
    for (size_t len = 0; len < c.bytes.size(); ++len) {
      // An exactly sized copy, so that ASan sees a read one past the end.
      const std::vector<uint8_t> cut(c.bytes.begin(), c.bytes.begin() + static_cast<std::ptrdiff_t>(len));
      ParsedPacket p;
      const DropReason r = Parse(cut, c.ethernet, &p);
      const std::string what = c.name + " cut to " + std::to_string(len);
      if (r == DropReason::kNone) { ExpectInBounds(p, cut.size(), what); }
      if (full.is_ip() && len < ip_end) { EXPECT_NE(r, DropReason::kNone) << what; }
    }
  }
}

// Every byte of every valid fixture set to every value.
TEST(ParseSweep, SingleByteCorruptionsStayInBounds) {
  for (const Valid& c : ValidPackets()) {
    std::vector<uint8_t> bytes = c.bytes;
    for (size_t at = 0; at < bytes.size(); ++at) {
      const uint8_t orig = bytes[at];
      for (int v = 0; v < 256; ++v) {
        bytes[at] = static_cast<uint8_t>(v);
        ParsedPacket p;
        if (Parse(bytes, c.ethernet, &p) == DropReason::kNone) {
          ExpectInBounds(p, bytes.size(), c.name + " byte " + std::to_string(at) + " = " + std::to_string(v));
          if (HasFatalFailure()) return;
        }
      }
      bytes[at] = orig;
    }
  }
}

// An IPv6 packet with a full 65535-byte payload is 65575 bytes long, more
// than 16 bits count.
TEST(Parse, Ipv6LargestPayload) {
  const auto bytes = PacketBuilder().Ip(kClient6, kVip6).Udp(40001, 53).Payload(65535 - kUdpHeaderLen).Build();
  ParsedPacket p;
  ASSERT_EQ(ParseEthernet(bytes.data(), bytes.size(), &p), DropReason::kNone);
  EXPECT_EQ(p.ip.l3_len, kIpv6HeaderLen + 65535);
  EXPECT_TRUE(p.ip.has_l4);
  EXPECT_TRUE(ChecksumsValid(bytes));
}

// The fields a caller may read after a successful parse, as text: IP fields
// only for IP, the quote only for an ICMP error, l4_offset only with ports.
std::string Readable(const ParsedPacket& p) {
  const auto headers = [](const IpHeaders& ip) {
    return "family " + std::to_string(static_cast<int>(ip.family)) + " proto " +
           std::to_string(static_cast<int>(ip.proto)) + " l3 " + std::to_string(ip.l3_offset) + "+" +
           std::to_string(ip.l3_len) + " l4 " + (ip.has_l4 ? std::to_string(ip.l4_offset) : "-") + " frag " +
           std::to_string(ip.fragment) + std::to_string(ip.non_first_fragment) + " opts " +
           std::to_string(ip.has_ip_options) + " key " + ip.key.ToString() + " pad " +
           std::to_string(ip.key.pad[0] | ip.key.pad[1] | ip.key.pad[2]);
  };
  std::string s = "ethertype " + std::to_string(p.ethertype) + " vlans " + std::to_string(p.vlan_count) + "/" +
                  std::to_string(p.vlan_id);
  if (!p.is_ip()) return s;
  s += " ttl " + std::to_string(p.ttl) + " tcp " + std::to_string(p.tcp_flags) + " icmp " +
       std::to_string(p.icmp_type) + "/" + std::to_string(p.icmp_code) + " [" + headers(p.ip) + "]";
  if (p.icmp_error) s += " quote [" + headers(p.inner) + "]";
  if (p.plain_ipv4) s += " plain";
  return s;
}

// ParseEthernet takes an untagged IPv4 TCP or UDP frame by a short path of
// its own. A VLAN tag sends the same bytes down the general walk, so the two
// must agree, offsets aside, on every valid fixture and on each of its
// truncations and single-byte corruptions: the same verdict, the same fields.
TEST(ParseSweep, UntaggedFramesParseAsTheirTaggedCopies) {
  const auto tagged = [](const std::vector<uint8_t>& frame) {
    std::vector<uint8_t> t(frame.begin(), frame.begin() + 12);
    t.insert(t.end(), {0x81, 0x00, 0x00, 0x07});
    t.insert(t.end(), frame.begin() + 12, frame.end());
    return t;
  };
  const auto untag = [](ParsedPacket p) {
    p.vlan_count = 0;
    p.vlan_id = 0;
    for (IpHeaders* ip : {&p.ip, &p.inner}) {
      ip->l3_offset = static_cast<uint16_t>(ip->l3_offset - kVlanTagLen);
      ip->l4_offset = static_cast<uint16_t>(ip->l4_offset - kVlanTagLen);
    }
    return p;
  };
  const auto agree = [&](const std::vector<uint8_t>& frame, const std::string& what) {
    ParsedPacket fast;
    ParsedPacket general;
    const std::vector<uint8_t> t = tagged(frame);
    const DropReason r = ParseEthernet(frame.data(), frame.size(), &fast);
    ASSERT_EQ(r, ParseEthernet(t.data(), t.size(), &general)) << what;
    if (r != DropReason::kNone) return;
    // A tagged frame is never plain; an untagged one that is must have the
    // shape the rewrite's short path takes on the flag's word alone.
    ASSERT_FALSE(general.plain_ipv4) << what;
    if (fast.plain_ipv4) {
      const IpHeaders& ip = fast.ip;
      const bool tcp = ip.proto == IpProto::kTcp;
      ASSERT_TRUE(fast.ethertype == kEtherTypeIpv4 && ip.family == Family::kIpv4 && ip.has_l4 &&
                  !ip.has_ip_options && !ip.fragment && !ip.source_routed && !fast.icmp_error &&
                  (tcp || ip.proto == IpProto::kUdp) &&
                  ip.l4_offset + (tcp ? 18u : 8u) <= ip.l3_offset + ip.l3_len)
          << what;
    }
    ParsedPacket expected = untag(general);
    expected.plain_ipv4 = fast.plain_ipv4;
    ASSERT_EQ(Readable(fast), Readable(expected)) << what;
    if (fast.is_ip()) { ASSERT_EQ(fast.ip.key, expected.ip.key) << what; }
  };
  int plain = 0;
  for (const Valid& c : ValidPackets()) {
    if (!c.ethernet || c.bytes.size() < kL3 || c.bytes[12] != 0x08 || c.bytes[13] != 0x00) continue;
    ++plain;
    for (size_t len = kL3; len <= c.bytes.size(); ++len) {
      agree(std::vector<uint8_t>(c.bytes.begin(), c.bytes.begin() + static_cast<std::ptrdiff_t>(len)),
            c.name + " cut to " + std::to_string(len));
      if (HasFatalFailure()) return;
    }
    std::vector<uint8_t> bytes = c.bytes;
    for (size_t at = kL3; at < bytes.size(); ++at) {
      const uint8_t orig = bytes[at];
      for (int v = 0; v < 256; ++v) {
        bytes[at] = static_cast<uint8_t>(v);
        agree(bytes, c.name + " byte " + std::to_string(at) + " = " + std::to_string(v));
        if (HasFatalFailure()) return;
      }
      bytes[at] = orig;
    }
  }
  EXPECT_GE(plain, 5);  // the sweep ran over IPv4 frames, not over nothing
}

// The result struct is reused across a burst: nothing of one packet may
// show through in the next.
TEST(Parse, ReusedResultMatchesFreshParse) {
  const std::vector<Valid> packets = ValidPackets();
  for (const Valid& prev : packets) {
    for (const Valid& cur : packets) {
      ParsedPacket reused;
      ASSERT_EQ(Parse(prev.bytes, prev.ethernet, &reused), DropReason::kNone);
      ASSERT_EQ(Parse(cur.bytes, cur.ethernet, &reused), DropReason::kNone);
      ParsedPacket fresh;
      ASSERT_EQ(Parse(cur.bytes, cur.ethernet, &fresh), DropReason::kNone);
      ASSERT_EQ(Readable(reused), Readable(fresh)) << cur.name << " parsed after " << prev.name;
      if (fresh.is_ip()) {
        ASSERT_EQ(reused.ip.key, fresh.ip.key) << cur.name << " parsed after " << prev.name;
      }
    }
  }
}

TEST(Parse, ResetsTheResultBetweenPackets) {
  ParsedPacket p;
  const auto error = V4Error(QuotedV4Tcp());
  ASSERT_EQ(ParseEthernet(error.data(), error.size(), &p), DropReason::kNone);
  ASSERT_TRUE(p.icmp_error);
  const auto arp = ArpRequest();
  ASSERT_EQ(ParseEthernet(arp.data(), arp.size(), &p), DropReason::kNone);
  EXPECT_FALSE(p.icmp_error);
  EXPECT_FALSE(p.ip.has_l4);
  EXPECT_EQ(p.icmp_type, 0);
}

TEST(IsIcmpError, ErrorTypes) {
  // RFC 792 and RFC 4443 section 2.1.
  for (uint8_t type : {3, 4, 5, 11, 12}) EXPECT_TRUE(IsIcmpError(Family::kIpv4, type)) << int{type};
  for (uint8_t type : {0, 8, 13, 14}) EXPECT_FALSE(IsIcmpError(Family::kIpv4, type)) << int{type};
  for (uint8_t type : {1, 2, 3, 4}) EXPECT_TRUE(IsIcmpError(Family::kIpv6, type)) << int{type};
  for (uint8_t type : {0, 128, 129, 133, 135}) EXPECT_FALSE(IsIcmpError(Family::kIpv6, type)) << int{type};
}

TEST(DropReasonName, EveryReasonHasItsOwnName) {
  std::set<std::string> names;
  for (int r = 0; r < static_cast<int>(DropReason::kCount); ++r) {
    const std::string name = DropReasonName(static_cast<DropReason>(r));
    EXPECT_NE(name, "unknown") << r;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
}

// ChecksumsValid is the reference the NAT tests rely on; it must reject a
// wrong checksum of each kind it checks.
TEST(ChecksumsValid, RejectsEachKindOfBadChecksum) {
  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    size_t csum_at;
  };
  const std::vector<Case> cases = {
      {"Ipv4Header", V4Tcp(), kL3 + 10},
      {"Tcp", V4Tcp(), kL4v4 + 16},
      {"Udp", V4Udp(), kL4v4 + 6},
      {"Icmp", PacketBuilder().Ip(kClient4, kVip4).IcmpEcho(true, 1).Build(), kL4v4 + 2},
      {"Ipv6Tcp", V6Tcp(), kL4v6 + 16},
      {"Icmpv6", PacketBuilder().Ip(kClient6, kVip6).IcmpEcho(true, 1).Build(), kL4v6 + 2},
      {"QuotedIpv4Header", V4Error(QuotedV4Tcp()), kL4v4 + 8 + 10},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE(ChecksumsValid(c.bytes)) << c.name;
    std::vector<uint8_t> bad = c.bytes;
    bad[c.csum_at] ^= 0x01;
    if (c.name == "QuotedIpv4Header") {
      // Keep the outer ICMP checksum right, so that only the quote is wrong.
      uint16_t icmp;
      std::memcpy(&icmp, &bad[kL4v4 + 2], 2);
      uint8_t old_w[2] = {c.bytes[c.csum_at], c.bytes[c.csum_at + 1]};
      icmp = ChecksumReplace(icmp, old_w, &bad[c.csum_at], 2);
      std::memcpy(&bad[kL4v4 + 2], &icmp, 2);
    }
    EXPECT_FALSE(ChecksumsValid(bad)) << c.name;
  }
}

TEST(ChecksumsValid, Ipv4UdpWithoutChecksum) {
  // RFC 768: zero means the sender computed none.
  EXPECT_TRUE(ChecksumsValid(With(V4Udp(), kL4v4 + 6, {0, 0})));
  // IPv6 makes the UDP checksum mandatory (RFC 8200 section 8.1).
  EXPECT_FALSE(ChecksumsValid(With(V6Udp(), kL4v6 + 6, {0, 0})));
}

// ICMP in IPv6 (or ICMPv6 in IPv4) is opaque to the parser, which does not
// require even a checksum field; the check must not read one.
TEST(ChecksumsValid, IcmpOfTheOtherFamilyIsOpaque) {
  const auto v6 = ShrinkIp(With(V6Udp(), kL3 + 6, {1}), kL3, kIpv6HeaderLen + 2);
  EXPECT_TRUE(ChecksumsValid(v6));
  const auto v4 = WithIpv4Protocol(ShrinkIp(V4Udp(), kL3, kIpv4MinHeaderLen + 1), 58);
  EXPECT_TRUE(ChecksumsValid(v4));
}

TEST(PacketBuilder, IcmpFamilyDoesNotDependOnCallOrder) {
  // Build() settles ICMP or ICMPv6 from the addresses, set before or after.
  PacketBuilder late;
  late.IcmpEcho(true, 5).Ip(kClient6, kVip6);
  EXPECT_EQ(late.Build(), PacketBuilder().Ip(kClient6, kVip6).IcmpEcho(true, 5).Build());
  PacketBuilder late4;
  late4.IcmpEcho(false, 5).Ip(kClient4, kVip4);
  EXPECT_EQ(late4.Build(), PacketBuilder().Ip(kClient4, kVip4).IcmpEcho(false, 5).Build());
}

// A first fragment's UDP length covers the whole datagram, most of which
// follows in later fragments: it is not a bad length.
TEST(ParseFragments, UdpFirstFragmentKeepsItsPorts) {
  for (const auto& [src, dst] : {std::pair{"198.19.0.2", "198.18.64.10"},
                                 std::pair{"fd00:a70::2", "fd00:a70:40::a"}}) {
    std::vector<uint8_t> first =
        PacketBuilder().Ip(src, dst).Fragment(0, true).Udp(5353, 53).Payload(992).Build();
    // The UDP length field as the sender wrote it: 8 + 3000 bytes.
    const size_t udp_len_at = first.size() - 992 - 8 + 4;
    first[udp_len_at] = static_cast<uint8_t>(3008 >> 8);
    first[udp_len_at + 1] = static_cast<uint8_t>(3008 & 0xff);
    ParsedPacket p;
    ASSERT_EQ(ParseEthernet(first.data(), first.size(), &p), DropReason::kNone) << dst;
    EXPECT_TRUE(p.ip.fragment);
    EXPECT_TRUE(p.ip.has_l4);
    EXPECT_EQ(p.ip.key.dst_port, 53);
    // Unfragmented, the same length is a lie and still dropped.
    std::vector<uint8_t> whole = PacketBuilder().Ip(src, dst).Udp(5353, 53).Payload(992).Build();
    whole[udp_len_at - (first.size() - whole.size())] = static_cast<uint8_t>(3008 >> 8);
    whole[udp_len_at - (first.size() - whole.size()) + 1] = static_cast<uint8_t>(3008 & 0xff);
    EXPECT_EQ(ParseEthernet(whole.data(), whole.size(), &p), DropReason::kUdpBadLength) << dst;
  }
}

}  // namespace
}  // namespace atl::lb
