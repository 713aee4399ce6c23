#include "agent/renderer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/in_process_dataplane.h"

namespace atl::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr char kThisNode[] = "h1";

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

// --- Resources as the controller sends them.

api::ServicePort Port(std::string name, uint32_t port, api::Protocol proto = api::PROTOCOL_TCP,
                      uint32_t node_port = 0) {
  api::ServicePort p;
  p.set_name(name);
  p.set_port(port);
  p.set_protocol(proto);
  p.set_node_port(node_port);
  return p;
}

api::Resource Service(std::string ns, std::string name, std::vector<std::string> cluster_ips,
                      std::vector<api::ServicePort> ports,
                      api::ServiceType type = api::SERVICE_TYPE_CLUSTER_IP) {
  api::Resource r;
  api::Service* s = r.mutable_service();
  s->set_namespace_(ns);
  s->set_name(name);
  s->set_type(type);
  for (const std::string& ip : cluster_ips) s->add_cluster_ips(ip);
  for (const api::ServicePort& p : ports) *s->add_ports() = p;
  return r;
}

struct EndpointSpec {
  EndpointSpec(std::string a, std::string n = "h2") : address(std::move(a)), node(std::move(n)) {}

  std::string address;
  std::string node = "h2";
  std::optional<bool> ready;
  std::optional<bool> serving;
  std::optional<bool> terminating;
  uint32_t weight = 0;
};

api::Resource Slice(std::string ns, std::string name, std::string service,
                    std::vector<EndpointSpec> endpoints,
                    std::vector<std::pair<std::string, uint32_t>> ports,
                    api::AddressType type = api::ADDRESS_TYPE_IPV4,
                    api::Protocol proto = api::PROTOCOL_TCP) {
  api::Resource r;
  api::EndpointSlice* s = r.mutable_endpoint_slice();
  s->set_namespace_(ns);
  s->set_name(name);
  s->set_service_name(service);
  s->set_address_type(type);
  for (const EndpointSpec& spec : endpoints) {
    api::Endpoint* e = s->add_endpoints();
    e->add_addresses(spec.address);
    e->set_node_name(spec.node);
    e->set_weight(spec.weight);
    if (spec.ready) e->mutable_conditions()->set_ready(*spec.ready);
    if (spec.serving) e->mutable_conditions()->set_serving(*spec.serving);
    if (spec.terminating) e->mutable_conditions()->set_terminating(*spec.terminating);
  }
  for (const auto& [port_name, number] : ports) {
    api::EndpointPort* p = s->add_ports();
    p->set_name(port_name);
    p->set_port(number);
    p->set_protocol(proto);
  }
  return r;
}

api::Resource Node(std::string name, std::string underlay,
                   std::vector<std::pair<std::string, std::string>> blocks = {}) {
  api::Resource r;
  api::Node* n = r.mutable_node();
  n->set_name(name);
  n->set_underlay_address(underlay);
  for (const auto& [ns, cidr] : blocks) {
    api::NodeBlock* b = n->add_blocks();
    b->set_namespace_(ns);
    b->set_cidr(cidr);
  }
  return r;
}

api::Resource Segment(std::string ns, uint32_t id, std::string cidr, std::string gateway) {
  api::Resource r;
  api::Segment* s = r.mutable_segment();
  s->set_namespace_(ns);
  s->set_id(id);
  s->add_cidrs(cidr);
  s->set_gateway(gateway);
  return r;
}

api::Resource Namespace(std::string name, api::Isolation isolation = api::ISOLATION_UNSPECIFIED,
                        std::vector<std::string> admitted = {}, std::string egress_ip = "") {
  api::Resource r;
  api::Namespace* n = r.mutable_namespace_();
  n->set_name(name);
  n->set_isolation(isolation);
  for (const std::string& a : admitted) n->add_admitted_namespaces(a);
  n->set_egress_ip(egress_ip);
  return r;
}

api::ResourceKey Key(api::Kind kind, std::string ns, std::string name) {
  api::ResourceKey k;
  k.set_kind(kind);
  k.set_namespace_(ns);
  k.set_name(name);
  return k;
}

// The agent's loop without the network: apply, render, commit (or undo).
class Agent {
 public:
  absl::StatusOr<dataplane::Update> Snapshot(std::vector<api::Resource> resources) {
    auto changes = state_.ApplySnapshot(std::move(resources));
    if (!changes.ok()) return changes.status();
    return RenderAndCommit(*std::move(changes));
  }
  absl::StatusOr<dataplane::Update> Delta(std::vector<api::Resource> upserts,
                                          std::vector<api::ResourceKey> removals = {}) {
    auto changes = state_.ApplyDelta(std::move(upserts), removals);
    if (!changes.ok()) return changes.status();
    return RenderAndCommit(*std::move(changes));
  }
  // An Update that must render: fails the test otherwise.
  dataplane::Update MustSnapshot(std::vector<api::Resource> resources) {
    auto u = Snapshot(std::move(resources));
    EXPECT_TRUE(u.ok()) << u.status();
    return u.value_or(dataplane::Update{});
  }
  dataplane::Update MustDelta(std::vector<api::Resource> upserts,
                              std::vector<api::ResourceKey> removals = {}) {
    auto u = Delta(std::move(upserts), std::move(removals));
    EXPECT_TRUE(u.ok()) << u.status();
    return u.value_or(dataplane::Update{});
  }

