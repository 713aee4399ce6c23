// A fixed-capacity open-addressing index from a 32-bit hash to a 32-bit
// reference into a record array owned by the caller (conntrack flows, affinity
// entries). Linear probing keeps a lookup within one or two cache lines;
// deletion shifts later entries back (Knuth vol. 3, 6.4, algorithm R) so no
// tombstones accumulate and probe lengths stay short under churn. Single writer.
#pragma once

#include <cstdint>

#include "lb/prefetch.h"
#include "lb/table_memory.h"

namespace atl::lb {

class HashIndex {
 public:
  static constexpr uint32_t kNone = 0xffffffff;

  // Room for `max_entries` at a load factor of at most one half.
  explicit HashIndex(uint32_t max_entries) {
    // 64-bit because above 2^30 entries the capacity is 2^32 (a 32-bit count
    // would wrap to 0 and never stop doubling); a 32-bit hash addresses no more.
    uint64_t cap = 16;
    while (cap < 2ull * max_entries && cap < (uint64_t{1} << 32)) cap <<= 1;
    slots_ = TableArray<Slot>(cap);
    for (uint64_t i = 0; i < cap; ++i) slots_[i] = Slot{0, kNone};
    mask_ = static_cast<uint32_t>(cap - 1);
  }

  // The reference whose record `matches` (called as matches(ref)), or kNone.
  template <typename Matches>
  uint32_t Find(uint32_t hash, Matches&& matches) const {
    for (uint32_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.ref == kNone) return kNone;
      if (s.hash == hash && matches(s.ref)) return s.ref;
    }
  }

  // The caller keeps entries at or below max_entries, so a free slot exists.
  void Insert(uint32_t hash, uint32_t ref) {
    uint32_t i = hash & mask_;
    while (slots_[i].ref != kNone) i = (i + 1) & mask_;
    slots_[i] = Slot{hash, ref};
  }

  // Removes the entry (hash, ref); returns false when it is not there.
  bool Erase(uint32_t hash, uint32_t ref) {
    uint32_t i = hash & mask_;
    for (;; i = (i + 1) & mask_) {
      if (slots_[i].ref == kNone) return false;
      if (slots_[i].ref == ref) break;
    }
    // Shift back every later entry of the cluster that may live at i.
    for (uint32_t j = (i + 1) & mask_; slots_[j].ref != kNone; j = (j + 1) & mask_) {
      const uint32_t home = slots_[j].hash & mask_;
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{0, kNone};
    return true;
  }

  // The reference of the first entry with this hash, reading only the
  // index, or kNone: when none, no record can match.
  uint32_t FirstOf(uint32_t hash) const {
    return Find(hash, [](uint32_t) { return true; });
  }

  void Prefetch(uint32_t hash) const { lb::Prefetch(&slots_[hash & mask_]); }
  // The reference in the hash's home slot (a guess for prefetching), or kNone.
  uint32_t HomeRef(uint32_t hash) const { return slots_[hash & mask_].ref; }
  uint64_t capacity() const { return uint64_t{mask_} + 1; }

 private:
  struct Slot {
    uint32_t hash;
    uint32_t ref;
  };
  TableArray<Slot> slots_;
  uint32_t mask_;
};

}  // namespace atl::lb
