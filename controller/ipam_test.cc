#include "controller/ipam.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace atl::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

lb::IpPrefix P(std::string_view text) { return lb::IpPrefix::Parse(text).value(); }
lb::IpAddr A(std::string_view text) { return lb::IpAddr::Parse(text).value(); }

TEST(U128Test, RoundTripsBothFamilies) {
  for (const char* text : {"198.19.0.1", "0.0.0.0", "255.255.255.255", "fd00:a70::1",
                           "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}) {
    EXPECT_EQ(U128ToAddr(AddrToU128(A(text))).ToString(), text);
  }
  EXPECT_EQ(AddrToU128(A("198.19.0.2")) - AddrToU128(A("198.19.0.1")), 1);
  EXPECT_EQ(U128ToAddr(AddrToU128(A("198.19.0.255")) + 1).ToString(), "198.19.1.0");
  EXPECT_EQ(U128ToAddr(AddrToU128(A("fd00::ffff:ffff:ffff:ffff")) + 1).ToString(), "fd00:0:0:1::");
}

TEST(U128Test, PrefixBoundsAndGateway) {
  EXPECT_EQ(U128ToAddr(PrefixLast(P("198.19.4.0/22"))).ToString(), "198.19.7.255");
  EXPECT_EQ(U128ToAddr(PrefixLast(P("fd00:a70::/112"))).ToString(), "fd00:a70::ffff");
  EXPECT_EQ(U128ToAddr(PrefixLast(P("::/0"))).ToString(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_EQ(FirstHost(P("198.19.4.0/24")).ToString(), "198.19.4.1");
  EXPECT_EQ(FirstHost(P("fd00:a70::/64")).ToString(), "fd00:a70::1");
}

TEST(PrefixAllocatorTest, CarvesLowestFreeSubprefixesInOrder) {
  PrefixAllocator alloc(P("198.19.0.0/22"), 24);
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) got.push_back(alloc.Allocate().value().ToString());
  EXPECT_THAT(got, ElementsAre("198.19.0.0/24", "198.19.1.0/24", "198.19.2.0/24", "198.19.3.0/24"));
  absl::StatusOr<lb::IpPrefix> full = alloc.Allocate();
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("198.19.0.0/22"));
  // A released prefix is the lowest free one again.
  EXPECT_TRUE(alloc.Release(P("198.19.1.0/24")));
  EXPECT_FALSE(alloc.Release(P("198.19.1.0/24")));
  EXPECT_EQ(alloc.Allocate().value().ToString(), "198.19.1.0/24");
}

TEST(PrefixAllocatorTest, SkipsMarkedPrefixesOfOtherLengths) {
  PrefixAllocator alloc(P("198.19.0.0/16"), 24);
  ASSERT_TRUE(alloc.MarkUsed(P("198.19.0.0/23")).ok());
  ASSERT_TRUE(alloc.MarkUsed(P("198.19.2.128/25")).ok());
  ASSERT_TRUE(alloc.MarkUsed(P("198.19.4.0/22")).ok());
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) got.push_back(alloc.Allocate().value().ToString());
  EXPECT_THAT(got, ElementsAre("198.19.3.0/24", "198.19.8.0/24", "198.19.9.0/24"));
  EXPECT_EQ(alloc.used(), 6u);
}

