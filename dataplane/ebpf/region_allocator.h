// Hands out regions of a fixed array (the eBPF dataplane's backend and Maglev
// arrays) to services. A freed region is not reused at once: a packet that
// read a service's old entry just before it was replaced may still be reading
// the old region, so it rests for a grace period first (the BPF programs
// finish within microseconds; a second is far beyond any of them).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>

namespace atl::dataplane::ebpf {

class RegionAllocator {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kGrace{1000};

  explicit RegionAllocator(uint32_t capacity);

  // The offset of `count` free entries (first fit), or nullopt when no free
  // run is long enough. `count` 0 gets offset 0 and owns nothing.
  std::optional<uint32_t> Allocate(uint32_t count, Clock::time_point now = Clock::now());
  // Marks [offset, offset + count) as in use: a region found in a pinned map
  // after a restart. False when part of it is not free.
  bool Claim(uint32_t offset, uint32_t count);
  // Gives a region back after the grace period.
  void Free(uint32_t offset, uint32_t count, Clock::time_point now = Clock::now());
  // Gives back a region that nothing ever read (allocated in a failed update).
  void FreeNow(uint32_t offset, uint32_t count);

  uint32_t capacity() const { return capacity_; }
  uint32_t used() const { return used_; }

 private:
  struct Resting {
    uint32_t offset;
    uint32_t count;
    Clock::time_point until;
  };
  void Release(Clock::time_point now);

  uint32_t capacity_;
  uint32_t used_ = 0;
  std::map<uint32_t, uint32_t> free_;  // offset -> length, coalesced
  std::deque<Resting> resting_;        // in the order they were freed
};

}  // namespace atl::dataplane::ebpf