  const DesiredState& state() const { return state_; }
  Renderer& renderer() { return renderer_; }
  dataplane::InProcessDataplane& dataplane() { return *dataplane_; }

 private:
  absl::StatusOr<dataplane::Update> RenderAndCommit(std::vector<Change> changes) {
    absl::StatusOr<dataplane::Update> update = renderer_.Render(state_, changes);
    if (!update.ok()) {
      state_.Undo(std::move(changes));
      return update.status();
    }
    if (absl::Status s = dataplane_->Apply(*update); !s.ok()) {
      renderer_.Abort();
      state_.Undo(std::move(changes));
      return s;
    }
    renderer_.Commit();
    return update;
  }

  DesiredState state_;
  Renderer renderer_{kThisNode};
  std::unique_ptr<dataplane::InProcessDataplane> dataplane_ =
      *dataplane::InProcessDataplane::Create();
};

const dataplane::Frontend* FindFrontend(const std::vector<dataplane::Frontend>& frontends,
                                        std::string_view addr, uint16_t port,
                                        lb::Scope scope = lb::Scope::kInternal,
                                        lb::IpProto proto = lb::IpProto::kTcp) {
  const lb::FrontendKey key{Addr(addr), port, proto, scope};
  for (const dataplane::Frontend& f : frontends) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

std::vector<std::string> Keys(const std::vector<dataplane::Frontend>& frontends) {
  std::vector<std::string> out;
  for (const dataplane::Frontend& f : frontends) out.push_back(f.key.ToString());
  return out;
}

std::vector<std::string> Keys(const std::vector<lb::FrontendKey>& keys) {
  std::vector<std::string> out;
  for (const lb::FrontendKey& k : keys) out.push_back(k.ToString());
  return out;
}

std::vector<std::string> Endpoints(const lb::ServiceConfig& config) {
  std::vector<std::string> out;
  for (const lb::Backend& b : config.backends) {
    out.push_back(absl::StrCat(b.endpoint.addr.ToString(), ":", b.endpoint.port));
  }
  std::sort(out.begin(), out.end());
  return out;
}

const lb::Backend* FindBackend(const lb::ServiceConfig& config, std::string_view addr) {
  for (const lb::Backend& b : config.backends) {
    if (b.endpoint.addr == Addr(addr)) return &b;
  }
  return nullptr;
}

// --- Services

TEST(Renderer, ClusterIpPerPortWithNames) {
  Agent agent;
  const dataplane::Update u = agent.MustSnapshot(
      {Service("shop", "web", {"198.18.64.1"}, {Port("http", 80), Port("", 443)}),
       Slice("shop", "web-1", "web", {{"198.19.0.20"}}, {{"http", 8080}, {"", 8443}})});
  EXPECT_THAT(Keys(u.upsert_frontends), UnorderedElementsAre("198.18.64.1:80/TCP (internal)",
                                                             "198.18.64.1:443/TCP (internal)"));
  const dataplane::Frontend* http = FindFrontend(u.upsert_frontends, "198.18.64.1", 80);
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->name, "shop/web:http");
  EXPECT_THAT(Endpoints(http->config), ElementsAre("198.19.0.20:8080"));
  EXPECT_EQ(http->config.affinity_timeout_s, 0u);
  const dataplane::Frontend* https = FindFrontend(u.upsert_frontends, "198.18.64.1", 443);
  ASSERT_NE(https, nullptr);
  EXPECT_EQ(https->name, "shop/web:443");
  EXPECT_THAT(Endpoints(https->config), ElementsAre("198.19.0.20:8443"));

  // What the dataplane holds is what was rendered.
  EXPECT_EQ(agent.dataplane().services().size(), 2u);
  EXPECT_EQ(agent.renderer().frontends(), 2u);
}

