#include "lb/affinity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lb/service_table.h"
#include "lb/test_support.h"

namespace atl::lb {
namespace {

using ::testing::Optional;

constexpr uint64_t kSec = 1'000'000'000;
constexpr uint32_t kTimeoutS = 10;

using test_support::Addr;

Backend Ready(std::string_view addr) {
  Backend b;
  b.endpoint = {Addr(addr), 8080};
  return b;
}

// The index of `addr` in svc.eligible, or -1.
int IndexOf(const Service& svc, std::string_view addr) {
  for (size_t i = 0; i < svc.eligible.size(); ++i) {
    if (svc.eligible[i].endpoint.addr == Addr(addr)) return static_cast<int>(i);
  }
  return -1;
}

// Services come from a real ServiceTable so that ids and generations behave
// as the packet path sees them.
class AffinityTest : public ::testing::Test {
 protected:
  const Service& Upsert(std::string_view vip, std::vector<Backend> backends, uint32_t timeout_s = kTimeoutS) {
    ServiceConfig config;
    config.backends = std::move(backends);
    config.affinity_timeout_s = timeout_s;
    config.maglev_size = 251;
    const absl::StatusOr<ServiceId> id = services_.Upsert({Addr(vip), 80, IpProto::kTcp, Scope::kInternal}, config);
    EXPECT_TRUE(id.ok()) << id.status();
    return *services_.Get(*id);
  }

