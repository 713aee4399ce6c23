#include "controller/model.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace atl::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

api::Resource R(const std::string& text) {
  api::Resource r;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &r)) << text;
  return r;
}

api::Resource Ns(const std::string& name, const std::string& cidr = "") {
  return R(absl::StrCat("namespace { name: '", name, "' cidr: '", cidr, "' }"));
}
api::Resource Svc(const std::string& ns, const std::string& name, const std::string& body = "") {
  return R(absl::StrCat("service { namespace: '", ns, "' name: '", name, "' ",
                        body.empty() ? "ports { port: 80 }" : body, " }"));
}
api::Resource NodePortSvc(const std::string& ns, const std::string& name,
                          const std::string& ports = "ports { port: 80 }") {
  return Svc(ns, name, "type: SERVICE_TYPE_NODE_PORT " + ports);
}
api::Resource Slice(const std::string& ns, const std::string& name, int endpoints = 1) {
  std::string body;
  for (int i = 0; i < endpoints; ++i) {
    body += absl::StrCat("endpoints { addresses: '198.19.", i / 250, ".", i % 250 + 2, "' } ");
  }
  return R(absl::StrCat("endpoint_slice { namespace: '", ns, "' name: '", name,
                        "' service_name: 'web' ", body, " ports { port: 8080 } }"));
}
api::Resource Node(const std::string& name, const std::string& underlay) {
  return R(absl::StrCat("node { name: '", name, "' underlay_address: '", underlay, "' }"));
}

api::ResourceKey Key(api::Kind kind, const std::string& ns, const std::string& name) {
  return MakeKey(kind, ns, name);
}

class ModelTest : public ::testing::Test {
 protected:
  explicit ModelTest(ClusterConfig config = ClusterConfig::Default()) : model_(config) {}

  // Plans and commits, as the controller does after the store wrote the change.
  Changes Apply(std::vector<api::Resource> batch) {
    absl::StatusOr<Changes> c = model_.PlanApply(batch);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return {};
    model_.Commit(*c);
    return *c;
  }
  absl::Status ApplyError(std::vector<api::Resource> batch) {
    const size_t before = model_.size();
    absl::StatusOr<Changes> c = model_.PlanApply(batch);
    EXPECT_FALSE(c.ok());
    EXPECT_EQ(model_.size(), before);
    return c.status();
  }
  Changes Delete(std::vector<api::ResourceKey> keys) {
    absl::StatusOr<Changes> c = model_.PlanDelete(keys);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return {};
    model_.Commit(*c);
    return *c;
  }
  Changes AllocateBlock(const std::string& node, const std::string& ns) {
    absl::StatusOr<Changes> c = model_.PlanAllocateBlock(node, ns);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return {};
    model_.Commit(*c);
    return *c;
  }
  const api::Service& StoredService(const std::string& ns, const std::string& name) {
    const api::Resource* r = model_.Get(Key(api::KIND_SERVICE, ns, name));
    EXPECT_NE(r, nullptr) << ns << "/" << name;
    static const api::Resource kEmpty;
    return r ? r->service() : kEmpty.service();
  }
  const api::Segment& StoredSegment(const std::string& ns) {
    const api::Resource* r = model_.Get(Key(api::KIND_SEGMENT, "", ns));
    EXPECT_NE(r, nullptr) << ns;
    static const api::Resource kEmpty;
    return r ? r->segment() : kEmpty.segment();
  }
  std::vector<std::string> Blocks(const std::string& node) {
    std::vector<std::string> out;
    const api::Resource* r = model_.Get(Key(api::KIND_NODE, "", node));
    if (r == nullptr) return out;
    for (const api::NodeBlock& b : r->node().blocks()) {
      out.push_back(absl::StrCat(b.namespace_(), " ", b.cidr()));
    }
    return out;
  }

  Model model_;
};

// --- Keys ----------------------------------------------------------------------

TEST(KeysTest, DescribeAndKeyOf) {
  EXPECT_EQ(Describe(KeyOf(Svc("shop", "web"))), "Service shop/web");
  EXPECT_EQ(Describe(KeyOf(Ns("shop"))), "Namespace shop");
  EXPECT_EQ(Describe(KeyOf(R("segment { namespace: 'shop' }"))), "Segment shop");
  EXPECT_EQ(Describe(KeyOf(Slice("shop", "web-1"))), "EndpointSlice shop/web-1");
  EXPECT_EQ(Describe(KeyOf(Node("n1", "198.18.0.11"))), "Node n1");
  EXPECT_EQ(QuotedKey(KeyOf(Svc("shop", "web"))), "Service \"shop/web\"");
  EXPECT_EQ(KeyOf(Ns("shop")).kind(), api::KIND_NAMESPACE);
  EXPECT_EQ(KeyOf(Ns("shop")).namespace_(), "");
}

