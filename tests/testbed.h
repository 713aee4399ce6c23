// A multi-host test bed for end-to-end tests of the dataplane (DESIGN.md, "Test
// bed"): hosts h1..hN, each a network namespace running its own atoll-agent,
// joined by veths to the underlay bridge atl-ul0; an external client `ext` on
// the same bridge; a controller on the bridge's address; pods made by the real
// atoll-cni, driven through libcni (../shared/realclients/cnidrive.go).
//
//   underlay (the test process's own namespace)   atl-ul0 198.18.0.1/20, controller
//   h1, h2, h3                                    eth0 198.18.0.11/20, .12, .13
//   ext                                           eth0 198.18.16.2/20
//
// Hosts route the external range (198.18.16.0/20) on-link through eth0 and ext
// the underlay range (198.18.0.0/20); hosts forward (net.ipv4.ip_forward=1).
//
// The test process must call EnterTestNamespaces() first thing in main: it
// moves the process into network and mount namespaces of its own, so the
// root namespace sees nothing of the bed, and everything (namespaces, links,
// pinned BPF objects, files under /tmp) vanishes with the process however it
// ends. Every process the bed starts is ended by its PID when its owner goes,
// and gets SIGKILL from the kernel if the test process dies first.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoll.grpc.pb.h"
#include "tests/netns.h"

namespace atl::testing {

namespace api = ::atl::api::v1;

// Unshares the network and mount namespaces, makes every mount private, brings
// lo up, mounts a fresh bpffs on /sys/fs/bpf and tmpfs on /tmp and
// /var/lib/cni (libcni's cache). Must run before the process has threads.
absl::Status EnterTestNamespaces();

// --- Processes ---------------------------------------------------------------

struct SpawnOptions {
  // The network namespace the process runs in; the caller's when null.
  const TestNetns* netns = nullptr;
  // The view a program on that host has, as `ip netns exec` gives it: a mount
  // namespace of its own (a slave of the test's, so that pod namespaces
  // mounted later are seen) with the namespace's own /sys, and the test's
  // bpffs on /sys/fs/bpf.
  bool host_view = false;
  // "K=V" strings, the whole environment; the test's own when empty.
  std::vector<std::string> env = {};
};

// A process the test started, killed by its PID when the object goes.
class ChildProcess {
 public:
  // Starts argv[0] (a path) with stdout and stderr appended to `log`.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const SpawnOptions& options,
                                                             const std::filesystem::path& log);
  ~ChildProcess() { Stop(SIGKILL); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Whether it still runs; reaps it when it has exited.
  bool Running();
  // "exited with status 2", "killed by signal 9", "running".
  std::string Describe();
  // Signals the process and reaps it (SIGKILL after 5 s); its wait status.
  int Stop(int sig = SIGTERM);
  std::string LogTail(size_t lines = 20) const;

 private:
  ChildProcess(pid_t pid, std::filesystem::path log) : pid_(pid), log_(std::move(log)) {}

  pid_t pid_;
  std::optional<int> status_;  // once reaped
  std::filesystem::path log_;
};

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out;
  std::string err;
};

// Runs argv[0] (a path) to its end and returns what it printed; an error when
// it cannot start or runs past `timeout` (it and its children are then killed).
absl::StatusOr<CommandResult> RunCommand(
    const std::vector<std::string>& argv, const SpawnOptions& options = {},
    const std::string& input = "", std::chrono::milliseconds timeout = std::chrono::seconds(30));

// `ip -batch -` inside `netns` (the test's own namespace when null): one
// command of iproute2 per line, all or an error naming the failed one.
absl::Status Ip(const TestNetns* netns, const std::vector<std::string>& commands);

// --- The processes of the bed ------------------------------------------------

// The controller, in the underlay namespace on the bridge's address.
class Controller {
 public:
  // Listens on host:0, with its store in `dir`.
  static absl::StatusOr<std::unique_ptr<Controller>> Start(const std::filesystem::path& dir,
                                                           const std::filesystem::path& log,
                                                           const std::string& host);
  const std::string& address() const { return address_; }
  pid_t pid() const { return process_->pid(); }
  std::string LogTail(size_t lines = 20) const { return process_->LogTail(lines); }