TEST(Renderer, NodePortAndLoadBalancerAndExternalIps) {
  Agent agent;
  api::Resource np =
      Service("shop", "np", {"198.18.64.2"}, {Port("http", 80, api::PROTOCOL_TCP, 30080)},
              api::SERVICE_TYPE_NODE_PORT);
  api::Resource lbs =
      Service("shop", "lb", {"198.18.64.3"}, {Port("dns", 53, api::PROTOCOL_UDP, 30053)},
              api::SERVICE_TYPE_LOAD_BALANCER);
  lbs.mutable_service()->add_load_balancer_ips("198.18.65.3");
  lbs.mutable_service()->add_external_ips("198.18.66.3");
  // Load-balancer addresses count for type LoadBalancer only; externalIPs for any type.
  api::Resource cip = Service("shop", "cip", {"198.18.64.4"}, {Port("http", 80)});
  cip.mutable_service()->add_load_balancer_ips("198.18.65.4");
  cip.mutable_service()->add_external_ips("198.18.66.4");
  const dataplane::Update u = agent.MustSnapshot({np, lbs, cip});
  EXPECT_THAT(
      Keys(u.upsert_frontends),
      UnorderedElementsAre("198.18.64.2:80/TCP (internal)", "*:30080/TCP (external)",
                           "198.18.64.3:53/UDP (internal)", "198.18.65.3:53/UDP (external)",
                           "198.18.66.3:53/UDP (external)", "*:30053/UDP (external)",
                           "198.18.64.4:80/TCP (internal)", "198.18.66.4:80/TCP (external)"));
  const dataplane::Frontend* node_port =
      FindFrontend(u.upsert_frontends, "0.0.0.0", 30080, lb::Scope::kExternal);
  ASSERT_NE(node_port, nullptr);
  EXPECT_TRUE(node_port->key.addr.IsV4());
  EXPECT_EQ(node_port->name, "shop/np:http");
}

TEST(Renderer, UnallocatedNodePortAnswersNowhere) {
  Agent agent;
  const dataplane::Update u = agent.MustSnapshot(
      {Service("shop", "np", {"198.18.64.2"}, {Port("http", 80)}, api::SERVICE_TYPE_NODE_PORT)});
  EXPECT_THAT(Keys(u.upsert_frontends), ElementsAre("198.18.64.2:80/TCP (internal)"));
}

TEST(Renderer, TrafficPoliciesAndAffinity) {
  Agent agent;
  api::Resource svc = Service("shop", "web", {"198.18.64.1"}, {Port("http", 80)});
  svc.mutable_service()->set_external_traffic_policy(api::TRAFFIC_POLICY_LOCAL);
  svc.mutable_service()->set_session_affinity(api::SESSION_AFFINITY_CLIENT_IP);
  api::Resource other = Service("shop", "api", {"198.18.64.2"}, {Port("http", 80)});
  other.mutable_service()->set_internal_traffic_policy(api::TRAFFIC_POLICY_LOCAL);
  other.mutable_service()->set_session_affinity(api::SESSION_AFFINITY_CLIENT_IP);
  other.mutable_service()->set_session_affinity_timeout_seconds(60);
  const dataplane::Update u = agent.MustSnapshot({svc, other});
  const dataplane::Frontend* web = FindFrontend(u.upsert_frontends, "198.18.64.1", 80);
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->config.external_policy, lb::TrafficPolicy::kLocal);
  EXPECT_EQ(web->config.internal_policy, lb::TrafficPolicy::kCluster);
  EXPECT_EQ(web->config.affinity_timeout_s, 10800u);  // Kubernetes' default
  const dataplane::Frontend* api_fe = FindFrontend(u.upsert_frontends, "198.18.64.2", 80);
  ASSERT_NE(api_fe, nullptr);
  EXPECT_EQ(api_fe->config.external_policy, lb::TrafficPolicy::kCluster);
  EXPECT_EQ(api_fe->config.internal_policy, lb::TrafficPolicy::kLocal);
  EXPECT_EQ(api_fe->config.affinity_timeout_s, 60u);
}

TEST(Renderer, HeadlessRendersNothing) {
  Agent agent;
  const dataplane::Update u =
      agent.MustSnapshot({Service("shop", "db", {"None"}, {Port("pg", 5432)}),
                          Slice("shop", "db-1", "db", {{"198.19.0.20"}}, {{"pg", 5432}})});
  EXPECT_THAT(u.upsert_frontends, IsEmpty());
}

TEST(Renderer, BackendPortsMatchByNameAndProtocol) {
  Agent agent;
  const dataplane::Update u = agent.MustSnapshot(
      {Service("shop", "web", {"198.18.64.1"},
               {Port("http", 80), Port("metrics", 9090), Port("dns", 53, api::PROTOCOL_UDP)}),
       Slice("shop", "web-1", "web", {{"198.19.0.20"}}, {{"http", 8080}, {"metrics", 9100}}),
       // Same name, other protocol: only the UDP port takes it.
       Slice("shop", "web-udp", "web", {{"198.19.0.30"}}, {{"http", 8081}, {"dns", 5353}},
             api::ADDRESS_TYPE_IPV4, api::PROTOCOL_UDP),
       // Another service's slice never counts.
       Slice("shop", "api-1", "api", {{"198.19.0.40"}}, {{"http", 8080}})});
  EXPECT_THAT(Endpoints(FindFrontend(u.upsert_frontends, "198.18.64.1", 80)->config),
              ElementsAre("198.19.0.20:8080"));
  EXPECT_THAT(Endpoints(FindFrontend(u.upsert_frontends, "198.18.64.1", 9090)->config),
              ElementsAre("198.19.0.20:9100"));
  EXPECT_THAT(Endpoints(FindFrontend(u.upsert_frontends, "198.18.64.1", 53, lb::Scope::kInternal,
                                     lb::IpProto::kUdp)
                            ->config),
              ElementsAre("198.19.0.30:5353"));
}

