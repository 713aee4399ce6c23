#include "lb/service_table.h"
#include "lb/test_support.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace atl::lb {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using test_support::Addr;

Endpoint Ep(std::string_view addr, uint16_t port = 8080) { return {Addr(addr), port}; }

// Endpoint conditions as an EndpointSlice states them (KEP-1669).
enum class Cond { kReady, kTerminating, kTerminatingNotServing, kNotReady };

Backend MakeBackend(std::string_view addr, Cond cond, bool local, uint16_t port = 8080) {
  Backend b;
  b.endpoint = Ep(addr, port);
  b.serving = cond == Cond::kReady || cond == Cond::kTerminating;
  b.terminating = cond == Cond::kTerminating || cond == Cond::kTerminatingNotServing;
  b.node_local = local;
  return b;
}

FrontendKey Frontend(std::string_view vip, uint16_t port, IpProto proto = IpProto::kTcp,
                     Scope scope = Scope::kInternal) {
  return {Addr(vip), port, proto, scope};
}

std::vector<std::string> Names(const std::vector<Backend>& backends) {
  std::vector<std::string> names;
  for (const Backend& b : backends) names.push_back(b.endpoint.addr.ToString());
  return names;
}

// ---------------------------------------------------------------------------
// EligibleBackends: traffic policies and endpoint conditions.

// Pods on this node are 198.19.0.x, pods on other nodes 198.19.1.x.
const Backend kRemoteReady = MakeBackend("198.19.1.1", Cond::kReady, false);
const Backend kLocalReady = MakeBackend("198.19.0.2", Cond::kReady, true);
const Backend kRemoteTerminating = MakeBackend("198.19.1.3", Cond::kTerminating, false);
const Backend kLocalTerminating = MakeBackend("198.19.0.4", Cond::kTerminating, true);
const Backend kLocalNotReady = MakeBackend("198.19.0.5", Cond::kNotReady, true);
const Backend kLocalTerminatingNotServing = MakeBackend("198.19.0.6", Cond::kTerminatingNotServing, true);
const Backend kRemoteNotReady = MakeBackend("198.19.1.7", Cond::kNotReady, false);
const Backend kLocalReady2 = MakeBackend("198.19.0.8", Cond::kReady, true);

struct EligibleCase {
  std::string name;
  std::vector<Backend> backends;
  TrafficPolicy external_policy;
  TrafficPolicy internal_policy;
  Scope scope;
  std::vector<std::string> want;  // in the order of the configuration
};

class EligibleBackendsTest : public ::testing::TestWithParam<EligibleCase> {};

TEST_P(EligibleBackendsTest, ChoosesTheRightSet) {
  const EligibleCase& c = GetParam();
  ServiceConfig config;
  config.backends = c.backends;
  config.external_policy = c.external_policy;
  config.internal_policy = c.internal_policy;
  EXPECT_THAT(Names(EligibleBackends(config, c.scope)), ElementsAreArray(c.want));
}

constexpr TrafficPolicy kCluster = TrafficPolicy::kCluster;
constexpr TrafficPolicy kLocal = TrafficPolicy::kLocal;
constexpr Scope kInt = Scope::kInternal;
constexpr Scope kExt = Scope::kExternal;

const std::vector<Backend> kMixed = {kRemoteReady,   kLocalReady,    kRemoteTerminating,
                                     kLocalTerminating, kLocalNotReady, kLocalTerminatingNotServing,
                                     kRemoteNotReady, kLocalReady2};

