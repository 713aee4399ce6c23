// The dataplane end to end: what a user of the cluster checks, on the test
// bed of tests/testbed.h (three hosts, an external client, pods made through
// atoll-cni by libcni), with the dataplane the agents run.
//
// One bed serves the whole suite; each test makes namespaces, pods and
// services of its own (names start with the test's number) and removes them
// when it ends. Every request has a 2 s deadline, so a dataplane that drops
// a packet fails a test quickly, with what was asked and what came back.
//
//   sudo meson test -C BUILD dataplane_e2e          (or --suite e2e)
//
// Knobs, in the environment:
//   ATOLL_E2E_DATAPLANE=ebpf|dpdk|in-process  the agents' --dataplane (default ebpf)
//   ATOLL_E2E_AGENT_ARGS="--flag=v ..."   more agent flags
//   ATOLL_DPDKD=PATH                      atoll-dpdkd, for the dpdk dataplane
//   ATOLL_E2E_DPDKD_ARGS="--flag=v ..."   more atoll-dpdkd flags (--lcores=...)
//   ATOLL_E2E_LOG_DIR=DIR                 keep the controller's and agents' logs
//                                         (outside /tmp, which is the test's own)
//   ATOLL_E2E_HOLD_ON_FAILURE=SECONDS     after a failed test, print how to enter
//                                         each namespace and wait that long
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lb/net.h"
#include "tests/testbed.h"
#include "tests/traffic.h"

namespace atl::testing {
namespace {

#define E2E_CONCAT_INNER(a, b) a##b
#define E2E_CONCAT(a, b) E2E_CONCAT_INNER(a, b)
#define ASSERT_OK(expr)                    \
  do {                                     \
    const absl::Status s_ = (expr);        \
    ASSERT_TRUE(s_.ok()) << s_.ToString(); \
  } while (false)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(E2E_CONCAT(result_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(result, lhs, expr)      \
  auto result = (expr);                                   \
  ASSERT_TRUE(result.ok()) << result.status().ToString(); \
  lhs = *std::move(result)

constexpr uint16_t kServerPort = 8080;  // every pod's WhoamiServer
constexpr uint16_t kServicePort = 80;
constexpr char kServiceCidr[] = "198.18.64.0/18";
constexpr int kSpreadRequests = 30;

TestBed* g_bed = nullptr;
std::string g_bed_error = "it was not set up";

// The bed, made once before the first test and removed after the last.
class BedEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const TestBedOptions options = TestBedOptions::FromEnvironment();
    std::fprintf(stderr, "test bed: %d hosts, dataplane \"%s\"\n", options.hosts,
                 options.dataplane.c_str());
    absl::StatusOr<std::unique_ptr<TestBed>> bed = TestBed::Create(options);
    // Not a failure here: gtest would skip every test. Each test fails instead.
    if (!bed.ok()) {
      g_bed_error = bed.status().ToString();
      std::fprintf(stderr, "the test bed did not come up: %s\n", g_bed_error.c_str());
      return;
    }
    bed_ = *std::move(bed);
    g_bed = bed_.get();
  }
  void TearDown() override {
    g_bed = nullptr;
    bed_.reset();
  }

 private:
  std::unique_ptr<TestBed> bed_;
};

// Runs a function when it goes: for changes a test makes to the bed itself.
class Cleanup {
 public:
  explicit Cleanup(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~Cleanup() { fn_(); }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;

 private:
  std::function<void()> fn_;
};

std::string Show(const std::map<std::string, int>& counts) {
  std::vector<std::string> parts;
  for (const auto& [server, n] : counts) parts.push_back(absl::StrCat(server, " x", n));
  return "{" + absl::StrJoin(parts, ", ") + "}";
}

class DataplaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(g_bed, nullptr) << "the test bed did not come up: " << g_bed_error;
  }

  void TearDown() override {
    if (g_bed == nullptr) return;
    if (HasFailure()) {
      std::fprintf(stderr, "%s\n", bed().Logs().c_str());
      HoldForInspection();
    }
    servers_.clear();
    const absl::Status pods = bed().DeleteAllPods();
    EXPECT_TRUE(pods.ok()) << "removing the test's pods: " << pods;
    if (!applied_.empty()) {
      const absl::Status deleted = bed().Delete(absl::StrJoin(applied_, "---\n"));
      EXPECT_TRUE(deleted.ok()) << "deleting the test's resources: " << deleted;
    }
  }

  // ATOLL_E2E_HOLD_ON_FAILURE=SECONDS keeps a failed test's pods and
  // services that long, for a look with nsenter, tcpdump or bpftool.
  void HoldForInspection() {
    const char* hold = std::getenv("ATOLL_E2E_HOLD_ON_FAILURE");
    const int seconds = hold ? std::atoi(hold) : 0;
    if (seconds <= 0) return;
    std::fprintf(stderr, "%sholding for %d s\n", bed().Inventory().c_str(), seconds);
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
  }

  TestBed& bed() { return *g_bed; }
  Host& h(int n) { return bed().host(n); }

  // Applied with atollctl; deleted when the test ends.
  absl::Status Apply(const std::string& manifest) {
    const absl::Status s = bed().Apply(manifest);
    // Stored unless atollctl failed (then there is nothing to delete).
    if (s.ok() || absl::IsDeadlineExceeded(s)) applied_.push_back(manifest);
    return s;
  }
  absl::Status Namespace(const NamespaceSpec& spec) { return Apply(Manifest(spec)); }

  // A long-lived TCP connection from `client` to a ClusterIP, and the answer
  // to its first request (which names its backend).
  static absl::StatusOr<std::pair<std::unique_ptr<TcpConnection>, Answer>> OpenLongLived(
      const Pod& client, const std::string& vip) {
    absl::StatusOr<std::unique_ptr<TcpConnection>> conn =
        TcpConnection::Open(*client.netns, vip, kServicePort);
    if (!conn.ok()) {
      return absl::Status(conn.status().code(),
                          absl::StrCat("a long-lived TCP connection from ", client.Describe(),
                                       " to ClusterIP ", vip, ": ", conn.status().message()));
    }
    absl::StatusOr<Answer> first = (*conn)->Request();
    if (!first.ok()) {
      return absl::Status(first.status().code(),
                          absl::StrCat("long-lived TCP from ", client.Describe(), " to ", vip, ": ",
                                       first.status().message()));
    }
    return std::make_pair(*std::move(conn), *std::move(first));
  }