TEST(Renderer, EndpointConditionsWeightsAndLocality) {
  Agent agent;
  EndpointSpec unknown{"198.19.0.20"};
  EndpointSpec not_ready{"198.19.0.21"};
  not_ready.ready = false;
  EndpointSpec draining{"198.19.0.22"};
  draining.ready = false;
  draining.serving = true;
  draining.terminating = true;
  EndpointSpec gone{"198.19.0.23"};
  gone.ready = false;
  gone.serving = false;
  gone.terminating = true;
  EndpointSpec local{"198.19.0.24", kThisNode};
  local.weight = 3;
  const dataplane::Update u =
      agent.MustSnapshot({Service("shop", "web", {"198.18.64.1"}, {Port("http", 80)}),
                          Slice("shop", "web-1", "web", {unknown, not_ready, draining, gone, local},
                                {{"http", 8080}})});
  const lb::ServiceConfig& c = FindFrontend(u.upsert_frontends, "198.18.64.1", 80)->config;
  ASSERT_EQ(c.backends.size(), 5u);
  const lb::Backend* b = FindBackend(c, "198.19.0.20");
  EXPECT_TRUE(b->serving);
  EXPECT_FALSE(b->terminating);
  EXPECT_FALSE(b->node_local);
  EXPECT_EQ(b->weight, 1u);  // 0 means 1
  EXPECT_FALSE(FindBackend(c, "198.19.0.21")->serving);
  b = FindBackend(c, "198.19.0.22");
  EXPECT_TRUE(b->serving);
  EXPECT_TRUE(b->terminating);
  b = FindBackend(c, "198.19.0.23");
  EXPECT_FALSE(b->serving);
  EXPECT_TRUE(b->terminating);
  b = FindBackend(c, "198.19.0.24");
  EXPECT_TRUE(b->node_local);
  EXPECT_EQ(b->weight, 3u);

  // The dataplane's eligible set: serving, not terminating.
  const dataplane::Programmed p = agent.dataplane().Dump();
  ASSERT_EQ(p.frontends.size(), 1u);
  EXPECT_THAT(Endpoints(p.frontends[0].config),
              ElementsAre("198.19.0.20:8080", "198.19.0.24:8080"));
}

TEST(Renderer, LocalPolicyKeepsOnlyThisNodesEndpoints) {
  Agent agent;
  api::Resource svc =
      Service("shop", "web", {"198.18.64.1"}, {Port("http", 80, api::PROTOCOL_TCP, 30080)},
              api::SERVICE_TYPE_NODE_PORT);
  svc.mutable_service()->set_external_traffic_policy(api::TRAFFIC_POLICY_LOCAL);
  agent.MustSnapshot(
      {svc, Slice("shop", "web-1", "web", {{"198.19.0.20", "h2"}, {"198.19.0.21", kThisNode}},
                  {{"http", 8080}})});
  const dataplane::Programmed p = agent.dataplane().Dump();
  ASSERT_EQ(p.frontends.size(), 2u);
  for (const dataplane::Frontend& f : p.frontends) {
    if (f.key.scope == lb::Scope::kExternal) {
      EXPECT_THAT(Endpoints(f.config), ElementsAre("198.19.0.21:8080"));
    } else {
      EXPECT_THAT(Endpoints(f.config), ElementsAre("198.19.0.20:8080", "198.19.0.21:8080"));
    }
  }
}

TEST(Renderer, DuplicateEndpointsAcrossSlicesCountOnce) {
  Agent agent;
  const dataplane::Update u = agent.MustSnapshot(
      {Service("shop", "web", {"198.18.64.1"}, {Port("http", 80)}),
       Slice("shop", "web-a", "web", {{"198.19.0.20"}, {"198.19.0.21"}}, {{"http", 8080}}),
       Slice("shop", "web-b", "web", {{"198.19.0.21"}, {"198.19.0.22"}}, {{"http", 8080}})});
  EXPECT_THAT(Endpoints(FindFrontend(u.upsert_frontends, "198.18.64.1", 80)->config),
              ElementsAre("198.19.0.20:8080", "198.19.0.21:8080", "198.19.0.22:8080"));
}

