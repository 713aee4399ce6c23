#include "dataplane/in_process_dataplane.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace atl::dataplane {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

lb::IpAddr Addr(std::string_view text) {
  const std::optional<lb::IpAddr> a = lb::IpAddr::Parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(lb::IpAddr{});
}

lb::IpPrefix Prefix(std::string_view text) {
  const std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(text);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(lb::IpPrefix{});
}

lb::Backend Backend(std::string_view addr, uint16_t port) {
  lb::Backend b;
  b.endpoint = {Addr(addr), port};
  return b;
}

Frontend MakeFrontend(std::string_view vip, uint16_t port, std::string name,
                      std::vector<lb::Backend> backends) {
  Frontend f;
  f.key = {Addr(vip), port, lb::IpProto::kTcp, lb::Scope::kInternal};
  f.config.backends = std::move(backends);
  f.config.maglev_size = lb::kMaglevSizes[0];
  f.name = std::move(name);
  return f;
}

std::unique_ptr<InProcessDataplane> MakeDataplane(size_t max_frontends) {
  auto dp = InProcessDataplane::Create(max_frontends);
  EXPECT_TRUE(dp.ok()) << dp.status();
  return *std::move(dp);
}

std::vector<std::string> FrontendNames(const Programmed& p) {
  std::vector<std::string> names;
  for (const Frontend& f : p.frontends) names.push_back(f.name);
  return names;
}

