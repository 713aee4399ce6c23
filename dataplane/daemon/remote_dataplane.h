// A dataplane in another process on this host (atoll-dpdkd), reached over
// dataplane.proto on a Unix socket. The agent holds one in place of the
// backend itself: the backend then keeps forwarding, with its tables and
// flows, while the agent is away, and a restarted agent reconnects and
// sends a full sync (DESIGN.md: dataplanes keep forwarding when their agent
// is away).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "dataplane.grpc.pb.h"
#include "dataplane/dataplane.h"

namespace atl::dataplane {

class RemoteDataplane final : public Dataplane {
 public:
  // The dataplane serving on `socket`, waited for up to `wait` (it may be
  // starting too); UNAVAILABLE, naming the socket, when none answers.
  static absl::StatusOr<std::unique_ptr<RemoteDataplane>> Connect(const std::string& socket,
                                                                  std::chrono::milliseconds wait);

  // The remote backend's own errors keep their codes; UNAVAILABLE when its
  // process is not there (it holds what it held, or is gone with it).
  absl::Status Apply(const Update& update) override;
  // Empty when the process does not answer (said on stderr).
  Programmed Dump() const override;
  std::string_view name() const override { return name_; }
  Counters Drops() const override;
  Counters Packets() const override;

  // The dataplane's process, which outlives agents.
  int64_t pid() const { return pid_; }

  // Calls `restarted` once, from a thread of its own, with the new process's
  // pid, when the process answering on the socket is no longer the one
  // Connect found: it holds nothing this one was sent, and only a full sync
  // (a restarted agent's) programs it whole again. Looks every `period`; a
  // process that does not answer is waited for.
  void WatchForRestart(std::function<void(int64_t pid)> restarted,
                       std::chrono::milliseconds period = std::chrono::milliseconds(500));
  ~RemoteDataplane() override;

 private:
  RemoteDataplane(std::string socket, std::unique_ptr<v1::Dataplane::Stub> stub)
      : socket_(std::move(socket)), stub_(std::move(stub)) {}
  // Both counter lists; empty, said on stderr, when the process does not answer.
  v1::CountersResponse FetchCounters() const;

  std::string socket_;
  std::unique_ptr<v1::Dataplane::Stub> stub_;
  std::string name_;
  int64_t pid_ = 0;
  uint64_t instance_ = 0;
  // WatchForRestart's thread, told to stop by the destructor.
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace atl::dataplane