TEST(Renderer, DualStackTakesEachFamilysSlices) {
  Agent agent;
  const dataplane::Update u = agent.MustSnapshot(
      {Service("shop", "web", {"198.18.64.1", "fd00:a70:40::1"},
               {Port("http", 80, api::PROTOCOL_TCP, 30080)}, api::SERVICE_TYPE_NODE_PORT),
       Slice("shop", "web-v4", "web", {{"198.19.0.20"}}, {{"http", 8080}}),
       Slice("shop", "web-v6", "web", {{"fd00:a70:1::20"}}, {{"http", 8080}},
             api::ADDRESS_TYPE_IPV6)});
  EXPECT_THAT(
      Keys(u.upsert_frontends),
      UnorderedElementsAre("198.18.64.1:80/TCP (internal)", "[fd00:a70:40::1]:80/TCP (internal)",
                           "*:30080/TCP (external)", "[*]:30080/TCP (external)"));
  EXPECT_THAT(Endpoints(FindFrontend(u.upsert_frontends, "fd00:a70:40::1", 80)->config),
              ElementsAre("fd00:a70:1::20:8080"));
  EXPECT_THAT(
      Endpoints(FindFrontend(u.upsert_frontends, "::", 30080, lb::Scope::kExternal)->config),
      ElementsAre("fd00:a70:1::20:8080"));
  EXPECT_THAT(
      Endpoints(FindFrontend(u.upsert_frontends, "0.0.0.0", 30080, lb::Scope::kExternal)->config),
      ElementsAre("198.19.0.20:8080"));
}

TEST(Renderer, MaglevSizeGrowsWithBackends) {
  Agent agent;
  std::vector<EndpointSpec> three = {{"198.19.0.1"}, {"198.19.0.2"}, {"198.19.0.3"}};
  std::vector<EndpointSpec> hundred;
  for (int i = 0; i < 100; ++i) hundred.push_back({absl::StrCat("198.19.1.", i + 1)});
  std::vector<EndpointSpec> weighted = {{"198.19.2.1"}, {"198.19.2.2"}};
  weighted[1].weight = 9;  // counts as 9 backends of weight 1: 1000 slots wanted
  const dataplane::Update u = agent.MustSnapshot({
      Service("shop", "none", {"198.18.64.1"}, {Port("http", 80)}),
      Service("shop", "three", {"198.18.64.2"}, {Port("http", 80)}),
      Slice("shop", "three-1", "three", three, {{"http", 8080}}),
      Service("shop", "hundred", {"198.18.64.3"}, {Port("http", 80)}),
      Slice("shop", "hundred-1", "hundred", hundred, {{"http", 8080}}),
      Service("shop", "weighted", {"198.18.64.4"}, {Port("http", 80)}),
      Slice("shop", "weighted-1", "weighted", weighted, {{"http", 8080}}),
  });
  EXPECT_EQ(FindFrontend(u.upsert_frontends, "198.18.64.1", 80)->config.maglev_size, 251u);
  EXPECT_EQ(FindFrontend(u.upsert_frontends, "198.18.64.2", 80)->config.maglev_size, 509u);
  EXPECT_EQ(FindFrontend(u.upsert_frontends, "198.18.64.3", 80)->config.maglev_size, 16381u);
  EXPECT_EQ(FindFrontend(u.upsert_frontends, "198.18.64.4", 80)->config.maglev_size, 1021u);
}

TEST(Renderer, RemovingAServiceRemovesItsFrontends) {
  Agent agent;
  agent.MustSnapshot({Service("shop", "web", {"198.18.64.1"}, {Port("http", 80), Port("", 443)}),
                      Service("shop", "api", {"198.18.64.2"}, {Port("http", 80)})});
  const dataplane::Update u = agent.MustDelta({}, {Key(api::KIND_SERVICE, "shop", "web")});
  EXPECT_THAT(Keys(u.remove_frontends), UnorderedElementsAre("198.18.64.1:80/TCP (internal)",
                                                             "198.18.64.1:443/TCP (internal)"));
  EXPECT_THAT(u.upsert_frontends, IsEmpty());
  EXPECT_EQ(agent.dataplane().services().size(), 1u);

  // A port dropped from a Service removes that port's frontend alone.
  const dataplane::Update v =
      agent.MustDelta({Service("shop", "api", {"198.18.64.2"}, {Port("grpc", 90)})});
  EXPECT_THAT(Keys(v.remove_frontends), ElementsAre("198.18.64.2:80/TCP (internal)"));
  EXPECT_THAT(Keys(v.upsert_frontends), ElementsAre("198.18.64.2:90/TCP (internal)"));
}

TEST(Renderer, SliceChangeTouchesOnlyItsService) {
  Agent agent;
  std::vector<api::Resource> snapshot;
  for (int i = 0; i < 200; ++i) {
    const std::string name = absl::StrCat("svc", i);
    snapshot.push_back(Service("shop", name,
                               {absl::StrCat("198.18.", 64 + i / 250, ".", i % 250 + 1)},
                               {Port("http", 80), Port("metrics", 9090)}));
    snapshot.push_back(Slice("shop", name + "-1", name,
                             {{absl::StrCat("198.19.", i / 250, ".", i % 250 + 1)}},
                             {{"http", 8080}, {"metrics", 9100}}));
  }
  const dataplane::Update first = agent.MustSnapshot(snapshot);
  EXPECT_EQ(first.upsert_frontends.size(), 400u);

  const dataplane::Update u = agent.MustDelta(
      {Slice("shop", "svc7-1", "svc7", {{"198.19.0.8"}, {"198.19.9.9"}}, {{"http", 8080}})});
  // svc7's http frontend gains a backend, its metrics frontend loses its only one.
  ASSERT_EQ(u.upsert_frontends.size(), 2u);
  for (const dataplane::Frontend& f : u.upsert_frontends) {
    EXPECT_EQ(f.name.substr(0, 10), "shop/svc7:");
  }
  EXPECT_THAT(u.remove_frontends, IsEmpty());
  EXPECT_THAT(u.upsert_segments, IsEmpty());
  EXPECT_THAT(u.upsert_routes, IsEmpty());
  EXPECT_FALSE(u.set_node_addresses);

  // The same slice again changes nothing at all.
  EXPECT_TRUE(agent
                  .MustDelta({Slice("shop", "svc7-1", "svc7", {{"198.19.0.8"}, {"198.19.9.9"}},
                                    {{"http", 8080}})})
                  .empty());
}