  // A pod that answers on kServerPort.
  absl::StatusOr<Pod*> Backend(const std::string& ns, const std::string& name, Host& host) {
    absl::StatusOr<Pod*> pod = bed().AddPod(ns, name, host);
    if (!pod.ok()) return pod.status();
    absl::Status served = Serve(**pod);
    if (!served.ok()) return served;
    return pod;
  }
  absl::StatusOr<WhoamiServer*> Serve(const TestNetns& ns, const std::string& name,
                                      uint16_t port = kServerPort) {
    absl::StatusOr<std::unique_ptr<WhoamiServer>> s = WhoamiServer::Start(ns, name, port);
    if (!s.ok()) return s.status();
    servers_.push_back(*std::move(s));
    return servers_.back().get();
  }
  absl::Status Serve(const Pod& pod) { return Serve(*pod.netns, pod.name).status(); }

  // A ClusterIP (or other) service with "tcp" and "udp" ports kServicePort to
  // kServerPort, and one EndpointSlice of `backends`; returns it as stored.
  absl::StatusOr<api::Service> Service(ServiceSpec spec,
                                       const std::vector<EndpointSpec>& backends) {
    if (spec.ports.empty()) {
      spec.ports = {{"tcp", "TCP", kServicePort, kServerPort},
                    {"udp", "UDP", kServicePort, kServerPort}};
    }
    absl::Status applied = Apply(Manifest(spec) + "---\n" + Manifest(Slice(spec, backends)));
    if (!applied.ok()) return applied;
    return bed().GetService(spec.ns, spec.name);
  }
  static EndpointSliceSpec Slice(const ServiceSpec& spec,
                                 const std::vector<EndpointSpec>& backends) {
    EndpointSliceSpec slice{spec.ns, spec.name + "-1", spec.name, backends, {}};
    for (const PortSpec& p : spec.ports) {
      slice.ports.push_back({p.name, p.protocol, p.target_port});
    }
    return slice;
  }
  static EndpointSpec Ready(const Pod& pod) {
    return {pod.ip, pod.host->name, true, std::nullopt, std::nullopt};
  }

  // The backends the host's agent programmed for frontend `name`
  // ("ns/svc:port") on `address` ("" for a NodePort), or -1 when absent.
  int ProgrammedBackends(Host& host, const std::string& name, const std::string& address) {
    absl::StatusOr<api::AgentStateResponse> state = host.agent->State();
    if (!state.ok()) return -1;
    for (const api::ProgrammedFrontend& f : state->frontends()) {
      if (f.service() == name && f.address() == address) return f.backends_size();
    }
    return -1;
  }

  // `n` requests, each on a new connection or socket: the answers by server,
  // or the first failure with what had answered before it.
  static absl::StatusOr<std::map<std::string, int>> Spread(
      int n, const std::function<absl::StatusOr<Answer>()>& request) {
    std::map<std::string, int> seen;
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<Answer> a = request();
      if (!a.ok()) {
        return absl::Status(a.status().code(),
                            absl::StrCat("request ", i + 1, " of ", n, ": ", a.status().message(),
                                         "; answers before it: ", Show(seen)));
      }
      ++seen[a->server];
    }
    return seen;
  }

  std::vector<std::unique_ptr<WhoamiServer>> servers_;
  std::vector<std::string> applied_;
};

// Whether `pod` answered `answer`, having seen `client` as the peer.
::testing::AssertionResult AnsweredBy(const absl::StatusOr<Answer>& answer, const Pod& pod,
                                      const std::string& client_ip, const std::string& what) {
  if (!answer.ok()) {
    return ::testing::AssertionFailure() << what << ": " << answer.status();
  }
  if (answer->server != pod.name) {
    return ::testing::AssertionFailure()
           << what << ": answered by " << answer->ToString() << ", not by " << pod.Describe();
  }
  if (!client_ip.empty() && answer->peer_ip != client_ip) {
    return ::testing::AssertionFailure() << what << ": " << pod.Describe() << " saw the client as "
                                         << answer->peer_ip << ", not " << client_ip;
  }
  return ::testing::AssertionSuccess();
}

// `from` reaches `to` directly over TCP and UDP, and `to` sees `from`'s own address.
void ExpectReaches(const Pod& from, const Pod& to) {
  const std::string what = absl::StrCat(from.Describe(), " to ", to.Describe());
  EXPECT_TRUE(AnsweredBy(TcpRequest(*from.netns, to.ip, kServerPort), to, from.ip, "TCP " + what));
  EXPECT_TRUE(AnsweredBy(UdpRequest(*from.netns, to.ip, kServerPort), to, from.ip, "UDP " + what));
}

::testing::AssertionResult NoAnswer(const absl::StatusOr<Answer>& answer, const std::string& what) {
  if (answer.ok()) {
    return ::testing::AssertionFailure()
           << what << ": should get no answer, but " << answer->ToString() << " answered";
  }
  return ::testing::AssertionSuccess();
}

std::string Ext() { return TestBed::kExtAddress; }

using RequestFn = absl::StatusOr<Answer> (*)(const TestNetns&, const std::string&, uint16_t,
                                             const RequestOptions&);
struct Protocol {
  const char* name;
  RequestFn request;
};
const Protocol kProtocols[] = {{"TCP", &TcpRequest}, {"UDP", &UdpRequest}};

// --- The bed itself ------------------------------------------------------------

