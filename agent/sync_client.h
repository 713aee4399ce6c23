// The agent's end of the Sync stream: says hello with the version it holds,
// assembles each version from its parts, hands it to the agent and answers
// with an ACK or a NACK. Reconnects with exponential backoff and jitter, and
// resumes from the last acknowledged version; the controller answers with a
// snapshot when it cannot resume (full resync).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "atoll.grpc.pb.h"
#include "grpcpp/channel.h"

namespace atl::agent {

// One version as the controller sent it, all parts together.
struct ReceivedVersion {
  uint64_t version = 0;
  std::string store_id;
  bool snapshot = false;  // replaces everything held
  // Parsed into one protobuf arena (bump allocation instead of a malloc per
  // field: a 100,000-endpoint snapshot parses several times faster), which
  // each resource keeps alive through its shared_ptr.
  std::vector<std::shared_ptr<const ::atl::api::v1::Resource>> upserts;
  std::vector<::atl::api::v1::ResourceKey> removals;
};

// A channel to the controller at `address` (host:port) as agents use it:
// room for snapshot parts, and gRPC's own reconnect backoff matched to the
// client's (100 ms to 5 s) instead of its default of 1 s to 2 min, so that an
// agent finds a controller that has just come up. `own_connection` keeps it
// off the subchannels other channels of this process share (the benchmark's
// light agents, each its own host).
std::shared_ptr<grpc::Channel> ControllerChannel(const std::string& address,
                                                 bool own_connection = false);

class SyncClient {
 public:
  // Returns OK once the version is held (the agent ACKs it), or the error the
  // agent NACKs it with, having kept its last good state.
  using ApplyFn = std::function<absl::Status(ReceivedVersion&&)>;

  struct Options {
    std::string node;
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{5000};
  };

  SyncClient(std::shared_ptr<grpc::Channel> channel, Options options, ApplyFn apply);
  ~SyncClient();  // stops
  SyncClient(const SyncClient&) = delete;
  SyncClient& operator=(const SyncClient&) = delete;

  void Start();
  void Stop();

  bool connected() const { return connected_.load(); }
  // The last version acknowledged, and the store it came from.
  uint64_t version() const;
  std::string store_id() const;
  // The stream's last error (why it broke) or the last NACK; empty when fine.
  std::string last_error() const;
  uint64_t versions_applied() const { return versions_applied_.load(); }

 private:
  void Run();
  // One stream, from hello until it breaks. Returns why it ended.
  grpc::Status Stream();
  // Waits `d` or until Stop; returns false when stopping.
  bool Sleep(std::chrono::milliseconds d);

  const std::unique_ptr<::atl::api::v1::Sync::Stub> stub_;
  const Options options_;
  const ApplyFn apply_;

  std::thread thread_;
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> versions_applied_{0};

  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  grpc::ClientContext* context_ = nullptr;  // of the live stream, to cancel it on Stop
  uint64_t version_ = 0;
  std::string store_id_;
  std::string last_error_;
};

}  // namespace atl::agent
