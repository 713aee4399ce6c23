#include "lb/nat.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lb/checksum.h"
#include "lb/packet.h"
#include "lb/packet_builder.h"
#include "lb/test_support.h"

namespace atl::lb {
namespace {

using namespace test_support;  // NOLINT(google-build-using-namespace): test helpers

ParsedPacket MustParse(const std::vector<uint8_t>& bytes, bool ethernet = true) {
  ParsedPacket p;
  const DropReason r =
      ethernet ? ParseEthernet(bytes.data(), bytes.size(), &p) : ParseIp(bytes.data(), bytes.size(), &p);
  EXPECT_EQ(r, DropReason::kNone) << DropReasonName(r);
  return p;
}

std::vector<uint8_t> With(std::vector<uint8_t> bytes, size_t at, std::initializer_list<uint8_t> values) {
  std::copy(values.begin(), values.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at));
  return bytes;
}

// A non-first fragment holds the middle of a datagram: after the IP headers
// comes data, not a transport header (the builder would write one, with a
// checksum that depends on the addresses).
std::vector<uint8_t> AsFragmentData(std::vector<uint8_t> bytes, size_t data_offset) {
  std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(data_offset), bytes.end(), 0x5a);
  return bytes;
}

// A two-byte payload that makes the UDP checksum of src:sport -> dst:dport
// compute to zero, which RFC 768 sends as ffff.
std::vector<uint8_t> ZeroSumUdpPayload(std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport) {
  const auto probe = PacketBuilder().NoEthernet().Ip(src, dst).Udp(sport, dport).Payload({0, 0}).Build();
  const size_t l4 = probe[0] >> 4 == 4 ? kIpv4MinHeaderLen : kIpv6HeaderLen;
  // The payload word that adds the complement of the sum brings it to ffff.
  return {probe[l4 + 6], probe[l4 + 7]};
}

// One translation: the packet, the key it must get, and the packet the
// builder makes for that key directly, which the rewrite must equal byte for
// byte: every checksum updated incrementally equals the one computed afresh.
struct Rewrite {
  std::string name;
  std::vector<uint8_t> in;
  FlowKey to;
  std::vector<uint8_t> want;
  bool ethernet = true;
};
// gtest names a failing fixture by this rather than by its bytes.
void PrintTo(const Rewrite& c, std::ostream* os) { *os << c.name; }