TEST(PrefixAllocatorTest, MarkUsedRejectsOverlapAndOutside) {
  PrefixAllocator alloc(P("198.19.0.0/16"), 24);
  ASSERT_TRUE(alloc.MarkUsed(P("198.19.0.0/23")).ok());
  absl::Status s = alloc.MarkUsed(P("198.19.1.0/24"));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("198.19.1.0/24 overlaps 198.19.0.0/23"));
  EXPECT_EQ(alloc.MarkUsed(P("198.19.0.0/16")).code(), absl::StatusCode::kAlreadyExists);
  s = alloc.MarkUsed(P("198.20.0.0/24"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("198.20.0.0/24 is not inside 198.19.0.0/16"));
  EXPECT_EQ(alloc.MarkUsed(P("198.18.0.0/15")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(alloc.MarkUsed(P("fd00::/64")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(alloc.FindOverlap(P("198.19.1.128/25")), P("198.19.0.0/23"));
  EXPECT_FALSE(alloc.FindOverlap(P("198.19.2.0/24")).has_value());
  EXPECT_TRUE(alloc.IsUsed(P("198.19.0.0/23")));
  EXPECT_FALSE(alloc.IsUsed(P("198.19.0.0/24")));
  // Release wants the prefix exactly as marked.
  EXPECT_FALSE(alloc.Release(P("198.19.0.0/24")));
  EXPECT_TRUE(alloc.Release(P("198.19.0.0/23")));
}

TEST(PrefixAllocatorTest, FindFreeWithinPartAndPending) {
  // Node blocks: one allocator over the pod CIDR, searched inside one namespace CIDR.
  PrefixAllocator blocks(P("198.19.0.0/16"), 28);
  ASSERT_TRUE(blocks.MarkUsed(P("198.19.5.0/28")).ok());
  const std::vector<lb::IpPrefix> pending = {P("198.19.5.16/28")};
  EXPECT_EQ(blocks.FindFree(P("198.19.5.0/24"), pending), P("198.19.5.32/28"));
  EXPECT_EQ(blocks.FindFree(P("198.19.6.0/24"), pending), P("198.19.6.0/28"));
  // FindFree does not mark.
  EXPECT_EQ(blocks.FindFree(P("198.19.5.0/24")), P("198.19.5.16/28"));
  // A part smaller than the length, or outside the parent, has nothing to offer.
  EXPECT_FALSE(blocks.FindFree(P("198.19.5.0/29")).has_value());
  EXPECT_FALSE(blocks.FindFree(P("198.20.0.0/24")).has_value());
  EXPECT_THAT(blocks.UsedWithin(P("198.19.5.0/24")), ElementsAre(P("198.19.5.0/28")));
  EXPECT_TRUE(blocks.UsedWithin(P("198.19.6.0/24")).empty());
}

TEST(PrefixAllocatorTest, FillsAPartCompletelyThenReportsFull) {
  PrefixAllocator blocks(P("198.19.0.0/16"), 28);
  std::set<lb::IpPrefix> seen;
  for (int i = 0; i < 16; ++i) {
    std::optional<lb::IpPrefix> b = blocks.FindFree(P("198.19.7.0/24"));
    ASSERT_TRUE(b.has_value()) << i;
    EXPECT_TRUE(P("198.19.7.0/24").Contains(b->addr));
    EXPECT_TRUE(seen.insert(*b).second);
    ASSERT_TRUE(blocks.MarkUsed(*b).ok());
  }
  EXPECT_FALSE(blocks.FindFree(P("198.19.7.0/24")).has_value());
  EXPECT_THAT(blocks.UsedWithin(P("198.19.7.0/24")).size(), 16u);
}

TEST(PrefixAllocatorTest, Ipv6) {
  PrefixAllocator alloc(P("fd00:a70::/48"), 64);
  EXPECT_EQ(alloc.Allocate().value().ToString(), "fd00:a70::/64");
  EXPECT_EQ(alloc.Allocate().value().ToString(), "fd00:a70:0:1::/64");
  ASSERT_TRUE(alloc.MarkUsed(P("fd00:a70:0:2::/63")).ok());
  EXPECT_EQ(alloc.Allocate().value().ToString(), "fd00:a70:0:4::/64");
  // The last /64 of the /48 is reachable: no overflow at the top of the range.
  PrefixAllocator top(P("ffff:ffff:ffff:ffff::/64"), 65);
  EXPECT_EQ(top.Allocate().value().ToString(), "ffff:ffff:ffff:ffff::/65");
  EXPECT_EQ(top.Allocate().value().ToString(), "ffff:ffff:ffff:ffff:8000::/65");
  EXPECT_FALSE(top.Allocate().ok());
}

TEST(AddressAllocatorTest, SkipsNetworkAndBroadcast) {
  AddressAllocator alloc(P("198.18.64.0/30"));
  EXPECT_EQ(alloc.capacity(), 2u);
  EXPECT_FALSE(alloc.Allocatable(A("198.18.64.0")));
  EXPECT_TRUE(alloc.Allocatable(A("198.18.64.1")));
  EXPECT_FALSE(alloc.Allocatable(A("198.18.64.3")));
  EXPECT_FALSE(alloc.Allocatable(A("198.18.64.4")));
  EXPECT_EQ(alloc.Allocate().value().ToString(), "198.18.64.1");
  EXPECT_EQ(alloc.Allocate().value().ToString(), "198.18.64.2");
  absl::StatusOr<lb::IpAddr> full = alloc.Allocate();
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("198.18.64.0/30"));
}

TEST(AddressAllocatorTest, SequentialCursorDoesNotReuseFreedAddressAtOnce) {
  AddressAllocator alloc(P("198.18.64.0/29"));  // .1 - .6
  EXPECT_EQ(alloc.Allocate().value().ToString(), "198.18.64.1");
  EXPECT_EQ(alloc.Allocate().value().ToString(), "198.18.64.2");
  EXPECT_TRUE(alloc.Release(A("198.18.64.1")));
  EXPECT_EQ(alloc.Allocate().value().ToString(), "198.18.64.3");
  ASSERT_TRUE(alloc.MarkUsed(A("198.18.64.5")).ok());  // chosen by a user: cursor unchanged
  EXPECT_EQ(alloc.Allocate().value().ToString(), "198.18.64.4");
  EXPECT_EQ(alloc.Allocate().value().ToString(), "198.18.64.6");
  // Wraps around to the freed one only now.
  EXPECT_EQ(alloc.Allocate().value().ToString(), "198.18.64.1");
  EXPECT_FALSE(alloc.Allocate().ok());
  EXPECT_EQ(alloc.used(), 6u);
}

TEST(AddressAllocatorTest, FindFreeHonoursPendingAndDoesNotMark) {
  AddressAllocator alloc(P("198.18.64.0/24"));
  IpAddrSet pending = {A("198.18.64.1"), A("198.18.64.2")};
  EXPECT_EQ(alloc.FindFree(alloc.cursor(), pending)->ToString(), "198.18.64.3");
  EXPECT_EQ(alloc.FindFree(A("198.18.64.254"), pending)->ToString(), "198.18.64.254");
  // Past the end, the search wraps to the start.
  EXPECT_EQ(alloc.FindFree(A("198.18.64.255"), pending)->ToString(), "198.18.64.3");
  EXPECT_EQ(alloc.After(A("198.18.64.254")).ToString(), "198.18.64.1");
  EXPECT_EQ(alloc.used(), 0u);
  alloc.AdvancePast(A("198.18.64.9"));
  EXPECT_EQ(alloc.cursor().ToString(), "198.18.64.10");
}

TEST(AddressAllocatorTest, MarkUsedErrors) {
  AddressAllocator alloc(P("198.18.64.0/18"));
  EXPECT_EQ(alloc.MarkUsed(A("198.18.64.0")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(alloc.MarkUsed(A("198.18.127.255")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(alloc.MarkUsed(A("198.18.128.1")).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(alloc.MarkUsed(A("198.18.127.254")).ok());
  EXPECT_EQ(alloc.MarkUsed(A("198.18.127.254")).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(alloc.IsUsed(A("198.18.127.254")));
  EXPECT_EQ(alloc.capacity(), 16382u);
}

TEST(AddressAllocatorTest, Ipv6UsesAll128Bits) {
  AddressAllocator alloc(P("fd00:a70:0:1::/112"));
  EXPECT_EQ(alloc.capacity(), 65535u);  // no broadcast address in IPv6
  EXPECT_EQ(alloc.Allocate().value().ToString(), "fd00:a70:0:1::1");
  EXPECT_TRUE(alloc.Allocatable(A("fd00:a70:0:1::ffff")));
  alloc.AdvancePast(A("fd00:a70:0:1::fffe"));
  EXPECT_EQ(alloc.Allocate().value().ToString(), "fd00:a70:0:1::ffff");
  EXPECT_EQ(alloc.Allocate().value().ToString(), "fd00:a70:0:1::2");
  // A /64 crosses the 64-bit halves.
  AddressAllocator wide(P("fd00:a70::/64"));
  EXPECT_EQ(wide.capacity(), ~uint64_t{0});
  wide.AdvancePast(A("fd00:a70::ffff:ffff:ffff:fffe"));
  EXPECT_EQ(wide.Allocate().value().ToString(), "fd00:a70::ffff:ffff:ffff:ffff");
  EXPECT_EQ(wide.Allocate().value().ToString(), "fd00:a70::1");
}

TEST(AddressAllocatorTest, ThousandsOfAllocationsAreUnique) {
  AddressAllocator alloc(P("198.18.64.0/18"));
  IpAddrSet seen;
  for (int i = 0; i < 16382; ++i) {
    absl::StatusOr<lb::IpAddr> a = alloc.Allocate();
    ASSERT_TRUE(a.ok()) << i;
    ASSERT_TRUE(seen.insert(*a).second) << a->ToString();
  }
  EXPECT_FALSE(alloc.Allocate().ok());
}

TEST(PortAllocatorTest, SequentialWrapsAndHonoursPending) {
  PortAllocator alloc(30000, 30004);
  EXPECT_EQ(alloc.Allocate().value(), 30000u);
  ASSERT_TRUE(alloc.MarkUsed(30001).ok());
  EXPECT_EQ(alloc.Allocate().value(), 30002u);
  EXPECT_TRUE(alloc.Release(30000));
  EXPECT_EQ(alloc.FindFree(alloc.cursor(), {30003}).value(), 30004u);
  EXPECT_EQ(alloc.Allocate().value(), 30003u);
  EXPECT_EQ(alloc.Allocate().value(), 30004u);
  EXPECT_EQ(alloc.Allocate().value(), 30000u);  // freed earliest, reused last
  absl::StatusOr<uint32_t> full = alloc.Allocate();
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("30000-30004"));
  EXPECT_EQ(alloc.used(), 5u);
}

TEST(PortAllocatorTest, MarkUsedErrors) {
  PortAllocator alloc(30000, 32767);
  absl::Status s = alloc.MarkUsed(29999);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("29999 is outside 30000-32767"));
  EXPECT_EQ(alloc.MarkUsed(32768).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(alloc.MarkUsed(32767).ok());
  EXPECT_EQ(alloc.MarkUsed(32767).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(alloc.Release(30000));
  EXPECT_FALSE(alloc.IsUsed(40000));
}

TEST(VniAllocatorTest, SmallestFree) {
  VniAllocator alloc;
  EXPECT_EQ(alloc.Allocate().value(), 1u);
  EXPECT_EQ(alloc.Allocate().value(), 2u);
  EXPECT_EQ(alloc.Allocate().value(), 3u);
  EXPECT_TRUE(alloc.Release(2));
  EXPECT_EQ(alloc.FindFree({2}).value(), 4u);
  EXPECT_EQ(alloc.Allocate().value(), 2u);
  ASSERT_TRUE(alloc.MarkUsed(5).ok());
  EXPECT_EQ(alloc.Allocate().value(), 4u);
  EXPECT_EQ(alloc.Allocate().value(), 6u);
  EXPECT_EQ(alloc.used(), 6u);
}

TEST(VniAllocatorTest, Bounds) {
  VniAllocator alloc;
  EXPECT_EQ(alloc.MarkUsed(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(alloc.MarkUsed(VniAllocator::kMax + 1).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(alloc.MarkUsed(VniAllocator::kMax).ok());
  EXPECT_TRUE(alloc.IsUsed(16777215));
  EXPECT_EQ(alloc.MarkUsed(VniAllocator::kMax).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(alloc.Release(7));
}

}  // namespace
}  // namespace atl::controller
