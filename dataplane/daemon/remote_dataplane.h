// A dataplane in another process on this host (atoll-dpdkd), reached over
// dataplane.proto on a Unix socket. The agent holds one in place of the
// backend itself: the backend then keeps forwarding, with its tables and
// flows, while the agent is away, and a restarted agent reconnects and
// sends a full sync (DESIGN.md: dataplanes keep forwarding when their agent
// is away).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

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

 private:
  RemoteDataplane(std::string socket, std::unique_ptr<v1::Dataplane::Stub> stub)
      : socket_(std::move(socket)), stub_(std::move(stub)) {}
  // Both counter lists; empty, said on stderr, when the process does not answer.
  v1::CountersResponse FetchCounters() const;

  std::string socket_;
  std::unique_ptr<v1::Dataplane::Stub> stub_;
  std::string name_;
  int64_t pid_ = 0;
};

}  // namespace atl::dataplane