  api::StatusResponse Status();
  // Whether each of `nodes` is connected and acked the current version.
  bool AllAcked(const std::vector<std::string>& nodes);
  absl::StatusOr<api::Resource> Get(api::Kind kind, const std::string& ns, const std::string& name);

 private:
  std::unique_ptr<ChildProcess> process_;
  std::string address_;
  std::unique_ptr<api::Admin::Stub> admin_;
};

// One host's atoll-agent, run inside the host's namespace.
class Agent {
 public:
  // Starts the agent and waits until its socket serves.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(const TestNetns& netns,
                                                      std::vector<std::string> argv,
                                                      const std::filesystem::path& socket,
                                                      const std::filesystem::path& log);
  pid_t pid() const { return process_->pid(); }
  bool Running() { return process_->Running(); }
  std::string Describe() { return process_->Describe(); }  // "exited with status 3"
  int Stop(int sig = SIGTERM) { return process_->Stop(sig); }
  std::string LogTail(size_t lines = 20) const { return process_->LogTail(lines); }
  absl::StatusOr<api::AgentStateResponse> State();

 private:
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<api::AgentDebug::Stub> debug_;
};

struct Host {
  std::string name;     // "h1"
  std::string address;  // "198.18.0.11", its Node's underlay address
  std::unique_ptr<TestNetns> netns;
  std::vector<std::string> agent_argv;
  std::filesystem::path socket;
  std::filesystem::path cni_conf_dir;  // NETCONFPATH for cnidrive
  std::filesystem::path bpf_pin_dir;   // empty for the in-process dataplane
  // The DPDK dataplane's process (dataplane "dpdk"), which outlives its agent.
  std::unique_ptr<ChildProcess> dpdkd;
  std::filesystem::path dpdkd_socket;
  std::unique_ptr<Agent> agent;
};

// A pod made through atoll-cni: its namespace and what the ADD result said.
struct Pod {
  std::string name;
  std::string ns;
  Host* host = nullptr;
  std::string container_id;
  std::unique_ptr<TestNetns> netns;
  std::string ip;           // "198.19.0.5"
  std::string prefix;       // the segment CIDR the address came with: "198.19.0.0/24"
  std::string gateway;      // the pod's default route
  std::string mac;          // the pod side's
  std::string host_ifname;  // the host side's, in the host's namespace
  // "pod t01/client (198.19.0.5 on h1)", for failure messages.
  std::string Describe() const;
};

// --- Manifests, as atollctl reads them ---------------------------------------

struct NamespaceSpec {
  std::string name = {};
  std::string isolation = {};              // "isolated", "open", or "" (isolated)
  std::vector<std::string> admitted = {};  // admitted namespaces
  std::string egress_ip = {};
};

struct PortSpec {
  std::string name = {};
  std::string protocol = "TCP";
  int port = 0;
  int target_port = 0;  // services only
  int node_port = 0;    // services only; 0: allocated
};

struct ServiceSpec {
  std::string ns = {};
  std::string name = {};
  std::string type = "ClusterIP";
  std::vector<PortSpec> ports = {};
  std::string session_affinity = {};         // "ClientIP"
  std::string external_traffic_policy = {};  // "Local", "Cluster"
  std::string internal_traffic_policy = {};
  std::vector<std::string> external_ips = {};
};

struct EndpointSpec {
  std::string address = {};
  std::string node = {};
  std::optional<bool> ready = {};
  std::optional<bool> serving = {};
  std::optional<bool> terminating = {};
};

struct EndpointSliceSpec {
  std::string ns = {};
  std::string name = {};
  std::string service = {};
  std::vector<EndpointSpec> endpoints = {};
  std::vector<PortSpec> ports = {};  // name, protocol and port (the backends' port)
};

std::string Manifest(const NamespaceSpec& spec);
std::string Manifest(const ServiceSpec& spec);
std::string Manifest(const EndpointSliceSpec& spec);

// --- The bed -------------------------------------------------------------------

