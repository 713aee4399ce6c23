// The control plane end to end: a controller and agents as real processes
// over real gRPC (loopback and unix sockets), driven through the admin API and
// atollctl, and checked through the controller's status and each agent's
// debug API.
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/processes.h"

namespace atl::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

api::Resource Service(const std::string& ns, const std::string& name, uint32_t port) {
  api::Resource r;
  api::Service* s = r.mutable_service();
  s->set_namespace_(ns);
  s->set_name(name);
  api::ServicePort* p = s->add_ports();
  p->set_name("http");
  p->set_port(port);
  p->set_target_port("8080");
  return r;
}

api::Resource Slice(const std::string& ns, const std::string& service,
                    const std::vector<std::string>& addresses, const std::string& node = "h1") {
  api::Resource r;
  api::EndpointSlice* s = r.mutable_endpoint_slice();
  s->set_namespace_(ns);
  s->set_name(service + "-1");
  s->set_service_name(service);
  for (const std::string& a : addresses) {
    api::Endpoint* e = s->add_endpoints();
    e->add_addresses(a);
    e->set_node_name(node);
  }
  api::EndpointPort* p = s->add_ports();
  p->set_name("http");
  p->set_port(8080);
  return r;
}

// The frontend an agent programmed for `service` ("ns/name:port"), or null.
const api::ProgrammedFrontend* FindFrontend(const api::AgentStateResponse& state,
                                            const std::string& service) {
  for (const api::ProgrammedFrontend& f : state.frontends()) {
    if (f.service() == service) return &f;
  }
  return nullptr;
}