std::vector<Rewrite> Rewrites() {
  using P = IpProto;
  const auto zero_sum = ZeroSumUdpPayload(kClient4, 40001, kBackend4, 5353);
  const auto zero_sum6 = ZeroSumUdpPayload(kClient6, 40001, kBackend6, 5353);
  const auto udp4_no_csum = [](std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport) {
    return With(PacketBuilder().Ip(src, dst).Udp(sport, dport).Payload(20).Build(), kL4v4 + 6, {0, 0});
  };
  return {
      // DNAT: C -> V becomes C -> B; SNAT: B's reply B -> C becomes V -> C.
      {"Ipv4TcpDnat", PacketBuilder().Ip(kClient4, kVip4).Tcp(40000, 80).Payload(100).Build(),
       Key(kClient4, 40000, kBackend4, 8080, P::kTcp),
       PacketBuilder().Ip(kClient4, kBackend4).Tcp(40000, 8080).Payload(100).Build()},
      {"Ipv4TcpSnat", PacketBuilder().Ip(kBackend4, kClient4).Tcp(8080, 40000, kTcpSyn | kTcpAck).Build(),
       Key(kVip4, 80, kClient4, 40000, P::kTcp),
       PacketBuilder().Ip(kVip4, kClient4).Tcp(80, 40000, kTcpSyn | kTcpAck).Build()},
      {"Ipv4TcpFullNat", PacketBuilder().Ip(kClient4, kVip4).Tcp(40000, 80, kTcpAck).Payload(7).Build(),
       Key(kLb4, 50000, kBackend4, 8080, P::kTcp),
       PacketBuilder().Ip(kLb4, kBackend4).Tcp(50000, 8080, kTcpAck).Payload(7).Build()},
      {"Ipv4UdpDnat", PacketBuilder().Ip(kClient4, kVip4).Udp(40001, 53).Payload(33).Build(),
       Key(kClient4, 40001, kBackend4, 5353, P::kUdp),
       PacketBuilder().Ip(kClient4, kBackend4).Udp(40001, 5353).Payload(33).Build()},
      {"Ipv4UdpSnat", PacketBuilder().Ip(kBackend4, kClient4).Udp(5353, 40001).Payload(64).Build(),
       Key(kVip4, 53, kClient4, 40001, P::kUdp),
       PacketBuilder().Ip(kVip4, kClient4).Udp(53, 40001).Payload(64).Build()},
      {"Ipv4EchoDnat", PacketBuilder().Ip(kClient4, kVip4).IcmpEcho(true, 0x1234).Payload(56).Build(),
       Key(kClient4, 0x4321, kBackend4, 0x4321, P::kIcmp),
       PacketBuilder().Ip(kClient4, kBackend4).IcmpEcho(true, 0x4321).Payload(56).Build()},
      {"Ipv4EchoSnat", PacketBuilder().Ip(kBackend4, kClient4).IcmpEcho(false, 0x4321).Payload(56).Build(),
       Key(kVip4, 0x1234, kClient4, 0x1234, P::kIcmp),
       PacketBuilder().Ip(kVip4, kClient4).IcmpEcho(false, 0x1234).Payload(56).Build()},
      // RFC 768: an IPv4 UDP checksum of zero means none; it stays zero.
      {"Ipv4UdpWithoutChecksumDnat", udp4_no_csum(kClient4, 40001, kVip4, 53),
       Key(kClient4, 40001, kBackend4, 5353, P::kUdp), udp4_no_csum(kClient4, 40001, kBackend4, 5353)},
      // A checksum that computes to zero is sent as ffff, and ffff updates back.
      {"Ipv4UdpChecksumComingToZero", PacketBuilder().Ip(kClient4, kVip4).Udp(40001, 53).Payload(zero_sum).Build(),
       Key(kClient4, 40001, kBackend4, 5353, P::kUdp),
       PacketBuilder().Ip(kClient4, kBackend4).Udp(40001, 5353).Payload(zero_sum).Build()},
      {"Ipv4UdpChecksumLeavingFfff", PacketBuilder().Ip(kClient4, kBackend4).Udp(40001, 5353).Payload(zero_sum).Build(),
       Key(kClient4, 40001, kVip4, 53, P::kUdp),
       PacketBuilder().Ip(kClient4, kVip4).Udp(40001, 53).Payload(zero_sum).Build()},
      {"Ipv4SctpAddressesOnly", PacketBuilder().Ip(kClient4, kVip4).Sctp(40002, 38412).Build(),
       Key(kClient4, 40002, kBackend4, 38412, P::kSctp),
       PacketBuilder().Ip(kClient4, kBackend4).Sctp(40002, 38412).Build()},
      {"VlanIpv4WithOptionsTcpDnat",
       PacketBuilder().Vlan(100).Ip(kClient4, kVip4).Ipv4Options({0x94, 0x04, 0, 0}).Tcp(40000, 80).Build(),
       Key(kClient4, 40000, kBackend4, 8080, P::kTcp),
       PacketBuilder().Vlan(100).Ip(kClient4, kBackend4).Ipv4Options({0x94, 0x04, 0, 0}).Tcp(40000, 8080).Build()},
      {"L3Ipv4UdpDnat", PacketBuilder().NoEthernet().Ip(kClient4, kVip4).Udp(40001, 53).Payload(8).Build(),
       Key(kClient4, 40001, kBackend4, 5353, P::kUdp),
       PacketBuilder().NoEthernet().Ip(kClient4, kBackend4).Udp(40001, 5353).Payload(8).Build(), false},
      // The first fragment carries the ports; later ones only addresses.
      {"Ipv4FirstFragmentDnat", PacketBuilder().Ip(kClient4, kVip4).Fragment(0, true).Tcp(40000, 80).Payload(64).Build(),
       Key(kClient4, 40000, kBackend4, 8080, P::kTcp),
       PacketBuilder().Ip(kClient4, kBackend4).Fragment(0, true).Tcp(40000, 8080).Payload(64).Build()},
      {"Ipv4NonFirstFragmentDnat",
       AsFragmentData(PacketBuilder().Ip(kClient4, kVip4).Fragment(185, false).Tcp(1, 2).Payload(64).Build(), kL4v4),
       Key(kClient4, 0, kBackend4, 0, P::kTcp),
       AsFragmentData(PacketBuilder().Ip(kClient4, kBackend4).Fragment(185, false).Tcp(1, 2).Payload(64).Build(), kL4v4)},

      {"Ipv6TcpDnat", PacketBuilder().Ip(kClient6, kVip6).Tcp(40000, 443).Payload(100).Build(),
       Key(kClient6, 40000, kBackend6, 8443, P::kTcp),
       PacketBuilder().Ip(kClient6, kBackend6).Tcp(40000, 8443).Payload(100).Build()},
      {"Ipv6TcpSnat", PacketBuilder().Ip(kBackend6, kClient6).Tcp(8443, 40000, kTcpSyn | kTcpAck).Build(),
       Key(kVip6, 443, kClient6, 40000, P::kTcp),
       PacketBuilder().Ip(kVip6, kClient6).Tcp(443, 40000, kTcpSyn | kTcpAck).Build()},
      {"Ipv6TcpFullNat", PacketBuilder().Ip(kClient6, kVip6).Tcp(40000, 443, kTcpAck).Payload(3).Build(),
       Key(kLb6, 50000, kBackend6, 8443, P::kTcp),
       PacketBuilder().Ip(kLb6, kBackend6).Tcp(50000, 8443, kTcpAck).Payload(3).Build()},
      {"Ipv6UdpDnat", PacketBuilder().Ip(kClient6, kVip6).Udp(40001, 53).Payload(33).Build(),
       Key(kClient6, 40001, kBackend6, 5353, P::kUdp),
       PacketBuilder().Ip(kClient6, kBackend6).Udp(40001, 5353).Payload(33).Build()},
      {"Ipv6UdpSnat", PacketBuilder().Ip(kBackend6, kClient6).Udp(5353, 40001).Payload(64).Build(),
       Key(kVip6, 53, kClient6, 40001, P::kUdp),
       PacketBuilder().Ip(kVip6, kClient6).Udp(53, 40001).Payload(64).Build()},
      {"Ipv6UdpChecksumComingToZero", PacketBuilder().Ip(kClient6, kVip6).Udp(40001, 53).Payload(zero_sum6).Build(),
       Key(kClient6, 40001, kBackend6, 5353, P::kUdp),
       PacketBuilder().Ip(kClient6, kBackend6).Udp(40001, 5353).Payload(zero_sum6).Build()},
      // ICMPv6, unlike ICMP, covers the addresses (RFC 4443 section 2.3).
      {"Ipv6EchoDnat", PacketBuilder().Ip(kClient6, kVip6).IcmpEcho(true, 0x1234).Payload(56).Build(),
       Key(kClient6, 0x4321, kBackend6, 0x4321, P::kIcmpV6),
       PacketBuilder().Ip(kClient6, kBackend6).IcmpEcho(true, 0x4321).Payload(56).Build()},
      {"Ipv6EchoSnat", PacketBuilder().Ip(kBackend6, kClient6).IcmpEcho(false, 0x4321).Build(),
       Key(kVip6, 0x1234, kClient6, 0x1234, P::kIcmpV6),
       PacketBuilder().Ip(kVip6, kClient6).IcmpEcho(false, 0x1234).Build()},
      {"Ipv6EchoAddressOnly", PacketBuilder().Ip(kClient6, kVip6).IcmpEcho(true, 9).Build(),
       Key(kClient6, 9, kBackend6, 9, P::kIcmpV6), PacketBuilder().Ip(kClient6, kBackend6).IcmpEcho(true, 9).Build()},
      {"Ipv6ExtHeadersTcpDnat",
       PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(P::kHopByHop).Ipv6Ext(P::kDestOpts, 2).Tcp(40000, 443).Build(),
       Key(kClient6, 40000, kBackend6, 8443, P::kTcp),
       PacketBuilder().Ip(kClient6, kBackend6).Ipv6Ext(P::kHopByHop).Ipv6Ext(P::kDestOpts, 2).Tcp(40000, 8443).Build()},
      {"Ipv6FirstFragmentSnat", PacketBuilder().Ip(kBackend6, kClient6).Fragment(0, true).Udp(5353, 40001).Payload(64).Build(),
       Key(kVip6, 53, kClient6, 40001, P::kUdp),
       PacketBuilder().Ip(kVip6, kClient6).Fragment(0, true).Udp(53, 40001).Payload(64).Build()},
      {"Ipv6NonFirstFragmentSnat",
       AsFragmentData(PacketBuilder().Ip(kBackend6, kClient6).Fragment(100, false).Udp(1, 2).Payload(64).Build(), kL4v6 + 8),
       Key(kVip6, 0, kClient6, 0, P::kUdp),
       AsFragmentData(PacketBuilder().Ip(kVip6, kClient6).Fragment(100, false).Udp(1, 2).Payload(64).Build(), kL4v6 + 8)},
  };
}