INSTANTIATE_TEST_SUITE_P(
    Policies, EligibleBackendsTest,
    ::testing::Values(
        EligibleCase{"ClusterInternalUsesAllReady", kMixed, kCluster, kCluster, kInt,
                     {"198.19.1.1", "198.19.0.2", "198.19.0.8"}},
        EligibleCase{"ClusterExternalUsesAllReady", kMixed, kCluster, kCluster, kExt,
                     {"198.19.1.1", "198.19.0.2", "198.19.0.8"}},
        EligibleCase{"ExternalLocalOnExternalScopeUsesNodeLocal", kMixed, kLocal, kCluster, kExt,
                     {"198.19.0.2", "198.19.0.8"}},
        EligibleCase{"ExternalLocalDoesNotApplyToInternalScope", kMixed, kLocal, kCluster, kInt,
                     {"198.19.1.1", "198.19.0.2", "198.19.0.8"}},
        EligibleCase{"InternalLocalOnInternalScopeUsesNodeLocal", kMixed, kCluster, kLocal, kInt,
                     {"198.19.0.2", "198.19.0.8"}},
        EligibleCase{"InternalLocalDoesNotApplyToExternalScope", kMixed, kCluster, kLocal, kExt,
                     {"198.19.1.1", "198.19.0.2", "198.19.0.8"}},
        EligibleCase{"TerminatingIgnoredWhileAnyReady",
                     {kRemoteTerminating, kLocalTerminating, kRemoteReady}, kCluster, kCluster, kInt,
                     {"198.19.1.1"}},
        EligibleCase{"TerminatingServingUsedWhenNoneReady",
                     {kRemoteTerminating, kLocalNotReady, kLocalTerminating, kLocalTerminatingNotServing},
                     kCluster, kCluster, kInt, {"198.19.1.3", "198.19.0.4"}},
        EligibleCase{"LocalFallsBackToLocalTerminatingEvenWithRemoteReady",
                     {kRemoteReady, kLocalTerminating, kLocalNotReady}, kLocal, kLocal, kExt,
                     {"198.19.0.4"}},
        EligibleCase{"LocalTerminatingOnlyWhenNoLocalReady",
                     {kRemoteReady, kLocalTerminating, kLocalReady}, kLocal, kLocal, kInt,
                     {"198.19.0.2"}},
        EligibleCase{"NonServingNeverQualifies",
                     {kLocalNotReady, kLocalTerminatingNotServing, kRemoteNotReady}, kCluster, kCluster,
                     kInt, {}},
        EligibleCase{"LocalWithNoLocalEndpointsIsEmpty", {kRemoteReady, kRemoteTerminating}, kLocal,
                     kLocal, kExt, {}},
        EligibleCase{"LocalWithOnlyUnservingLocalIsEmpty",
                     {kRemoteReady, kLocalNotReady, kLocalTerminatingNotServing}, kCluster, kLocal, kInt,
                     {}},
        EligibleCase{"NoBackendsIsEmpty", {}, kCluster, kCluster, kInt, {}}),
    [](const ::testing::TestParamInfo<EligibleCase>& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Upsert validation: errors name the frontend and the bad value.

ServiceConfig OneBackend(std::string_view addr = "198.19.1.1", uint16_t port = 8080) {
  ServiceConfig c;
  c.backends = {MakeBackend(addr, Cond::kReady, false, port)};
  return c;
}

struct UpsertErrorCase {
  std::string name;
  FrontendKey frontend;
  ServiceConfig config;
  std::vector<std::string> message_has;
};

class UpsertErrorTest : public ::testing::TestWithParam<UpsertErrorCase> {};

TEST_P(UpsertErrorTest, RejectsWithANamedValue) {
  const UpsertErrorCase& c = GetParam();
  ServiceTable table;
  const absl::StatusOr<ServiceId> id = table.Upsert(c.frontend, c.config);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& s : c.message_has) EXPECT_THAT(id.status().message(), HasSubstr(s));
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.Lookup(c.frontend.addr, c.frontend.port, c.frontend.proto, c.frontend.scope), nullptr);
}

ServiceConfig WithMaglevSize(ServiceConfig c, uint32_t m) {
  c.maglev_size = m;
  return c;
}