TEST(Renderer, SliceMovingBetweenServicesRerendersBoth) {
  Agent agent;
  agent.MustSnapshot({Service("shop", "a", {"198.18.64.1"}, {Port("http", 80)}),
                      Service("shop", "b", {"198.18.64.2"}, {Port("http", 80)}),
                      Slice("shop", "s", "a", {{"198.19.0.20"}}, {{"http", 8080}})});
  const dataplane::Update u =
      agent.MustDelta({Slice("shop", "s", "b", {{"198.19.0.20"}}, {{"http", 8080}})});
  ASSERT_EQ(u.upsert_frontends.size(), 2u);
  EXPECT_THAT(Endpoints(FindFrontend(u.upsert_frontends, "198.18.64.1", 80)->config), IsEmpty());
  EXPECT_THAT(Endpoints(FindFrontend(u.upsert_frontends, "198.18.64.2", 80)->config),
              ElementsAre("198.19.0.20:8080"));
}

TEST(Renderer, FrontendClaimedByTwoServicesIsAnError) {
  Agent agent;
  api::Resource a = Service("shop", "a", {"198.18.64.1"}, {Port("http", 80)});
  a.mutable_service()->add_external_ips("198.18.66.1");
  agent.MustSnapshot({a});
  api::Resource b = Service("shop", "b", {"198.18.64.2"}, {Port("http", 80)});
  b.mutable_service()->add_external_ips("198.18.66.1");
  const auto u = agent.Delta({b});
  EXPECT_THAT(u.status().message(), HasSubstr("198.18.66.1:80/TCP (external)"));
  EXPECT_THAT(u.status().message(), HasSubstr("Service shop/a"));
  // Moving the address from one to the other in one delta is fine.
  a.mutable_service()->clear_external_ips();
  const dataplane::Update moved = agent.MustDelta({a, b});
  EXPECT_THAT(Keys(moved.upsert_frontends), UnorderedElementsAre("198.18.64.2:80/TCP (internal)",
                                                                 "198.18.66.1:80/TCP (external)"));
  EXPECT_THAT(moved.remove_frontends, IsEmpty());
  EXPECT_EQ(agent.dataplane().Dump().frontends.size(), 3u);
}

// --- Malformed input and recovery

TEST(Renderer, MalformedDataNamesResourceAndValue) {
  struct Case {
    api::Resource resource;
    std::string want;
  };
  api::Resource bad_egress = Namespace("shop");
  bad_egress.mutable_namespace_()->set_egress_ip("198.18.300.1");
  const Case cases[] = {
      {Service("shop", "web", {"198.18.64"}, {Port("http", 80)}),
       "Service shop/web: cluster IP \"198.18.64\" is not an IP address"},
      {Service("shop", "web", {"198.18.64.1"}, {Port("http", 70000)}),
       "Service shop/web port \"http\": port number 70000"},
      {Slice("shop", "web-1", "web", {{"198.19.0.x"}}, {{"http", 8080}}),
       "EndpointSlice shop/web-1: endpoint address \"198.19.0.x\" is not an IP address"},
      {Slice("shop", "web-1", "web", {{"fd00:a70:1::20"}}, {{"http", 8080}}),
       "EndpointSlice shop/web-1: endpoint address \"fd00:a70:1::20\" is not IPv4"},
      {Node("h2", "198.18.0.2", {{"shop", "198.19.0.0/33"}}),
       "Node h2: block of namespace \"shop\" \"198.19.0.0/33\" is not a CIDR"},
      {Node(kThisNode, "h1.example"), "Node h1: underlay address \"h1.example\""},
      {Segment("shop", 1u << 24, "198.19.0.0/24", "198.19.0.1"), "Segment shop: id 16777216"},
      {Segment("shop", 7, "198.19.0.1/24", "198.19.0.1"), "Segment shop: CIDR \"198.19.0.1/24\""},
      {bad_egress, "Namespace shop: egress IP \"198.18.300.1\""},
  };
  for (const Case& c : cases) {
    Agent agent;
    agent.MustSnapshot({Service("shop", "web", {"198.18.64.1"}, {Port("http", 80)}),
                        Segment("shop", 7, "198.19.0.0/24", "198.19.0.1")});
    const dataplane::Programmed before = agent.dataplane().Dump();
    const auto u = agent.Delta({c.resource});
    EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument) << c.want;
    EXPECT_THAT(u.status().message(), HasSubstr(c.want));
    // The agent keeps its last good state: held resources and programmed tables.
    EXPECT_EQ(agent.state().size(), 2u);
    EXPECT_EQ(agent.dataplane().Dump().frontends.size(), before.frontends.size());
    EXPECT_EQ(agent.dataplane().Dump().segments, before.segments);
  }
}

