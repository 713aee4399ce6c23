// The control plane at scale: a controller process holding --services
// Services with --endpoints endpoints each, and --agents agents on real gRPC
// streams: one real atoll-agent process rendering into lb tables, the rest
// light agents in this process (the same SyncClient and DesiredState as the
// agent, without a dataplane), as Antrea's agent simulator does.
//
// Prints:
//  - full sync: from the moment every agent connects to a controller that
//    holds everything until every agent has ACKed it;
//  - change latency: from an Apply of one EndpointSlice change until every
//    agent has ACKed its version, p50/p99 over --changes changes, applied one
//    after another;
//  - bytes sent per agent per change (Sync message bytes, before gRPC framing);
//  - peak RSS of the controller and of the real agent.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "agent/desired_state.h"
#include "agent/sync_client.h"
#include "grpcpp/grpcpp.h"
#include "tests/processes.h"

ABSL_FLAG(int, services, 10000, "Services, each with one EndpointSlice");
ABSL_FLAG(int, endpoints, 10, "endpoints per Service");
ABSL_FLAG(int, agents, 50, "agents: one atoll-agent process, the rest light agents");
ABSL_FLAG(int, changes, 1000, "single-EndpointSlice changes timed one after another");
ABSL_FLAG(int, batch, 1000, "resources per Apply while populating");
ABSL_FLAG(bool, light_cache, true,
          "light agents keep the agent's desired-state cache; without it they parse and ACK only");

namespace atl::perf {
namespace {

namespace api = ::atl::api::v1;
using Clock = std::chrono::steady_clock;
using testing::AgentProcess;
using testing::ControllerProcess;
using testing::TempDir;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A memory figure of /proc/PID/status ("VmHWM": peak resident set,
// "VmRSS": resident now), in MiB.
double StatusMiB(pid_t pid, const std::string& field = "VmHWM") {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  }
  return 0;
}

// 198.19.x.y for endpoint i: pod addresses, inside the pod CIDR (several
// services may share one: the control plane does not mind).
std::string PodAddress(int i) { return absl::StrCat("198.19.", (i >> 8) & 0xff, ".", i & 0xff); }

api::Resource Slice(int service, int endpoints, int generation) {
  api::Resource r;
  api::EndpointSlice* s = r.mutable_endpoint_slice();
  s->set_namespace_(absl::StrCat("ns", service % 10));
  s->set_name(absl::StrCat("svc", service, "-abc"));
  s->set_service_name(absl::StrCat("svc", service));
  for (int e = 0; e < endpoints; ++e) {
    api::Endpoint* ep = s->add_endpoints();
    // A change (generation > 0) moves the first endpoint to a new address.
    ep->add_addresses(
        e == 0 && generation > 0
            ? absl::StrCat("198.19.", 200 + (generation / 250) % 50, ".", generation % 250 + 1)
            : PodAddress(service * endpoints + e));
    ep->set_node_name(absl::StrCat("node", (service + e) % 50));
    ep->mutable_conditions()->set_ready(true);
  }
  api::EndpointPort* p = s->add_ports();
  p->set_name("http");
  p->set_port(8080);
  return r;
}

api::Resource Service(int i) {
  api::Resource r;
  api::Service* s = r.mutable_service();
  s->set_namespace_(absl::StrCat("ns", i % 10));
  s->set_name(absl::StrCat("svc", i));
  api::ServicePort* p = s->add_ports();
  p->set_name("http");
  p->set_port(80);
  p->set_target_port("8080");
  return r;
}

// A light agent: the agent's sync client (which parses every resource) and,
// unless --light_cache=false, its desired-state cache; no dataplane.
class LightAgent {
 public:
  LightAgent(const std::string& address, const std::string& node) {
    client_ = std::make_unique<agent::SyncClient>(
        // Its own TCP connection, as a separate host would have.
        agent::ControllerChannel(address, /*own_connection=*/true),
        agent::SyncClient::Options{.node = node}, [this](agent::ReceivedVersion&& v) {
          if (!absl::GetFlag(FLAGS_light_cache)) return absl::OkStatus();
          absl::StatusOr<std::vector<agent::Change>> changes =
              v.snapshot ? state_.ApplySnapshot(std::move(v.upserts))
                         : state_.ApplyDelta(std::move(v.upserts), v.removals);
          return changes.status();
        });
  }
  void Start() { client_->Start(); }
  void Stop() { client_->Stop(); }