TEST(InProcessDataplane, RejectsZeroCapacity) {
  EXPECT_EQ(InProcessDataplane::Create(0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(InProcessDataplane, AppliesAndDumpsEligibleBackends) {
  auto dp = MakeDataplane(16);
  EXPECT_EQ(dp->name(), "in-process");

  Frontend f = MakeFrontend("198.18.64.1", 80, "shop/web:http",
                            {Backend("198.19.0.20", 8080), Backend("198.19.0.21", 8080)});
  f.config.backends[1].serving = false;  // never eligible
  f.config.affinity_timeout_s = 600;
  Update u;
  u.upsert_frontends.push_back(f);
  u.upsert_segments.push_back(
      {"shop", 7, {Prefix("198.19.0.0/24")}, Addr("198.19.0.1"), true, {"ops"}, {}});
  u.upsert_routes.push_back({Prefix("198.19.0.64/26"), 7, "h2", Addr("198.18.0.2")});
  u.set_node_addresses = true;
  u.node_addresses = {Addr("198.18.0.1")};
  ASSERT_TRUE(dp->Apply(u).ok());

  const Programmed p = dp->Dump();
  ASSERT_EQ(p.frontends.size(), 1u);
  EXPECT_EQ(p.frontends[0].name, "shop/web:http");
  EXPECT_EQ(p.frontends[0].key, f.key);
  ASSERT_EQ(p.frontends[0].config.backends.size(), 1u);
  EXPECT_EQ(p.frontends[0].config.backends[0].endpoint, f.config.backends[0].endpoint);
  EXPECT_EQ(p.frontends[0].config.affinity_timeout_s, 600u);
  EXPECT_EQ(p.frontends[0].config.maglev_size, lb::kMaglevSizes[0]);
  ASSERT_EQ(p.segments.size(), 1u);
  EXPECT_EQ(p.segments[0], u.upsert_segments[0]);
  ASSERT_EQ(p.routes.size(), 1u);
  EXPECT_EQ(p.routes[0], u.upsert_routes[0]);
  EXPECT_THAT(p.node_addresses, ElementsAre(Addr("198.18.0.1")));
  EXPECT_TRUE(dp->services().IsNodeAddress(Addr("198.18.0.1")));
  EXPECT_NE(dp->services().Lookup(Addr("198.18.64.1"), 80, lb::IpProto::kTcp, lb::Scope::kInternal),
            nullptr);
}

TEST(InProcessDataplane, RemovesWhatItInstalled) {
  auto dp = MakeDataplane(16);
  Update add;
  add.upsert_frontends.push_back(
      MakeFrontend("198.18.64.1", 80, "shop/web:http", {Backend("198.19.0.20", 8080)}));
  add.upsert_segments.push_back({"shop", 7, {Prefix("198.19.0.0/24")}, {}, true, {}, {}});
  add.upsert_routes.push_back({Prefix("198.19.0.64/26"), 7, "h2", Addr("198.18.0.2")});
  ASSERT_TRUE(dp->Apply(add).ok());

  Update remove;
  remove.remove_frontends.push_back(add.upsert_frontends[0].key);
  remove.remove_segments.push_back("shop");
  remove.remove_routes.push_back(Prefix("198.19.0.64/26"));
  ASSERT_TRUE(dp->Apply(remove).ok());
  const Programmed p = dp->Dump();
  EXPECT_THAT(p.frontends, IsEmpty());
  EXPECT_THAT(p.segments, IsEmpty());
  EXPECT_THAT(p.routes, IsEmpty());
  EXPECT_EQ(dp->services().size(), 0u);
  // Removing again is harmless: the agent may repeat an Update after a restart.
  EXPECT_TRUE(dp->Apply(remove).ok());
}

// A dataplane that outlived its agent (atoll-dpdkd) gets the restarted
// agent's first snapshot as a full sync: what it does not list goes.
TEST(InProcessDataplane, AFullSyncRemovesWhatItDoesNotList) {
  auto dp = MakeDataplane(16);
  const PodPort web{"atl0123456789a",   7,      {0x0a, 0x58, 0xc6, 0x13, 0, 5},
                    Addr("198.19.0.5"), "shop", "shop/web-1"};
  const PodPort gone{"atl0123456789b",   8,      {0x0a, 0x58, 0xc6, 0x13, 0, 6},
                     Addr("198.19.0.6"), "shop", "shop/web-2"};
  Update before;
  before.upsert_frontends = {
      MakeFrontend("198.18.64.1", 80, "shop/web:http", {Backend("198.19.0.20", 8080)}),
      MakeFrontend("198.18.64.2", 80, "shop/old:http", {Backend("198.19.0.21", 8080)})};
  before.upsert_segments = {{"shop", 7, {Prefix("198.19.0.0/24")}, {}, true, {}, {}},
                            {"old", 8, {Prefix("198.19.1.0/24")}, {}, true, {}, {}}};
  before.upsert_routes = {{Prefix("198.19.0.64/26"), 7, "h2", Addr("198.18.0.2")},
                          {Prefix("198.19.1.64/26"), 8, "h2", Addr("198.18.0.2")}};
  before.upsert_pod_ports = {web, gone};
  before.set_node_addresses = true;
  before.node_addresses = {Addr("198.18.0.11")};
  ASSERT_TRUE(dp->Apply(before).ok());

  // Pod ports have a full sync of their own (the CNI server's restored pods):
  // the agent's snapshot leaves them alone.
  Update snapshot;
  snapshot.full_sync = true;
  snapshot.upsert_frontends = {before.upsert_frontends[0]};
  snapshot.upsert_segments = {before.upsert_segments[0]};
  snapshot.upsert_routes = {before.upsert_routes[0]};
  ASSERT_TRUE(dp->Apply(snapshot).ok());
  Programmed p = dp->Dump();
  EXPECT_THAT(FrontendNames(p), ElementsAre("shop/web:http"));
  EXPECT_EQ(dp->services().size(), 1u);
  ASSERT_EQ(p.segments.size(), 1u);
  EXPECT_EQ(p.segments[0].name, "shop");
  EXPECT_THAT(p.routes, ElementsAre(before.upsert_routes[0]));
  EXPECT_THAT(p.pod_ports, ElementsAre(web, gone));
  EXPECT_THAT(p.node_addresses, IsEmpty()) << "a full sync lists every node address";

  Update restored;
  restored.full_sync_pod_ports = true;
  restored.upsert_pod_ports = {web};
  ASSERT_TRUE(dp->Apply(restored).ok());
  p = dp->Dump();
  EXPECT_THAT(p.pod_ports, ElementsAre(web));
  EXPECT_THAT(FrontendNames(p), ElementsAre("shop/web:http"));
}

TEST(InProcessDataplane, CapacityFailureRollsBackExactly) {
  auto dp = MakeDataplane(3);
  Update first;
  first.upsert_frontends = {
      MakeFrontend("198.18.64.1", 80, "a/one:http", {Backend("198.19.0.20", 8080)}),
      MakeFrontend("198.18.64.2", 80, "a/two:http", {Backend("198.19.0.21", 8080)})};
  first.upsert_segments.push_back({"a", 7, {Prefix("198.19.0.0/24")}, {}, true, {}, {}});
  first.set_node_addresses = true;
  first.node_addresses = {Addr("198.18.0.1")};
  ASSERT_TRUE(dp->Apply(first).ok());
  const Programmed before = dp->Dump();
  const lb::Service* two_before =
      dp->services().Lookup(Addr("198.18.64.2"), 80, lb::IpProto::kTcp, lb::Scope::kInternal);
  ASSERT_NE(two_before, nullptr);
  const std::vector<lb::MaglevSlot> two_slots = two_before->maglev.slots;

  // Replaces one, removes one, changes a segment and the node address, then
  // adds three new frontends where only two fit.
  Update second;
  second.remove_frontends.push_back(first.upsert_frontends[0].key);
  second.upsert_frontends = {
      MakeFrontend("198.18.64.2", 80, "a/two:http", {Backend("198.19.0.99", 9090)}),
      MakeFrontend("198.18.64.3", 80, "a/three:http", {}),
      MakeFrontend("198.18.64.4", 80, "a/four:http", {}),
      MakeFrontend("198.18.64.5", 80, "a/five:http", {})};
  second.upsert_segments.push_back({"a", 8, {Prefix("198.19.0.0/24")}, {}, false, {}, {}});
  second.set_node_addresses = true;
  second.node_addresses = {Addr("198.18.0.9")};
  const absl::Status status = dp->Apply(second);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("a/five:http"));

  const Programmed after = dp->Dump();
  EXPECT_EQ(FrontendNames(after), FrontendNames(before));
  ASSERT_EQ(after.frontends.size(), before.frontends.size());
  for (size_t i = 0; i < after.frontends.size(); ++i) {
    EXPECT_EQ(after.frontends[i].key, before.frontends[i].key);
    EXPECT_EQ(after.frontends[i].config.backends, before.frontends[i].config.backends);
  }
  EXPECT_EQ(after.segments, before.segments);
  EXPECT_EQ(after.node_addresses, before.node_addresses);
  EXPECT_TRUE(dp->services().IsNodeAddress(Addr("198.18.0.1")));
  EXPECT_FALSE(dp->services().IsNodeAddress(Addr("198.18.0.9")));
  EXPECT_EQ(dp->services().size(), 2u);
  const lb::Service* two_after =
      dp->services().Lookup(Addr("198.18.64.2"), 80, lb::IpProto::kTcp, lb::Scope::kInternal);
  ASSERT_NE(two_after, nullptr);
  EXPECT_EQ(two_after->maglev.slots, two_slots);
  EXPECT_EQ(dp->services().Lookup(Addr("198.18.64.3"), 80, lb::IpProto::kTcp, lb::Scope::kInternal),
            nullptr);

  // The removal made room: the same frontends fit once one fewer is asked for.
  second.upsert_frontends.pop_back();
  EXPECT_TRUE(dp->Apply(second).ok());
  EXPECT_EQ(dp->services().size(), 3u);
}

TEST(InProcessDataplane, TableRefusalRollsBackAndNamesTheFrontend) {
  auto dp = MakeDataplane(16);
  Update first;
  first.upsert_frontends.push_back(
      MakeFrontend("198.18.64.1", 80, "a/one:http", {Backend("198.19.0.20", 8080)}));
  ASSERT_TRUE(dp->Apply(first).ok());

  Update bad;
  bad.upsert_frontends.push_back(
      MakeFrontend("198.18.64.1", 80, "a/one:http", {Backend("198.19.0.30", 8080)}));
  // An IPv6 backend behind an IPv4 frontend is refused by the service table.
  bad.upsert_frontends.push_back(
      MakeFrontend("198.18.64.2", 80, "a/two:http", {Backend("fd00:a70::20", 8080)}));
  const absl::Status status = dp->Apply(bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("a/two:http"));
  const Programmed p = dp->Dump();
  ASSERT_EQ(p.frontends.size(), 1u);
  ASSERT_EQ(p.frontends[0].config.backends.size(), 1u);
  EXPECT_EQ(p.frontends[0].config.backends[0].endpoint.addr, Addr("198.19.0.20"));
}

TEST(InProcessDataplane, RefusesBadSegmentsAndRoutes) {
  auto dp = MakeDataplane(16);
  Update vni0;
  vni0.upsert_segments.push_back({"shop", 0, {}, {}, true, {}, {}});
  EXPECT_THAT(dp->Apply(vni0).message(), HasSubstr("\"shop\": VNI 0"));

  Update no_underlay;
  no_underlay.upsert_segments.push_back({"shop", 7, {}, {}, true, {}, {}});
  no_underlay.upsert_routes.push_back({Prefix("198.19.0.64/26"), 7, "h2", {}});
  EXPECT_THAT(dp->Apply(no_underlay).message(), HasSubstr("198.19.0.64/26"));
  EXPECT_THAT(dp->Dump().segments, IsEmpty());  // the segment went back out with it
}

TEST(InProcessDataplane, HoldsPodPortsAndRollsThemBack) {
  auto dp = MakeDataplane(16);
  const PodPort web{"atl0123456789a",   7,      {0x0a, 0x58, 0xc6, 0x13, 0, 5},
                    Addr("198.19.0.5"), "shop", "shop/web-1"};
  Update add;
  add.upsert_pod_ports.push_back(web);
  ASSERT_TRUE(dp->Apply(add).ok());
  EXPECT_THAT(dp->Dump().pod_ports, ElementsAre(web));

  // A bad port in the same Update as a removal: neither happens.
  Update bad;
  bad.remove_pod_ports.push_back(web.host_ifname);
  bad.upsert_pod_ports.push_back({"atl1", 0, {}, Addr("198.19.0.6"), "shop", "shop/web-2"});
  EXPECT_THAT(dp->Apply(bad).message(), HasSubstr("\"atl1\" index 0"));
  EXPECT_THAT(dp->Dump().pod_ports, ElementsAre(web));

  Update remove;
  remove.remove_pod_ports = {web.host_ifname, "atl-not-there"};
  ASSERT_TRUE(dp->Apply(remove).ok());
  EXPECT_THAT(dp->Dump().pod_ports, IsEmpty());
}

TEST(InProcessDataplane, NodePortAnswersOnNodeAddresses) {
  auto dp = MakeDataplane(16);
  Update u;
  Frontend f = MakeFrontend("0.0.0.0", 30080, "a/np:http", {Backend("198.19.0.20", 8080)});
  f.key.addr = lb::IpAddr::V4(0);
  f.key.scope = lb::Scope::kExternal;
  u.upsert_frontends.push_back(f);
  u.set_node_addresses = true;
  u.node_addresses = {Addr("198.18.0.1")};
  ASSERT_TRUE(dp->Apply(u).ok());
  EXPECT_NE(
      dp->services().Lookup(Addr("198.18.0.1"), 30080, lb::IpProto::kTcp, lb::Scope::kExternal),
      nullptr);
  const Programmed p = dp->Dump();
  ASSERT_EQ(p.frontends.size(), 1u);
  EXPECT_EQ(p.frontends[0].config.backends.size(), 1u);
}

}  // namespace
}  // namespace atl::dataplane