// --- Namespaces and segments ----------------------------------------------------

TEST_F(ModelTest, NamespaceGetsSegmentWithVniCidrAndGateway) {
  absl::StatusOr<Changes> plan = model_.PlanApply(std::vector{Ns("shop"), Ns("bank")});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(model_.size(), 0u) << "planning does not change the model";
  ASSERT_THAT(plan->upserts, SizeIs(4));
  EXPECT_EQ(plan->upserts[0].namespace_().cidr(), "198.19.0.0/24");
  EXPECT_EQ(plan->upserts[0].namespace_().isolation(), api::ISOLATION_ISOLATED);
  const api::Segment& shop = plan->upserts[1].segment();
  EXPECT_EQ(shop.namespace_(), "shop");
  EXPECT_EQ(shop.id(), 1u);
  EXPECT_THAT(shop.cidrs(), ElementsAre("198.19.0.0/24"));
  EXPECT_EQ(shop.gateway(), "198.19.0.1");
  const api::Segment& bank = plan->upserts[3].segment();
  EXPECT_EQ(bank.id(), 2u);
  EXPECT_THAT(bank.cidrs(), ElementsAre("198.19.1.0/24"));
  EXPECT_EQ(bank.gateway(), "198.19.1.1");
  model_.Commit(*plan);
  EXPECT_EQ(model_.size(), 4u);
  EXPECT_EQ(StoredSegment("bank").id(), 2u);
}

