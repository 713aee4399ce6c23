#include "dataplane/ebpf/region_allocator.h"

#include <iterator>

namespace atl::dataplane::ebpf {

RegionAllocator::RegionAllocator(uint32_t capacity) : capacity_(capacity) {
  if (capacity > 0) free_[0] = capacity;
}

std::optional<uint32_t> RegionAllocator::Allocate(uint32_t count, Clock::time_point now) {
  if (count == 0) return 0;
  Release(now);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < count) continue;
    const uint32_t offset = it->first;
    const uint32_t rest = it->second - count;
    free_.erase(it);
    if (rest > 0) free_[offset + count] = rest;
    used_ += count;
    return offset;
  }
  return std::nullopt;
}

bool RegionAllocator::Claim(uint32_t offset, uint32_t count) {
  if (count == 0) return true;
  auto it = free_.upper_bound(offset);
  if (it == free_.begin()) return false;
  --it;
  const uint32_t start = it->first;
  const uint32_t end = start + it->second;
  if (offset + count > end || offset + count < offset) return false;
  free_.erase(it);
  if (offset > start) free_[start] = offset - start;
  if (offset + count < end) free_[offset + count] = end - offset - count;
  used_ += count;
  return true;
}

void RegionAllocator::Free(uint32_t offset, uint32_t count, Clock::time_point now) {
  if (count == 0) return;
  resting_.push_back({offset, count, now + kGrace});
}

void RegionAllocator::FreeNow(uint32_t offset, uint32_t count) {
  if (count == 0) return;
  used_ -= count;
  auto next = free_.lower_bound(offset);
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      count += prev->second;
      free_.erase(prev);
    }
  }
  if (next != free_.end() && offset + count == next->first) {
    count += next->second;
    free_.erase(next);
  }
  free_[offset] = count;
}

void RegionAllocator::Release(Clock::time_point now) {
  while (!resting_.empty() && resting_.front().until <= now) {
    FreeNow(resting_.front().offset, resting_.front().count);
    resting_.pop_front();
  }
}

}  // namespace atl::dataplane::ebpf