TEST_F(DataplaneTest, TheBedConnectsHostsAndTheExternalClientOverTheUnderlay) {
  // Not the namespace of whoever started the test: nothing here reaches it.
  struct stat self {
  }, parent{};
  ASSERT_EQ(stat("/proc/self/ns/net", &self), 0);
  ASSERT_EQ(stat(absl::StrCat("/proc/", getppid(), "/ns/net").c_str(), &parent), 0);
  EXPECT_NE(self.st_ino, parent.st_ino) << "the test runs in its parent's network namespace";

  for (int n = 1; n <= bed().options().hosts; ++n) {
    absl::StatusOr<api::AgentStateResponse> state = h(n).agent->State();
    ASSERT_TRUE(state.ok()) << h(n).name << ": " << state.status();
    EXPECT_EQ(state->node(), h(n).name);
    EXPECT_TRUE(state->connected()) << h(n).name << "'s agent is not connected";
    EXPECT_EQ(state->dataplane(), bed().options().dataplane) << h(n).name;
  }
  // The hosts and ext reach each other on the underlay (no dataplane involved).
  ASSERT_OK_AND_ASSIGN(WhoamiServer * on_h2, Serve(*h(2).netns, "h2", 7000));
  (void)on_h2;
  ASSERT_OK_AND_ASSIGN(WhoamiServer * on_ext, Serve(bed().ext(), "ext", 7000));
  (void)on_ext;
  for (const auto& [proto, request] : kProtocols) {
    absl::StatusOr<Answer> a = request(*h(1).netns, h(2).address, 7000, {});
    ASSERT_TRUE(a.ok()) << proto << " from h1 to h2: " << a.status();
    EXPECT_EQ(a->peer_ip, h(1).address) << proto << " from h1 to h2";
    a = request(bed().ext(), h(2).address, 7000, {});
    ASSERT_TRUE(a.ok()) << proto << " from ext to h2: " << a.status();
    EXPECT_EQ(a->peer_ip, Ext()) << proto << " from ext to h2";
    a = request(*h(3).netns, Ext(), 7000, {});
    ASSERT_TRUE(a.ok()) << proto << " from h3 to ext: " << a.status();
    EXPECT_EQ(a->peer_ip, h(3).address) << proto << " from h3 to ext";
  }
  // And the controller, on the bridge's address.
  EXPECT_TRUE(bed().controller().AllAcked(bed().node_names()));
}

// --- 1, 2: pods of one segment ----------------------------------------------------

TEST_F(DataplaneTest, PodsOfASegmentOnOneHostReachEachOther) {
  ASSERT_OK(Namespace({.name = "t01"}));
  ASSERT_OK_AND_ASSIGN(Pod * a, Backend("t01", "t01-a", h(1)));
  ASSERT_OK_AND_ASSIGN(Pod * b, Backend("t01", "t01-b", h(1)));
  EXPECT_EQ(a->prefix, b->prefix);
  EXPECT_NE(a->ip, b->ip);
  for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
    ExpectReaches(*from, *to);
  }
}