TEST_F(ModelTest, ReapplyingANamespaceKeepsItsSegment) {
  Apply({Ns("shop")});
  Changes again = Apply({R("namespace { name: 'shop' isolation: ISOLATION_OPEN }")});
  ASSERT_THAT(again.upserts, SizeIs(1)) << "no new segment";
  EXPECT_EQ(again.upserts[0].namespace_().cidr(), "198.19.0.0/24");
  EXPECT_EQ(again.upserts[0].namespace_().isolation(), api::ISOLATION_OPEN);
  EXPECT_EQ(StoredSegment("shop").id(), 1u);
  // Naming the same CIDR is fine; another one is not.
  Apply({Ns("shop", "198.19.0.0/24")});
  absl::Status s = ApplyError({Ns("shop", "198.19.9.0/24")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Namespace \"shop\": spec.cidr: field is immutable (198.19.0.0/24 -> 198.19.9.0/24)");
}

TEST_F(ModelTest, RequestedCidrMustNotOverlapAnotherSegment) {
  Apply({Ns("a", "198.19.0.0/23")});
  absl::Status s = ApplyError({Ns("b", "198.19.1.0/24")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Namespace \"b\": spec.cidr: 198.19.1.0/24 overlaps the segment of Namespace \"a\" "
            "(198.19.0.0/23)");
  // The same within one batch.
  s = ApplyError({Ns("c", "198.19.8.0/22"), Ns("d", "198.19.10.0/24")});
  EXPECT_EQ(s.message(),
            "Namespace \"d\": spec.cidr: 198.19.10.0/24 overlaps the segment of Namespace \"c\" "
            "(198.19.8.0/22)");
  // Allocation skips requested CIDRs, even ones later in the same batch.
  Changes c = Apply({Ns("e"), Ns("f", "198.19.2.0/24")});
  EXPECT_EQ(c.upserts[0].namespace_().cidr(), "198.19.3.0/24");
  EXPECT_EQ(c.upserts[2].namespace_().cidr(), "198.19.2.0/24");
  EXPECT_EQ(c.upserts[3].segment().gateway(), "198.19.2.1");
}

TEST_F(ModelTest, PodCidrFullIsResourceExhausted) {
  Apply({Ns("big", "198.19.0.0/17"), Ns("big2", "198.19.128.0/17")});
  absl::Status s = ApplyError({Ns("shop")});
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(),
            "Namespace \"shop\": the pod CIDR 198.19.0.0/16 has no free /24 left "
            "for the namespace's segment");
}

// --- Services ---------------------------------------------------------------------

TEST_F(ModelTest, ServiceGetsDefaultsAndTheNextClusterIp) {
  Apply({Ns("shop")});
  Changes c = Apply({Svc("shop", "web"), Svc("shop", "api")});
  ASSERT_THAT(c.upserts, SizeIs(2));
  const api::Service& web = c.upserts[0].service();
  EXPECT_THAT(web.cluster_ips(), ElementsAre("198.18.64.1"));
  EXPECT_EQ(web.type(), api::SERVICE_TYPE_CLUSTER_IP);
  EXPECT_EQ(web.ports(0).protocol(), api::PROTOCOL_TCP);
  EXPECT_EQ(web.ports(0).node_port(), 0u);
  EXPECT_THAT(c.upserts[1].service().cluster_ips(), ElementsAre("198.18.64.2"));
  EXPECT_THAT(StoredService("shop", "api").cluster_ips(), ElementsAre("198.18.64.2"));
}

TEST_F(ModelTest, ServiceNeedsItsNamespace) {
  absl::Status s = ApplyError({Svc("x", "web")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "Service \"x/web\": namespace \"x\" does not exist");
  s = ApplyError({Slice("x", "web-1")});
  EXPECT_EQ(s.message(), "EndpointSlice \"x/web-1\": namespace \"x\" does not exist");
  // A namespace in the same batch counts, wherever it stands.
  Changes c = Apply({Svc("x", "web"), Slice("x", "web-1"), Ns("x")});
  EXPECT_THAT(c.upserts, SizeIs(4));
}

TEST_F(ModelTest, ClusterIpIsImmutableAndKeptWhenLeftOut) {
  Apply({Ns("shop"), Svc("shop", "web")});
  Changes c = Apply({Svc("shop", "web", "ports { port: 8080 }")});
  EXPECT_THAT(c.upserts[0].service().cluster_ips(), ElementsAre("198.18.64.1"));
  EXPECT_EQ(c.upserts[0].service().ports(0).port(), 8080u);
  Apply({Svc("shop", "web", "cluster_ips: '198.18.64.1' ports { port: 80 }")});
  absl::Status s =
      ApplyError({Svc("shop", "web", "cluster_ips: '198.18.64.9' ports { port: 80 }")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Service \"shop/web\": spec.clusterIPs: field is immutable (198.18.64.1 -> "
            "198.18.64.9)");
  s = ApplyError({Svc("shop", "web", "cluster_ips: 'None'")});
  EXPECT_THAT(s.message(), HasSubstr("field is immutable (198.18.64.1 -> None)"));
}

TEST_F(ModelTest, ChosenClusterIpMustBeFree) {
  Apply({Ns("shop"), Svc("shop", "web", "cluster_ips: '198.18.64.10' ports { port: 80 }")});
  absl::Status s =
      ApplyError({Svc("shop", "api", "cluster_ips: '198.18.64.10' ports { port: 80 }")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Service \"shop/api\": spec.clusterIPs[0]: 198.18.64.10 is already used by Service "
            "\"shop/web\"");
  s = ApplyError({Svc("shop", "a", "cluster_ips: '198.18.64.20' ports { port: 80 }"),
                  Svc("shop", "b", "cluster_ips: '198.18.64.20' ports { port: 80 }")});
  EXPECT_EQ(s.message(),
            "Service \"shop/b\": spec.clusterIPs[0]: 198.18.64.20 is already used by Service "
            "\"shop/a\"");
}

TEST_F(ModelTest, ChosenClusterIpsAreClaimedBeforeAllocation) {
  Apply({Ns("shop")});
  Changes c = Apply({Svc("shop", "auto"),
                     Svc("shop", "chosen", "cluster_ips: '198.18.64.1' ports { port: 80 }")});
  EXPECT_THAT(c.upserts[0].service().cluster_ips(), ElementsAre("198.18.64.2"));
  EXPECT_THAT(c.upserts[1].service().cluster_ips(), ElementsAre("198.18.64.1"));
}

TEST_F(ModelTest, FreedClusterIpIsNotReusedAtOnce) {
  Apply({Ns("shop"), Svc("shop", "a"), Svc("shop", "b")});
  Delete({Key(api::KIND_SERVICE, "shop", "a")});
  Changes c = Apply({Svc("shop", "c")});
  EXPECT_THAT(c.upserts[0].service().cluster_ips(), ElementsAre("198.18.64.3"));
  // The freed address is free, though: a user may take it.
  Apply({Svc("shop", "d", "cluster_ips: '198.18.64.1' ports { port: 80 }")});
}

TEST_F(ModelTest, HeadlessServiceGetsNoClusterIp) {
  Apply({Ns("shop")});
  Changes c = Apply({Svc("shop", "db", "cluster_ips: 'None'"), Svc("shop", "web")});
  EXPECT_THAT(c.upserts[0].service().cluster_ips(), ElementsAre("None"));
  EXPECT_THAT(c.upserts[1].service().cluster_ips(), ElementsAre("198.18.64.1"));
  c = Apply({Svc("shop", "db", "ports { port: 5432 }")});
  EXPECT_THAT(c.upserts[0].service().cluster_ips(), ElementsAre("None"));
}

TEST_F(ModelTest, NodePortsAreAllocatedKeptAndChecked) {
  Apply({Ns("shop")});
  Changes c = Apply({NodePortSvc("shop", "web",
                                 "ports { name: 'http' port: 80 } ports { name: 'https' port: 443 "
                                 "node_port: 30000 }")});
  const api::Service& web = c.upserts[0].service();
  EXPECT_EQ(web.ports(0).node_port(), 30001u) << "30000 is claimed by the same service";
  EXPECT_EQ(web.ports(1).node_port(), 30000u);
  // Re-applied without nodePorts, the ports keep theirs, matched by name.
  c = Apply({NodePortSvc("shop", "web",
                         "ports { name: 'https' port: 8443 } ports { name: 'http' port: 80 }")});
  EXPECT_EQ(c.upserts[0].service().ports(0).node_port(), 30000u);
  EXPECT_EQ(c.upserts[0].service().ports(1).node_port(), 30001u);

  absl::Status s = ApplyError({NodePortSvc("shop", "api", "ports { port: 80 node_port: 30001 }")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Service \"shop/api\": spec.ports[0].nodePort: 30001/TCP is already used by Service "
            "\"shop/web\"");
  // Another protocol has its own nodePorts.
  c = Apply(
      {NodePortSvc("shop", "dns", "ports { port: 53 protocol: PROTOCOL_UDP node_port: 30001 }")});
  EXPECT_EQ(c.upserts[0].service().ports(0).node_port(), 30001u);
  c = Apply({NodePortSvc("shop", "dns2", "ports { port: 53 protocol: PROTOCOL_UDP }")});
  EXPECT_EQ(c.upserts[0].service().ports(0).node_port(), 30000u);
  c = Apply({NodePortSvc("shop", "dns3", "ports { port: 53 protocol: PROTOCOL_UDP }")});
  EXPECT_EQ(c.upserts[0].service().ports(0).node_port(), 30002u);
}

TEST_F(ModelTest, TypeChangesAllocateAndDropNodePorts) {
  Apply({Ns("shop"), Svc("shop", "web")});
  Changes c = Apply({NodePortSvc("shop", "web")});
  EXPECT_EQ(c.upserts[0].service().ports(0).node_port(), 30000u);
  EXPECT_THAT(c.upserts[0].service().cluster_ips(), ElementsAre("198.18.64.1"));
  c = Apply({Svc("shop", "web")});
  EXPECT_EQ(c.upserts[0].service().ports(0).node_port(), 0u);
  EXPECT_EQ(StoredService("shop", "web").ports(0).node_port(), 0u);
  // Dropped means released: another service may take it.
  c = Apply({NodePortSvc("shop", "api", "ports { port: 80 node_port: 30000 }")});
  EXPECT_EQ(c.upserts[0].service().ports(0).node_port(), 30000u);
  // A LoadBalancer gets nodePorts too.
  c = Apply({Svc("shop", "lb", "type: SERVICE_TYPE_LOAD_BALANCER ports { port: 80 }")});
  EXPECT_EQ(c.upserts[0].service().ports(0).node_port(), 30001u);
}

TEST_F(ModelTest, IPv6ServiceCidrAllocatesIpv6ClusterIps) {
  ClusterConfig config = ClusterConfig::Default();
  config.service_cidrs = {lb::IpPrefix::Parse("fd00:a70:1::/112").value(),
                          lb::IpPrefix::Parse("198.18.64.0/18").value()};
  ASSERT_TRUE(config.Validate().ok());
  Model model(config);
  absl::StatusOr<Changes> c = model.PlanApply(std::vector{Ns("shop"), Svc("shop", "web")});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->upserts[2].service().cluster_ips(), ElementsAre("fd00:a70:1::1"));
  model.Commit(*c);
  c = model.PlanApply(
      std::vector{Svc("shop", "dual",
                      "cluster_ips: 'FD00:A70:1::9' cluster_ips: '198.18.64.9' ports { port: 80 }"),
                  Svc("shop", "api")});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->upserts[0].service().cluster_ips(), ElementsAre("fd00:a70:1::9", "198.18.64.9"));
  EXPECT_THAT(c->upserts[1].service().cluster_ips(), ElementsAre("fd00:a70:1::2"));
}

// --- Batches ------------------------------------------------------------------------

TEST_F(ModelTest, BatchWithOneBadResourceChangesNothing) {
  Apply({Ns("shop")});
  std::vector<const api::Resource*> before = model_.List(api::KIND_UNSPECIFIED, "");
  absl::Status s = ApplyError({Ns("bank"), Svc("shop", "web"), Svc("shop", "api"),
                               NodePortSvc("shop", "bad", "ports { port: 80 node_port: 29999 }")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Service \"shop/bad\": spec.ports[0].nodePort: 29999 is outside 30000-32767");
  EXPECT_EQ(model_.List(api::KIND_UNSPECIFIED, ""), before);
  EXPECT_EQ(model_.Get(Key(api::KIND_NAMESPACE, "", "bank")), nullptr);
  // Nothing was taken: the next plan gets the same allocations.
  Changes c = Apply({Ns("bank"), Svc("shop", "web")});
  EXPECT_EQ(c.upserts[1].segment().id(), 2u);
  EXPECT_THAT(c.upserts[1].segment().cidrs(), ElementsAre("198.19.1.0/24"));
  EXPECT_THAT(c.upserts[2].service().cluster_ips(), ElementsAre("198.18.64.1"));
}

TEST_F(ModelTest, SameResourceTwiceInABatchIsRejected) {
  Apply({Ns("shop")});
  absl::Status s = ApplyError({Svc("shop", "web"), Svc("shop", "web")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "Service \"shop/web\": appears more than once in the batch");
}

TEST_F(ModelTest, SegmentsCannotBeAppliedOrDeleted) {
  Apply({Ns("shop")});
  absl::Status s = ApplyError({R("segment { namespace: 'shop' id: 9 }")});
  EXPECT_THAT(s.message(), HasSubstr("segments are managed by the controller"));
  absl::StatusOr<Changes> d = model_.PlanDelete(std::vector{Key(api::KIND_SEGMENT, "", "shop")});
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("segments are managed by the controller"));
}

// --- Nodes and blocks ------------------------------------------------------------------

TEST_F(ModelTest, BlocksAreCarvedFromTheSegmentThenTheSegmentGrows) {
  Apply({Ns("shop"), Node("n1", "198.18.0.11"), Node("n2", "198.18.0.12")});
  Changes c = AllocateBlock("n1", "shop");
  ASSERT_THAT(c.upserts, SizeIs(1));
  EXPECT_EQ(c.upserts[0].node().name(), "n1");
  EXPECT_THAT(Blocks("n1"), ElementsAre("shop 198.19.0.0/28"));
  AllocateBlock("n2", "shop");
  EXPECT_THAT(Blocks("n2"), ElementsAre("shop 198.19.0.16/28"));
  std::set<std::string> seen = {"198.19.0.0/28", "198.19.0.16/28"};
  for (int i = 2; i < 16; ++i) {
    c = AllocateBlock(i % 2 ? "n2" : "n1", "shop");
    ASSERT_THAT(c.upserts, SizeIs(1)) << i;
    EXPECT_TRUE(seen.insert(c.upserts[0].node().blocks().rbegin()->cidr()).second);
  }
  // The /24 holds 16 blocks; the 17th grows the segment by the next free /24.
  Apply({Ns("bank")});
  c = AllocateBlock("n1", "shop");
  ASSERT_THAT(c.upserts, SizeIs(2));
  EXPECT_THAT(c.upserts[0].segment().cidrs(), ElementsAre("198.19.0.0/24", "198.19.2.0/24"));
  EXPECT_EQ(c.upserts[0].segment().gateway(), "198.19.0.1") << "the gateway stays";
  EXPECT_EQ(c.upserts[1].node().blocks().rbegin()->cidr(), "198.19.2.0/28");
  EXPECT_THAT(StoredSegment("shop").cidrs(), SizeIs(2));
  // The grown CIDR is the segment's: another namespace cannot take it.
  absl::Status s = ApplyError({Ns("other", "198.19.2.0/24")});
  EXPECT_THAT(s.message(), HasSubstr("overlaps the segment of Namespace \"shop\" (198.19.2.0/24)"));
  EXPECT_THAT(Blocks("n1"), SizeIs(9));
}

TEST_F(ModelTest, AllocateBlockErrors) {
  Apply({Ns("shop"), Node("n1", "198.18.0.11")});
  absl::StatusOr<Changes> c = model_.PlanAllocateBlock("n9", "shop");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.status().message(), "Node \"n9\" not found");
  c = model_.PlanAllocateBlock("n1", "nope");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.status().message(), "Namespace \"nope\" not found");
}

class SmallPodCidrTest : public ModelTest {
 protected:
  static ClusterConfig Small() {
    ClusterConfig c = ClusterConfig::Default();
    c.pod_cidr = lb::IpPrefix::Parse("198.19.0.0/23").value();  // two namespace CIDRs
    c.node_block_len = 26;                                      // four blocks each
    return c;
  }
  SmallPodCidrTest() : ModelTest(Small()) {}
};

TEST_F(SmallPodCidrTest, PodCidrFullIsResourceExhausted) {
  Apply({Ns("a"), Ns("b"), Node("n1", "198.18.0.11")});
  for (int i = 0; i < 4; ++i) AllocateBlock("n1", "a");
  absl::StatusOr<Changes> c = model_.PlanAllocateBlock("n1", "a");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(c.status().message(),
            "Namespace \"a\": its segment is full and the pod CIDR 198.19.0.0/23 has no free /24 "
            "left to grow it");
  // Deleting b frees its CIDR; a grows into it.
  Delete({Key(api::KIND_NAMESPACE, "", "b")});
  c = model_.PlanAllocateBlock("n1", "a");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->upserts[0].segment().cidrs(), ElementsAre("198.19.0.0/24", "198.19.1.0/24"));
}

TEST_F(ModelTest, NodeReapplyKeepsBlocks) {
  Apply({Ns("shop"), Node("n1", "198.18.0.11")});
  AllocateBlock("n1", "shop");
  Changes c = Apply({Node("n1", "198.18.0.21")});
  EXPECT_EQ(c.upserts[0].node().underlay_address(), "198.18.0.21");
  EXPECT_THAT(Blocks("n1"), ElementsAre("shop 198.19.0.0/28"));
  // Repeating the stored blocks is fine; anything else is not.
  Apply(
      {R("node { name: 'n1' underlay_address: '198.18.0.21' blocks { namespace: 'shop' cidr: "
         "'198.19.0.0/28' } }")});
  absl::Status s =
      ApplyError({R("node { name: 'n1' underlay_address: '198.18.0.21' blocks { "
                    "namespace: 'shop' cidr: '198.19.0.16/28' } }")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Node \"n1\": spec.blocks: blocks are allocated by the controller; leave them out "
            "(the stored ones are kept)");
  s =
      ApplyError({R("node { name: 'n2' underlay_address: '198.18.0.22' blocks { namespace: "
                    "'shop' cidr: '198.19.0.16/28' } }")});
  EXPECT_THAT(s.message(), HasSubstr("blocks are allocated by the controller"));
}

TEST_F(ModelTest, UnderlayAddressesAreUnique) {
  Apply({Node("n1", "198.18.0.11")});
  absl::Status s = ApplyError({Node("n2", "198.18.0.11")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Node \"n2\": spec.underlayAddress: 198.18.0.11 is already used by Node \"n1\"");
  s = ApplyError({Node("n3", "198.18.0.13"), Node("n4", "198.18.0.13")});
  EXPECT_EQ(s.message(),
            "Node \"n4\": spec.underlayAddress: 198.18.0.13 is already used by Node \"n3\"");
  // A node that moves frees its old address.
  Apply({Node("n1", "198.18.0.31")});
  Apply({Node("n2", "198.18.0.11")});
}

// --- Deletes ----------------------------------------------------------------------------

TEST_F(ModelTest, DeletingANamespaceInUseFails) {
  Apply({Ns("shop"), Svc("shop", "web"), Svc("shop", "api"), Slice("shop", "web-1")});
  absl::StatusOr<Changes> c = model_.PlanDelete(std::vector{Key(api::KIND_NAMESPACE, "", "shop")});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.status().message(),
            "Namespace \"shop\" still has 2 Services and 1 EndpointSlices; delete them first");
  // With its contents in the same call, it goes, and so does its segment.
  Changes d = Delete({Key(api::KIND_SERVICE, "shop", "web"), Key(api::KIND_NAMESPACE, "", "shop"),
                      Key(api::KIND_SERVICE, "shop", "api"),
                      Key(api::KIND_ENDPOINT_SLICE, "shop", "web-1")});
  EXPECT_THAT(d.removals, SizeIs(5));
  EXPECT_EQ(model_.size(), 0u);
  EXPECT_EQ(model_.namespace_cidrs().used(), 0u);
  EXPECT_EQ(model_.vnis().used(), 0u);
  EXPECT_EQ(model_.service_allocator(lb::Family::kIpv4)->used(), 0u);
}

TEST_F(ModelTest, DeletingANamespaceReleasesItsBlocksFromEveryNode) {
  Apply({Ns("shop"), Ns("bank"), Node("n1", "198.18.0.11"), Node("n2", "198.18.0.12"),
         Node("n3", "198.18.0.13")});
  AllocateBlock("n1", "shop");
  AllocateBlock("n1", "bank");
  AllocateBlock("n2", "shop");
  AllocateBlock("n3", "bank");
  Changes d = Delete({Key(api::KIND_NAMESPACE, "", "shop")});
  EXPECT_THAT(d.removals, SizeIs(2));
  EXPECT_EQ(d.removals[1].kind(), api::KIND_SEGMENT);
  ASSERT_THAT(d.upserts, SizeIs(2)) << "n1 and n2 lose blocks; n3 is untouched";
  EXPECT_EQ(d.upserts[0].node().name(), "n1");
  EXPECT_EQ(d.upserts[1].node().name(), "n2");
  EXPECT_THAT(Blocks("n1"), ElementsAre("bank 198.19.1.0/28"));
  EXPECT_THAT(Blocks("n2"), IsEmpty());
  EXPECT_THAT(Blocks("n3"), ElementsAre("bank 198.19.1.16/28"));
  // The CIDR and the VNI are free again: the next namespace gets both.
  Changes c = Apply({Ns("web")});
  EXPECT_EQ(c.upserts[1].segment().id(), 1u);
  EXPECT_THAT(c.upserts[1].segment().cidrs(), ElementsAre("198.19.0.0/24"));
  c = AllocateBlock("n2", "web");
  EXPECT_THAT(Blocks("n2"), ElementsAre("web 198.19.0.0/28"));
}

TEST_F(ModelTest, DeletingANodeReleasesItsBlocks) {
  Apply({Ns("shop"), Node("n1", "198.18.0.11"), Node("n2", "198.18.0.12")});
  AllocateBlock("n1", "shop");
  AllocateBlock("n1", "shop");
  Changes d = Delete({Key(api::KIND_NODE, "", "n1")});
  EXPECT_THAT(d.upserts, IsEmpty());
  EXPECT_EQ(model_.node_blocks().used(), 0u);
  AllocateBlock("n2", "shop");
  EXPECT_THAT(Blocks("n2"), ElementsAre("shop 198.19.0.0/28"));
  // A namespace and a node deleted together: the node is removed, not updated.
  AllocateBlock("n2", "shop");
  d = Delete({Key(api::KIND_NAMESPACE, "", "shop"), Key(api::KIND_NODE, "", "n2")});
  EXPECT_THAT(d.upserts, IsEmpty());
  EXPECT_EQ(model_.size(), 0u);
}

TEST_F(ModelTest, DeletingUnknownIsNotFound) {
  Apply({Ns("shop"), Svc("shop", "web")});
  absl::StatusOr<Changes> c = model_.PlanDelete(
      std::vector{Key(api::KIND_SERVICE, "shop", "web"), Key(api::KIND_SERVICE, "shop", "nope")});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.status().message(), "Service \"shop/nope\" not found");
  EXPECT_NE(model_.Get(Key(api::KIND_SERVICE, "shop", "web")), nullptr);
}

TEST_F(ModelTest, DeletedServiceReleasesItsClusterIpAndNodePorts) {
  Apply({Ns("shop"), NodePortSvc("shop", "web", "ports { port: 80 node_port: 30080 }")});
  Delete({Key(api::KIND_SERVICE, "shop", "web")});
  Changes c = Apply({NodePortSvc(
      "shop", "api", "cluster_ips: '198.18.64.1' ports { port: 80 node_port: 30080 }")});
  EXPECT_EQ(c.upserts[0].service().ports(0).node_port(), 30080u);
}

// --- Reading and loading ---------------------------------------------------------------

TEST_F(ModelTest, ListIsSortedAndFiltered) {
  Apply({Node("n1", "198.18.0.11"), Ns("shop"), Ns("bank"), Svc("shop", "web"), Svc("bank", "api"),
         Svc("shop", "api"), Slice("shop", "web-1")});
  auto keys = [](const std::vector<const api::Resource*>& rs) {
    std::vector<std::string> out;
    for (const api::Resource* r : rs) out.push_back(Describe(KeyOf(*r)));
    return out;
  };
  EXPECT_THAT(keys(model_.List(api::KIND_UNSPECIFIED, "")),
              ElementsAre("Namespace bank", "Namespace shop", "Segment bank", "Segment shop",
                          "Service bank/api", "Service shop/api", "Service shop/web",
                          "EndpointSlice shop/web-1", "Node n1"));
  EXPECT_THAT(keys(model_.List(api::KIND_SERVICE, "")),
              ElementsAre("Service bank/api", "Service shop/api", "Service shop/web"));
  EXPECT_THAT(keys(model_.List(api::KIND_SERVICE, "shop")),
              ElementsAre("Service shop/api", "Service shop/web"));
  EXPECT_THAT(keys(model_.List(api::KIND_UNSPECIFIED, "shop")),
              ElementsAre("Service shop/api", "Service shop/web", "EndpointSlice shop/web-1"));
  EXPECT_THAT(keys(model_.List(api::KIND_NODE, "")), ElementsAre("Node n1"));
  EXPECT_THAT(model_.List(api::KIND_SERVICE, "nope"), IsEmpty());
  EXPECT_EQ(model_.size(), 9u);
}

TEST_F(ModelTest, LoadRebuildsAllocatorsAndIndexes) {
  Apply({Ns("shop"), Node("n1", "198.18.0.11"), Svc("shop", "web"), Svc("shop", "api"),
         NodePortSvc("shop", "np"), Slice("shop", "web-1")});
  AllocateBlock("n1", "shop");
  Delete({Key(api::KIND_SERVICE, "shop", "web")});  // frees 198.18.64.1

  Model loaded(ClusterConfig::Default());
  // The store hands resources over in any order.
  std::vector<const api::Resource*> all = model_.List(api::KIND_UNSPECIFIED, "");
  for (auto it = all.rbegin(); it != all.rend(); ++it) loaded.Load(**it);
  EXPECT_EQ(loaded.size(), model_.size());

  absl::StatusOr<Changes> c = loaded.PlanApply(
      std::vector{Svc("shop", "x", "cluster_ips: '198.18.64.2' ports { port: 80 }")});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("already used by Service \"shop/api\""));
  c = loaded.PlanApply(
      std::vector{NodePortSvc("shop", "y", "ports { port: 80 node_port: 30000 }")});
  EXPECT_THAT(c.status().message(), HasSubstr("already used by Service \"shop/np\""));
  // Allocation resumes after the highest address and port in use.
  c = loaded.PlanApply(std::vector{Svc("shop", "z"), NodePortSvc("shop", "w"), Ns("bank")});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->upserts[0].service().cluster_ips(), ElementsAre("198.18.64.4"));
  EXPECT_EQ(c->upserts[1].service().ports(0).node_port(), 30001u);
  EXPECT_EQ(c->upserts[3].segment().id(), 2u);
  EXPECT_THAT(c->upserts[3].segment().cidrs(), ElementsAre("198.19.1.0/24"));
  c = loaded.PlanAllocateBlock("n1", "shop");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->upserts[0].node().blocks(1).cidr(), "198.19.0.16/28");
  absl::StatusOr<Changes> d = loaded.PlanDelete(std::vector{Key(api::KIND_NAMESPACE, "", "shop")});
  EXPECT_THAT(d.status().message(), HasSubstr("still has 2 Services and 1 EndpointSlices"));
}