class RewriteFlowTest : public ::testing::TestWithParam<Rewrite> {};

TEST_P(RewriteFlowTest, GivesThePacketBuiltForTheTarget) {
  const Rewrite& c = GetParam();
  ASSERT_TRUE(ChecksumsValid(c.in, c.ethernet));
  std::vector<uint8_t> pkt = c.in;
  ASSERT_TRUE(RewriteFlow(pkt.data(), MustParse(pkt, c.ethernet), c.to));

  const ParsedPacket after = MustParse(pkt, c.ethernet);
  EXPECT_EQ(after.ip.key, c.to) << after.ip.key.ToString() << " want " << c.to.ToString();
  EXPECT_TRUE(ChecksumsValid(pkt, c.ethernet));
  EXPECT_EQ(pkt, c.want);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RewriteFlowTest, ::testing::ValuesIn(Rewrites()),
                         [](const auto& info) { return info.param.name; });

TEST(RewriteFlow, ZeroSumFixturesHoldFfff) {
  // The fixtures above test what they say only if this holds.
  const auto v4 = PacketBuilder().Ip(kClient4, kBackend4).Udp(40001, 5353)
                      .Payload(ZeroSumUdpPayload(kClient4, 40001, kBackend4, 5353)).Build();
  EXPECT_EQ(v4[kL4v4 + 6], 0xff);
  EXPECT_EQ(v4[kL4v4 + 7], 0xff);
  const auto v6 = PacketBuilder().Ip(kClient6, kBackend6).Udp(40001, 5353)
                      .Payload(ZeroSumUdpPayload(kClient6, 40001, kBackend6, 5353)).Build();
  EXPECT_EQ(v6[kL4v6 + 6], 0xff);
  EXPECT_EQ(v6[kL4v6 + 7], 0xff);
}

TEST(RewriteFlow, UdpWithoutChecksumKeepsZero) {
  // Spelled out beside the fixture above: the field is zero after the rewrite.
  std::vector<uint8_t> pkt = With(PacketBuilder().Ip(kClient4, kVip4).Udp(40001, 53).Build(), kL4v4 + 6, {0, 0});
  ASSERT_TRUE(RewriteFlow(pkt.data(), MustParse(pkt), Key(kClient4, 40001, kBackend4, 5353, IpProto::kUdp)));
  EXPECT_EQ(pkt[kL4v4 + 6], 0);
  EXPECT_EQ(pkt[kL4v4 + 7], 0);
}

struct Refusal {
  std::string name;
  std::vector<uint8_t> in;
  FlowKey to;
};

// What RewriteFlow cannot do it leaves undone, without touching the packet.
TEST(RewriteFlow, RefusesWhatItCannotTranslate) {
  const std::vector<Refusal> cases = {
      // The SCTP CRC32c covers the ports and cannot be updated incrementally.
      {"SctpPortChange", PacketBuilder().Ip(kClient4, kVip4).Sctp(40002, 38412).Build(),
       Key(kClient4, 40002, kBackend4, 9000, IpProto::kSctp)},
      {"Ipv6SctpPortChange", PacketBuilder().Ip(kClient6, kVip6).Sctp(40002, 38412).Build(),
       Key(kClient6, 40003, kBackend6, 38412, IpProto::kSctp)},
      {"Ipv4ToIpv6", PacketBuilder().Ip(kClient4, kVip4).Tcp(40000, 80).Build(),
       Key(kClient6, 40000, kBackend6, 8080, IpProto::kTcp)},
      {"Ipv6ToIpv4", PacketBuilder().Ip(kClient6, kVip6).Udp(40001, 53).Build(),
       Key(kClient4, 40001, kBackend4, 53, IpProto::kUdp)},
      {"MixedFamilies", PacketBuilder().Ip(kClient4, kVip4).Tcp(40000, 80).Build(),
       Key(kClient4, 40000, kBackend6, 8080, IpProto::kTcp)},
  };
  for (const Refusal& c : cases) {
    std::vector<uint8_t> pkt = c.in;
    EXPECT_FALSE(RewriteFlow(pkt.data(), MustParse(pkt), c.to)) << c.name;
    EXPECT_EQ(pkt, c.in) << c.name;
  }
}

// ICMP in IPv6 or ICMPv6 in IPv4 is opaque: its addresses change, its bytes
// do not.
TEST(RewriteFlow, LeavesOpaqueIcmpOfTheOtherFamilyAlone) {
  std::vector<uint8_t> in = PacketBuilder().Ip(kClient4, kVip4).Udp(40001, 53).Payload(16).Build();
  in[kL3 + 9] = static_cast<uint8_t>(IpProto::kIcmpV6);
  in[kL3 + 10] = in[kL3 + 11] = 0;
  const uint16_t hc = Ipv4HeaderChecksum(&in[kL3], kIpv4MinHeaderLen);
  std::memcpy(&in[kL3 + 10], &hc, 2);

  std::vector<uint8_t> pkt = in;
  ASSERT_TRUE(RewriteFlow(pkt.data(), MustParse(pkt), Key(kClient4, 0, kBackend4, 0, IpProto::kIcmpV6)));
  EXPECT_EQ(MustParse(pkt).ip.key.dst, Addr(kBackend4));
  EXPECT_TRUE(std::equal(pkt.begin() + kL4v4, pkt.end(), in.begin() + kL4v4));
  EXPECT_TRUE(ChecksumsValid(pkt));
}

// An IPv6 packet with a full 65535-byte payload is longer than 16 bits
// count; the rewrite must still find its end, or it leaves the UDP checksum
// stale.
TEST(RewriteFlow, Ipv6LargestPayload) {
  const std::vector<uint8_t> in =
      PacketBuilder().Ip(kClient6, kVip6).Udp(40001, 53).Payload(65535 - kUdpHeaderLen, 0x17).Build();
  std::vector<uint8_t> pkt = in;
  const FlowKey to = Key(kClient6, 40001, kBackend6, 5353, IpProto::kUdp);
  ASSERT_TRUE(RewriteFlow(pkt.data(), MustParse(pkt), to));
  EXPECT_EQ(MustParse(pkt).ip.key, to);
  EXPECT_TRUE(ChecksumsValid(pkt));
}