TEST_F(DataplaneTest, PodsOfASegmentOnDifferentHostsReachEachOther) {
  ASSERT_OK(Namespace({.name = "t02"}));
  ASSERT_OK_AND_ASSIGN(Pod * a, Backend("t02", "t02-a", h(1)));
  ASSERT_OK_AND_ASSIGN(Pod * b, Backend("t02", "t02-b", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * c, Backend("t02", "t02-c", h(3)));
  for (auto [from, to] : {std::pair{a, b}, std::pair{a, c}, std::pair{c, b}, std::pair{b, a}}) {
    ExpectReaches(*from, *to);
  }
}

// --- 3: isolation ------------------------------------------------------------------

TEST_F(DataplaneTest, IsolatedNamespacesAcceptOnlyTheirOwnAndAdmittedOnes) {
  ASSERT_OK(Namespace({.name = "t03-a", .isolation = "isolated", .admitted = {"t03-d"}}));
  ASSERT_OK(Namespace({.name = "t03-b"}));  // isolated by default
  ASSERT_OK(Namespace({.name = "t03-c", .isolation = "open"}));
  ASSERT_OK(Namespace({.name = "t03-d", .isolation = "isolated"}));
  ASSERT_OK_AND_ASSIGN(Pod * a1, Backend("t03-a", "t03-a1", h(1)));
  ASSERT_OK_AND_ASSIGN(Pod * a2, bed().AddPod("t03-a", "t03-a2", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t03-b", "t03-b1", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * c1, Backend("t03-c", "t03-c1", h(3)));
  ASSERT_OK_AND_ASSIGN(Pod * d1, bed().AddPod("t03-d", "t03-d1", h(3)));
  ASSERT_OK_AND_ASSIGN(WhoamiServer * a1_server, Serve(*a1->netns, "t03-a1-probe", 8081));

  // Its own segment reaches a1: the path works, so a refusal below is isolation.
  ASSERT_TRUE(AnsweredBy(TcpRequest(*a2->netns, a1->ip, kServerPort), *a1, a2->ip,
                         "TCP within t03-a, " + a2->Describe() + " to " + a1->Describe()));

  EXPECT_TRUE(NoAnswer(
      TcpRequest(*b1->netns, a1->ip, kServerPort),
      "TCP from isolated t03-b to isolated t03-a, " + b1->Describe() + " to " + a1->Describe()));
  EXPECT_TRUE(NoAnswer(UdpRequest(*b1->netns, a1->ip, kServerPort),
                       "UDP from t03-b to t03-a, " + b1->Describe() + " to " + a1->Describe()));
  EXPECT_TRUE(NoAnswer(TcpRequest(*b1->netns, a1->ip, 8081), "TCP from t03-b to t03-a port 8081"));
  for (const std::string& seen : a1_server->Seen()) {
    EXPECT_EQ(seen.find(b1->ip), std::string::npos)
        << a1->Describe() << " received a packet from " << b1->Describe() << ": " << seen;
  }

  EXPECT_TRUE(
      AnsweredBy(TcpRequest(*b1->netns, c1->ip, kServerPort), *c1, b1->ip,
                 "TCP from t03-b to open t03-c, " + b1->Describe() + " to " + c1->Describe()));
  EXPECT_TRUE(
      AnsweredBy(UdpRequest(*a1->netns, c1->ip, kServerPort), *c1, a1->ip,
                 "UDP from t03-a to open t03-c, " + a1->Describe() + " to " + c1->Describe()));
  EXPECT_TRUE(AnsweredBy(
      TcpRequest(*d1->netns, a1->ip, kServerPort), *a1, d1->ip,
      "TCP from t03-d, which t03-a admits, " + d1->Describe() + " to " + a1->Describe()));
  // Admission goes one way: t03-b admits nobody.
  EXPECT_TRUE(
      NoAnswer(TcpRequest(*d1->netns, b1->ip, kServerPort),
               "TCP from t03-d to isolated t03-b, " + d1->Describe() + " to " + b1->Describe()));
}

// DESIGN.md "Isolation": a pod accepts the host it runs on, as the
// kubelet's probes need, even in an isolated namespace, and sees the host's
// address; and it reaches its host's own services, which see the pod's.
TEST_F(DataplaneTest, AnIsolatedPodAndTheHostItRunsOnReachEachOther) {
  ASSERT_OK(Namespace({.name = "t03h", .isolation = "isolated"}));
  ASSERT_OK_AND_ASSIGN(Pod * pod, Backend("t03h", "t03h-a", h(1)));
  ASSERT_OK_AND_ASSIGN(WhoamiServer * on_h1, Serve(*h(1).netns, "h1", 7001));
  (void)on_h1;
  for (const auto& [proto, request] : kProtocols) {
    EXPECT_TRUE(AnsweredBy(request(*h(1).netns, pod->ip, kServerPort, {}), *pod, h(1).address,
                           absl::StrCat(proto, " from ", h(1).name, " to ", pod->Describe())));
    absl::StatusOr<Answer> a = request(*pod->netns, h(1).address, 7001, {});
    ASSERT_TRUE(a.ok()) << proto << " from " << pod->Describe() << " to h1: " << a.status();
    EXPECT_EQ(a->server, "h1");
    EXPECT_EQ(a->peer_ip, pod->ip) << proto << " from " << pod->Describe() << " to h1";
  }
  // Nobody else reaches the pod through its host, which forwards
  // (ip_forward): its route to the pod serves its own packets only.
  ASSERT_OK_AND_ASSIGN(WhoamiServer * probe, Serve(*pod->netns, "t03h-probe", 8082));
  const std::string via_h1 = absl::StrCat(pod->ip, "/32 via ", h(1).address);
  ASSERT_OK(Ip(&bed().ext(), {"route add " + via_h1}));
  EXPECT_TRUE(NoAnswer(UdpRequest(bed().ext(), pod->ip, 8082), "UDP from ext to the pod via h1"));
  EXPECT_TRUE(NoAnswer(TcpRequest(bed().ext(), pod->ip, 8082), "TCP from ext to the pod via h1"));
  EXPECT_TRUE(Ip(&bed().ext(), {"route del " + via_h1}).ok());
  for (const std::string& seen : probe->Seen()) {
    EXPECT_EQ(seen.find(Ext()), std::string::npos) << pod->Describe() << " received " << seen;
  }
}

// --- 4, 5: ClusterIP --------------------------------------------------------------

TEST_F(DataplaneTest, ClusterIpSpreadsTcpAndUdpOverBackendsOnOtherHosts) {
  ASSERT_OK(Namespace({.name = "t04"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t04", "t04-b1", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * b2, Backend("t04", "t04-b2", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * b3, Backend("t04", "t04-b3", h(3)));
  ASSERT_OK_AND_ASSIGN(Pod * client, bed().AddPod("t04", "t04-client", h(1)));
  ASSERT_OK_AND_ASSIGN(api::Service svc,
                       Service({.ns = "t04", .name = "web"}, {Ready(*b1), Ready(*b2), Ready(*b3)}));
  ASSERT_EQ(svc.cluster_ips_size(), 1);
  const std::string vip = svc.cluster_ips(0);
  EXPECT_TRUE(lb::IpPrefix::Parse(kServiceCidr)->Contains(*lb::IpAddr::Parse(vip))) << vip;
  EXPECT_EQ(ProgrammedBackends(h(1), "t04/web:tcp", vip), 3);
  EXPECT_EQ(ProgrammedBackends(h(1), "t04/web:udp", vip), 3);
  const std::set<std::string> backends = {b1->name, b2->name, b3->name};

  absl::StatusOr<std::map<std::string, int>> tcp =
      Spread(kSpreadRequests, [&] { return TcpRequest(*client->netns, vip, kServicePort); });
  ASSERT_TRUE(tcp.ok()) << "TCP from " << client->Describe() << " to ClusterIP " << vip << ": "
                        << tcp.status();
  EXPECT_GE(tcp->size(), 2u) << "one backend took all " << kSpreadRequests
                             << " TCP connections: " << Show(*tcp);
  for (const auto& [server, n] : *tcp) EXPECT_TRUE(backends.count(server)) << server;

  absl::StatusOr<std::map<std::string, int>> udp =
      Spread(kSpreadRequests, [&] { return UdpRequest(*client->netns, vip, kServicePort); });
  ASSERT_TRUE(udp.ok()) << "UDP from " << client->Describe() << " to ClusterIP " << vip << ": "
                        << udp.status();
  EXPECT_GE(udp->size(), 2u) << "one backend took all " << kSpreadRequests
                             << " UDP flows: " << Show(*udp);
  for (const auto& [server, n] : *udp) EXPECT_TRUE(backends.count(server)) << server;

  // Pod to service keeps the pod's address: the backend sees who asked.
  const absl::StatusOr<Answer> a = TcpRequest(*client->netns, vip, kServicePort);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->peer_ip, client->ip) << a->server << " saw " << client->Describe()
                                    << " coming through ClusterIP " << vip << " as " << a->peer_ip;
}

TEST_F(DataplaneTest, SessionAffinityClientIpKeepsOneBackend) {
  ASSERT_OK(Namespace({.name = "t05"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t05", "t05-b1", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * b2, Backend("t05", "t05-b2", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * b3, Backend("t05", "t05-b3", h(3)));
  ASSERT_OK_AND_ASSIGN(Pod * client, bed().AddPod("t05", "t05-client", h(1)));
  ASSERT_OK_AND_ASSIGN(api::Service svc,
                       Service({.ns = "t05", .name = "sticky", .session_affinity = "ClientIP"},
                               {Ready(*b1), Ready(*b2), Ready(*b3)}));
  const std::string vip = svc.cluster_ips(0);
  EXPECT_EQ(ProgrammedBackends(h(1), "t05/sticky:tcp", vip), 3);

  for (const auto& [proto, request] : kProtocols) {
    absl::StatusOr<std::map<std::string, int>> seen =
        // clang 14 cannot capture a structured binding (C++20, P1091): named anew.
        Spread(kSpreadRequests,
               [&, &send = request] { return send(*client->netns, vip, kServicePort, {}); });
    ASSERT_TRUE(seen.ok()) << proto << " from " << client->Describe() << " to ClusterIP " << vip
                           << ": " << seen.status();
    EXPECT_EQ(seen->size(), 1u) << proto << " with sessionAffinity ClientIP went to "
                                << Show(*seen);
  }
}

// --- 6: NodePort and externalIPs ---------------------------------------------------

TEST_F(DataplaneTest, NodePortWithClusterPolicyAnswersOnANodeWithoutBackends) {
  ASSERT_OK(Namespace({.name = "t06a"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t06a", "t06a-b1", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * b2, Backend("t06a", "t06a-b2", h(3)));
  ASSERT_OK_AND_ASSIGN(
      api::Service svc,
      Service(
          {.ns = "t06a", .name = "np", .type = "NodePort", .external_traffic_policy = "Cluster"},
          {Ready(*b1), Ready(*b2)}));
  ASSERT_EQ(svc.ports_size(), 2);
  const uint16_t tcp_port = static_cast<uint16_t>(svc.ports(0).node_port());
  const uint16_t udp_port = static_cast<uint16_t>(svc.ports(1).node_port());
  ASSERT_NE(tcp_port, 0);
  EXPECT_EQ(ProgrammedBackends(h(1), "t06a/np:tcp", ""), 2);
  const std::set<std::string> backends = {b1->name, b2->name};

  for (int n : {1, 2}) {
    const std::string where = absl::StrCat(h(n).name, " ", h(n).address, ":");
    absl::StatusOr<std::map<std::string, int>> tcp =
        Spread(10, [&] { return TcpRequest(bed().ext(), h(n).address, tcp_port); });
    ASSERT_TRUE(tcp.ok()) << "TCP from ext to NodePort " << where << tcp_port << ": "
                          << tcp.status();
    for (const auto& [server, count] : *tcp) EXPECT_TRUE(backends.count(server)) << server;
    absl::StatusOr<Answer> udp = UdpRequest(bed().ext(), h(n).address, udp_port);
    ASSERT_TRUE(udp.ok()) << "UDP from ext to NodePort " << where << udp_port << ": "
                          << udp.status();
    EXPECT_TRUE(backends.count(udp->server)) << udp->ToString();
  }
}

TEST_F(DataplaneTest, NodePortWithLocalPolicyAnswersOnlyWhereABackendRunsAndKeepsTheClient) {
  ASSERT_OK(Namespace({.name = "t06b"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t06b", "t06b-b1", h(2)));
  ASSERT_OK_AND_ASSIGN(
      api::Service svc,
      Service({.ns = "t06b", .name = "np", .type = "NodePort", .external_traffic_policy = "Local"},
              {Ready(*b1)}));
  const uint16_t tcp_port = static_cast<uint16_t>(svc.ports(0).node_port());
  const uint16_t udp_port = static_cast<uint16_t>(svc.ports(1).node_port());
  ASSERT_NE(tcp_port, 0);

  // Local: no SNAT, so the backend sees ext itself.
  ASSERT_TRUE(AnsweredBy(TcpRequest(bed().ext(), h(2).address, tcp_port), *b1, Ext(),
                         absl::StrCat("TCP from ext to NodePort ", h(2).address, ":", tcp_port,
                                      " (the backend's node)")));
  EXPECT_TRUE(AnsweredBy(UdpRequest(bed().ext(), h(2).address, udp_port), *b1, Ext(),
                         absl::StrCat("UDP from ext to NodePort ", h(2).address, ":", udp_port)));
  for (int n : {1, 3}) {
    EXPECT_TRUE(NoAnswer(TcpRequest(bed().ext(), h(n).address, tcp_port),
                         absl::StrCat("TCP from ext to NodePort ", h(n).address, ":", tcp_port,
                                      " of ", h(n).name, ", which has no local backend")));
  }
}

TEST_F(DataplaneTest, ExternalIpRoutedToANodeReachesTheBackends) {
  constexpr char kExternalIp[] = "198.18.20.5";
  ASSERT_OK(Namespace({.name = "t06c"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t06c", "t06c-b1", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * b2, Backend("t06c", "t06c-b2", h(3)));
  ASSERT_OK_AND_ASSIGN(api::Service svc,
                       Service({.ns = "t06c", .name = "ext", .external_ips = {kExternalIp}},
                               {Ready(*b1), Ready(*b2)}));
  EXPECT_EQ(ProgrammedBackends(h(1), "t06c/ext:tcp", kExternalIp), 2);
  // Routed to h1, as an upstream router would.
  ASSERT_OK(Ip(&bed().ext(), {absl::StrCat("route add ", kExternalIp, "/32 via ", h(1).address)}));
  Cleanup unroute(
      [&] { (void)Ip(&bed().ext(), {absl::StrCat("route del ", kExternalIp, "/32")}); });
  const std::set<std::string> backends = {b1->name, b2->name};

  absl::StatusOr<std::map<std::string, int>> tcp =
      Spread(10, [&] { return TcpRequest(bed().ext(), kExternalIp, kServicePort); });
  ASSERT_TRUE(tcp.ok()) << "TCP from ext to externalIP " << kExternalIp
                        << " (via h1): " << tcp.status();
  for (const auto& [server, n] : *tcp) EXPECT_TRUE(backends.count(server)) << server;
  absl::StatusOr<Answer> udp = UdpRequest(bed().ext(), kExternalIp, kServicePort);
  ASSERT_TRUE(udp.ok()) << "UDP from ext to externalIP " << kExternalIp << ": " << udp.status();
  EXPECT_TRUE(backends.count(udp->server)) << udp->ToString();
}

// --- 7: internalTrafficPolicy Local ---------------------------------------------------

TEST_F(DataplaneTest, InternalTrafficPolicyLocalUsesOnlyTheNodesOwnBackend) {
  ASSERT_OK(Namespace({.name = "t07"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t07", "t07-b1", h(1)));
  ASSERT_OK_AND_ASSIGN(Pod * b2, Backend("t07", "t07-b2", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * c1, bed().AddPod("t07", "t07-c1", h(1)));
  ASSERT_OK_AND_ASSIGN(Pod * c2, bed().AddPod("t07", "t07-c2", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * c3, bed().AddPod("t07", "t07-c3", h(3)));
  ASSERT_OK_AND_ASSIGN(api::Service svc,
                       Service({.ns = "t07", .name = "local", .internal_traffic_policy = "Local"},
                               {Ready(*b1), Ready(*b2)}));
  const std::string vip = svc.cluster_ips(0);

  for (auto [client, backend] : {std::pair{c1, b1}, std::pair{c2, b2}}) {
    absl::StatusOr<std::map<std::string, int>> seen =
        Spread(10, [&, from = client] { return TcpRequest(*from->netns, vip, kServicePort); });
    ASSERT_TRUE(seen.ok()) << "TCP from " << client->Describe() << " to " << vip << ": "
                           << seen.status();
    EXPECT_EQ(*seen, (std::map<std::string, int>{{backend->name, 10}}))
        << client->Describe() << " should reach only " << backend->Describe() << ", got "
        << Show(*seen);
  }
  EXPECT_TRUE(NoAnswer(TcpRequest(*c3->netns, vip, kServicePort),
                       "TCP from " + c3->Describe() + " to " + vip +
                           " (internalTrafficPolicy Local, no backend on h3)"));
}

// --- 8: terminating endpoints ---------------------------------------------------------

TEST_F(DataplaneTest, TerminatingEndpointsServeOnlyWhenNoReadyOneIsLeft) {
  ASSERT_OK(Namespace({.name = "t08"}));
  ASSERT_OK_AND_ASSIGN(Pod * ready, Backend("t08", "t08-ready", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * draining, Backend("t08", "t08-draining", h(3)));
  ASSERT_OK_AND_ASSIGN(Pod * client, bed().AddPod("t08", "t08-client", h(1)));
  const EndpointSpec terminating = {draining->ip, draining->host->name, false, true, true};
  const ServiceSpec spec = {.ns = "t08", .name = "drain"};
  ASSERT_OK_AND_ASSIGN(api::Service svc, Service(spec, {Ready(*ready), terminating}));
  const std::string vip = svc.cluster_ips(0);

  absl::StatusOr<std::map<std::string, int>> seen =
      Spread(10, [&] { return TcpRequest(*client->netns, vip, kServicePort); });
  ASSERT_TRUE(seen.ok()) << "TCP from " << client->Describe() << " to " << vip << ": "
                         << seen.status();
  EXPECT_EQ(*seen, (std::map<std::string, int>{{ready->name, 10}}))
      << "a terminating endpoint took new connections while a ready one was left: " << Show(*seen);

  // The ready one goes (terminating and no longer serving): the draining one
  // takes over rather than nobody.
  ServiceSpec with_ports = spec;
  with_ports.ports = {{"tcp", "TCP", kServicePort, kServerPort},
                      {"udp", "UDP", kServicePort, kServerPort}};
  const EndpointSpec gone = {ready->ip, ready->host->name, false, false, true};
  ASSERT_OK(Apply(Manifest(Slice(with_ports, {gone, terminating}))));
  seen = Spread(10, [&] { return TcpRequest(*client->netns, vip, kServicePort); });
  ASSERT_TRUE(seen.ok()) << "TCP to " << vip
                         << " with only a terminating endpoint: " << seen.status();
  EXPECT_EQ(*seen, (std::map<std::string, int>{{draining->name, 10}})) << Show(*seen);
}

// --- 9: hairpin -----------------------------------------------------------------------

TEST_F(DataplaneTest, ABackendReachesItselfThroughItsService) {
  ASSERT_OK(Namespace({.name = "t09"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t09", "t09-b1", h(1)));
  ASSERT_OK_AND_ASSIGN(api::Service svc, Service({.ns = "t09", .name = "self"}, {Ready(*b1)}));
  const std::string vip = svc.cluster_ips(0);
  EXPECT_TRUE(AnsweredBy(TcpRequest(*b1->netns, vip, kServicePort), *b1, "",
                         "TCP from " + b1->Describe() + " to its own service " + vip));
  EXPECT_TRUE(AnsweredBy(UdpRequest(*b1->netns, vip, kServicePort), *b1, "",
                         "UDP from " + b1->Describe() + " to its own service " + vip));
}

// --- 10: ICMP errors ------------------------------------------------------------------

TEST_F(DataplaneTest, PortUnreachableFromABackendReachesTheClientThroughTheService) {
  ASSERT_OK(Namespace({.name = "t10"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t10", "t10-b1", h(2)));  // nothing on 8081
  ASSERT_OK_AND_ASSIGN(Pod * client, bed().AddPod("t10", "t10-client", h(1)));
  ASSERT_OK_AND_ASSIGN(api::Service svc,
                       Service({.ns = "t10",
                                .name = "icmp",
                                .ports = {{"open", "UDP", kServicePort, kServerPort},
                                          {"closed", "UDP", kServicePort + 1, kServerPort + 1}}},
                               {Ready(*b1)}));
  const std::string vip = svc.cluster_ips(0);

  // Without a service in between, the kernel's own answer.
  const absl::StatusOr<Answer> direct = UdpRequest(*client->netns, b1->ip, kServerPort + 1);
  ASSERT_TRUE(IsRefused(direct.status()))
      << "UDP from " << client->Describe() << " to " << b1->Describe() << " port "
      << kServerPort + 1 << " should be refused: " << direct.status();
  EXPECT_TRUE(AnsweredBy(UdpRequest(*client->netns, vip, kServicePort), *b1, client->ip,
                         "UDP to " + vip + " port " + std::to_string(kServicePort)));
  const absl::StatusOr<Answer> closed = UdpRequest(*client->netns, vip, kServicePort + 1);
  EXPECT_TRUE(IsRefused(closed.status()))
      << "UDP from " << client->Describe() << " to " << vip << ":" << kServicePort + 1
      << " (backend " << b1->Describe() << " without a listener) should be refused by the "
      << "backend's ICMP port unreachable, translated back to the service; got "
      << (closed.ok() ? closed->ToString() : closed.status().ToString());
}

// --- 11: egress SNAT ------------------------------------------------------------------

TEST_F(DataplaneTest, EgressLeavesWithTheNodeAddressOrTheNamespaceEgressIp) {
  constexpr char kEgressIp[] = "198.18.0.201";
  constexpr uint16_t kExtPort = 9000;
  ASSERT_OK(Namespace({.name = "t11"}));
  ASSERT_OK(Namespace({.name = "t11-egress", .egress_ip = kEgressIp}));
  // h1 holds the egress IP, as the node the namespace's egress is pinned to.
  ASSERT_OK(Ip(h(1).netns.get(), {absl::StrCat("addr add ", kEgressIp, "/32 dev eth0")}));
  Cleanup unaddress(
      [&] { (void)Ip(h(1).netns.get(), {absl::StrCat("addr del ", kEgressIp, "/32 dev eth0")}); });
  ASSERT_OK_AND_ASSIGN(WhoamiServer * ext, Serve(bed().ext(), "ext", kExtPort));
  (void)ext;
  ASSERT_OK_AND_ASSIGN(Pod * p1, bed().AddPod("t11", "t11-p1", h(1)));
  ASSERT_OK_AND_ASSIGN(Pod * p2, bed().AddPod("t11", "t11-p2", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * e1, bed().AddPod("t11-egress", "t11-e1", h(1)));

  struct Case {
    Pod* pod;
    std::string expected;
  };
  for (const Case& c : {Case{p1, h(1).address}, Case{p2, h(2).address}, Case{e1, kEgressIp}}) {
    for (const auto& [proto, request] : kProtocols) {
      const absl::StatusOr<Answer> a = request(*c.pod->netns, Ext(), kExtPort, {});
      ASSERT_TRUE(a.ok()) << proto << " from " << c.pod->Describe() << " to ext " << Ext() << ":"
                          << kExtPort << ": " << a.status();
      EXPECT_EQ(a->peer_ip, c.expected)
          << proto << " from " << c.pod->Describe() << " reached ext as " << a->peer_ip
          << ", not as " << c.expected;
    }
  }
}

// --- 12, 13: established connections ---------------------------------------------------

TEST_F(DataplaneTest, AnEstablishedConnectionSurvivesEndpointChurn) {
  ASSERT_OK(Namespace({.name = "t12"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t12", "t12-b1", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * b2, Backend("t12", "t12-b2", h(3)));
  ASSERT_OK_AND_ASSIGN(Pod * b3, Backend("t12", "t12-b3", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * client, bed().AddPod("t12", "t12-client", h(1)));
  const ServiceSpec spec = {
      .ns = "t12", .name = "churn", .ports = {{"tcp", "TCP", kServicePort, kServerPort}}};
  ASSERT_OK_AND_ASSIGN(api::Service svc, Service(spec, {Ready(*b1), Ready(*b2)}));
  const std::string vip = svc.cluster_ips(0);

  auto opened = OpenLongLived(*client, vip);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<TcpConnection> conn = std::move(opened->first);
  const std::optional<Answer> first = opened->second;
  Pod* const mine = first->server == b1->name ? b1 : b2;
  Pod* const other = mine == b1 ? b2 : b1;
  ASSERT_EQ(first->server, mine->name);

  conn->StartLoad();
  const std::vector<std::vector<Pod*>> rounds = {
      {mine, other, b3}, {mine, b3}, {mine}, {b3, mine, other}, {mine, other}};
  for (size_t i = 0; i < rounds.size(); ++i) {
    std::vector<EndpointSpec> endpoints;
    std::vector<std::string> names;
    for (Pod* p : rounds[i]) {
      endpoints.push_back(Ready(*p));
      names.push_back(p->name);
    }
    ASSERT_OK(Apply(Manifest(Slice(spec, endpoints))));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    // New connections go to the current set.
    const absl::StatusOr<Answer> fresh = TcpRequest(*client->netns, vip, kServicePort);
    ASSERT_TRUE(fresh.ok()) << "a new connection after round " << i << " ("
                            << absl::StrJoin(names, ", ") << "): " << fresh.status();
    EXPECT_NE(std::find(names.begin(), names.end(), fresh->server), names.end())
        << "round " << i << ": a new connection reached " << fresh->server
        << ", which is not among " << absl::StrJoin(names, ", ");
  }
  const TcpConnection::LoadReport report = conn->StopLoad();
  EXPECT_EQ(report.failed, 0) << "the long-lived connection to " << vip
                              << " broke: " << report.first_error << " (after " << report.ok
                              << " answers)";
  EXPECT_EQ(report.servers, (std::map<std::string, int>{{mine->name, report.ok}}))
      << "the long-lived connection changed backends: " << Show(report.servers);
  EXPECT_GT(report.ok, 10);
}

TEST_F(DataplaneTest, AnEstablishedConnectionSurvivesItsAgentKilledAndRestarted) {
  ASSERT_OK(Namespace({.name = "t13"}));
  ASSERT_OK_AND_ASSIGN(Pod * b1, Backend("t13", "t13-b1", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * b2, Backend("t13", "t13-b2", h(3)));
  ASSERT_OK_AND_ASSIGN(Pod * client, bed().AddPod("t13", "t13-client", h(1)));
  ASSERT_OK_AND_ASSIGN(
      api::Service svc,
      Service(
          {.ns = "t13", .name = "restart", .ports = {{"tcp", "TCP", kServicePort, kServerPort}}},
          {Ready(*b1), Ready(*b2)}));
  const std::string vip = svc.cluster_ips(0);

  auto opened = OpenLongLived(*client, vip);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<TcpConnection> conn = std::move(opened->first);
  const std::optional<Answer> first = opened->second;

  conn->StartLoad();
  const pid_t old_pid = h(1).agent->pid();
  ASSERT_OK(bed().StopAgent(h(1), SIGKILL));
  // The dataplane forwards on its own while the agent is away.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const absl::StatusOr<Answer> while_down = TcpRequest(*client->netns, vip, kServicePort);
  EXPECT_TRUE(while_down.ok()) << "a new connection to " << vip
                               << " while h1's agent is down: " << while_down.status();
  ASSERT_OK(bed().StartAgent(h(1)));
  EXPECT_NE(h(1).agent->pid(), old_pid);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const TcpConnection::LoadReport report = conn->StopLoad();
  EXPECT_EQ(report.failed, 0) << "the long-lived connection broke across the restart: "
                              << report.first_error << " (after " << report.ok << " answers)";
  EXPECT_EQ(report.servers, (std::map<std::string, int>{{first->server, report.ok}}))
      << Show(report.servers);

  // After the restart: the old connection, new connections, and a new pod.
  EXPECT_TRUE(conn->Request().ok());
  absl::StatusOr<std::map<std::string, int>> fresh =
      Spread(5, [&] { return TcpRequest(*client->netns, vip, kServicePort); });
  EXPECT_TRUE(fresh.ok()) << "new connections after the restart: " << fresh.status();
  ASSERT_OK_AND_ASSIGN(Pod * later, bed().AddPod("t13", "t13-later", h(1)));
  EXPECT_TRUE(TcpRequest(*later->netns, vip, kServicePort).ok())
      << later->Describe() << ", made after the restart, cannot reach " << vip;
}

// --- 14: anti-spoofing ----------------------------------------------------------------

TEST_F(DataplaneTest, APodCannotSendWithAnotherSourceAddress) {
  ASSERT_OK(Namespace({.name = "t14"}));
  ASSERT_OK_AND_ASSIGN(Pod * server, bed().AddPod("t14", "t14-server", h(1)));
  ASSERT_OK_AND_ASSIGN(WhoamiServer * whoami, Serve(*server->netns, server->name));
  ASSERT_OK_AND_ASSIGN(Pod * remote, Backend("t14", "t14-remote", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * spoofer, bed().AddPod("t14", "t14-spoofer", h(1)));

  // Honest first: the path works.
  ASSERT_TRUE(AnsweredBy(TcpRequest(*spoofer->netns, server->ip, kServerPort), *server, spoofer->ip,
                         "TCP " + spoofer->Describe() + " to " + server->Describe()));
  ASSERT_TRUE(AnsweredBy(UdpRequest(*spoofer->netns, remote->ip, kServerPort), *remote, spoofer->ip,
                         "UDP " + spoofer->Describe() + " to " + remote->Describe()));

  // An address of its segment that is not its own (near the end of the CIDR,
  // which the lowest-first allocation has not reached), added in the pod.
  lb::IpAddr fake = lb::IpPrefix::Parse(server->prefix)->Last();
  fake.bytes[15] -= 5;
  const std::string spoofed = fake.ToString();
  ASSERT_OK(Ip(spoofer->netns.get(), {absl::StrCat("addr add ", spoofed, "/32 dev eth0")}));
  const RequestOptions from_spoofed = {.source = spoofed};
  const std::string what = absl::StrCat(spoofer->Describe(), " sending as ", spoofed, " to ");
  EXPECT_TRUE(NoAnswer(TcpRequest(*spoofer->netns, server->ip, kServerPort, from_spoofed),
                       "TCP " + what + server->Describe()));
  EXPECT_TRUE(NoAnswer(UdpRequest(*spoofer->netns, server->ip, kServerPort, from_spoofed),
                       "UDP " + what + server->Describe()));
  EXPECT_TRUE(NoAnswer(UdpRequest(*spoofer->netns, remote->ip, kServerPort, from_spoofed),
                       "UDP " + what + remote->Describe()));
  for (const std::string& seen : whoami->Seen()) {
    EXPECT_EQ(seen.find(" " + spoofed + " "), std::string::npos)
        << server->Describe() << " received a packet with the spoofed source: " << seen;
  }
}

// --- 15: the DPDK dataplane's process restarted ---------------------------------

TEST_F(DataplaneTest, ARestartedDpdkDataplaneIsProgrammedWholeAgain) {
  if (h(1).dpdkd == nullptr) GTEST_SKIP() << "atoll-dpdkd is the DPDK dataplane's process";
  ASSERT_OK(Namespace({.name = "t15"}));
  ASSERT_OK_AND_ASSIGN(Pod * remote, Backend("t15", "t15-remote", h(2)));
  ASSERT_OK_AND_ASSIGN(Pod * local, Backend("t15", "t15-local", h(1)));
  ASSERT_OK_AND_ASSIGN(Pod * client, bed().AddPod("t15", "t15-client", h(1)));
  ASSERT_OK_AND_ASSIGN(
      api::Service svc,
      Service({.ns = "t15", .name = "again", .ports = {{"tcp", "TCP", kServicePort, kServerPort}}},
              {Ready(*remote), Ready(*local)}));
  const std::string vip = svc.cluster_ips(0);
  ASSERT_TRUE(TcpRequest(*client->netns, vip, kServicePort).ok());

  // Nothing survives in the new process: the pods' ports, the segments and
  // the service come back from the agent that follows the one that exited.
  const pid_t old_agent = h(1).agent->pid();
  ASSERT_OK(bed().RestartDpdkd(h(1)));
  EXPECT_NE(h(1).agent->pid(), old_agent);
  absl::StatusOr<std::map<std::string, int>> spread =
      Spread(kSpreadRequests, [&] { return TcpRequest(*client->netns, vip, kServicePort); });
  ASSERT_TRUE(spread.ok()) << "through " << vip
                           << " after h1's dataplane restarted: " << spread.status();
  EXPECT_EQ(spread->size(), 2u) << Show(*spread);
  EXPECT_TRUE(AnsweredBy(TcpRequest(*client->netns, local->ip, kServerPort), *local, client->ip,
                         "pod to pod on h1 after its dataplane restarted"));
  ASSERT_OK_AND_ASSIGN(Pod * later, bed().AddPod("t15", "t15-later", h(1)));
  EXPECT_TRUE(TcpRequest(*later->netns, vip, kServicePort).ok())
      << later->Describe() << ", made after the restart, cannot reach " << vip;
}

}  // namespace
}  // namespace atl::testing

int main(int argc, char** argv) {
  // Before gtest or gRPC start a thread: unsharing the mount namespace needs
  // a single-threaded process.
  if (absl::Status s = atl::testing::EnterTestNamespaces(); !s.ok()) {
    std::fprintf(stderr, "dataplane_e2e_test: %s\n", s.ToString().c_str());
    return 1;
  }
  ::testing::InitGoogleMock(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new atl::testing::BedEnvironment);
  return RUN_ALL_TESTS();
}