// The benchmark's shape at a tenth of its size: batches of services and slices,
// then single-slice updates. Allocations stay unique and the plan holds no
// resource outside the batch.
TEST_F(ModelTest, ManyServicesInBatches) {
  constexpr int kNamespaces = 10;
  constexpr int kServices = 1000;
  constexpr int kBatch = 250;
  std::vector<api::Resource> namespaces;
  for (int n = 0; n < kNamespaces; ++n) namespaces.push_back(Ns(absl::StrCat("ns", n)));
  Apply(namespaces);
  std::set<std::string> ips;
  for (int start = 0; start < kServices; start += kBatch) {
    std::vector<api::Resource> batch;
    for (int i = start; i < start + kBatch; ++i) {
      const std::string ns = absl::StrCat("ns", i % kNamespaces);
      batch.push_back(i % 4 == 0 ? NodePortSvc(ns, absl::StrCat("svc", i))
                                 : Svc(ns, absl::StrCat("svc", i)));
      batch.push_back(Slice(ns, absl::StrCat("svc", i, "-1"), 10));
    }
    Changes c = Apply(batch);
    ASSERT_THAT(c.upserts, SizeIs(2 * kBatch));
    for (const api::Resource& r : c.upserts) {
      if (r.has_service()) {
        EXPECT_TRUE(ips.insert(r.service().cluster_ips(0)).second);
      }
    }
  }
  EXPECT_THAT(ips, SizeIs(kServices));
  EXPECT_EQ(model_.size(), 2u * kNamespaces + 2u * kServices);
  EXPECT_EQ(model_.service_allocator(lb::Family::kIpv4)->used(), size_t{kServices});
  for (int i = 0; i < 100; ++i) {
    const std::string ns = absl::StrCat("ns", i % kNamespaces);
    Changes c = Apply({Slice(ns, absl::StrCat("svc", i, "-1"), 12)});
    ASSERT_THAT(c.upserts, SizeIs(1));
  }
  EXPECT_EQ(model_.size(), 2u * kNamespaces + 2u * kServices);
}

}  // namespace
}  // namespace atl::controller