ServiceConfig Duplicated() {
  ServiceConfig c = OneBackend();
  c.backends.push_back(c.backends[0]);
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Validation, UpsertErrorTest,
    ::testing::Values(
        UpsertErrorCase{"PortZero", Frontend("198.18.64.10", 0), OneBackend(),
                        {"198.18.64.10:0/TCP", "port 0"}},
        UpsertErrorCase{"IcmpIsNotAServiceProtocol", Frontend("198.18.64.10", 80, IpProto::kIcmp),
                        OneBackend(), {"198.18.64.10:80", "protocol 1 "}},
        UpsertErrorCase{"BackendPortZero", Frontend("198.18.64.10", 80), OneBackend("198.19.1.1", 0),
                        {"198.18.64.10:80/TCP", "backend 198.19.1.1:0", "port 0"}},
        UpsertErrorCase{"V6BackendForV4Frontend", Frontend("198.18.64.10", 80), OneBackend("fd00:a70::1"),
                        {"198.18.64.10:80/TCP", "[fd00:a70::1]:8080", "address family"}},
        UpsertErrorCase{"V4BackendForV6Frontend", Frontend("fd00:a70:0:64::10", 80, IpProto::kUdp),
                        OneBackend("198.19.1.1"),
                        {"[fd00:a70:0:64::10]:80/UDP", "198.19.1.1:8080", "address family"}},
        UpsertErrorCase{"BadMaglevSize", Frontend("198.18.64.10", 80, IpProto::kTcp, Scope::kExternal),
                        WithMaglevSize(OneBackend(), 1000),
                        {"198.18.64.10:80/TCP (external)", "size 1000"}},
        // The size is checked even when no backend is eligible.
        UpsertErrorCase{"BadMaglevSizeWithoutBackends", Frontend("198.18.64.10", 80),
                        WithMaglevSize(ServiceConfig{}, 0), {"198.18.64.10:80/TCP", "size 0 "}},
        UpsertErrorCase{"BackendListedTwice", Frontend("198.18.64.10", 80), Duplicated(),
                        {"198.18.64.10:80/TCP", "198.19.1.1:8080", "twice"}}),
    [](const ::testing::TestParamInfo<UpsertErrorCase>& info) { return info.param.name; });

TEST(ServiceTableTest, FailedUpsertKeepsThePreviousConfiguration) {
  ServiceTable table;
  const FrontendKey fe = Frontend("198.18.64.10", 80);
  ASSERT_TRUE(table.Upsert(fe, OneBackend("198.19.1.1")).ok());
  EXPECT_FALSE(table.Upsert(fe, OneBackend("198.19.1.2", 0)).ok());
  const Service* svc = table.Lookup(fe.addr, 80, IpProto::kTcp, Scope::kInternal);
  ASSERT_NE(svc, nullptr);
  EXPECT_THAT(Names(svc->eligible), ElementsAreArray({"198.19.1.1"}));
}

TEST(ServiceTableTest, FrontendToString) {
  EXPECT_EQ(Frontend("198.18.64.10", 80).ToString(), "198.18.64.10:80/TCP (internal)");
  EXPECT_EQ(Frontend("fd00:a70:0:64::10", 53, IpProto::kUdp, Scope::kExternal).ToString(),
            "[fd00:a70:0:64::10]:53/UDP (external)");
  EXPECT_EQ((FrontendKey{IpAddr::V4(0), 30080, IpProto::kSctp, Scope::kExternal}).ToString(),
            "*:30080/SCTP (external)");
}

// ---------------------------------------------------------------------------
// Lookup.

TEST(ServiceTableTest, LookupIsExactOnAddressPortProtocolAndScope) {
  ServiceTable table;
  const FrontendKey fe = Frontend("198.18.64.10", 80);
  const absl::StatusOr<ServiceId> id = table.Upsert(fe, OneBackend());
  ASSERT_TRUE(id.ok()) << id.status();
  const Service* svc = table.Lookup(Addr("198.18.64.10"), 80, IpProto::kTcp, Scope::kInternal);
  ASSERT_NE(svc, nullptr);
  EXPECT_EQ(svc->id, *id);
  EXPECT_EQ(svc->frontend, fe);
  EXPECT_EQ(table.Get(*id), svc);
  EXPECT_EQ(table.Lookup(Addr("198.18.64.11"), 80, IpProto::kTcp, Scope::kInternal), nullptr);
  EXPECT_EQ(table.Lookup(Addr("198.18.64.10"), 81, IpProto::kTcp, Scope::kInternal), nullptr);
  EXPECT_EQ(table.Lookup(Addr("198.18.64.10"), 80, IpProto::kUdp, Scope::kInternal), nullptr);
  EXPECT_EQ(table.Lookup(Addr("198.18.64.10"), 80, IpProto::kTcp, Scope::kExternal), nullptr);
  // An IPv6 address never matches an IPv4 frontend, even one ending alike.
  EXPECT_EQ(table.Lookup(Addr("::c612:400a"), 80, IpProto::kTcp, Scope::kInternal), nullptr);
}