TEST(Renderer, AbortRendersAgainFromTheCommittedState) {
  DesiredState state;
  Renderer renderer(kThisNode);
  auto changes = state.ApplySnapshot({Service("shop", "web", {"198.18.64.1"}, {Port("http", 80)})});
  ASSERT_TRUE(changes.ok());
  auto first = renderer.Render(state, *changes);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->upsert_frontends.size(), 1u);
  renderer.Abort();
  state.Undo(*std::move(changes));

  changes = state.ApplySnapshot({Service("shop", "web", {"198.18.64.1"}, {Port("http", 80)})});
  ASSERT_TRUE(changes.ok());
  auto again = renderer.Render(state, *changes);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->upsert_frontends.size(), 1u);  // not taken as held
  renderer.Commit();
  EXPECT_EQ(renderer.frontends(), 1u);
}

TEST(Renderer, DataplaneRefusalLeavesStateAndRendererAsTheyWere) {
  Agent agent;
  agent.MustSnapshot({Service("shop", "web", {"198.18.64.1"}, {Port("http", 80)})});
  // SCTP cannot change ports, which only the dataplane checks.
  const auto u =
      agent.Delta({Service("shop", "sctp", {"198.18.64.2"}, {Port("s", 9, api::PROTOCOL_SCTP)}),
                   Slice("shop", "sctp-1", "sctp", {{"198.19.0.20"}}, {{"s", 10}},
                         api::ADDRESS_TYPE_IPV4, api::PROTOCOL_SCTP)});
  EXPECT_THAT(u.status().message(), HasSubstr("shop/sctp:s"));
  EXPECT_EQ(agent.state().size(), 1u);
  EXPECT_EQ(agent.renderer().frontends(), 1u);
  // The next version renders relative to what the dataplane really holds.
  const dataplane::Update v = agent.MustDelta(
      {Service("shop", "sctp", {"198.18.64.2"}, {Port("s", 9, api::PROTOCOL_SCTP)})});
  EXPECT_THAT(Keys(v.upsert_frontends), ElementsAre("198.18.64.2:9/SCTP (internal)"));
}

// --- Segments, routes, node addresses

TEST(Renderer, SegmentsFromSegmentAndNamespace) {
  Agent agent;
  const dataplane::Update u =
      agent.MustSnapshot({Segment("shop", 7, "198.19.0.0/24", "198.19.0.1"),
                          Namespace("shop", api::ISOLATION_UNSPECIFIED, {"ops"}),
                          Segment("web", 8, "198.19.1.0/24", "198.19.1.1"),
                          Namespace("web", api::ISOLATION_OPEN, {}, "198.18.16.5"),
                          // A Namespace without its segment yet programs nothing.
                          Namespace("new")});
  ASSERT_EQ(u.upsert_segments.size(), 2u);
  const dataplane::Segment& shop = u.upsert_segments[0];
  EXPECT_EQ(shop.name, "shop");
  EXPECT_EQ(shop.vni, 7u);
  EXPECT_THAT(shop.cidrs, ElementsAre(Prefix("198.19.0.0/24")));
  EXPECT_EQ(shop.gateway, Addr("198.19.0.1"));
  EXPECT_TRUE(shop.isolated);
  EXPECT_THAT(shop.admitted, ElementsAre("ops"));
  EXPECT_TRUE(shop.egress_ip.IsUnspecified());
  const dataplane::Segment& web = u.upsert_segments[1];
  EXPECT_FALSE(web.isolated);
  EXPECT_EQ(web.egress_ip, Addr("198.18.16.5"));

  // A Namespace change re-renders its segment; removing the segment removes it.
  const dataplane::Update v = agent.MustDelta({Namespace("shop", api::ISOLATION_OPEN)});
  ASSERT_EQ(v.upsert_segments.size(), 1u);
  EXPECT_FALSE(v.upsert_segments[0].isolated);
  EXPECT_THAT(v.upsert_segments[0].admitted, IsEmpty());
  const dataplane::Update w = agent.MustDelta({}, {Key(api::KIND_SEGMENT, "", "web")});
  EXPECT_THAT(w.remove_segments, ElementsAre("web"));
  EXPECT_EQ(agent.renderer().segments(), 1u);
}

