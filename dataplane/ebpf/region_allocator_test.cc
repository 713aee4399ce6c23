#include "dataplane/ebpf/region_allocator.h"

#include <gtest/gtest.h>

namespace atl::dataplane::ebpf {
namespace {

using namespace std::chrono_literals;
const RegionAllocator::Clock::time_point kT0{};

TEST(RegionAllocatorTest, AllocatesFirstFitAndRunsOut) {
  RegionAllocator a(100);
  EXPECT_EQ(a.Allocate(40, kT0), 0u);
  EXPECT_EQ(a.Allocate(40, kT0), 40u);
  EXPECT_EQ(a.Allocate(40, kT0), std::nullopt);
  EXPECT_EQ(a.Allocate(20, kT0), 80u);
  EXPECT_EQ(a.used(), 100u);
  EXPECT_EQ(a.Allocate(0, kT0), 0u);  // owns nothing
}

TEST(RegionAllocatorTest, FreedRegionRestsForTheGracePeriod) {
  RegionAllocator a(100);
  ASSERT_EQ(a.Allocate(100, kT0), 0u);
  a.Free(0, 60, kT0);
  EXPECT_EQ(a.Allocate(10, kT0 + RegionAllocator::kGrace - 1ms), std::nullopt);
  EXPECT_EQ(a.Allocate(10, kT0 + RegionAllocator::kGrace), 0u);
}

TEST(RegionAllocatorTest, NeighboursCoalesce) {
  RegionAllocator a(90);
  ASSERT_EQ(a.Allocate(30, kT0), 0u);
  ASSERT_EQ(a.Allocate(30, kT0), 30u);
  ASSERT_EQ(a.Allocate(30, kT0), 60u);
  a.FreeNow(0, 30);
  a.FreeNow(60, 30);
  a.FreeNow(30, 30);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.Allocate(90, kT0), 0u);
}

TEST(RegionAllocatorTest, ClaimTakesWhatAPinnedMapHolds) {
  RegionAllocator a(100);
  EXPECT_TRUE(a.Claim(10, 20));
  EXPECT_FALSE(a.Claim(25, 10));  // overlaps
  EXPECT_FALSE(a.Claim(95, 10));  // past the end
  EXPECT_EQ(a.Allocate(10, kT0), 0u);
  EXPECT_EQ(a.Allocate(10, kT0), 30u);
  EXPECT_EQ(a.used(), 40u);
}

}  // namespace
}  // namespace atl::dataplane::ebpf