// The transport checksum of a wholly quoted TCP or UDP packet, recomputed
// here rather than by ChecksumsValid (which checks only the quoted IPv4
// header). nullopt when the quote is cut short of the whole packet.
std::optional<bool> QuotedTransportChecksumValid(const std::vector<uint8_t>& bytes, const ParsedPacket& p) {
  const IpHeaders& in = p.inner;
  const size_t end = in.l3_offset + in.l3_len;
  const size_t len = end - in.l4_offset;
  const uint8_t* l3 = &bytes[in.l3_offset];
  const size_t original_len = in.family == Family::kIpv4
                                  ? static_cast<size_t>(l3[2] << 8 | l3[3])
                                  : kIpv6HeaderLen + static_cast<size_t>(l3[4] << 8 | l3[5]);
  const bool tcp_or_udp = in.proto == IpProto::kTcp || in.proto == IpProto::kUdp;
  if (!in.has_l4 || !tcp_or_udp || in.l3_len != original_len) return std::nullopt;
  const size_t csum_at = in.proto == IpProto::kTcp ? 16 : 6;
  std::vector<uint8_t> l4(bytes.begin() + in.l4_offset, bytes.begin() + static_cast<std::ptrdiff_t>(end));
  uint16_t stored;
  std::memcpy(&stored, &l4[csum_at], 2);
  if (in.proto == IpProto::kUdp && in.family == Family::kIpv4 && stored == 0) return true;
  l4[csum_at] = l4[csum_at + 1] = 0;
  uint16_t want = L4Checksum(in.key.src, in.key.dst, in.proto, l4.data(), len);
  if (in.proto == IpProto::kUdp && want == 0) want = 0xffff;
  return stored == want;
}

// An ICMP error about a translated flow: C's packets reach B as C -> B; B (or
// a router R on the way) reports one back to C quoting C -> B, and the
// balancer must make it read as an error from V about C -> V (RFC 5508
// section 6), lest C's stack discard it.
struct IcmpErrorRewrite {
  std::string name;
  std::vector<uint8_t> in;
  FlowKey quoted_to;
  std::string_view outer_src;
  std::vector<uint8_t> want;
  bool whole_quote = false;  // the quote holds the whole packet, checksum and all
};
void PrintTo(const IcmpErrorRewrite& c, std::ostream* os) { *os << c.name; }

std::vector<uint8_t> Quote(std::string_view src, std::string_view dst, IpProto proto, uint16_t sport,
                           uint16_t dport, size_t payload = 24) {
  PacketBuilder b;
  b.NoEthernet().Ip(src, dst);
  if (proto == IpProto::kTcp) b.Tcp(sport, dport, kTcpAck);
  if (proto == IpProto::kUdp) b.Udp(sport, dport);
  if (proto == IpProto::kIcmp || proto == IpProto::kIcmpV6) b.IcmpEcho(true, sport);
  return b.Payload(payload).Build();
}
std::vector<uint8_t> Error(std::string_view src, std::string_view dst, uint8_t type, uint8_t code,
                           std::vector<uint8_t> quote) {
  return PacketBuilder().Ip(src, dst).IcmpError(type, code, std::move(quote)).Build();
}
std::vector<uint8_t> Cut(std::vector<uint8_t> bytes, size_t len) {
  bytes.resize(len);
  return bytes;
}

std::vector<IcmpErrorRewrite> IcmpErrorRewrites() {
  using P = IpProto;
  const auto udp4_no_csum = [](std::string_view dst, uint16_t dport) {
    return With(Quote(kClient4, dst, P::kUdp, 40001, dport), 20 + 6, {0, 0});
  };
  return {
      {"Ipv4PortUnreachableQuotingUdp", Error(kBackend4, kClient4, 3, 3, Quote(kClient4, kBackend4, P::kUdp, 40001, 5353)),
       Key(kClient4, 40001, kVip4, 53, P::kUdp), kVip4,
       Error(kVip4, kClient4, 3, 3, Quote(kClient4, kVip4, P::kUdp, 40001, 53)), true},
      {"Ipv4PortUnreachableQuotingTcp", Error(kBackend4, kClient4, 3, 3, Quote(kClient4, kBackend4, P::kTcp, 40000, 8080)),
       Key(kClient4, 40000, kVip4, 80, P::kTcp), kVip4,
       Error(kVip4, kClient4, 3, 3, Quote(kClient4, kVip4, P::kTcp, 40000, 80)), true},
      // RFC 792's minimum quote ends before the TCP checksum.
      {"Ipv4QuotingTcpMinimum",
       Error(kBackend4, kClient4, 3, 3, Cut(Quote(kClient4, kBackend4, P::kTcp, 40000, 8080), 28)),
       Key(kClient4, 40000, kVip4, 80, P::kTcp), kVip4,
       Error(kVip4, kClient4, 3, 3, Cut(Quote(kClient4, kVip4, P::kTcp, 40000, 80), 28))},
      {"Ipv4QuotingUdpCutShort",
       Error(kBackend4, kClient4, 3, 3, Cut(Quote(kClient4, kBackend4, P::kUdp, 40001, 5353), 36)),
       Key(kClient4, 40001, kVip4, 53, P::kUdp), kVip4,
       Error(kVip4, kClient4, 3, 3, Cut(Quote(kClient4, kVip4, P::kUdp, 40001, 53), 36))},
      {"Ipv4QuotingUdpWithoutChecksum", Error(kBackend4, kClient4, 3, 3, udp4_no_csum(kBackend4, 5353)),
       Key(kClient4, 40001, kVip4, 53, P::kUdp), kVip4, Error(kVip4, kClient4, 3, 3, udp4_no_csum(kVip4, 53)), true},
      {"Ipv4QuotingEcho", Error(kBackend4, kClient4, 3, 1, Quote(kClient4, kBackend4, P::kIcmp, 0x4321, 0x4321)),
       Key(kClient4, 0x1234, kVip4, 0x1234, P::kIcmp), kVip4,
       Error(kVip4, kClient4, 3, 1, Quote(kClient4, kVip4, P::kIcmp, 0x1234, 0x1234))},
      {"Ipv4QuotingTcpWithOptions",
       Error(kBackend4, kClient4, 12, 0,
             PacketBuilder().NoEthernet().Ip(kClient4, kBackend4).Ipv4Options({0x94, 4, 0, 0}).Tcp(40000, 8080).Build()),
       Key(kClient4, 40000, kVip4, 80, P::kTcp), kVip4,
       Error(kVip4, kClient4, 12, 0,
             PacketBuilder().NoEthernet().Ip(kClient4, kVip4).Ipv4Options({0x94, 4, 0, 0}).Tcp(40000, 80).Build()),
       true},
      // A router's own address is not translated.
      {"Ipv4TimeExceededFromRouter", Error(kRouter4, kClient4, 11, 0, Quote(kClient4, kBackend4, P::kTcp, 40000, 8080)),
       Key(kClient4, 40000, kVip4, 80, P::kTcp), kRouter4,
       Error(kRouter4, kClient4, 11, 0, Quote(kClient4, kVip4, P::kTcp, 40000, 80)), true},

      {"Ipv6PortUnreachableQuotingUdp", Error(kBackend6, kClient6, 1, 4, Quote(kClient6, kBackend6, P::kUdp, 40001, 5353)),
       Key(kClient6, 40001, kVip6, 53, P::kUdp), kVip6,
       Error(kVip6, kClient6, 1, 4, Quote(kClient6, kVip6, P::kUdp, 40001, 53)), true},
      {"Ipv6PortUnreachableQuotingTcp", Error(kBackend6, kClient6, 1, 4, Quote(kClient6, kBackend6, P::kTcp, 40000, 8443)),
       Key(kClient6, 40000, kVip6, 443, P::kTcp), kVip6,
       Error(kVip6, kClient6, 1, 4, Quote(kClient6, kVip6, P::kTcp, 40000, 443)), true},
      {"Ipv6QuotingUdpCutShort",
       Error(kBackend6, kClient6, 1, 4, Cut(Quote(kClient6, kBackend6, P::kUdp, 40001, 5353), 48)),
       Key(kClient6, 40001, kVip6, 53, P::kUdp), kVip6,
       Error(kVip6, kClient6, 1, 4, Cut(Quote(kClient6, kVip6, P::kUdp, 40001, 53), 48))},
      {"Ipv6PacketTooBigFromRouter", Error(kRouter6, kClient6, 2, 0, Quote(kClient6, kBackend6, P::kTcp, 40000, 8443, 1200)),
       Key(kClient6, 40000, kVip6, 443, P::kTcp), kRouter6,
       Error(kRouter6, kClient6, 2, 0, Quote(kClient6, kVip6, P::kTcp, 40000, 443, 1200)), true},
      {"Ipv6QuotingEcho", Error(kBackend6, kClient6, 1, 4, Quote(kClient6, kBackend6, P::kIcmpV6, 0x4321, 0x4321)),
       Key(kClient6, 0x1234, kVip6, 0x1234, P::kIcmpV6), kVip6,
       Error(kVip6, kClient6, 1, 4, Quote(kClient6, kVip6, P::kIcmpV6, 0x1234, 0x1234))},
  };
}

