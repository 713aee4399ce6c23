// atoll-controller: the cluster's source of truth. Serves the admin API
// (atollctl) and the Sync stream (agents) on one gRPC port.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "controller/controller.h"
#include "controller/sqlite_store.h"
#include "grpcpp/grpcpp.h"
#include "lb/stop_signals.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7470", "gRPC address for agents and atollctl");
ABSL_FLAG(std::string, port_file, "", "write the port listened on to this file (for --listen :0)");
ABSL_FLAG(std::string, db, "/var/lib/atoll/controller.db", "SQLite database file");
ABSL_FLAG(std::string, pod_cidr, "198.19.0.0/16",
          "cluster pod CIDR; namespace segments come from it");
ABSL_FLAG(uint32_t, namespace_prefix_len, 24, "prefix length of each namespace CIDR");
ABSL_FLAG(uint32_t, node_block_len, 28, "prefix length of a node's address block");
ABSL_FLAG(std::string, service_cidrs, "198.18.64.0/18", "ClusterIP ranges, at most one per family");
ABSL_FLAG(std::string, node_port_range, "30000-32767", "nodePort range");
ABSL_FLAG(uint64_t, max_tombstones, 100000, "deleted keys remembered for agents that resume");
ABSL_FLAG(uint64_t, sync_part_bytes, 1 << 20, "a version is sent in parts of about this size");

namespace atl::controller {
namespace {

absl::StatusOr<ClusterConfig> ConfigFromFlags() {
  ClusterConfig config = ClusterConfig::Default();
  auto prefix = [](const std::string& flag, std::string_view text) -> absl::StatusOr<lb::IpPrefix> {
    std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(text);
    if (!p)
      return absl::InvalidArgumentError("--" + flag + ": invalid CIDR \"" + std::string(text) +
                                        "\"");
    return *p;
  };
  absl::StatusOr<lb::IpPrefix> pod = prefix("pod_cidr", absl::GetFlag(FLAGS_pod_cidr));
  if (!pod.ok()) return pod.status();
  config.pod_cidr = *pod;
  config.namespace_prefix_len = static_cast<uint8_t>(absl::GetFlag(FLAGS_namespace_prefix_len));
  config.node_block_len = static_cast<uint8_t>(absl::GetFlag(FLAGS_node_block_len));
  config.service_cidrs.clear();
  for (absl::string_view text :
       absl::StrSplit(absl::GetFlag(FLAGS_service_cidrs), ',', absl::SkipEmpty())) {
    absl::StatusOr<lb::IpPrefix> p =
        prefix("service_cidrs", std::string_view(text.data(), text.size()));
    if (!p.ok()) return p.status();
    config.service_cidrs.push_back(*p);
  }
  const std::string range = absl::GetFlag(FLAGS_node_port_range);
  std::vector<absl::string_view> ends = absl::StrSplit(range, '-');
  if (ends.size() != 2 || !absl::SimpleAtoi(ends[0], &config.node_port_min) ||
      !absl::SimpleAtoi(ends[1], &config.node_port_max)) {
    return absl::InvalidArgumentError("--node_port_range: \"" + range + "\" is not MIN-MAX");
  }
  return config;
}

int Run() {
  absl::StatusOr<ClusterConfig> config = ConfigFromFlags();
  if (!config.ok()) {
    std::fprintf(stderr, "atoll-controller: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  const std::filesystem::path db = absl::GetFlag(FLAGS_db);
  std::error_code ec;
  if (db.has_parent_path()) std::filesystem::create_directories(db.parent_path(), ec);
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(db.string());
  if (!store.ok()) {
    std::fprintf(stderr, "atoll-controller: %s\n", store.status().ToString().c_str());
    return 1;
  }
  const uint64_t revision = (*store)->revision();
  const std::string store_id = (*store)->id();
  SyncOptions sync_options;
  sync_options.max_tombstones = absl::GetFlag(FLAGS_max_tombstones);
  sync_options.part_bytes = absl::GetFlag(FLAGS_sync_part_bytes);
  absl::StatusOr<std::unique_ptr<Controller>> controller =
      Controller::Create(*std::move(store), *config, sync_options);
  if (!controller.ok()) {
    std::fprintf(stderr, "atoll-controller: %s\n", controller.status().ToString().c_str());
    return 1;
  }

  const lb::StopSignals stop_signals;  // before gRPC starts threads

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&(*controller)->sync());
  builder.RegisterService(controller->get());
  // Snapshots are sent in parts well below this; agents' messages are small.
  builder.SetMaxReceiveMessageSize(16 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "atoll-controller: cannot listen on %s\n",
                 absl::GetFlag(FLAGS_listen).c_str());
    return 1;
  }
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    std::ofstream(path + ".tmp") << port << "\n";
    std::rename((path + ".tmp").c_str(), path.c_str());
  }
  std::fprintf(stderr, "atoll-controller: listening on port %d; store %s at revision %llu\n", port,
               store_id.c_str(), static_cast<unsigned long long>(revision));

  const int sig = stop_signals.Wait();
  std::fprintf(stderr, "atoll-controller: signal %d, stopping\n", sig);
  (*controller)->sync().Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace
}  // namespace atl::controller

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("atoll-controller: the Atoll cluster controller");
  absl::ParseCommandLine(argc, argv);
  return atl::controller::Run();
}
