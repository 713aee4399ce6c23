// The controller's in-memory view of the store that the sync server streams
// from: every key once, at the position of its last write, in write order.
//
// An agent's progress is a Cursor into that order. What an agent still lacks
// is exactly the suffix after its cursor, each key appearing once with its
// latest value, so pending changes to one key coalesce by construction and an
// agent costs a cursor however far behind it falls. Deletions stay as
// tombstones until there are too many; an agent whose cursor is older than
// the oldest tombstone dropped gets a snapshot instead.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/node_hash_map.h"
#include "atoll.pb.h"

namespace atl::controller {

// A position in the journal: after every entry at or before it.
struct Cursor {
  uint64_t revision = 0;
  uint64_t seq = 0;  // order of writes within and across revisions

  // Everything written after `revision`.
  static Cursor After(uint64_t revision) { return {revision, UINT64_MAX}; }
  friend auto operator<=>(const Cursor&, const Cursor&) = default;
};

class Journal {
 public:
  struct Entry {
    ::atl::api::v1::ResourceKey key;
    Cursor at;
    std::shared_ptr<const std::string> data;  // a serialized Resource; null for a tombstone
  };

  // Records a write of `revision`: `data` empty deletes the key.
  void Put(const ::atl::api::v1::ResourceKey& key, uint64_t revision, std::string data);
  // Drops the oldest tombstones until at most `max_tombstones` are left;
  // returns the revision at or below which tombstones are now gone.
  uint64_t Trim(size_t max_tombstones);
  // Marks history at or below `revision` as gone (as the store reported it at startup).
  void SetCompacted(uint64_t revision) { compacted_ = std::max(compacted_, revision); }

  uint64_t revision() const { return revision_; }
  uint64_t compacted() const { return compacted_; }
  // The cursor after the last entry.
  Cursor end() const { return end_; }
  size_t live() const { return entries_.size() - tombstones_.size(); }
  size_t tombstones() const { return tombstones_.size(); }

  // Whether the changes after `from` can be sent as a delta: its tombstones are all still here.
  bool CanResumeFrom(Cursor from) const {
    return from.revision >= compacted_ && from.revision <= revision_;
  }
  // Calls fn(const Entry&) for every live entry, in write order.
  template <typename Fn>
  void ForEachLive(Fn&& fn) const {
    for (const auto& [at, e] : order_) {
      if (e->data) fn(*e);
    }
  }
  // Calls fn(const Entry&) for every entry (tombstones too) written after `from`.
  template <typename Fn>
  void ForEachAfter(Cursor from, Fn&& fn) const {
    for (auto it = order_.upper_bound(from); it != order_.end(); ++it) fn(*it->second);
  }

 private:
  static std::string MapKey(const ::atl::api::v1::ResourceKey& key);

  absl::node_hash_map<std::string, Entry> entries_;  // node map: order_ points into it
  absl::btree_map<Cursor, Entry*> order_;
  std::set<Cursor> tombstones_;
  uint64_t revision_ = 0;
  uint64_t compacted_ = 0;
  uint64_t next_seq_ = 1;
  Cursor end_;
};

}  // namespace atl::controller