class RewriteIcmpErrorTest : public ::testing::TestWithParam<IcmpErrorRewrite> {};

TEST_P(RewriteIcmpErrorTest, ReadsAsAnErrorAboutTheOriginalFlow) {
  const IcmpErrorRewrite& c = GetParam();
  ASSERT_TRUE(ChecksumsValid(c.in));
  std::vector<uint8_t> pkt = c.in;
  const ParsedPacket before = MustParse(pkt);
  ASSERT_TRUE(before.icmp_error);
  ASSERT_TRUE(RewriteIcmpError(pkt.data(), before, c.quoted_to, Addr(c.outer_src), before.ip.key.dst));

  const ParsedPacket after = MustParse(pkt);
  ASSERT_TRUE(after.icmp_error);
  EXPECT_EQ(after.inner.key, c.quoted_to) << after.inner.key.ToString() << " want " << c.quoted_to.ToString();
  EXPECT_EQ(after.ip.key.src, Addr(c.outer_src));
  EXPECT_EQ(after.ip.key.dst, before.ip.key.dst);
  EXPECT_EQ(after.icmp_type, before.icmp_type);
  EXPECT_EQ(after.icmp_code, before.icmp_code);
  // The ICMP checksum and the quoted IPv4 header checksum...
  EXPECT_TRUE(ChecksumsValid(pkt));
  // ... and the quoted transport checksum, where the quote holds all it covers.
  const std::optional<bool> quoted = QuotedTransportChecksumValid(pkt, after);
  EXPECT_EQ(quoted.has_value(), c.whole_quote);
  if (quoted) { EXPECT_TRUE(*quoted); }
  EXPECT_EQ(pkt, c.want);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RewriteIcmpErrorTest, ::testing::ValuesIn(IcmpErrorRewrites()),
                         [](const auto& info) { return info.param.name; });

TEST(RewriteIcmpError, RefusesWhatItCannotTranslate) {
  struct Case {
    std::string name;
    std::vector<uint8_t> in;
    FlowKey quoted_to;
    IpAddr outer_src;
  };
  const std::vector<Case> cases = {
      {"NotAnError", PacketBuilder().Ip(kClient4, kVip4).IcmpEcho(true, 1).Build(),
       Key(kClient4, 1, kBackend4, 1, IpProto::kIcmp), Addr(kVip4)},
      {"QuotedSctpPortChange",
       Error(kBackend4, kClient4, 3, 3, PacketBuilder().NoEthernet().Ip(kClient4, kBackend4).Sctp(40002, 9000).Build()),
       Key(kClient4, 40002, kVip4, 38412, IpProto::kSctp), Addr(kVip4)},
      {"QuotedFamilyChange", Error(kBackend4, kClient4, 3, 3, Quote(kClient4, kBackend4, IpProto::kUdp, 1, 2)),
       Key(kClient6, 1, kVip6, 2, IpProto::kUdp), Addr(kVip4)},
      {"OuterFamilyChange", Error(kBackend4, kClient4, 3, 3, Quote(kClient4, kBackend4, IpProto::kUdp, 1, 2)),
       Key(kClient4, 1, kVip4, 2, IpProto::kUdp), Addr(kVip6)},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> pkt = c.in;
    const ParsedPacket p = MustParse(pkt);
    EXPECT_FALSE(RewriteIcmpError(pkt.data(), p, c.quoted_to, c.outer_src, p.ip.key.dst)) << c.name;
    EXPECT_EQ(pkt, c.in) << c.name;
  }
}