std::vector<std::string> Backends(const api::ProgrammedFrontend* f) {
  std::vector<std::string> out;
  if (!f) return out;
  for (const api::ProgrammedBackend& b : f->backends()) {
    out.push_back(b.address() + ":" + std::to_string(b.port()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

api::AgentStatus StatusOf(ControllerProcess& c, const std::string& node) {
  const api::StatusResponse status = c.Status();
  for (const api::AgentStatus& a : status.agents()) {
    if (a.node() == node) return a;
  }
  return api::AgentStatus();
}

class ControlPlaneTest : public ::testing::Test {
 protected:
  TempDir dir_{"atoll-control-plane"};
};

TEST_F(ControlPlaneTest, AgentsGetASnapshotThenDeltasAndProgramThem) {
  // Parts of about 100 bytes: every version here comes in several.
  ControllerProcess controller(dir_.path(), {"--sync_part_bytes=100"});
  api::ApplyResponse applied;
  ASSERT_TRUE(
      controller
          .Apply({Namespace("shop"), Node("h1", "198.18.0.1"), Node("h2", "198.18.0.2"),
                  Service("shop", "web", 80), Slice("shop", "web", {"198.19.0.10", "198.19.0.11"})},
                 &applied)
          .ok());
  // The controller filled in the ClusterIP.
  ASSERT_THAT(applied.resources(), SizeIs(5));
  const std::string cluster_ip = applied.resources(3).service().cluster_ips(0);
  EXPECT_THAT(cluster_ip, ::testing::StartsWith("198.18."));

  AgentProcess h1(dir_.path(), "h1", controller.address());
  AgentProcess h2(dir_.path(), "h2", controller.address());
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1", "h2"}); })) << controller.Log();

  for (AgentProcess* agent : {&h1, &h2}) {
    api::AgentStateResponse state = agent->State();
    EXPECT_TRUE(state.connected());
    EXPECT_EQ(state.version(), applied.version());
    const api::ProgrammedFrontend* web = FindFrontend(state, "shop/web:http");
    ASSERT_NE(web, nullptr) << state.DebugString();
    EXPECT_EQ(web->address(), cluster_ip);
    EXPECT_EQ(web->port(), 80u);
    EXPECT_THAT(Backends(web), ::testing::ElementsAre("198.19.0.10:8080", "198.19.0.11:8080"));
    ASSERT_THAT(state.segments(), SizeIs(1));
    EXPECT_EQ(state.segments(0).namespace_(), "shop");
  }
  EXPECT_EQ(StatusOf(controller, "h1").snapshots_sent(), 1u);

  // A delta: one endpoint more.
  ASSERT_TRUE(
      controller
          .Apply({Slice("shop", "web", {"198.19.0.10", "198.19.0.11", "198.19.0.12"})}, &applied)
          .ok());
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1", "h2"}); }));
  EXPECT_THAT(Backends(FindFrontend(h2.State(), "shop/web:http")), SizeIs(3));
  EXPECT_EQ(StatusOf(controller, "h1").snapshots_sent(), 1u) << "a delta, not a new snapshot";

  // A deletion reaches the agents as a removal.
  api::DeleteResponse deleted;
  ASSERT_TRUE(controller.Delete(api::KIND_ENDPOINT_SLICE, "shop", "web-1", &deleted).ok());
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1", "h2"}); }));
  EXPECT_THAT(Backends(FindFrontend(h1.State(), "shop/web:http")), IsEmpty());
}

TEST_F(ControlPlaneTest, AgentsResumeFromTheirVersionAfterTheControllerRestarts) {
  ControllerProcess controller(dir_.path());
  api::ApplyResponse applied;
  ASSERT_TRUE(controller.Apply({Namespace("shop"), Service("shop", "web", 80)}, &applied).ok());
  AgentProcess h1(dir_.path(), "h1", controller.address());
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1"}); }));

  controller.Restart();
  // The agent keeps serving its state while the controller is away.
  EXPECT_NE(FindFrontend(h1.State(), "shop/web:http"), nullptr);
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1"}); })) << controller.Log();
  EXPECT_EQ(StatusOf(controller, "h1").snapshots_sent(), 0u)
      << "it resumed from its version: no snapshot";

  ASSERT_TRUE(controller.Apply({Service("shop", "api", 8080)}, &applied).ok());
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1"}); }));
  EXPECT_NE(FindFrontend(h1.State(), "shop/api:http"), nullptr);
  EXPECT_EQ(StatusOf(controller, "h1").snapshots_sent(), 0u);
}

TEST_F(ControlPlaneTest, ACrashedControllerLosesNothingCommitted) {
  ControllerProcess controller(dir_.path());
  api::ApplyResponse applied;
  ASSERT_TRUE(controller
                  .Apply({Namespace("shop"), Service("shop", "web", 80),
                          Slice("shop", "web", {"198.19.0.10"})},
                         &applied)
                  .ok());
  const api::Service web = applied.resources(1).service();
  const uint64_t version = applied.version();

  controller.Restart(SIGKILL);
  grpc::ClientContext ctx;
  api::ListRequest req;
  api::ListResponse list;
  ASSERT_TRUE(controller.admin().List(&ctx, req, &list).ok());
  EXPECT_EQ(list.version(), version);
  // Namespace, its Segment, the Service and the EndpointSlice.
  ASSERT_THAT(list.resources(), SizeIs(4));
  bool found = false;
  for (const api::Resource& r : list.resources()) {
    if (r.has_service()) {
      found = true;
      EXPECT_EQ(r.service().SerializeAsString(), web.SerializeAsString())
          << "the allocated ClusterIP survives";
    }
  }
  EXPECT_TRUE(found);

  // A new agent gets all of it.
  AgentProcess h1(dir_.path(), "h1", controller.address());
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1"}); }));
  EXPECT_THAT(Backends(FindFrontend(h1.State(), "shop/web:http")),
              ::testing::ElementsAre("198.19.0.10:8080"));
}

TEST_F(ControlPlaneTest, AnAgentThatCannotProgramAVersionNacksItAndKeepsItsLastGoodState) {
  ControllerProcess controller(dir_.path());
  api::ApplyResponse applied;
  ASSERT_TRUE(controller.Apply({Namespace("shop"), Service("shop", "web", 80)}, &applied).ok());
  // h2's dataplane has room for one frontend only.
  AgentProcess h1(dir_.path(), "h1", controller.address());
  AgentProcess h2(dir_.path(), "h2", controller.address(), {"--max_frontends=1"});
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1", "h2"}); }));
  const uint64_t good = applied.version();

  ASSERT_TRUE(controller.Apply({Service("shop", "api", 8080)}, &applied).ok());
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1"}); }));
  ASSERT_TRUE(WaitFor([&] { return !StatusOf(controller, "h2").last_error().empty(); }));
  api::AgentStatus h2_status = StatusOf(controller, "h2");
  EXPECT_EQ(h2_status.acked_version(), good);
  EXPECT_THAT(h2_status.last_error(), HasSubstr("shop/api")) << "the NACK names what failed";
  api::AgentStateResponse h2_state = h2.State();
  EXPECT_EQ(h2_state.version(), good);
  EXPECT_NE(FindFrontend(h2_state, "shop/web:http"), nullptr);
  EXPECT_EQ(FindFrontend(h2_state, "shop/api:http"), nullptr);

  // Deleting web makes room: the next delta carries the refused change too.
  api::DeleteResponse deleted;
  ASSERT_TRUE(controller.Delete(api::KIND_SERVICE, "shop", "web", &deleted).ok());
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1", "h2"}); })) << h2.Log();
  h2_state = h2.State();
  EXPECT_EQ(FindFrontend(h2_state, "shop/web:http"), nullptr);
  EXPECT_NE(FindFrontend(h2_state, "shop/api:http"), nullptr);
  EXPECT_THAT(StatusOf(controller, "h2").last_error(), IsEmpty());
}

TEST_F(ControlPlaneTest, ANodesBlockBecomesARouteOnEveryOtherAgentAndGoesWithTheNode) {
  ControllerProcess controller(dir_.path());
  api::ApplyResponse applied;
  ASSERT_TRUE(
      controller
          .Apply({Namespace("shop"), Node("h1", "198.18.0.1"), Node("h2", "198.18.0.2")}, &applied)
          .ok());
  AgentProcess h1(dir_.path(), "h1", controller.address());
  AgentProcess h2(dir_.path(), "h2", controller.address());

  // What the CNI server of h1 asks for when its pods in "shop" need addresses.
  auto sync = api::Sync::NewStub(
      grpc::CreateChannel(controller.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  api::AllocateBlockRequest req;
  req.set_node("h1");
  req.set_namespace_("shop");
  api::AllocateBlockResponse block;
  ASSERT_TRUE(sync->AllocateBlock(&ctx, req, &block).ok());
  EXPECT_EQ(block.block().namespace_(), "shop");
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1", "h2"}); }));

  api::AgentStateResponse h2_state = h2.State();
  ASSERT_THAT(h2_state.routes(), SizeIs(1)) << h2_state.DebugString();
  EXPECT_EQ(h2_state.routes(0).cidr(), block.block().cidr());
  EXPECT_EQ(h2_state.routes(0).underlay_address(), "198.18.0.1");
  ASSERT_THAT(h2_state.segments(), SizeIs(1));
  EXPECT_EQ(h2_state.routes(0).vni(), h2_state.segments(0).id());
  EXPECT_THAT(h1.State().routes(), IsEmpty()) << "its own block is local, not routed";

  // An unknown namespace is named in the error.
  grpc::ClientContext ctx2;
  req.set_namespace_("nowhere");
  grpc::Status refused = sync->AllocateBlock(&ctx2, req, &block);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(refused.error_message(), HasSubstr("nowhere"));

  // Deleting h1 releases its block: the route goes from h2.
  api::DeleteResponse deleted;
  ASSERT_TRUE(controller.Delete(api::KIND_NODE, "", "h1", &deleted).ok());
  ASSERT_TRUE(WaitFor([&] { return h2.State().version() == deleted.version(); }));
  EXPECT_THAT(h2.State().routes(), IsEmpty());
}

// A raw Sync stream, to act as an agent that is slow to acknowledge.
TEST_F(ControlPlaneTest, ASlowAgentGetsChangesCoalescedPerKeyOnceItAcknowledges) {
  ControllerProcess controller(dir_.path());
  api::ApplyResponse applied;
  ASSERT_TRUE(controller
                  .Apply({Namespace("shop"), Service("shop", "web", 80),
                          Slice("shop", "web", {"198.19.0.10"})},
                         &applied)
                  .ok());
  auto stub = api::Sync::NewStub(
      grpc::CreateChannel(controller.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = stub->Sync(&ctx);
  api::SyncRequest hello;
  hello.mutable_hello()->set_node("slow");
  ASSERT_TRUE(stream->Write(hello));
  api::SyncResponse snapshot;
  ASSERT_TRUE(stream->Read(&snapshot));
  EXPECT_TRUE(snapshot.snapshot());
  EXPECT_FALSE(snapshot.more());
  EXPECT_EQ(snapshot.version(), applied.version());
  EXPECT_EQ(snapshot.upserts_size(), 4) << "namespace, segment, service, slice";

  // While the agent sits on the snapshot, the slice changes 50 times and a
  // service comes and goes: nothing is sent meanwhile.
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(
        controller.Apply({Slice("shop", "web", {"198.19.0." + std::to_string(20 + i)})}, &applied)
            .ok());
  }
  ASSERT_TRUE(controller.Apply({Service("shop", "tmp", 81)}, &applied).ok());
  api::DeleteResponse deleted;
  ASSERT_TRUE(controller.Delete(api::KIND_SERVICE, "shop", "tmp", &deleted).ok());
  api::AgentStatus slow = StatusOf(controller, "slow");
  EXPECT_EQ(slow.sent_version(), snapshot.version());
  EXPECT_EQ(slow.acked_version(), 0u);

  api::SyncRequest ack;
  ack.mutable_ack()->set_version(snapshot.version());
  ack.mutable_ack()->set_nonce(snapshot.nonce());
  ASSERT_TRUE(stream->Write(ack));
  api::SyncResponse delta;
  ASSERT_TRUE(stream->Read(&delta));
  EXPECT_FALSE(delta.snapshot());
  EXPECT_GT(delta.version(), snapshot.version());
  // The slice once, at its latest; the service that came and went as one removal.
  ASSERT_EQ(delta.upserts_size(), 1);
  api::Resource slice;
  ASSERT_TRUE(slice.ParseFromString(delta.upserts(0)));
  EXPECT_EQ(slice.endpoint_slice().endpoints(0).addresses(0), "198.19.0.69");
  ASSERT_EQ(delta.removals_size(), 1);
  EXPECT_EQ(delta.removals(0).name(), "tmp");

  // A NACK keeps the agent where it was: the refused changes come again with the next one.
  api::SyncRequest nack;
  nack.mutable_ack()->set_version(delta.version());
  nack.mutable_ack()->set_nonce(delta.nonce());
  nack.mutable_ack()->set_error("no room");
  ASSERT_TRUE(stream->Write(nack));
  ASSERT_TRUE(WaitFor([&] { return StatusOf(controller, "slow").last_error() == "no room"; }));
  EXPECT_EQ(StatusOf(controller, "slow").acked_version(), snapshot.version());
  ASSERT_TRUE(controller.Apply({Service("shop", "api", 82)}, &applied).ok());
  api::SyncResponse again;
  ASSERT_TRUE(stream->Read(&again));
  EXPECT_EQ(again.version(), applied.version());
  EXPECT_EQ(again.upserts_size(), 2) << "the refused slice and the new service";
  EXPECT_EQ(again.removals_size(), 1);
  ctx.TryCancel();
}

TEST_F(ControlPlaneTest, ASecondStreamForANodeEndsTheFirst) {
  ControllerProcess controller(dir_.path());
  auto stub = api::Sync::NewStub(
      grpc::CreateChannel(controller.address(), grpc::InsecureChannelCredentials()));
  api::SyncRequest hello;
  hello.mutable_hello()->set_node("h1");
  grpc::ClientContext first_ctx;
  auto first = stub->Sync(&first_ctx);
  ASSERT_TRUE(first->Write(hello));
  api::SyncResponse snapshot;
  ASSERT_TRUE(first->Read(&snapshot));

  grpc::ClientContext second_ctx;
  auto second = stub->Sync(&second_ctx);
  ASSERT_TRUE(second->Write(hello));
  ASSERT_TRUE(second->Read(&snapshot)) << "the new stream is served";
  api::SyncResponse none;
  EXPECT_FALSE(first->Read(&none));
  grpc::Status ended = first->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(ended.error_message(), HasSubstr("h1"));
  api::StatusResponse status = controller.Status();
  ASSERT_THAT(status.agents(), SizeIs(1));
  EXPECT_TRUE(status.agents(0).connected());

  // A stream whose hello names no node is refused, naming the field.
  grpc::ClientContext bad_ctx;
  auto bad = stub->Sync(&bad_ctx);
  api::SyncRequest empty;
  empty.mutable_hello();
  ASSERT_TRUE(bad->Write(empty));
  EXPECT_FALSE(bad->Read(&none));
  grpc::Status refused = bad->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("node"));
  second_ctx.TryCancel();
}

// Runs atollctl with `args`; returns its exit code and fills `out` with
// stdout and stderr together.
int Atollctl(const std::string& controller, const std::string& args, std::string* out) {
  const std::string cmd =
      BinaryPath("ATOLLCTL") + " --controller=" + controller + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  out->clear();
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST_F(ControlPlaneTest, AtollctlAppliesManifestsAndShowsWhatAgentsHold) {
  ControllerProcess controller(dir_.path());
  const std::filesystem::path manifest = dir_.path() / "shop.yaml";
  WriteFile(manifest, R"(apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Node
metadata:
  name: h1
status:
  addresses:
  - type: InternalIP
    address: 198.18.0.1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: ["198.19.0.10"]
  conditions: {ready: true}
  nodeName: h1
ports:
- name: http
  port: 8080
  protocol: TCP
)");
  std::string out;
  ASSERT_EQ(Atollctl(controller.address(), "apply -f " + manifest.string(), &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("web"));

  AgentProcess h1(dir_.path(), "h1", controller.address());
  ASSERT_TRUE(WaitFor([&] { return controller.AllAcked({"h1"}); }));

  ASSERT_EQ(Atollctl(controller.address(), "get services -n shop", &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("web"));
  EXPECT_THAT(out, HasSubstr("NodePort"));
  ASSERT_EQ(Atollctl(controller.address(), "status", &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("h1"));
  ASSERT_EQ(Atollctl(controller.address(), "agent --socket " + h1.socket().string(), &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("198.19.0.10"));
  // The NodePort frontend answers on the node's own address.
  api::AgentStateResponse state = h1.State();
  int node_ports = 0;
  for (const api::ProgrammedFrontend& f : state.frontends()) {
    if (f.address().empty() && f.port() >= 30000 && f.port() <= 32767) ++node_ports;
  }
  EXPECT_EQ(node_ports, 1) << state.DebugString();
}

TEST_F(ControlPlaneTest, BadManifestsAreRejectedNamingTheFieldAndValueAndChangeNothing) {
  ControllerProcess controller(dir_.path());
  std::string out;
  const std::filesystem::path ns = dir_.path() / "ns.yaml";
  WriteFile(ns, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
  ASSERT_EQ(Atollctl(controller.address(), "apply -f " + ns.string(), &out), 0) << out;
  const uint64_t version = controller.Status().version();

  struct Case {
    const char* name;
    const char* yaml;
    std::vector<const char*> expect;  // pieces the error must contain
  };
  const std::vector<Case> cases = {
      {"port out of range",
       "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
       "spec:\n  ports:\n  - {name: http, port: 70000}\n",
       {"web", "port", "70000"}},
      {"nodePort out of range",
       "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
       "spec:\n  type: NodePort\n  ports:\n  - {name: http, port: 80, nodePort: 29999}\n",
       {"web", "nodePort", "29999"}},
      {"unknown namespace",
       "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: nowhere}\n"
       "spec:\n  ports:\n  - {name: http, port: 80}\n",
       {"nowhere"}},
      {"malformed address",
       "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
       "spec:\n  clusterIP: 198.18.64.300\n  ports:\n  - {name: http, port: 80}\n",
       {"198.18.64.300"}},
      {"not a number",
       "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
       "spec:\n  ports:\n  - {name: http, port: http}\n",
       {"port", "http"}},
      {"one bad document spoils the batch",
       "apiVersion: v1\nkind: Namespace\nmetadata: {name: good}\n---\n"
       "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
       "spec:\n  sessionAffinity: Sticky\n  ports:\n  - {name: http, port: 80}\n",
       {"sessionAffinity", "Sticky"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::filesystem::path bad = dir_.path() / "bad.yaml";
    WriteFile(bad, c.yaml);
    EXPECT_NE(Atollctl(controller.address(), "apply -f " + bad.string(), &out), 0) << out;
    for (const char* piece : c.expect) EXPECT_THAT(out, HasSubstr(piece));
  }
  // Duplicate ClusterIP: the second service asks for the first one's address.
  const std::filesystem::path first = dir_.path() / "first.yaml";
  WriteFile(first,
            "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: shop}\n"
            "spec:\n  clusterIP: 198.18.64.50\n  ports:\n  - {name: http, port: 80}\n");
  ASSERT_EQ(Atollctl(controller.address(), "apply -f " + first.string(), &out), 0) << out;
  const uint64_t with_a = controller.Status().version();
  EXPECT_GT(with_a, version);
  const std::filesystem::path dup = dir_.path() / "dup.yaml";
  WriteFile(dup,
            "apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: shop}\n"
            "spec:\n  clusterIP: 198.18.64.50\n  ports:\n  - {name: http, port: 80}\n");
  EXPECT_NE(Atollctl(controller.address(), "apply -f " + dup.string(), &out), 0);
  EXPECT_THAT(out, HasSubstr("198.18.64.50"));
  EXPECT_THAT(out, HasSubstr("INVALID_ARGUMENT"));

  EXPECT_EQ(controller.Status().version(), with_a) << "refused applies wrote nothing";
  ASSERT_EQ(Atollctl(controller.address(), "get namespaces", &out), 0);
  EXPECT_THAT(out, ::testing::Not(HasSubstr("good")));
}

}  // namespace
}  // namespace atl::testing
