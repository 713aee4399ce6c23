// The agent's address leases, in SQLite: which pod interface (container id +
// ifname) holds which address of its namespace's segment. It outlives the
// agent process (a kill -9 loses no lease) and the address column is unique
// in the database itself, so no address is ever handed out twice, whatever
// the process does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lb/net.h"

struct sqlite3;

namespace atl::agent {

// One pod interface with its address (a CNI attachment).
struct Lease {
  std::string container_id;
  std::string ifname;
  std::string netns;
  std::string pod_namespace;  // the namespace, and so the segment, the address is of
  std::string pod_name;
  lb::IpAddr address;
  // DEL has answered and the interface is on its way out; the address is
  // free once Release removes the lease.
  bool releasing = false;
  std::string network;  // the CNI network (configuration name) it was made for

  friend bool operator==(const Lease&, const Lease&) = default;
};

class LeaseStore {
 public:
  // Opens or creates the database at `path` (":memory:" for tests).
  static absl::StatusOr<std::unique_ptr<LeaseStore>> Open(const std::string& path);
  ~LeaseStore();
  LeaseStore(const LeaseStore&) = delete;
  LeaseStore& operator=(const LeaseStore&) = delete;

  // The lease of (container_id, ifname): the one already held, unchanged, when
  // there is one (an ADD repeated by the runtime), else a new one with the
  // lowest free address of `blocks` (this node's blocks of the pod's
  // namespace) that is not in `reserved` (the segment's network address and
  // gateway). RESOURCE_EXHAUSTED when every address of the blocks is taken:
  // the caller asks the controller for another block and tries again.
  absl::StatusOr<Lease> Acquire(const Lease& request, std::span<const lb::IpPrefix> blocks,
                                std::span<const lb::IpAddr> reserved);
  // Removes the lease of (container_id, ifname); removing one that is not
  // there is not an error (CNI DEL is repeated). Returns the removed lease.
  absl::StatusOr<std::optional<Lease>> Release(const std::string& container_id,
                                               const std::string& ifname);
  // Marks the lease of (container_id, ifname) as releasing and returns it;
  // nullopt when there is none.
  absl::StatusOr<std::optional<Lease>> MarkReleasing(const std::string& container_id,
                                                     const std::string& ifname);
  absl::StatusOr<std::optional<Lease>> Find(const std::string& container_id,
                                            const std::string& ifname);
  // Every lease, by address.
  absl::StatusOr<std::vector<Lease>> List();

 private:
  explicit LeaseStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  absl::Status Error(const char* what) const;

  sqlite3* db_;
};

}  // namespace atl::agent