// Random packets and random targets: the rewrite must always equal the
// packet built afresh for the target.
TEST(RewriteFlow, RandomPacketsAndTargets) {
  std::mt19937 rng(5508);
  const auto random_addr = [&](bool v4) {
    if (v4) return IpAddr::V4(0xc6120000u | (rng() & 0x1ffffu));  // 198.18.0.0/15
    IpAddr a = Addr("fd00:a70::");                                  // fd00:a70::/48
    for (size_t i = 6; i < 16; ++i) a.bytes[i] = static_cast<uint8_t>(rng());
    return a;
  };
  const auto build = [](bool v4, int kind, bool vlan, bool extra, const FlowKey& k,
                        const std::vector<uint8_t>& payload) {
    PacketBuilder b;
    if (vlan) b.Vlan(42);
    b.Ip(k.src, k.dst);
    if (extra && v4) b.Ipv4Options({0x01, 0x01, 0x01, 0x01});
    if (extra && !v4) b.Ipv6Ext(IpProto::kDestOpts);
    if (kind == 0) b.Tcp(k.src_port, k.dst_port, kTcpAck);
    if (kind == 1) b.Udp(k.src_port, k.dst_port);
    if (kind == 2) b.IcmpEcho(true, k.src_port);
    return b.Payload(payload).Build();
  };
  for (int iter = 0; iter < 3000; ++iter) {
    const bool v4 = rng() % 2 == 0;
    const int kind = static_cast<int>(rng() % 3);
    const bool vlan = rng() % 4 == 0;
    const bool extra = rng() % 4 == 0;
    const IpProto proto = kind == 0 ? IpProto::kTcp : kind == 1 ? IpProto::kUdp : v4 ? IpProto::kIcmp : IpProto::kIcmpV6;
    std::vector<uint8_t> payload(rng() % 80);
    for (auto& b : payload) b = static_cast<uint8_t>(rng());

    FlowKey from;
    from.src = random_addr(v4);
    from.dst = random_addr(v4);
    from.src_port = static_cast<uint16_t>(rng());
    from.dst_port = kind == 2 ? from.src_port : static_cast<uint16_t>(rng());
    from.proto = proto;
    // Each field changes or not on its own, to reach every path of the rewrite.
    FlowKey to = from;
    const uint32_t which = rng();
    if (which & 1) to.src = random_addr(v4);
    if (which & 2) to.dst = random_addr(v4);
    if (which & 4) to.src_port = static_cast<uint16_t>(rng());
    if (which & 8) to.dst_port = static_cast<uint16_t>(rng());
    if (kind == 2) to.dst_port = to.src_port;

    std::vector<uint8_t> pkt = build(v4, kind, vlan, extra, from, payload);
    // A conntrack hit's form of the same rewrite, from the reverse tuple.
    std::vector<uint8_t> reversed = pkt;
    const Ipv4RewriteSums sums = v4 ? SumIpv4Rewrite(from, to) : Ipv4RewriteSums{};
    ASSERT_TRUE(RewriteFlowToReverseOf(reversed.data(), MustParse(reversed), to.Reversed(), sums))
        << iter;
    ASSERT_TRUE(RewriteFlow(pkt.data(), MustParse(pkt), to)) << iter;
    ASSERT_EQ(reversed, pkt) << iter;
    ASSERT_TRUE(ChecksumsValid(pkt)) << "iteration " << iter << ": " << from.ToString() << " to " << to.ToString();
    ASSERT_EQ(MustParse(pkt).ip.key, to) << iter;
    ASSERT_EQ(pkt, build(v4, kind, vlan, extra, to, payload)) << iter;
  }
}

