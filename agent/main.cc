// atoll-agent: the per-host agent. Keeps a stream to the controller, renders
// what it receives into the dataplane, and serves the CNI plugin and its debug
// API on a root-only unix socket.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/cni_server.h"
#include "agent/lease_store.h"
#include "agent/pod_network.h"
#include "dataplane/in_process_dataplane.h"
#include "lb/status_macros.h"
#include "lb/stop_signals.h"
#ifdef ATOLL_HAVE_EBPF
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>

#include "dataplane/ebpf/ebpf_dataplane.h"
#endif
#include "dataplane/daemon/remote_dataplane.h"
#include "grpcpp/grpcpp.h"
#include "root_socket.h"

ABSL_FLAG(std::string, node, "", "this node's name, as in its Node resource (default: hostname)");
ABSL_FLAG(std::string, controller, "127.0.0.1:7470", "the controller's gRPC address");
ABSL_FLAG(std::string, socket, "/run/atoll/agent.sock",
          "unix socket of the CNI plugin and the debug API (root only)");
ABSL_FLAG(std::string, lease_db, "/var/lib/atoll/agent.db",
          "SQLite database of the pods' address leases");
ABSL_FLAG(uint32_t, mtu, 0,
          "the pods' MTU; 0: the MTU of the default route's link less the VXLAN overhead");
ABSL_FLAG(std::string, dataplane, "in-process",
          "dataplane backend: in-process (tables only, forwards nothing), ebpf, or dpdk "
          "(atoll-dpdkd, a process of its own)");
ABSL_FLAG(uint64_t, max_frontends, atl::dataplane::InProcessDataplane::kDefaultMaxFrontends,
          "service frontends the in-process dataplane can hold");
ABSL_FLAG(std::string, uplink, "",
          "ebpf: the host's uplink interface (the overlay, NodePort, externalIPs, "
          "egress replies); default: the default route's");
ABSL_FLAG(std::string, bpf_pin_dir, "/sys/fs/bpf/atoll",
          "ebpf: where the maps are pinned, so that they outlive the agent");
ABSL_FLAG(std::string, dpdk_socket, "/run/atoll/dpdkd.sock",
          "dpdk: the unix socket of atoll-dpdkd, the process the DPDK dataplane runs in");
ABSL_FLAG(uint32_t, dpdk_wait_s, 30, "dpdk: how long to wait for atoll-dpdkd to answer at start");
ABSL_FLAG(bool, host_routes, true,
          "route each pod's address alone to its veth in this host's namespace, so that the "
          "host reaches its pods (the kubelet's probes)");

