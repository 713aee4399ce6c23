// HostTables without DPDK: the indexes the pipeline looks packets up in,
// built from Updates, and an Update refused whole.
#include "dataplane/dpdk/host_tables.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>

namespace atl::dataplane::dpdk {
namespace {

uint32_t Be(const char* ip) {
  uint32_t v;
  inet_pton(AF_INET, ip, &v);
  return v;
}
lb::IpAddr Ip(const char* ip) { return *lb::IpAddr::Parse(ip); }

Segment MakeSegment(const char* name, uint32_t vni, const char* cidr, bool isolated) {
  Segment s;
  s.name = name;
  s.vni = vni;
  s.cidrs = {*lb::IpPrefix::Parse(cidr)};
  s.gateway = Ip("198.19.0.1");
  s.isolated = isolated;
  return s;
}

PodPort MakePod(const char* ifname, const char* ip, const char* segment) {
  PodPort p;
  p.host_ifname = ifname;
  p.host_ifindex = 7;
  p.address = Ip(ip);
  p.mac = {0x0a, 0x58, 1, 2, 3, 4};
  p.segment = segment;
  return p;
}

// Against std::map, over enough keys to grow the table many times, with keys
// whose low bits are all alike (addresses in network order) and key 0.
TEST(WordMapTest, FindsWhatWasPutAsAMapDoes) {
  WordMap<uint32_t> map;
  std::map<uint64_t, uint32_t> want;
  for (uint32_t i = 0; i < 5000; ++i) {
    const uint64_t key = i % 3 == 0 ? uint64_t{i} << 24 : uint64_t{i} * 7919;
    map[key] = i;
    want[key] = i;
    if (i % 7 == 0) {  // overwritten: still one entry
      map[key] = i + 1;
      want[key] = i + 1;
    }
  }
  ASSERT_EQ(map.size(), want.size());
  for (const auto& [key, value] : want) {
    const uint32_t* got = map.Find(key);
    ASSERT_NE(got, nullptr) << key;
    EXPECT_EQ(*got, value) << key;
  }
  for (uint64_t key : {uint64_t{1}, uint64_t{5000} << 24, uint64_t{0xffffffff}}) {
    EXPECT_EQ(map.Find(key), nullptr) << key;
  }
  size_t visited = 0;
  map.ForEach([&](uint64_t key, uint32_t& value) {
    ++visited;
    EXPECT_EQ(want.at(key), value);
  });
  EXPECT_EQ(visited, want.size());
  map.Clear();
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.Find(0), nullptr);
}

TEST(PrefixMapTest, TheLongestPrefixWins) {
  PrefixMap<uint32_t> m;
  m.Insert(ntohl(Be("198.19.0.0")), 16, 16);
  m.Insert(ntohl(Be("198.19.1.0")), 24, 24);
  m.Insert(0, 0, 0);
  ASSERT_NE(m.Find(Be("198.19.1.9")), nullptr);
  EXPECT_EQ(*m.Find(Be("198.19.1.9")), 24u);
  EXPECT_EQ(*m.Find(Be("198.19.2.9")), 16u);
  EXPECT_EQ(*m.Find(Be("198.18.0.1")), 0u) << "the default route";
  m.Clear();
  EXPECT_EQ(m.Find(Be("198.19.1.9")), nullptr);
}

TEST(HostTablesTest, IndexesFollowTheUpdates) {
  auto t = *HostTables::Create();
  Update u;
  u.upsert_segments = {MakeSegment("a", 1, "198.19.0.0/24", true),
                       MakeSegment("b", 2, "198.19.1.0/24", true),
                       MakeSegment("c", 3, "198.19.2.0/24", true)};
  u.upsert_segments[0].admitted = {"b"};
  u.upsert_pod_ports = {MakePod("pa", "198.19.0.2", "a")};
  u.upsert_routes = {Route{*lb::IpPrefix::Parse("198.19.0.16/28"), 1, "h2", Ip("198.18.0.12")}};
  u.set_node_addresses = true;
  u.node_addresses = {Ip("198.18.0.11")};
  ASSERT_TRUE(t->Apply(u, {{"pa", 5}}).ok());

  const PodEntry* pod = t->PodByAddr(Be("198.19.0.2"));
  ASSERT_NE(pod, nullptr);
  EXPECT_EQ(pod->port, 5);
  EXPECT_EQ(pod->segment, 1u);
  EXPECT_EQ(t->PodByPort(5), t->PodByPort(5));
  EXPECT_EQ(t->PodByPort(4), nullptr);
  EXPECT_EQ(t->pod_ports(), std::vector<uint16_t>{5});
  EXPECT_EQ(t->node_addr(), Be("198.18.0.11"));

  const RemoteBlock* remote = t->RemoteBlockOf(Be("198.19.0.17"));
  ASSERT_NE(remote, nullptr);
  EXPECT_EQ(remote->underlay, Be("198.18.0.12"));
  EXPECT_EQ(t->RemoteBlockOf(Be("198.19.0.3")), nullptr);
  EXPECT_EQ(t->underlays(), std::vector<uint32_t>{Be("198.18.0.12")});

  const SegmentEntry* a = t->SegmentOf(Be("198.19.0.9"));
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(t->IsolationAllows(1, a)) << "its own segment";
  EXPECT_TRUE(t->IsolationAllows(2, a)) << "admitted";
  EXPECT_FALSE(t->IsolationAllows(3, a)) << "not admitted";
  EXPECT_TRUE(t->IsolationAllows(0, a)) << "a host";
  EXPECT_TRUE(t->IsolationAllows(3, nullptr)) << "outside every segment";

  Update gone;
  gone.remove_pod_ports = {"pa"};
  ASSERT_TRUE(t->Apply(gone, {}).ok());
  EXPECT_EQ(t->PodByAddr(Be("198.19.0.2")), nullptr);
  EXPECT_EQ(t->PodByPort(5), nullptr);
  EXPECT_TRUE(t->pod_ports().empty());
}

// atoll-dpdkd outlives its agent: the restarted agent's snapshot comes as a
// full sync, and what it does not list leaves the tables the workers read.
TEST(HostTablesTest, AFullSyncLeavesOnlyWhatItLists) {
  auto t = *HostTables::Create();
  Frontend web;
  web.key = {Ip("198.18.64.1"), 80, lb::IpProto::kTcp, lb::Scope::kInternal};
  web.config.backends = {{.endpoint = {Ip("198.19.0.2"), 8080}}};
  Frontend old = web;
  old.key.addr = Ip("198.18.64.2");
  Update before;
  before.upsert_frontends = {web, old};
  before.upsert_segments = {MakeSegment("a", 1, "198.19.0.0/24", true),
                            MakeSegment("b", 2, "198.19.1.0/24", true)};
  before.upsert_routes = {
      Route{*lb::IpPrefix::Parse("198.19.0.16/28"), 1, "h2", Ip("198.18.0.12")}};
  ASSERT_TRUE(t->Apply(before, {}).ok());
  ASSERT_NE(t->ServiceOf(Be("198.18.64.2"), 80, lb::IpProto::kTcp, lb::Scope::kInternal), nullptr);

  Update snapshot;
  snapshot.full_sync = true;
  snapshot.upsert_frontends = {web};
  snapshot.upsert_segments = {before.upsert_segments[0]};
  ASSERT_TRUE(t->Apply(snapshot, {}).ok());
  EXPECT_NE(t->ServiceOf(Be("198.18.64.1"), 80, lb::IpProto::kTcp, lb::Scope::kInternal), nullptr);
  EXPECT_EQ(t->ServiceOf(Be("198.18.64.2"), 80, lb::IpProto::kTcp, lb::Scope::kInternal), nullptr);
  EXPECT_NE(t->SegmentOf(Be("198.19.0.9")), nullptr);
  EXPECT_EQ(t->SegmentOf(Be("198.19.1.9")), nullptr);
  EXPECT_EQ(t->RemoteBlockOf(Be("198.19.0.17")), nullptr);
  EXPECT_TRUE(t->underlays().empty());
}

TEST(HostTablesTest, ServicesAreFoundAsTheModelFindsThem) {
  auto t = *HostTables::Create();
  Update u;
  u.set_node_addresses = true;
  u.node_addresses = {Ip("198.18.0.11"), Ip("fd00:a70::11")};
  Frontend local;
  local.key = {Ip("198.18.64.1"), 80, lb::IpProto::kTcp, lb::Scope::kExternal};
  local.config.backends = {{.endpoint = {Ip("198.19.0.2"), 8080}, .node_local = true},
                           {.endpoint = {Ip("198.19.0.3"), 8080}, .node_local = true}};
  local.config.external_policy = lb::TrafficPolicy::kLocal;
  local.config.maglev_size = 251;
  Frontend cluster = local;
  cluster.key.addr = Ip("198.18.64.2");
  cluster.config.external_policy = lb::TrafficPolicy::kCluster;
  cluster.config.affinity_timeout_s = 60;
  Frontend node_port = cluster;
  node_port.key.addr = Ip("0.0.0.0");
  node_port.key.port = 30080;
  Frontend empty = cluster;
  empty.key.port = 81;
  empty.config.backends = {};
  // More backends than an entry holds itself.
  Frontend many = cluster;
  many.key.port = 82;
  many.config.backends.clear();
  for (uint16_t b = 0; b < ServiceEntry::kInlineBackends + 3; ++b) {
    many.config.backends.push_back(
        {.endpoint = {Ip("198.19.0.2"), static_cast<uint16_t>(9000 + b)}});
  }
  u.upsert_frontends = {local, cluster, node_port, empty, many};
  ASSERT_TRUE(t->Apply(u, {}).ok());

  for (const Frontend* f : {&local, &cluster, &node_port, &empty, &many}) {
    const ServiceEntry* e =
        t->ServiceOf(Be32(f->key.addr), f->key.port, f->key.proto, f->key.scope);
    const lb::Service* svc =
        t->services().Lookup(f->key.addr, f->key.port, f->key.proto, f->key.scope);
    ASSERT_NE(e, nullptr) << f->key.ToString();
    ASSERT_EQ(&t->ServiceAt(*e), svc) << f->key.ToString();
    EXPECT_EQ(e->eligible_count, svc->eligible.size());
    EXPECT_EQ(e->has_backend(), svc->has_backend());
    EXPECT_EQ(e->sticky, f != &local);
    EXPECT_EQ(e->keeps_source, f == &local);
    for (uint16_t i = 0; i < e->eligible_count; ++i) {
      EXPECT_EQ(e->backend(i), svc->eligible[i].endpoint) << f->key.ToString() << " " << i;
    }
    if (!svc->has_backend()) continue;
    for (uint32_t hash : {0u, 7u, 0x9e3779b9u, 0xffffffffu}) {
      EXPECT_EQ(e->MaglevPick(hash), svc->MaglevPick(hash));
      EXPECT_EQ(e->backend(e->MaglevPick(hash)), svc->eligible[svc->MaglevPick(hash)].endpoint);
    }
  }
  // Not the other scope, port or protocol; a NodePort on the node's own address only.
  EXPECT_EQ(t->ServiceOf(Be("198.18.64.1"), 80, lb::IpProto::kTcp, lb::Scope::kInternal), nullptr);
  EXPECT_EQ(t->ServiceOf(Be("198.18.64.1"), 82, lb::IpProto::kTcp, lb::Scope::kExternal), nullptr);
  EXPECT_EQ(t->ServiceOf(Be("198.18.64.1"), 80, lb::IpProto::kUdp, lb::Scope::kExternal), nullptr);
  const ServiceEntry* via_node =
      t->ServiceOf(Be("198.18.0.11"), 30080, lb::IpProto::kTcp, lb::Scope::kExternal);
  ASSERT_NE(via_node, nullptr);
  EXPECT_EQ(
      &t->ServiceAt(*via_node),
      t->services().Lookup(Ip("198.18.0.11"), 30080, lb::IpProto::kTcp, lb::Scope::kExternal));
  EXPECT_EQ(t->ServiceOf(Be("198.18.0.12"), 30080, lb::IpProto::kTcp, lb::Scope::kExternal),
            nullptr);

  // A removed frontend goes, and the others stay, however many there are.
  Update more;
  for (int i = 0; i < 100; ++i) {
    Frontend f = cluster;
    f.key.port = static_cast<uint16_t>(1000 + i);
    more.upsert_frontends.push_back(f);
  }
  more.remove_frontends = {local.key};
  ASSERT_TRUE(t->Apply(more, {}).ok());
  EXPECT_EQ(t->ServiceOf(Be("198.18.64.1"), 80, lb::IpProto::kTcp, lb::Scope::kExternal), nullptr);
  for (int i = 0; i < 100; ++i) {
    const auto port = static_cast<uint16_t>(1000 + i);
    const ServiceEntry* e =
        t->ServiceOf(Be("198.18.64.2"), port, lb::IpProto::kTcp, lb::Scope::kExternal);
    ASSERT_NE(e, nullptr) << port;
    EXPECT_EQ(&t->ServiceAt(*e), t->services().Lookup(Ip("198.18.64.2"), port, lb::IpProto::kTcp,
                                                      lb::Scope::kExternal));
  }
}

TEST(HostTablesTest, ARefusedUpdateChangesNothing) {
  auto t = *HostTables::Create();
  Update u;
  u.upsert_segments = {MakeSegment("a", 1, "198.19.0.0/24", true)};
  u.upsert_pod_ports = {MakePod("pa", "198.19.0.2", "a")};
  ASSERT_TRUE(t->Apply(u, {{"pa", 5}}).ok());

  Update no_port;
  no_port.upsert_pod_ports = {MakePod("pb", "198.19.0.3", "a")};
  const absl::Status s = t->Apply(no_port, {{"pa", 5}});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("\"pb\""), std::string::npos) << s;