TEST(ServiceTableTest, NodePortWildcardMatchesTheNodesAddressesOfItsFamily) {
  ServiceTable table;
  table.SetNodeAddresses({Addr("198.18.0.1"), Addr("198.18.0.2"), Addr("198.18.15.254"),
                          Addr("fd00:a70::1")});
  ServiceConfig v4 = OneBackend("198.19.1.1");
  ServiceConfig v6 = OneBackend("fd00:a70:0:1::1");
  const FrontendKey any4{IpAddr::V4(0), 30080, IpProto::kTcp, Scope::kExternal};
  const FrontendKey any6{IpAddr{}, 30080, IpProto::kTcp, Scope::kExternal};
  ASSERT_TRUE(any4.addr.IsUnspecified() && any6.addr.IsUnspecified());
  const absl::StatusOr<ServiceId> id4 = table.Upsert(any4, v4);
  ASSERT_TRUE(id4.ok()) << id4.status();

  // Node addresses on the underlay.
  for (const char* node : {"198.18.0.1", "198.18.0.2", "198.18.15.254"}) {
    const Service* svc = table.Lookup(Addr(node), 30080, IpProto::kTcp, Scope::kExternal);
    ASSERT_NE(svc, nullptr) << node;
    EXPECT_EQ(svc->id, *id4);
  }
  EXPECT_EQ(table.Lookup(Addr("fd00:a70::1"), 30080, IpProto::kTcp, Scope::kExternal), nullptr)
      << "a v4 NodePort must not answer on v6";
  EXPECT_EQ(table.Lookup(Addr("198.18.0.1"), 30081, IpProto::kTcp, Scope::kExternal), nullptr);
  EXPECT_EQ(table.Lookup(Addr("198.18.0.1"), 30080, IpProto::kUdp, Scope::kExternal), nullptr);
  EXPECT_EQ(table.Lookup(Addr("198.18.0.1"), 30080, IpProto::kTcp, Scope::kInternal), nullptr);

  const absl::StatusOr<ServiceId> id6 = table.Upsert(any6, v6);
  ASSERT_TRUE(id6.ok()) << id6.status();
  const Service* svc6 = table.Lookup(Addr("fd00:a70::1"), 30080, IpProto::kTcp, Scope::kExternal);
  ASSERT_NE(svc6, nullptr);
  EXPECT_EQ(svc6->id, *id6);
  EXPECT_EQ(table.Lookup(Addr("198.18.0.1"), 30080, IpProto::kTcp, Scope::kExternal)->id, *id4);

  // An exact frontend on the same port wins over the wildcard.
  const absl::StatusOr<ServiceId> exact = table.Upsert(Frontend("198.18.64.100", 30080, IpProto::kTcp,
                                                                Scope::kExternal),
                                                       OneBackend("198.19.1.9"));
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ(table.Lookup(Addr("198.18.64.100"), 30080, IpProto::kTcp, Scope::kExternal)->id, *exact);
  EXPECT_EQ(table.Lookup(Addr("198.18.0.2"), 30080, IpProto::kTcp, Scope::kExternal)->id, *id4);
  // Another host's address, or a pod's, carrying the port is not a NodePort here.
  EXPECT_EQ(table.Lookup(Addr("198.18.64.101"), 30080, IpProto::kTcp, Scope::kExternal), nullptr);
  EXPECT_EQ(table.Lookup(Addr("198.19.0.77"), 30080, IpProto::kTcp, Scope::kExternal), nullptr);
}

TEST(ServiceTableTest, InternalAndExternalFrontendsOnOneVipChooseFromDifferentSets) {
  // A LoadBalancer IP that pods also reach: internalTrafficPolicy Cluster,
  // externalTrafficPolicy Local.
  ServiceTable table;
  ServiceConfig config;
  config.backends = {kRemoteReady, kLocalReady, MakeBackend("198.19.1.10", Cond::kReady, false)};
  config.external_policy = TrafficPolicy::kLocal;
  config.internal_policy = TrafficPolicy::kCluster;
  const FrontendKey internal = Frontend("198.18.64.100", 443, IpProto::kTcp, Scope::kInternal);
  const FrontendKey external = Frontend("198.18.64.100", 443, IpProto::kTcp, Scope::kExternal);
  const absl::StatusOr<ServiceId> a = table.Upsert(internal, config);
  const absl::StatusOr<ServiceId> b = table.Upsert(external, config);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(table.size(), 2u);

  const Service* in = table.Lookup(internal.addr, 443, IpProto::kTcp, Scope::kInternal);
  const Service* ex = table.Lookup(external.addr, 443, IpProto::kTcp, Scope::kExternal);
  ASSERT_NE(in, nullptr);
  ASSERT_NE(ex, nullptr);
  EXPECT_THAT(Names(in->eligible), ElementsAreArray({"198.19.1.1", "198.19.0.2", "198.19.1.10"}));
  EXPECT_THAT(Names(ex->eligible), ElementsAreArray({"198.19.0.2"}));
  // Every slot of the external frontend's table leads to the local backend.
  for (uint32_t h = 0; h < 4096; ++h) {
    EXPECT_EQ(ex->eligible[ex->MaglevPick(h * 0x9e3779b9u)].endpoint, kLocalReady.endpoint);
  }
  EXPECT_NE(in->generation, ex->generation);
}