// RewriteFlow takes an IPv4 TCP or UDP packet by a short path of its own,
// which writes every field and adds checksum sums folded beforehand
// (SumIpv4Rewrite, as conntrack keeps them per flow). It must write the bytes
// ChecksumDelta gives, field by field, for any checksum the packet carries:
// the ones no valid packet has (0xffff, and 0 for TCP) and the changes that
// add nothing (a port from 0xffff to 0) included.
TEST(RewriteFlow, ShortPathWritesWhatChecksumDeltaGives) {
  std::mt19937 rng(1624);
  const auto pick16 = [&]() -> uint16_t {
    switch (rng() % 4) {
      case 0:
        return 0;
      case 1:
        return 0xffff;
      default:
        return static_cast<uint16_t>(rng());
    }
  };
  const auto load16 = [](const uint8_t* p) {
    uint16_t x;
    std::memcpy(&x, p, 2);
    return x;
  };
  for (int iter = 0; iter < 20000; ++iter) {
    const bool tcp = rng() % 2 == 0;
    FlowKey from;
    from.src = IpAddr::V4(0xc6120000u | (rng() & 0x1ffffu));
    from.dst = IpAddr::V4(0xc6120000u | (rng() & 0x1ffffu));
    from.src_port = pick16();
    from.dst_port = pick16();
    from.proto = tcp ? IpProto::kTcp : IpProto::kUdp;
    FlowKey to = from;
    const uint32_t which = rng();
    if (which & 1) to.src = IpAddr::V4(0xc6120000u | (rng() & 0x1ffffu));
    if (which & 2) to.dst = IpAddr::V4(rng() % 2 ? 0xc613ffffu : 0xc6120000u | (rng() & 0x1ffffu));
    if (which & 4) to.src_port = pick16();
    if (which & 8) to.dst_port = pick16();
    PacketBuilder b;
    b.Ip(from.src, from.dst);
    if (tcp)
      b.Tcp(from.src_port, from.dst_port, kTcpAck);
    else
      b.Udp(from.src_port, from.dst_port);
    std::vector<uint8_t> pkt = b.Payload(rng() % 40).Build();
    const size_t csum_at = kL4v4 + (tcp ? 16 : 6);
    for (size_t at : {kL3 + 10, csum_at}) {
      const uint16_t v = pick16();
      pkt[at] = static_cast<uint8_t>(v >> 8);
      pkt[at + 1] = static_cast<uint8_t>(v);
    }
    // What the general path writes: each field that changes adds its words.
    std::vector<uint8_t> want = pkt;
    ChecksumDelta addrs;
    ChecksumDelta ports;
    const auto patch = [&](size_t at, const uint8_t* bytes, size_t len, ChecksumDelta* d) {
      if (std::memcmp(&want[at], bytes, len) == 0) return;
      d->Add(&want[at], bytes, len);
      std::memcpy(&want[at], bytes, len);
    };
    patch(kL3 + 12, to.src.v4_bytes(), 4, &addrs);
    patch(kL3 + 16, to.dst.v4_bytes(), 4, &addrs);
    uint16_t ip_csum = addrs.Apply(load16(&want[kL3 + 10]));
    std::memcpy(&want[kL3 + 10], &ip_csum, 2);
    for (const auto& [at, port] :
         {std::pair{kL4v4, to.src_port}, std::pair{kL4v4 + 2, to.dst_port}}) {
      const uint8_t be[2] = {static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
      patch(at, be, 2, &ports);
    }
    const uint16_t old = load16(&want[csum_at]);
    if (tcp || old != 0) {
      ChecksumDelta total = ports;
      total.Add(addrs);
      uint16_t updated = total.Apply(old);
      if (!tcp && updated == 0) updated = 0xffff;
      std::memcpy(&want[csum_at], &updated, 2);
    }
    std::vector<uint8_t> reversed = pkt;
    ASSERT_TRUE(RewriteFlow(pkt.data(), MustParse(pkt), to)) << iter;
    ASSERT_EQ(pkt, want) << "iteration " << iter << ": " << from.ToString() << " to "
                         << to.ToString();
    // As a conntrack hit does it: with the sums its flow keeps, both ways.
    const std::array<Ipv4RewriteSums, 2> both = SumIpv4FlowRewrites(from, to.Reversed());
    const Ipv4RewriteSums sums = SumIpv4RewriteToReverseOf(from, to.Reversed());
    const Ipv4RewriteSums back = SumIpv4RewriteToReverseOf(to.Reversed(), from);
    ASSERT_EQ(both[0].l3, sums.l3) << iter;
    ASSERT_EQ(both[0].l4, sums.l4) << iter;
    ASSERT_EQ(both[1].l3, back.l3) << iter;
    ASSERT_EQ(both[1].l4, back.l4) << iter;
    ASSERT_TRUE(RewriteFlowToReverseOf(reversed.data(), MustParse(reversed), to.Reversed(), sums))
        << iter;
    ASSERT_EQ(reversed, want) << iter;
  }
}

// A target derived from the packet's own key, changing the fields `which`
// selects, as a translation of that packet would.
FlowKey TargetFor(const IpHeaders& ip, uint32_t which) {
  FlowKey to = ip.key;
  const bool v4 = ip.key.src.IsV4();
  if (which & 1) to.src = Addr(v4 ? kLb4 : kLb6);
  if (which & 2) to.dst = Addr(v4 ? kBackend4 : kBackend6);
  if (ip.has_l4 && ip.proto != IpProto::kSctp) {
    if (which & 4) to.src_port = static_cast<uint16_t>(to.src_port + 7919);
    if (which & 8) to.dst_port = static_cast<uint16_t>(to.dst_port ^ 0x5a5a);
    if (ip.proto == IpProto::kIcmp || ip.proto == IpProto::kIcmpV6) to.dst_port = to.src_port;
  }
  return to;
}

// Rewrites `bytes` if it parses, and checks what must hold of any rewrite.
void CheckRewriteOf(const std::vector<uint8_t>& bytes, uint32_t which, const std::string& what) {
  std::vector<uint8_t> pkt = bytes;  // exactly sized: ASan sees a write past the end
  ParsedPacket p;
  if (ParseEthernet(pkt.data(), pkt.size(), &p) != DropReason::kNone || !p.is_ip()) return;
  const bool valid = ChecksumsValid(pkt);
  FlowKey want;
  bool done;
  if (p.icmp_error) {
    want = TargetFor(p.inner, which);
    done = RewriteIcmpError(pkt.data(), p, want, want.dst, want.src);
  } else {
    want = TargetFor(p.ip, which);
    done = RewriteFlow(pkt.data(), p, want);
  }
  ASSERT_TRUE(done) << what;
  ParsedPacket after;
  ASSERT_EQ(ParseEthernet(pkt.data(), pkt.size(), &after), DropReason::kNone) << what;
  if (p.icmp_error) {
    ASSERT_EQ(after.inner.key, want) << what;
    ASSERT_EQ(after.ip.key.src, want.dst) << what;
  } else {
    ASSERT_EQ(after.ip.key, want) << what;
  }
  if (valid) { ASSERT_TRUE(ChecksumsValid(pkt)) << what; }
}

// Both ways of a flow, where the folded sums are not each other's ones'
// complement: changes that cancel (0xffff both ways), and a port going from
// 0 to 65535, both zero in ones' complement, which adds 0x1fffe one way and
// nothing the other. Random keys all but never give these.
TEST(SumIpv4FlowRewrites, ZeroSumsAsEachWaySumsThem) {
  const IpAddr a = IpAddr::V4(0xc6120001u);
  const IpAddr b = IpAddr::V4(0xc6130002u);
  const auto key = [](IpAddr src, uint16_t sport, IpAddr dst, uint16_t dport) {
    FlowKey k;
    k.src = src;
    k.dst = dst;
    k.src_port = sport;
    k.dst_port = dport;
    k.proto = IpProto::kTcp;
    return k;
  };
  struct Case {
    const char* what;
    FlowKey original;
    FlowKey reply;
  };
  const FlowKey original = key(a, 1000, b, 80);
  // Each reply makes the way there rewrite `original` to the reply's reverse.
  const FlowKey everything_swapped = key(a, 1000, b, 80);  // to b:80 -> a:1000
  const FlowKey addresses_swapped = key(a, 80, b, 1000);   // to b:1000 -> a:80
  const FlowKey ports_swapped = key(b, 1000, a, 80);       // to a:80 -> b:1000
  const Case cases[] = {
      {"everything swapped", original, everything_swapped},
      {"addresses swapped", original, addresses_swapped},
      {"ports swapped", original, ports_swapped},
      {"nothing changed", original, original.Reversed()},
      {"port 0 to 65535", key(a, 0, b, 80), key(b, 80, a, 65535)},
      {"port 65535 to 0", key(a, 65535, b, 80), key(b, 80, a, 0)},
      {"DNAT", original, key(IpAddr::V4(0xc6130101u), 8080, a, 1000)},
      {"DNAT and SNAT", original,
       key(IpAddr::V4(0xc6130101u), 8080, IpAddr::V4(0xc612000bu), 50000)},
  };
  for (const Case& c : cases) {
    const std::array<Ipv4RewriteSums, 2> both = SumIpv4FlowRewrites(c.original, c.reply);
    const Ipv4RewriteSums there = SumIpv4RewriteToReverseOf(c.original, c.reply);
    const Ipv4RewriteSums back = SumIpv4RewriteToReverseOf(c.reply, c.original);
    EXPECT_EQ(both[0].l3, there.l3) << c.what;
    EXPECT_EQ(both[0].l4, there.l4) << c.what;
    EXPECT_EQ(both[1].l3, back.l3) << c.what;
    EXPECT_EQ(both[1].l4, back.l4) << c.what;
  }
  // The cases hold the sums they are there for.
  const auto back = [&](const FlowKey& reply) { return SumIpv4FlowRewrites(original, reply)[1]; };
  EXPECT_EQ(back(everything_swapped).l3, 0xffff);
  EXPECT_EQ(back(everything_swapped).l4, 0xffff);
  EXPECT_EQ(back(addresses_swapped).l3, 0xffff);
  EXPECT_EQ(back(ports_swapped).l3, 0);
  EXPECT_EQ(back(ports_swapped).l4, 0xffff);
  EXPECT_EQ(back(original.Reversed()).l4, 0);
  const std::array<Ipv4RewriteSums, 2> port_to_ffff =
      SumIpv4FlowRewrites(key(a, 0, b, 80), key(b, 80, a, 65535));
  EXPECT_EQ(port_to_ffff[0].l4, 0xffff);
  EXPECT_EQ(port_to_ffff[1].l4, 0);
}

// Rewrites of packets cut short or with a byte changed: whatever parses is
// rewritten within its bounds, to its target, keeping valid checksums valid.
TEST(RewriteSweep, DamagedPackets) {
  const std::vector<std::vector<uint8_t>> packets = {
      PacketBuilder().Ip(kClient4, kVip4).Tcp(40000, 80).Payload(8).Build(),
      PacketBuilder().Vlan(7).Ip(kClient4, kVip4).Ipv4Options({0x94, 4, 0, 0}).Udp(40001, 53).Payload(8).Build(),
      PacketBuilder().Ip(kClient4, kVip4).IcmpEcho(true, 3).Build(),
      PacketBuilder().Ip(kClient6, kVip6).Ipv6Ext(IpProto::kHopByHop).Tcp(40000, 443).Build(),
      PacketBuilder().Ip(kClient6, kVip6).Fragment(0, true).Udp(40001, 53).Payload(8).Build(),
      PacketBuilder().Ip(kClient6, kVip6).IcmpEcho(true, 3).Build(),
      Error(kBackend4, kClient4, 3, 3, Quote(kClient4, kBackend4, IpProto::kUdp, 40001, 5353, 4)),
      Error(kBackend4, kClient4, 3, 3, Quote(kClient4, kBackend4, IpProto::kTcp, 40000, 8080, 0)),
      Error(kBackend6, kClient6, 1, 4, Quote(kClient6, kBackend6, IpProto::kUdp, 40001, 5353, 4)),
      Error(kBackend6, kClient6, 1, 4, Quote(kClient6, kBackend6, IpProto::kTcp, 40000, 8443, 0)),
  };
  uint32_t which = 0;
  for (size_t n = 0; n < packets.size(); ++n) {
    const std::vector<uint8_t>& full = packets[n];
    const std::string name = "packet " + std::to_string(n);
    for (size_t len = 0; len < full.size(); ++len) {
      CheckRewriteOf(std::vector<uint8_t>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len)), ++which,
                     name + " cut to " + std::to_string(len));
      if (HasFatalFailure()) return;
    }
    // The packet's lengths, fields and ICMP types are wherever a byte is
    // set to one of these.
    for (size_t at = 0; at < full.size(); ++at) {
      for (uint8_t v : {0x00, 0x01, 0x03, 0x06, 0x11, 0x3a, 0x45, 0x60, 0x80, 0xff}) {
        std::vector<uint8_t> bytes = full;
        bytes[at] = v;
        CheckRewriteOf(bytes, ++which, name + " byte " + std::to_string(at) + " = " + std::to_string(v));
        if (HasFatalFailure()) return;
      }
    }
  }
}