TEST(Renderer, RoutesToRemoteBlocksAndNodeAddresses) {
  Agent agent;
  const dataplane::Update u = agent.MustSnapshot(
      {Segment("shop", 7, "198.19.0.0/24", "198.19.0.1"),
       Segment("web", 8, "198.19.1.0/24", "198.19.1.1"),
       Node(kThisNode, "198.18.0.1", {{"shop", "198.19.0.0/26"}}),
       Node("h2", "198.18.0.2", {{"shop", "198.19.0.64/26"}, {"web", "198.19.1.0/26"}}),
       Node("h3", "198.18.0.3", {{"shop", "198.19.0.128/26"}})});
  EXPECT_THAT(u.upsert_routes,
              UnorderedElementsAre(
                  dataplane::Route{Prefix("198.19.0.64/26"), 7, "h2", Addr("198.18.0.2")},
                  dataplane::Route{Prefix("198.19.1.0/26"), 8, "h2", Addr("198.18.0.2")},
                  dataplane::Route{Prefix("198.19.0.128/26"), 7, "h3", Addr("198.18.0.3")}));
  EXPECT_TRUE(u.set_node_addresses);
  EXPECT_THAT(u.node_addresses, ElementsAre(Addr("198.18.0.1")));

  // h2 loses a block and moves; h3 leaves.
  const dataplane::Update v = agent.MustDelta(
      {Node("h2", "198.18.0.12", {{"shop", "198.19.0.64/26"}})}, {Key(api::KIND_NODE, "", "h3")});
  EXPECT_THAT(v.upsert_routes, ElementsAre(dataplane::Route{Prefix("198.19.0.64/26"), 7, "h2",
                                                            Addr("198.18.0.12")}));
  EXPECT_THAT(v.remove_routes,
              UnorderedElementsAre(Prefix("198.19.1.0/26"), Prefix("198.19.0.128/26")));
  EXPECT_FALSE(v.set_node_addresses);
  EXPECT_EQ(agent.dataplane().Dump().routes.size(), 1u);

  // This node's own address change is what NodePorts answer on.
  const dataplane::Update w = agent.MustDelta({Node(kThisNode, "198.18.0.11")});
  EXPECT_TRUE(w.set_node_addresses);
  EXPECT_THAT(w.node_addresses, ElementsAre(Addr("198.18.0.11")));
  EXPECT_THAT(w.upsert_routes, IsEmpty());
  EXPECT_THAT(agent.dataplane().Dump().node_addresses, ElementsAre(Addr("198.18.0.11")));
}

TEST(Renderer, BlockWaitsForItsSegment) {
  Agent agent;
  const dataplane::Update u =
      agent.MustSnapshot({Node("h2", "198.18.0.2", {{"shop", "198.19.0.64/26"}})});
  EXPECT_THAT(u.upsert_routes, IsEmpty());

  const dataplane::Update v = agent.MustDelta({Segment("shop", 7, "198.19.0.0/24", "198.19.0.1")});
  EXPECT_THAT(v.upsert_routes,
              ElementsAre(dataplane::Route{Prefix("198.19.0.64/26"), 7, "h2", Addr("198.18.0.2")}));
  EXPECT_EQ(v.upsert_segments.size(), 1u);

  // A new VNI moves the route with it; the segment leaving takes the route along.
  const dataplane::Update w = agent.MustDelta({Segment("shop", 9, "198.19.0.0/24", "198.19.0.1")});
  ASSERT_EQ(w.upsert_routes.size(), 1u);
  EXPECT_EQ(w.upsert_routes[0].vni, 9u);
  const dataplane::Update x = agent.MustDelta({}, {Key(api::KIND_SEGMENT, "", "shop")});
  EXPECT_THAT(x.remove_routes, ElementsAre(Prefix("198.19.0.64/26")));
  EXPECT_THAT(x.remove_segments, ElementsAre("shop"));
}

TEST(Renderer, RemovingEverythingLeavesTheDataplaneEmpty) {
  Agent agent;
  agent.MustSnapshot({Service("shop", "web", {"198.18.64.1"}, {Port("http", 80)}),
                      Slice("shop", "web-1", "web", {{"198.19.0.20"}}, {{"http", 8080}}),
                      Segment("shop", 7, "198.19.0.0/24", "198.19.0.1"),
                      Node(kThisNode, "198.18.0.1"),
                      Node("h2", "198.18.0.2", {{"shop", "198.19.0.64/26"}})});
  const dataplane::Update u = agent.MustSnapshot({});
  EXPECT_EQ(u.remove_frontends.size(), 1u);
  EXPECT_EQ(u.remove_segments.size(), 1u);
  EXPECT_EQ(u.remove_routes.size(), 1u);
  EXPECT_TRUE(u.set_node_addresses);
  EXPECT_THAT(u.node_addresses, IsEmpty());
  const dataplane::Programmed p = agent.dataplane().Dump();
  EXPECT_THAT(p.frontends, IsEmpty());
  EXPECT_THAT(p.segments, IsEmpty());
  EXPECT_THAT(p.routes, IsEmpty());
  EXPECT_EQ(agent.renderer().frontends() + agent.renderer().routes() + agent.renderer().segments(),
            0u);
}

}  // namespace
}  // namespace atl::agent
