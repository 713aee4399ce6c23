// The controller's durable state: every resource, keyed, with the revision
// that last wrote it, and tombstones for deletions so that an agent can resume
// from a revision and learn what was removed since (etcd's model, narrowed).
// SqliteStore keeps it in one file; an EtcdStore will fill the same interface.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoll.pb.h"

namespace atl::controller {

// One write of a commit: `data` is the serialized api::Resource, or empty to
// delete the key (leaving a tombstone).
struct StoreWrite {
  ::atl::api::v1::ResourceKey key;
  std::string data;
};

struct StoredEntry {
  ::atl::api::v1::ResourceKey key;
  uint64_t revision = 0;
  std::string data;  // empty for a tombstone
};

class Store {
 public:
  virtual ~Store() = default;

  // Names this store's history: a revision from another store (a wiped or
  // replaced database) means nothing here, and agents holding one resync.
  virtual const std::string& id() const = 0;
  // The revision of the last commit; 0 for an empty store.
  virtual uint64_t revision() const = 0;
  // Tombstones at or below this revision are gone: resuming from an older
  // revision needs a snapshot.
  virtual uint64_t compacted() const = 0;

  // Writes all of `writes` as one transaction at revision() + 1, durably
  // before returning; returns the new revision. Nothing is written on error.
  virtual absl::StatusOr<uint64_t> Commit(const std::vector<StoreWrite>& writes) = 0;
  // Calls `fn` for every live entry and tombstone, in revision order.
  virtual absl::Status Load(const std::function<void(StoredEntry&&)>& fn) = 0;
  // Drops tombstones at or below `revision`.
  virtual absl::Status Compact(uint64_t revision) = 0;
};

}  // namespace atl::controller