  ServiceTable services_;
  AffinityTable table_{1024};
  const IpAddr client_ = Addr("198.19.0.10");
};

TEST_F(AffinityTest, ClientKeepsItsBackendWithinTheTimeout) {
  const Service& svc = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3")});
  EXPECT_EQ(table_.Lookup(svc, client_, 0), std::nullopt);
  table_.Record(svc, client_, 2, 0);
  EXPECT_EQ(table_.size(), 1u);
  // New connections every few seconds: each finds the binding.
  for (uint64_t t = 1; t < 60; t += 3) EXPECT_THAT(table_.Lookup(svc, client_, t * kSec), Optional(2)) << t;
  // Another client and the same client of another service have no binding.
  EXPECT_EQ(table_.Lookup(svc, Addr("198.19.0.11"), kSec), std::nullopt);
  const Service& other = Upsert("198.18.64.11", {Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3")});
  EXPECT_EQ(table_.Lookup(other, client_, kSec), std::nullopt);
}

TEST_F(AffinityTest, BindingExpiresAfterTheTimeout) {
  const Service& svc = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2")});
  table_.Record(svc, client_, 1, 5 * kSec);
  EXPECT_THAT(table_.Lookup(svc, client_, 5 * kSec + kTimeoutS * kSec - 1), Optional(1));
  // The lookup above refreshed it; nothing more until it runs out.
  const uint64_t expiry = 5 * kSec + kTimeoutS * kSec - 1 + kTimeoutS * kSec;
  EXPECT_EQ(table_.Lookup(svc, client_, expiry), std::nullopt);
  EXPECT_EQ(table_.size(), 0u) << "an expired binding is removed when found";
  // A new binding may then be recorded afresh.
  table_.Record(svc, client_, 0, expiry);
  EXPECT_THAT(table_.Lookup(svc, client_, expiry + kSec), Optional(0));
}

TEST_F(AffinityTest, ExactlyAtTheTimeoutTheBindingIsGone) {
  const Service& svc = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2")});
  table_.Record(svc, client_, 1, 0);
  EXPECT_EQ(table_.Lookup(svc, client_, kTimeoutS * kSec), std::nullopt);
}

TEST_F(AffinityTest, LookupRefreshesTheTimeout) {
  const Service& svc = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2")});
  table_.Record(svc, client_, 1, 0);
  EXPECT_THAT(table_.Lookup(svc, client_, 9 * kSec), Optional(1));   // expires at 19 s now
  EXPECT_THAT(table_.Lookup(svc, client_, 18 * kSec), Optional(1));  // ... at 28 s
  EXPECT_THAT(table_.Lookup(svc, client_, 27 * kSec), Optional(1));  // ... at 37 s
  EXPECT_EQ(table_.Lookup(svc, client_, 37 * kSec), std::nullopt);
}

TEST_F(AffinityTest, RecordReplacesTheBinding) {
  const Service& svc = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2")});
  table_.Record(svc, client_, 0, 0);
  table_.Record(svc, client_, 1, kSec);
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_THAT(table_.Lookup(svc, client_, 2 * kSec), Optional(1));
}

TEST_F(AffinityTest, IPv6ClientsAreKeptApartFromIPv4) {
  const Service& svc4 = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2")});
  const Service& svc6 = Upsert("fd00:a70:0:64::10", {Ready("fd00:a70:0:1::1"), Ready("fd00:a70:0:1::2")});
  const IpAddr c6 = Addr("fd00:a70:0:2::10");
  table_.Record(svc6, c6, 1, 0);
  table_.Record(svc4, client_, 0, 0);
  EXPECT_THAT(table_.Lookup(svc6, c6, kSec), Optional(1));
  EXPECT_THAT(table_.Lookup(svc4, client_, kSec), Optional(0));
  EXPECT_EQ(table_.Lookup(svc6, Addr("fd00:a70:0:2::11"), kSec), std::nullopt);
}

TEST_F(AffinityTest, BackendRemovedFromTheServiceDropsTheBinding) {
  const Service& before = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3")});
  const ServiceId id = before.id;
  table_.Record(before, client_, static_cast<uint16_t>(IndexOf(before, "198.19.1.2")), 0);
  const Service& after = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.3")});
  ASSERT_EQ(after.id, id);
  EXPECT_EQ(table_.Lookup(after, client_, kSec), std::nullopt);
  EXPECT_EQ(table_.size(), 0u);
}

TEST_F(AffinityTest, BackendThatStartsTerminatingLosesItsClients) {
  // Terminating endpoints are not eligible while a ready one is left, so a
  // bound client moves on rather than follow a draining pod.
  const Service& before = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2")});
  table_.Record(before, client_, static_cast<uint16_t>(IndexOf(before, "198.19.1.1")), 0);
  Backend draining = Ready("198.19.1.1");
  draining.terminating = true;
  const Service& after = Upsert("198.18.64.10", {draining, Ready("198.19.1.2")});
  EXPECT_EQ(table_.Lookup(after, client_, kSec), std::nullopt);
}

TEST_F(AffinityTest, BindingFollowsItsEndpointWhenTheEligibleSetIsReordered) {
  const Service& before = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3")});
  const uint32_t gen = before.generation;
  ASSERT_EQ(IndexOf(before, "198.19.1.2"), 1);
  table_.Record(before, client_, 1, 0);

  // Another endpoint joins in front and the order changes.
  const Service& after = Upsert("198.18.64.10", {Ready("198.19.1.4"), Ready("198.19.1.3"), Ready("198.19.1.1"),
                                                 Ready("198.19.1.2")});
  ASSERT_NE(after.generation, gen);
  ASSERT_EQ(IndexOf(after, "198.19.1.2"), 3);
  EXPECT_THAT(table_.Lookup(after, client_, kSec), Optional(3));
  EXPECT_THAT(table_.Lookup(after, client_, 2 * kSec), Optional(3));

  // And again, with the endpoint moving forward.
  const Service& again = Upsert("198.18.64.10", {Ready("198.19.1.2"), Ready("198.19.1.4")});
  EXPECT_THAT(table_.Lookup(again, client_, 3 * kSec), Optional(0));
}

TEST_F(AffinityTest, RemovedServiceIdReusedByAnotherServiceDoesNotInheritForeignBackends) {
  const FrontendKey fe{Addr("198.18.64.10"), 80, IpProto::kTcp, Scope::kInternal};
  const Service& old = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2")});
  const ServiceId id = old.id;
  table_.Record(old, client_, 1, 0);
  ASSERT_TRUE(services_.Remove(fe));
  const Service& fresh = Upsert("198.18.64.20", {Ready("198.19.1.5"), Ready("198.19.1.6")});
  ASSERT_EQ(fresh.id, id);
  EXPECT_EQ(table_.Lookup(fresh, client_, kSec), std::nullopt);
}

TEST_F(AffinityTest, FullTableEvictsTheBindingNearestToExpiry) {
  AffinityTable small(4);
  const Service& svc = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2")});
  const std::vector<IpAddr> clients = {Addr("198.19.0.1"), Addr("198.19.0.2"), Addr("198.19.0.3"),
                                       Addr("198.19.0.4"), Addr("198.19.0.5")};
  for (uint16_t i = 0; i < 4; ++i) small.Record(svc, clients[i], i % 2, i * kSec);
  // Client 0 is the oldest until it is looked up; then client 1 is.
  EXPECT_THAT(small.Lookup(svc, clients[0], 4 * kSec), Optional(0));
  small.Record(svc, clients[4], 1, 5 * kSec);
  EXPECT_EQ(small.size(), 4u);
  EXPECT_EQ(small.Lookup(svc, clients[1], 6 * kSec), std::nullopt);
  EXPECT_THAT(small.Lookup(svc, clients[0], 6 * kSec), Optional(0));
  EXPECT_THAT(small.Lookup(svc, clients[2], 6 * kSec), Optional(0));
  EXPECT_THAT(small.Lookup(svc, clients[3], 6 * kSec), Optional(1));
  EXPECT_THAT(small.Lookup(svc, clients[4], 6 * kSec), Optional(1));
}

TEST_F(AffinityTest, TableKeepsWorkingUnderChurnWhenFull) {
  constexpr uint32_t kCap = 64;
  AffinityTable small(kCap);
  const Service& svc = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3")});
  // Far more clients than room: 198.19.0.0 - 198.19.15.255.
  constexpr uint32_t kClients = 4096;
  const uint32_t base = 0xc6130000;  // 198.19.0.0
  for (uint32_t i = 0; i < kClients; ++i) {
    const IpAddr c = IpAddr::V4(base + i);
    const uint64_t now = i * (kSec / 100);
    small.Record(svc, c, static_cast<uint16_t>(i % 3), now);
    ASSERT_LE(small.size(), kCap);
    // The newest binding is always there, and so is the one just before it.
    ASSERT_THAT(small.Lookup(svc, c, now), Optional(i % 3)) << i;
    if (i > 0) {
      ASSERT_THAT(small.Lookup(svc, IpAddr::V4(base + i - 1), now), Optional((i - 1) % 3)) << i;
    }
  }
  EXPECT_EQ(small.size(), kCap);
  // Early clients are long gone, without harm.
  EXPECT_EQ(small.Lookup(svc, IpAddr::V4(base), kClients * (kSec / 100)), std::nullopt);
  uint32_t live = 0;
  const uint64_t end = kClients * (kSec / 100);
  for (uint32_t i = 0; i < kClients; ++i) {
    if (const auto idx = small.Lookup(svc, IpAddr::V4(base + i), end)) {
      EXPECT_EQ(*idx, i % 3);
      ++live;
    }
  }
  EXPECT_EQ(live, small.size());
  EXPECT_LE(live, kCap);
}

TEST_F(AffinityTest, ZeroCapacityStillHoldsOneBinding) {
  AffinityTable tiny(0);
  const Service& svc = Upsert("198.18.64.10", {Ready("198.19.1.1"), Ready("198.19.1.2")});
  tiny.Record(svc, client_, 1, 0);
  tiny.Record(svc, Addr("198.19.0.11"), 0, kSec);
  EXPECT_EQ(tiny.size(), 1u);
  EXPECT_THAT(tiny.Lookup(svc, Addr("198.19.0.11"), 2 * kSec), Optional(0));
}

// A worker's affinity table outlives a service table that is rebuilt and
// published anew: a binding must never hand back an index the new backend
// set does not have.
TEST(AffinityRebuiltTableTest, StaleBindingNeverIndexesPastTheBackends) {
  AffinityTable affinity(16);
  const IpAddr client = *IpAddr::Parse("198.19.0.9");
  const FrontendKey fe{*IpAddr::Parse("198.18.64.40"), 80, IpProto::kTcp, Scope::kInternal};
  ServiceConfig many;
  many.affinity_timeout_s = 60;
  for (uint32_t i = 0; i < 40; ++i) many.backends.push_back({Endpoint{IpAddr::V4(0xc6130200 + i), 8080}});
  ServiceTable first;
  ASSERT_TRUE(first.Upsert(fe, many).ok());
  const Service& big = *first.Lookup(fe.addr, fe.port, fe.proto, fe.scope);
  affinity.Record(big, client, 39, 0);

  ServiceConfig one = many;
  one.backends.resize(1);
  ServiceTable rebuilt;  // same frontend, same id, a new table
  ASSERT_TRUE(rebuilt.Upsert(fe, one).ok());
  const Service& small = *rebuilt.Lookup(fe.addr, fe.port, fe.proto, fe.scope);
  ASSERT_EQ(small.id, big.id);
  EXPECT_NE(small.generation, big.generation);
  EXPECT_EQ(affinity.Lookup(small, client, 1), std::nullopt);
}

}  // namespace
}  // namespace atl::lb