// A zero UDP checksum means "none" and stays zero through NAT, for IPv6
// tunnel protocols (RFC 6935) as for IPv4.
TEST(RewriteZeroUdpChecksum, StaysZeroForBothFamilies) {
  for (const auto& [src, dst, to_dst] :
       {std::tuple{"198.19.0.2", "198.18.64.10", "198.19.1.1"},
        std::tuple{"fd00:a70::2", "fd00:a70:40::a", "fd00:a70::1:1"}}) {
    std::vector<uint8_t> pkt = PacketBuilder().Ip(src, dst).Udp(4789, 4789).Payload(20).Build();
    ParsedPacket p;
    ASSERT_EQ(ParseEthernet(pkt.data(), pkt.size(), &p), DropReason::kNone);
    uint8_t* csum = pkt.data() + p.ip.l4_offset + 6;
    csum[0] = csum[1] = 0;
    FlowKey to = p.ip.key;
    to.dst = *IpAddr::Parse(to_dst);
    ASSERT_TRUE(RewriteFlow(pkt.data(), p, to));
    EXPECT_EQ(csum[0], 0);
    EXPECT_EQ(csum[1], 0) << src;
  }
}

// With segments left in a routing header the transport checksum covers the
// final destination, so the packet is not translated; once the last segment
// is reached (segments left 0) it is an ordinary packet.
TEST(RewriteSourceRouted, RefusedWhileSegmentsAreLeft) {
  std::vector<uint8_t> pkt =
      PacketBuilder().Ip("fd00:a70::2", "fd00:a70:40::a").Ipv6Ext(IpProto::kRouting).Tcp(40000, 80).Build();
  ParsedPacket p;
  ASSERT_EQ(ParseEthernet(pkt.data(), pkt.size(), &p), DropReason::kNone);
  const size_t segments_left = kEthHeaderLen + kIpv6HeaderLen + 3;
  ASSERT_NE(pkt[segments_left], 0);
  ASSERT_TRUE(p.ip.source_routed);
  FlowKey to = p.ip.key;
  to.dst = *IpAddr::Parse("fd00:a70::1:1");
  const std::vector<uint8_t> before = pkt;
  EXPECT_FALSE(RewriteFlow(pkt.data(), p, to));
  EXPECT_EQ(pkt, before);

  pkt[segments_left] = 0;
  ASSERT_EQ(ParseEthernet(pkt.data(), pkt.size(), &p), DropReason::kNone);
  EXPECT_FALSE(p.ip.source_routed);
  EXPECT_TRUE(RewriteFlow(pkt.data(), p, to));
}

TEST(RewriteSourceRouted, Ipv4SourceRouteOptionIsRefused) {
  // A loose source route (type 131, length 7, pointer 4, one hop), then NOP padding.
  std::vector<uint8_t> pkt = PacketBuilder()
                                 .Ip("198.19.0.2", "198.18.64.10")
                                 .Ipv4Options({131, 7, 4, 198, 19, 1, 1, 1})
                                 .Tcp(40000, 80)
                                 .Build();
  ParsedPacket p;
  ASSERT_EQ(ParseEthernet(pkt.data(), pkt.size(), &p), DropReason::kNone);
  EXPECT_TRUE(p.ip.source_routed);
  FlowKey to = p.ip.key;
  to.dst = *IpAddr::Parse("198.19.1.1");
  EXPECT_FALSE(RewriteFlow(pkt.data(), p, to));
  // Other options (router alert) are translated as usual.
  std::vector<uint8_t> alert =
      PacketBuilder().Ip("198.19.0.2", "198.18.64.10").Ipv4Options({0x94, 0x04, 0, 0}).Tcp(40000, 80).Build();
  ASSERT_EQ(ParseEthernet(alert.data(), alert.size(), &p), DropReason::kNone);
  EXPECT_FALSE(p.ip.source_routed);
  EXPECT_TRUE(RewriteFlow(alert.data(), p, to));
  EXPECT_TRUE(ChecksumsValid(alert));
}

}  // namespace
}  // namespace atl::lb
