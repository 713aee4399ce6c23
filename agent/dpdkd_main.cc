// atoll-dpdkd: the DPDK dataplane as a process of its own. The agent
// (--dataplane=dpdk) programs it over dataplane.proto on a root-only Unix
// socket; it keeps forwarding, with its tables and flows, while the agent is
// away, and takes the restarted agent's full sync (DESIGN.md: dataplanes keep
// forwarding when their agent is away). Beside the agent because both find
// the host's uplink the same way.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "agent/pod_network.h"
#include "dataplane/daemon/dataplane_service.h"
#include "dataplane/dpdk/dpdk_dataplane.h"
#include "grpcpp/grpcpp.h"
#include "lb/stop_signals.h"
#include "root_socket.h"

ABSL_FLAG(std::string, socket, "/run/atoll/dpdkd.sock",
          "unix socket the agent programs the dataplane through (root only)");
ABSL_FLAG(std::string, uplink, "",
          "the host's uplink interface (the overlay, NodePort, externalIPs, egress replies); "
          "default: the default route's");
ABSL_FLAG(std::string, tap, "atl-host",
          "the exception path's TAP interface, through which the host's routes go");
ABSL_FLAG(std::string, lcores, "0@(0-1),1@(0-1)",
          "the EAL's --lcores: the main lcore, then one per worker (here one worker, both "
          "floating over CPUs 0 and 1; two workers: \"0@(0-1),1@(0-1),2@(0-1)\"; give each "
          "worker a core of its own in production: \"0@0,1@1,2@2\")");
ABSL_FLAG(std::string, file_prefix, "atoll",
          "the EAL's run files: one prefix per dataplane process on a machine");
ABSL_FLAG(std::string, eal_args, "", "more EAL arguments, separated by spaces");
ABSL_FLAG(uint32_t, idle_sleep_us, 200,
          "how long an idle worker sleeps between polls; 0: it polls without pause");

namespace atl::dataplane::dpdk {
namespace {

int Run() {
  const lb::StopSignals stop_signals;  // before any thread starts

  absl::StatusOr<std::string> uplink = agent::UplinkInterface(absl::GetFlag(FLAGS_uplink));
  if (!uplink.ok()) {
    std::fprintf(stderr, "atoll-dpdkd: %s\n", std::string(uplink.status().message()).c_str());
    return 1;
  }
  DpdkDataplane::HostOptions host;
  host.uplink = *uplink;
  host.tap = absl::GetFlag(FLAGS_tap);
  host.lcores = absl::GetFlag(FLAGS_lcores);
  host.file_prefix = absl::GetFlag(FLAGS_file_prefix);
  for (absl::string_view a :
       absl::StrSplit(absl::GetFlag(FLAGS_eal_args), ' ', absl::SkipEmpty())) {
    host.extra_eal_args.emplace_back(a);
  }
  host.idle_sleep_us = absl::GetFlag(FLAGS_idle_sleep_us);
  absl::StatusOr<std::unique_ptr<DpdkDataplane>> dataplane = DpdkDataplane::ForHost(host);
  if (!dataplane.ok()) {
    std::fprintf(stderr, "atoll-dpdkd: %s\n", dataplane.status().ToString().c_str());
    return 1;
  }

  // Only root on this host programs the dataplane. A socket left by an
  // earlier run goes; a running atoll-dpdkd would have held the EAL's prefix.
  const std::filesystem::path socket = absl::GetFlag(FLAGS_socket);
  // Another instance tells the agent this process restarted and holds nothing it sent.
  std::random_device random;
  DataplaneService service(**dataplane, uint64_t{random()} << 32 | random());
  std::unique_ptr<grpc::Server> server = api::v1::ServeOnRootSocket(socket, {&service});
  if (!server) {
    std::fprintf(stderr, "atoll-dpdkd: cannot listen on unix:%s\n", socket.c_str());
    return 1;
  }
  std::fprintf(stderr, "atoll-dpdkd: pid %d, uplink %s, TAP %s, lcores %s, on unix:%s\n", getpid(),
               host.uplink.c_str(), host.tap.c_str(), host.lcores.c_str(), socket.c_str());

  const int sig = stop_signals.Wait();
  std::fprintf(stderr, "atoll-dpdkd: signal %d, stopping\n", sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  dataplane->reset();  // the workers, the ports and the TAP
  std::error_code ec;
  std::filesystem::remove(socket, ec);
  return 0;
}

}  // namespace
}  // namespace atl::dataplane::dpdk

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "atoll-dpdkd: the DPDK dataplane of a host, programmed by atoll-agent --dataplane=dpdk");
  absl::ParseCommandLine(argc, argv);
  return atl::dataplane::dpdk::Run();
}