 private:
  agent::DesiredState state_;  // touched only by the client's thread
  std::unique_ptr<agent::SyncClient> client_;
};

// Waits until every agent has ACKed `version` (or a later one); polls the
// controller's status, the view an operator has. When `first_seen` is given,
// records when each node was first seen to have ACKed it.
bool WaitAcked(ControllerProcess& c, int agents, uint64_t version,
               std::map<std::string, Clock::time_point>* first_seen = nullptr,
               std::chrono::seconds timeout = std::chrono::seconds(120)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    api::StatusResponse s = c.Status();
    int acked = 0;
    for (const api::AgentStatus& a : s.agents()) {
      if (a.connected() && a.acked_version() >= version) {
        ++acked;
        if (first_seen) first_seen->try_emplace(a.node(), Clock::now());
      }
    }
    if (acked >= agents) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return false;
}

uint64_t TotalBytesSent(ControllerProcess& c) {
  uint64_t total = 0;
  const api::StatusResponse status = c.Status();
  for (const api::AgentStatus& a : status.agents()) total += a.bytes_sent();
  return total;
}

int Run() {
  const int services = absl::GetFlag(FLAGS_services);
  const int endpoints = absl::GetFlag(FLAGS_endpoints);
  const int agents = absl::GetFlag(FLAGS_agents);
  const int changes = absl::GetFlag(FLAGS_changes);
  const int batch = absl::GetFlag(FLAGS_batch);
  TempDir dir("atoll-control-bench");
  ControllerProcess controller(dir.path());

  // Populate: namespaces and nodes, then services and their slices.
  const auto populate_start = Clock::now();
  std::vector<api::Resource> pending;
  api::ApplyResponse applied;
  auto flush = [&] {
    if (pending.empty()) return true;
    grpc::Status s = controller.Apply(pending, &applied);
    if (!s.ok()) std::fprintf(stderr, "apply: %s\n", s.error_message().c_str());
    pending.clear();
    return s.ok();
  };
  for (int n = 0; n < 10; ++n) {
    api::Resource r;
    r.mutable_namespace_()->set_name(absl::StrCat("ns", n));
    pending.push_back(r);
  }
  for (int n = 0; n < agents; ++n) {
    api::Resource r;
    r.mutable_node()->set_name(absl::StrCat("node", n));
    r.mutable_node()->set_underlay_address(absl::StrCat("198.18.0.", n + 1));
    pending.push_back(r);
  }
  if (!flush()) return 1;
  for (int i = 0; i < services; ++i) {
    pending.push_back(Service(i));
    pending.push_back(Slice(i, endpoints, 0));
    if (static_cast<int>(pending.size()) >= batch && !flush()) return 1;
  }
  if (!flush()) return 1;
  const uint64_t full_version = applied.version();
  std::printf("populate: %d services, %d endpoints in %.0f ms (version %llu)\n", services,
              services * endpoints, Ms(Clock::now() - populate_start),
              static_cast<unsigned long long>(full_version));

  // Full sync: every agent connects at once.
  const auto sync_start = Clock::now();
  AgentProcess real(dir.path(), "node0", controller.address());
  std::vector<std::unique_ptr<LightAgent>> light;
  for (int n = 1; n < agents; ++n) {
    light.push_back(std::make_unique<LightAgent>(controller.address(), absl::StrCat("node", n)));
    light.back()->Start();
  }
  std::map<std::string, Clock::time_point> acked_at;
  if (!WaitAcked(controller, agents, full_version, &acked_at)) {
    std::fprintf(stderr, "full sync did not finish\n%s\n", controller.Log().c_str());
    return 1;
  }
  const double full_sync_ms = Ms(Clock::now() - sync_start);
  Clock::time_point light_done = sync_start;
  for (const auto& [node, at] : acked_at) {
    if (node != "node0") light_done = std::max(light_done, at);
  }
  std::printf(
      "full sync: the atoll-agent process acked at %.0f ms, the last light agent at "
      "%.0f ms\n",
      Ms(acked_at["node0"] - sync_start), Ms(light_done - sync_start));
  const uint64_t bytes_after_sync = TotalBytesSent(controller);
  std::printf(
      "full sync: %d agents acked %d services / %d endpoints in %.0f ms (%.1f MiB sent "
      "per agent)\n",
      agents, services, services * endpoints, full_sync_ms,
      bytes_after_sync / static_cast<double>(agents) / (1 << 20));

  // Change latency: one EndpointSlice change at a time, until all have ACKed it.
  std::vector<double> latencies;
  latencies.reserve(changes);
  for (int c = 0; c < changes; ++c) {
    api::Resource change = Slice((c * 7919) % services, endpoints, 1 + c);
    const auto t0 = Clock::now();
    grpc::Status s = controller.Apply({change}, &applied);
    if (!s.ok()) {
      std::fprintf(stderr, "apply: %s\n", s.error_message().c_str());
      return 1;
    }
    if (!WaitAcked(controller, agents, applied.version())) {
      std::fprintf(stderr, "change %d was not acked\n", c);
      return 1;
    }
    latencies.push_back(Ms(Clock::now() - t0));
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))];
  };
  const double per_change =
      (TotalBytesSent(controller) - bytes_after_sync) / static_cast<double>(changes) / agents;
  std::printf("change latency (%d changes, %d agents): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              changes, agents, pct(0.50), pct(0.99), latencies.back());
  std::printf("bytes per agent per change: %.0f\n", per_change);
  std::printf("peak RSS: controller %.1f MiB, atoll-agent %.1f MiB\n", StatusMiB(controller.pid()),
              StatusMiB(real.pid()));
  std::printf(
      "RSS now: controller %.1f MiB, atoll-agent %.1f MiB; this process with %d light "
      "agents %.1f MiB\n",
      StatusMiB(controller.pid(), "VmRSS"), StatusMiB(real.pid(), "VmRSS"), agents - 1,
      StatusMiB(getpid(), "VmRSS"));

  for (auto& a : light) a->Stop();
  real.Stop();
  controller.Stop();
  return 0;
}

}  // namespace
}  // namespace atl::perf

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return atl::perf::Run();
}