TEST(ServiceTableTest, RemoveForgetsTheFrontendOnly) {
  ServiceTable table;
  const FrontendKey a = Frontend("198.18.64.10", 80);
  const FrontendKey b = Frontend("198.18.64.10", 80, IpProto::kUdp);
  const absl::StatusOr<ServiceId> ia = table.Upsert(a, OneBackend());
  const absl::StatusOr<ServiceId> ib = table.Upsert(b, OneBackend());
  ASSERT_TRUE(ia.ok() && ib.ok());
  EXPECT_TRUE(table.Remove(a));
  EXPECT_FALSE(table.Remove(a));
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.Lookup(a.addr, a.port, a.proto, a.scope), nullptr);
  EXPECT_EQ(table.Get(*ia), nullptr);
  ASSERT_NE(table.Lookup(b.addr, b.port, b.proto, b.scope), nullptr);
  EXPECT_EQ(table.Get(*ib)->frontend, b);
  EXPECT_FALSE(table.Remove(Frontend("198.18.64.99", 80)));
  EXPECT_EQ(table.Get(12345), nullptr);
}

TEST(ServiceTableTest, UpsertKeepsTheIdAndRemovedIdsAreReused) {
  ServiceTable table;
  const FrontendKey a = Frontend("198.18.64.10", 80);
  const FrontendKey b = Frontend("198.18.64.11", 80);
  const FrontendKey c = Frontend("198.18.64.12", 80);
  const ServiceId ia = table.Upsert(a, OneBackend()).value();
  const ServiceId ib = table.Upsert(b, OneBackend()).value();
  EXPECT_NE(ia, ib);
  EXPECT_EQ(table.Upsert(a, OneBackend("198.19.1.2")).value(), ia);
  const uint32_t gen_a = table.Get(ia)->generation;

  ASSERT_TRUE(table.Remove(a));
  const ServiceId ic = table.Upsert(c, OneBackend("198.19.1.2")).value();
  EXPECT_EQ(ic, ia) << "a freed id is reused";
  EXPECT_EQ(table.Get(ic)->frontend, c);
  // Same id, same backends, but another service: cached choices must see it.
  EXPECT_NE(table.Get(ic)->generation, gen_a);
  EXPECT_EQ(table.size(), 2u);

  // With no free id, a new one is appended.
  const ServiceId id_new = table.Upsert(a, OneBackend()).value();
  EXPECT_NE(id_new, ib);
  EXPECT_NE(id_new, ic);
}

TEST(ServiceTableTest, GenerationFollowsTheEligibleSet) {
  ServiceTable table;
  const FrontendKey fe = Frontend("198.18.64.10", 80, IpProto::kTcp, Scope::kExternal);
  ServiceConfig config;
  config.external_policy = TrafficPolicy::kLocal;
  config.backends = {kLocalReady, kRemoteReady};
  const ServiceId id = table.Upsert(fe, config).value();
  const uint32_t g0 = table.Get(id)->generation;

  struct Step {
    const char* what;
    std::vector<Backend> backends;
    uint32_t affinity_timeout_s;
    bool changes;
  };
  const Step steps[] = {
      {"same configuration again", {kLocalReady, kRemoteReady}, 0, false},
      {"a remote backend, not eligible under Local", {kLocalReady, kRemoteReady, kRemoteTerminating}, 0,
       false},
      {"a not-ready local backend", {kLocalReady, kRemoteReady, kLocalNotReady}, 0, false},
      {"a terminating local backend while one is ready", {kLocalReady, kLocalTerminating}, 0, false},
      {"only the affinity timeout", {kLocalReady}, 10800, false},
      {"a second ready local backend", {kLocalReady, kLocalReady2}, 0, true},
      {"the same two in another order", {kLocalReady2, kLocalReady}, 0, true},
      {"the first one starts terminating", {kLocalReady2, MakeBackend("198.19.0.2", Cond::kTerminating, true)},
       0, true},
      {"no local backend is left", {kRemoteReady}, 0, true},
      {"still none", {kRemoteReady, kRemoteTerminating}, 0, false},
  };
  uint32_t prev = g0;
  std::set<uint32_t> seen = {g0};
  for (const Step& s : steps) {
    SCOPED_TRACE(s.what);
    config.backends = s.backends;
    config.affinity_timeout_s = s.affinity_timeout_s;
    ASSERT_EQ(table.Upsert(fe, config).value(), id);
    const Service* svc = table.Get(id);
    EXPECT_EQ(svc->affinity_timeout_s, s.affinity_timeout_s);
    if (s.changes) {
      EXPECT_NE(svc->generation, prev);
      EXPECT_TRUE(seen.insert(svc->generation).second) << "a generation is never reused";
    } else {
      EXPECT_EQ(svc->generation, prev);
    }
    prev = svc->generation;
  }
  EXPECT_FALSE(table.Get(id)->has_backend());
}

