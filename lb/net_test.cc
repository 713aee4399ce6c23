#include "lb/net.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace atl::lb {
namespace {

IpPrefix P(std::string_view text) {
  std::optional<IpPrefix> p = IpPrefix::Parse(text);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(IpPrefix{});
}

IpAddr A(std::string_view text) {
  std::optional<IpAddr> a = IpAddr::Parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddr{});
}

TEST(IpPrefixTest, ParsesIpv4AndPrintsCanonically) {
  const IpPrefix p = P("198.19.0.0/16");
  EXPECT_EQ(p.family(), Family::kIpv4);
  EXPECT_EQ(p.len, 16);
  EXPECT_EQ(p.mapped_len(), 112u);
  EXPECT_EQ(p.ToString(), "198.19.0.0/16");
  EXPECT_EQ(P("0.0.0.0/0").ToString(), "0.0.0.0/0");
  EXPECT_EQ(P("198.18.0.1/32").ToString(), "198.18.0.1/32");
}

TEST(IpPrefixTest, ParsesIpv6AndPrintsCanonically) {
  const IpPrefix p = P("FD00:0A70:0000::/48");
  EXPECT_EQ(p.family(), Family::kIpv6);
  EXPECT_EQ(p.len, 48);
  EXPECT_EQ(p.mapped_len(), 48u);
  EXPECT_EQ(p.ToString(), "fd00:a70::/48");
  EXPECT_EQ(P("::/0").ToString(), "::/0");
  EXPECT_EQ(P("fd00:a70::1/128").ToString(), "fd00:a70::1/128");
}

TEST(IpPrefixTest, LastIsTheAddressWithAllHostBitsSet) {
  EXPECT_EQ(P("198.19.0.0/24").Last(), A("198.19.0.255"));
  EXPECT_EQ(P("198.19.0.16/28").Last(), A("198.19.0.31"));
  EXPECT_EQ(P("198.19.0.7/32").Last(), A("198.19.0.7"));
  EXPECT_EQ(P("fd00:a70::/120").Last(), A("fd00:a70::ff"));
}

TEST(IpPrefixTest, RejectsMalformedText) {
  for (const char* bad : {"", "198.19.0.0", "198.19.0.0/", "198.19.0.0/33", "198.19.0.0/-1",
                          "198.19.0.0/1a", "198.19.0.0/0016", "198.19.0/16", "/16", "fd00::/129",
                          "fd00::/", "x::/8", "198.19.0.0/16/1", " 198.19.0.0/16"}) {
    EXPECT_FALSE(IpPrefix::Parse(bad).has_value()) << bad;
  }
}

TEST(IpPrefixTest, RejectsHostBitsSet) {
  EXPECT_FALSE(IpPrefix::Parse("198.19.0.1/24").has_value());
  EXPECT_FALSE(IpPrefix::Parse("198.19.1.0/23").has_value());
  EXPECT_FALSE(IpPrefix::Parse("198.19.0.16/27").has_value());
  EXPECT_FALSE(IpPrefix::Parse("fd00:a70::1/64").has_value());
  EXPECT_FALSE(IpPrefix::Parse("fd00:a71::/31").has_value());
  EXPECT_TRUE(IpPrefix::Parse("198.19.0.16/28").has_value());
  EXPECT_TRUE(IpPrefix::Parse("fd00:a70::/31").has_value());
}

TEST(IpPrefixTest, ContainsIpv4) {
  const IpPrefix p = P("198.19.4.0/22");
  EXPECT_TRUE(p.Contains(A("198.19.4.0")));
  EXPECT_TRUE(p.Contains(A("198.19.7.255")));
  EXPECT_FALSE(p.Contains(A("198.19.8.0")));
  EXPECT_FALSE(p.Contains(A("198.19.3.255")));
  EXPECT_TRUE(P("0.0.0.0/0").Contains(A("203.0.113.1")));
  EXPECT_TRUE(P("198.18.0.1/32").Contains(A("198.18.0.1")));
  EXPECT_FALSE(P("198.18.0.1/32").Contains(A("198.18.0.2")));
}