namespace atl::agent {
namespace {

// What VXLAN adds to a pod's packet on an IPv4 underlay: outer Ethernet (14),
// IPv4 (20), UDP (8) and VXLAN (8) headers (RFC 7348 section 5).
constexpr uint32_t kVxlanOverhead = 50;

// The exit status when atoll-dpdkd may hold other than what the agent sent
// (it restarted, or an update's outcome is unknown).
constexpr int kDataplaneDivergedExit = 3;

absl::StatusOr<uint32_t> PodMtu() {
  if (uint32_t mtu = absl::GetFlag(FLAGS_mtu); mtu != 0) {
    if (mtu < 576 || mtu > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mtu: ", mtu, " is not in 576..65535 (0 picks it from the underlay)"));
    }
    return mtu;
  }
  absl::StatusOr<uint32_t> underlay = DefaultRouteMtu();
  if (!underlay.ok()) return underlay.status();
  return *underlay - kVxlanOverhead;
}

#ifdef ATOLL_HAVE_EBPF
constexpr bool kBpfBuilt = true;

absl::Status EnsureBpfFs(const std::filesystem::path& pin_dir) {
  const std::filesystem::path mount_point = "/sys/fs/bpf";
  struct statfs fs {};
  if (pin_dir.string().rfind(mount_point.string(), 0) != 0 ||
      (statfs(mount_point.c_str(), &fs) == 0 && fs.f_type == BPF_FS_MAGIC)) {
    return absl::OkStatus();
  }
  if (mount("bpf", mount_point.c_str(), "bpf", 0, "mode=0700") != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "mounting the BPF file system on ", mount_point.string(), ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}
#else
constexpr bool kBpfBuilt = false;
#endif

std::string NodeName() {
  std::string node = absl::GetFlag(FLAGS_node);
  if (!node.empty()) return node;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

absl::StatusOr<std::unique_ptr<dataplane::Dataplane>> MakeDataplane() {
  const std::string kind = absl::GetFlag(FLAGS_dataplane);
  if (kind == "in-process") {
    auto dp = dataplane::InProcessDataplane::Create(absl::GetFlag(FLAGS_max_frontends));
    if (!dp.ok()) return dp.status();
    return std::unique_ptr<dataplane::Dataplane>(*std::move(dp));
  }
#ifdef ATOLL_HAVE_EBPF
  if (kind == "ebpf") {
    dataplane::EbpfDataplane::Options options;
    options.pin_dir = absl::GetFlag(FLAGS_bpf_pin_dir);
    ATL_ASSIGN_OR_RETURN(options.uplink, UplinkInterface(absl::GetFlag(FLAGS_uplink)));
    // A host agent mounts the BPF file system where it is missing, as
    // systemd does at boot on most distributions.
    if (absl::Status s = EnsureBpfFs(options.pin_dir); !s.ok()) return s;
    auto dp = dataplane::EbpfDataplane::Create(options);
    if (!dp.ok()) return dp.status();
    return std::unique_ptr<dataplane::Dataplane>(*std::move(dp));
  }
#endif
  if (kind == "dpdk") {
    // In a process of its own, which keeps forwarding while this one is away.
    auto dp = dataplane::RemoteDataplane::Connect(
        absl::GetFlag(FLAGS_dpdk_socket), std::chrono::seconds(absl::GetFlag(FLAGS_dpdk_wait_s)));
    if (!dp.ok()) return dp.status();
    std::fprintf(stderr, "atoll-agent: the %s dataplane of atoll-dpdkd (pid %lld) on unix:%s\n",
                 std::string((*dp)->name()).c_str(), static_cast<long long>((*dp)->pid()),
                 absl::GetFlag(FLAGS_dpdk_socket).c_str());
    // A restarted atoll-dpdkd holds nothing this agent sent it, and deltas
    // would not make it whole; nor when an update's outcome is unknown.
    // Crash-only: the agent exits, and the one its supervisor starts sends
    // the pods' ports and a full sync, as after any agent restart.
    (*dp)->OnDiverged([](const std::string& why) {
      std::fprintf(stderr, "atoll-agent: %s; exiting so that a new agent programs it whole\n",
                   why.c_str());
      std::_Exit(kDataplaneDivergedExit);
    });
    return std::unique_ptr<dataplane::Dataplane>(*std::move(dp));
  }
  return absl::InvalidArgumentError(absl::StrCat("--dataplane: \"", kind,
                                                 "\" is not one of in-process",
                                                 kBpfBuilt ? ", ebpf" : "", ", dpdk (this build)"));
}

int Run() {
  const lb::StopSignals stop_signals;  // before any thread starts

  const std::string node = NodeName();
  auto dataplane = MakeDataplane();
  if (!dataplane.ok()) {
    std::fprintf(stderr, "atoll-agent: %s\n", dataplane.status().ToString().c_str());
    return 1;
  }

  absl::StatusOr<uint32_t> mtu = PodMtu();
  if (!mtu.ok()) {
    std::fprintf(stderr, "atoll-agent: %s\n", std::string(mtu.status().message()).c_str());
    return 1;
  }
  const std::filesystem::path lease_db = absl::GetFlag(FLAGS_lease_db);
  std::error_code ec;
  std::filesystem::create_directories(lease_db.parent_path(), ec);
  absl::StatusOr<std::unique_ptr<LeaseStore>> leases = LeaseStore::Open(lease_db);
  if (!leases.ok()) {
    std::fprintf(stderr, "atoll-agent: %s\n", std::string(leases.status().message()).c_str());
    return 1;
  }

  Agent agent(node, absl::GetFlag(FLAGS_controller), *std::move(dataplane));
  // AF_XDP reads the pods' frames as bytes, with whatever checksum a veth left
  // for the host to finish: the pods must finish their own.
  CniServer cni(
      agent, **leases,
      CniServer::Options{.mtu = *mtu,
                         .checksums_in_software = absl::GetFlag(FLAGS_dataplane) == "dpdk",
                         .host_routes = absl::GetFlag(FLAGS_host_routes)});
  // Pods outlive a restarted agent: their ports go back to the dataplane
  // before the first ADD is served.
  if (absl::Status s = cni.RestorePodPorts(); !s.ok()) {
    std::fprintf(stderr, "atoll-agent: restoring pod ports: %s\n",
                 std::string(s.message()).c_str());
    return 1;
  }

  // The CNI server and the debug API are for root on this host only.
  const std::filesystem::path socket = absl::GetFlag(FLAGS_socket);
  std::unique_ptr<grpc::Server> server = api::ServeOnRootSocket(socket, {&agent, &cni});
  if (!server) {
    std::fprintf(stderr, "atoll-agent: cannot listen on unix:%s\n", socket.c_str());
    return 1;
  }

  agent.Start();
  std::fprintf(stderr,
               "atoll-agent: node %s, controller %s, CNI and debug API on unix:%s, pod MTU %u, "
               "leases in %s\n",
               node.c_str(), absl::GetFlag(FLAGS_controller).c_str(), socket.c_str(), *mtu,
               lease_db.c_str());

  const int sig = stop_signals.Wait();
  std::fprintf(stderr, "atoll-agent: signal %d, stopping\n", sig);
  agent.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  std::filesystem::remove(socket, ec);
  return 0;
}

}  // namespace
}  // namespace atl::agent

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("atoll-agent: the Atoll per-host agent");
  absl::ParseCommandLine(argc, argv);
  return atl::agent::Run();
}