// ---------------------------------------------------------------------------
// Maglev per frontend.

TEST(ServiceTableTest, EachFrontendHasAMaglevTableOverItsEligibleBackends) {
  ServiceTable table(/*maglev_seed=*/7);
  ServiceConfig config;
  config.maglev_size = 1021;
  for (int i = 1; i <= 5; ++i) {
    config.backends.push_back(MakeBackend("198.19.1." + std::to_string(i), Cond::kReady, false));
  }
  config.backends.push_back(kLocalNotReady);
  const ServiceId id = table.Upsert(Frontend("198.18.64.10", 80), config).value();
  const Service* svc = table.Get(id);
  ASSERT_TRUE(svc->has_backend());
  EXPECT_EQ(svc->maglev.slots.size(), 1021u);
  EXPECT_EQ(svc->eligible.size(), 5u);
  std::set<uint16_t> picked;
  for (uint32_t h = 0; h < 20000; ++h) {
    const uint16_t i = svc->MaglevPick(h * 2654435761u);
    ASSERT_LT(i, svc->eligible.size());
    picked.insert(i);
  }
  EXPECT_EQ(picked.size(), 5u) << "every eligible backend gets flows";

  // The same backends listed in another order send each flow to the same
  // endpoint: every host builds the same table.
  ServiceConfig reversed = config;
  std::reverse(reversed.backends.begin(), reversed.backends.end());
  const Service* other = table.Get(table.Upsert(Frontend("198.18.64.11", 80), reversed).value());
  for (uint32_t h = 0; h < 20000; ++h) {
    const uint32_t hash = h * 2654435761u;
    ASSERT_EQ(svc->eligible[svc->MaglevPick(hash)].endpoint, other->eligible[other->MaglevPick(hash)].endpoint);
  }
}

TEST(ServiceTableTest, ZeroWeightBackendIsEligibleButGetsNoFlows) {
  ServiceTable table;
  ServiceConfig config;
  config.maglev_size = 251;
  config.backends = {kRemoteReady, kLocalReady};
  config.backends[1].weight = 0;
  const Service* svc = table.Get(table.Upsert(Frontend("198.18.64.10", 80), config).value());
  EXPECT_EQ(svc->eligible.size(), 2u);
  for (uint32_t h = 0; h < 4096; ++h) EXPECT_EQ(svc->MaglevPick(h * 0x9e3779b9u), 0);

  config.backends[0].weight = 0;
  svc = table.Get(table.Upsert(Frontend("198.18.64.10", 80), config).value());
  EXPECT_FALSE(svc->has_backend()) << "no weight anywhere: nothing to send to";
}

TEST(ServiceTableTest, NoEligibleBackendMeansNoMaglevTable) {
  ServiceTable table;
  ServiceConfig config;
  config.external_policy = TrafficPolicy::kLocal;
  config.backends = {kRemoteReady};
  const Service* ex = table.Get(
      table.Upsert(Frontend("198.18.64.10", 80, IpProto::kTcp, Scope::kExternal), config).value());
  EXPECT_THAT(ex->eligible, IsEmpty());
  EXPECT_FALSE(ex->has_backend());
  const Service* in = table.Get(table.Upsert(Frontend("198.18.64.10", 80), config).value());
  EXPECT_TRUE(in->has_backend());
}

}  // namespace
}  // namespace atl::lb
