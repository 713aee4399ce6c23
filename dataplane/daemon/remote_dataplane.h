// A dataplane in another process on this host (atoll-dpdkd), reached over
// dataplane.proto on a Unix socket. The agent holds one in place of the
// backend itself: the backend then keeps forwarding, with its tables and
// flows, while the agent is away, and a restarted agent reconnects and
// sends a full sync (DESIGN.md: dataplanes keep forwarding when their agent
// is away).
#pragma once

#include <atomic>
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
  // An Apply may attach AF_XDP ports and wait for the workers to walk their
  // flow tables (pods that left): seconds, not milliseconds. Past this the
  // process is taken to be stuck.
  static constexpr std::chrono::milliseconds kApplyDeadline = std::chrono::seconds(120);

  // The dataplane serving on `socket`, waited for up to `wait` (it may be
  // starting too); UNAVAILABLE, naming the socket, when none answers.
  static absl::StatusOr<std::unique_ptr<RemoteDataplane>> Connect(
      const std::string& socket, std::chrono::milliseconds wait,
      std::chrono::milliseconds apply_deadline = kApplyDeadline);

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

  // Calls `diverged` once, saying why, when what the dataplane holds may no
  // longer be what it was sent through this object, which only a full sync
  // (a restarted agent's) puts right: the process answering on the socket
  // is not the one Connect found (it restarted and holds nothing; looked
  // for every `period`, from a thread of its own, a silent process waited
  // for), or an Apply passed its deadline (the process may still apply it;
  // from Apply's caller). Once per object.
  void OnDiverged(std::function<void(const std::string& why)> diverged,
                  std::chrono::milliseconds period = std::chrono::milliseconds(500));
  ~RemoteDataplane() override;

 private:
  RemoteDataplane(std::string socket, std::unique_ptr<v1::Dataplane::Stub> stub,
                  std::chrono::milliseconds apply_deadline)
      : socket_(std::move(socket)), stub_(std::move(stub)), apply_deadline_(apply_deadline) {}
  // Both counter lists; empty, said on stderr, when the process does not answer.
  v1::CountersResponse FetchCounters() const;
  // Calls OnDiverged's function, the first time only.
  void Diverged(const std::string& why);

  std::string socket_;
  std::unique_ptr<v1::Dataplane::Stub> stub_;
  std::chrono::milliseconds apply_deadline_;
  std::string name_;
  int64_t pid_ = 0;
  uint64_t instance_ = 0;
  // OnDiverged's function and its watching thread, told to stop by the destructor.
  std::function<void(const std::string& why)> diverged_;
  std::atomic<bool> told_{false};
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace atl::dataplane