  Update v6;
  v6.upsert_pod_ports = {MakePod("pc", "198.19.0.4", "a")};
  v6.upsert_pod_ports[0].address = Ip("fd00:a70::4");
  EXPECT_EQ(t->Apply(v6, {{"pa", 5}, {"pc", 6}}).code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(t->PodByAddr(Be("198.19.0.3")), nullptr);
  EXPECT_NE(t->PodByAddr(Be("198.19.0.2")), nullptr);
  EXPECT_EQ(t->Dump().pod_ports.size(), 1u);
}

TEST(HostTablesTest, NextHopsFollowTheHostsRoutes) {
  auto t = *HostTables::Create();
  t->SetHostRoutes({HostRoute{.addr = Be("198.18.0.0"), .len = 20, .gateway = 0},
                    HostRoute{.addr = 0, .len = 0, .gateway = Be("198.18.0.1")}});
  EXPECT_EQ(t->NextHop(Be("198.18.0.12")), Be("198.18.0.12")) << "on the link";
  EXPECT_EQ(t->NextHop(Be("198.18.16.2")), Be("198.18.0.1")) << "through the gateway";
  t->SetHostRoutes({});
  EXPECT_EQ(t->NextHop(Be("198.18.16.2")), 0u) << "no route";
  EXPECT_EQ(t->NeighbourOf(Be("198.18.0.1")), nullptr);
  t->SetNeighbours({{Ip("198.18.0.1"), {2, 0, 0, 0, 0, 1}}});
  ASSERT_NE(t->NeighbourOf(Be("198.18.0.1")), nullptr);
}

// A remote block's destination appears once its next hop's MAC is known, with
// the outer headers the pipeline copies; every change gives a new version,
// so that no flow keeps a destination of other tables.
TEST(HostTablesTest, DestinationsAreResolvedAndVersioned) {
  auto t = *HostTables::Create();
  const uint32_t created = t->version();
  EXPECT_NE(created, 0u);
  Update u;
  u.upsert_segments = {MakeSegment("a", 7, "198.19.0.0/16", false)};
  u.upsert_pod_ports = {MakePod("pa", "198.19.0.2", "a")};
  u.upsert_routes = {{*lb::IpPrefix::Parse("198.19.4.0/24"), 7, "h2", Ip("198.18.0.12")}};
  u.set_node_addresses = true;
  u.node_addresses = {Ip("198.18.0.11")};
  // A service's backends: a local pod, one in the remote block, one outside
  // the cluster; and one past those its entry holds.
  Frontend f;
  f.key = {Ip("198.18.64.1"), 80, lb::IpProto::kTcp, lb::Scope::kExternal};
  uint16_t port = 8080;
  for (const char* addr :
       {"198.19.0.2", "198.19.4.9", "198.18.200.5", "198.19.0.2", "198.19.0.2"}) {
    f.config.backends.push_back({.endpoint = {Ip(addr), port++}});
  }
  u.upsert_frontends = {f};
  ASSERT_TRUE(t->Apply(u, {{"pa", 5}}).ok());
  const uint32_t applied = t->version();
  // The service's entry against what Route finds for each eligible backend
  // (in the model's order) within the entry's four: the pod's destination,
  // `remote` for the one in the remote block; none for the others.
  const auto expect_service_destinations = [&](uint32_t remote, const char* when) {
    const ServiceEntry* e =
        t->ServiceOf(Be("198.18.64.1"), 80, lb::IpProto::kTcp, lb::Scope::kExternal);
    ASSERT_NE(e, nullptr);
    ASSERT_EQ(e->eligible_count, 5);
    for (uint16_t i = 0; i < e->eligible_count; ++i) {
      const lb::Endpoint b = t->ServiceAt(*e).eligible[i].endpoint;
      EXPECT_EQ(e->backend(i), b);
      const uint32_t want = i >= ServiceEntry::kInlineBackends ? kNoDestination
                            : b.addr == Ip("198.19.0.2")
                                ? t->PodByAddr(Be("198.19.0.2"))->destination
                            : b.addr == Ip("198.19.4.9") ? remote
                                                         : kNoDestination;
      EXPECT_EQ(e->destination(i), want) << when << ": backend " << i << ", " << b.addr.ToString();
    }
  };
  EXPECT_NE(applied, created);

  const PodEntry* pod = t->PodByAddr(Be("198.19.0.2"));
  ASSERT_NE(pod, nullptr);
  ASSERT_NE(pod->destination, kNoDestination);
  const Destination& to_pod = t->destination(pod->destination);
  EXPECT_EQ(to_pod.kind, Destination::Kind::kPod);
  EXPECT_EQ(to_pod.port, 5);
  EXPECT_EQ(to_pod.mac, pod->mac);

  ASSERT_NE(t->RemoteBlockOf(Be("198.19.4.9")), nullptr);
  EXPECT_EQ(t->RemoteBlockOf(Be("198.19.4.9"))->destination, kNoDestination)
      << "no route, no neighbour: nothing to resolve yet";
  expect_service_destinations(kNoDestination, "a pod's only");
  t->SetHostRoutes({HostRoute{.addr = Be("198.18.0.0"), .len = 24, .gateway = 0}});
  t->SetNeighbours({{Ip("198.18.0.12"), {2, 0, 0, 0, 0, 0x12}}});
  EXPECT_NE(t->version(), applied);
  const RemoteBlock* block = t->RemoteBlockOf(Be("198.19.4.9"));
  ASSERT_NE(block->destination, kNoDestination);
  const Destination& remote = t->destination(block->destination);
  ASSERT_EQ(remote.kind, Destination::Kind::kEncap);
  EXPECT_EQ(remote.outer,
            MakeOuterHeaders({2, 0, 0, 0, 0, 0x12}, Be("198.18.0.11"), Be("198.18.0.12"), 7));
  // Renumbered, the pod's and the remote block's, in this version's numbers.
  expect_service_destinations(block->destination, "the remote block's too, once resolved");
}

TEST(HostTablesTest, OuterHeadersAreVxlanWithAChecksumOverAZeroLength) {
  const OuterHeaders h =
      MakeOuterHeaders({2, 0, 0, 0, 0, 0x12}, Be("198.18.0.11"), Be("198.18.0.12"), 0x123456);
  const uint8_t want[kVxlanOverhead] = {
      2,    0,    0, 0,  0,    0x12,  // next hop
      0,    0,    0, 0,  0,    0,     // the sender's MAC, written per frame
      0x08, 0x00,                     // IPv4
      0x45, 0,    0, 0,               // total length per frame
      0,    0,    0, 0,  64,   17,    // no id or fragment; TTL 64; UDP
      0xee, 0xb1,                     // checksum with a zero length
      198,  18,   0, 11, 198,  18,   0,    12, 0, 0, 0x12, 0xb5,  // source port per frame; 4789
      0,    0,    0, 0,                                           // length per frame; no checksum
      0x08, 0,    0, 0,  0x12, 0x34, 0x56, 0};
  EXPECT_EQ(std::memcmp(h.data(), want, kVxlanOverhead), 0);
}

}  // namespace
}  // namespace atl::dataplane::dpdk