TEST(IpPrefixTest, ContainsNeverCrossesFamilies) {
  EXPECT_FALSE(P("0.0.0.0/0").Contains(A("fd00::1")));
  // ::/0 holds every IPv6 address but no IPv4 one, although IPv4 is stored mapped.
  EXPECT_TRUE(P("::/0").Contains(A("fd00::1")));
  EXPECT_FALSE(P("::/0").Contains(A("198.19.0.1")));
}

TEST(IpPrefixTest, ContainsIpv6) {
  const IpPrefix p = P("fd00:a70::/48");
  EXPECT_TRUE(p.Contains(A("fd00:a70::1")));
  EXPECT_TRUE(p.Contains(A("fd00:a70:0:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(p.Contains(A("fd00:a71::")));
  EXPECT_TRUE(P("fd00:a70::/31").Contains(A("fd00:a71::5")));
  EXPECT_FALSE(P("fd00:a70::/32").Contains(A("fd00:a71::5")));
}

TEST(IpPrefixTest, Overlaps) {
  EXPECT_TRUE(P("198.19.0.0/16").Overlaps(P("198.19.4.0/24")));
  EXPECT_TRUE(P("198.19.4.0/24").Overlaps(P("198.19.0.0/16")));
  EXPECT_TRUE(P("198.19.4.0/24").Overlaps(P("198.19.4.0/24")));
  EXPECT_FALSE(P("198.19.4.0/24").Overlaps(P("198.19.5.0/24")));
  EXPECT_FALSE(P("198.18.64.0/18").Overlaps(P("198.19.0.0/16")));
  EXPECT_TRUE(P("198.18.0.0/15").Overlaps(P("198.19.0.0/16")));
  EXPECT_FALSE(P("198.19.0.0/16").Overlaps(P("fd00:a70::/48")));
  EXPECT_TRUE(P("fd00:a70::/48").Overlaps(P("fd00:a70:0:1::/64")));
  EXPECT_FALSE(P("fd00:a70::/48").Overlaps(P("fd00:a70:1::/64")));
  EXPECT_FALSE(P("fd00:a70::/48").Overlaps(P("fd00:a71::/48")));
}

TEST(IpPrefixTest, OrdersByAddressThenLength) {
  EXPECT_LT(P("198.19.0.0/24"), P("198.19.1.0/24"));
  EXPECT_LT(P("198.19.0.0/16"), P("198.19.0.0/24"));
  EXPECT_EQ(P("198.19.0.0/16"), P("198.19.0.0/16"));
  EXPECT_NE(P("198.19.0.0/16"), P("198.19.0.0/17"));
}

TEST(FlowKeyTest, IsReverseOfIsReversedCompared) {
  FlowKey k;
  k.src = A("198.19.0.5");
  k.dst = A("198.18.64.1");
  k.src_port = 40000;
  k.dst_port = 80;
  k.proto = IpProto::kTcp;
  EXPECT_TRUE(k.Reversed().IsReverseOf(k));
  EXPECT_TRUE(k.IsReverseOf(k.Reversed()));
  EXPECT_FALSE(k.IsReverseOf(k));
  // Any one field off, as == would find.
  for (int field = 0; field < 5; ++field) {
    FlowKey r = k.Reversed();
    switch (field) {
      case 0:
        r.src = A("198.18.64.2");
        break;
      case 1:
        r.dst = A("198.19.0.6");
        break;
      case 2:
        r.src_port = 81;
        break;
      case 3:
        r.dst_port = 40001;
        break;
      case 4:
        r.proto = IpProto::kUdp;
        break;
    }
    EXPECT_FALSE(r.IsReverseOf(k)) << field;
    EXPECT_EQ(r.IsReverseOf(k), r == k.Reversed()) << field;
  }
}

}  // namespace
}  // namespace atl::lb