struct TestBedOptions {
  int hosts = 3;
  // The agents' --dataplane; ATOLL_E2E_DATAPLANE overrides the default. Any
  // but "in-process" gets --uplink=eth0 and --bpf_pin_dir too.
  std::string dataplane = "ebpf";
  // More agent flags, from ATOLL_E2E_AGENT_ARGS (split at spaces).
  std::vector<std::string> agent_args;
  // More atoll-dpdkd flags (dataplane "dpdk"), from ATOLL_E2E_DPDKD_ARGS.
  std::vector<std::string> dpdkd_args;
  // Where the controller's and agents' logs go, from ATOLL_E2E_LOG_DIR, to
  // keep them; by default the bed's own directory, which goes with the test's
  // /tmp (so a directory under /tmp keeps nothing either).
  std::filesystem::path log_dir;

  static TestBedOptions FromEnvironment();
};

class TestBed {
 public:
  static constexpr char kUnderlayBridge[] = "atl-ul0";
  static constexpr char kUnderlayAddress[] = "198.18.0.1";
  static constexpr char kExtAddress[] = "198.18.16.2";

  static absl::StatusOr<std::unique_ptr<TestBed>> Create(TestBedOptions options);
  ~TestBed();
  TestBed(const TestBed&) = delete;
  TestBed& operator=(const TestBed&) = delete;

  const TestBedOptions& options() const { return options_; }
  const std::filesystem::path& dir() const { return dir_; }
  Host& host(int n) { return *hosts_.at(n - 1); }  // 1-based: host(1) is h1
  std::vector<std::string> node_names() const;
  const TestNetns& ext() const { return *ext_; }
  Controller& controller() { return *controller_; }

  // `atollctl apply -f` of `manifest`, then waits until every agent acked.
  absl::Status Apply(const std::string& manifest);
  // `atollctl delete -f`, then waits until every agent acked.
  absl::Status Delete(const std::string& manifest);
  absl::Status WaitAcked(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  absl::StatusOr<api::Service> GetService(const std::string& ns, const std::string& name);
  // The segment CIDRs of `ns`, as the controller allocated them.
  absl::StatusOr<std::vector<std::string>> SegmentCidrs(const std::string& ns);

  // A pod of namespace `ns` on `host`: a new network namespace and
  // `cnidrive add` run in the host's namespace. Its address is checked to be
  // in the namespace's segment. Pod names are unique in the bed.
  absl::StatusOr<Pod*> AddPod(const std::string& ns, const std::string& name, Host& host);
  // `cnidrive del`, then the namespace goes.
  absl::Status DeletePod(const std::string& name);
  absl::Status DeleteAllPods();
  Pod* pod(const std::string& name);

  // Kills the host's agent with `sig` and starts it again with the same
  // arguments; waits until it serves and acked.
  absl::Status RestartAgent(Host& host, int sig = SIGKILL);
  absl::Status StopAgent(Host& host, int sig = SIGKILL);
  absl::Status StartAgent(Host& host);
  // Kills the host's atoll-dpdkd and starts another, which holds nothing;
  // its agent, seeing that, exits (crash-only) and is started again as a
  // supervisor would, to program it whole. Waits until it acked.
  absl::Status RestartDpdkd(Host& host);

  // The tails of the controller's and agents' logs, for failure reports.
  std::string Logs(size_t lines = 15);
  // How to look inside while the bed runs: each host's agent PID and each
  // pod's namespace file, with the nsenter commands that enter them.
  std::string Inventory();

 private:
  explicit TestBed(TestBedOptions options) : options_(std::move(options)) {}
  absl::Status Build();
  absl::Status BuildCnidrive();
  // The host's atoll-dpdkd, serving on its socket when this returns.
  absl::Status StartDpdkd(Host& host);
  absl::StatusOr<CommandResult> Cnidrive(const Pod& pod, const std::string& op);
  absl::Status Atollctl(const std::string& verb, const std::string& manifest);

  TestBedOptions options_;
  std::filesystem::path dir_;
  std::filesystem::path cnidrive_;
  std::unique_ptr<Controller> controller_;
  std::vector<std::unique_ptr<Host>> hosts_;
  std::unique_ptr<TestNetns> ext_;
  std::map<std::string, std::unique_ptr<Pod>> pods_;
  int manifests_ = 0;
};

}  // namespace atl::testing
