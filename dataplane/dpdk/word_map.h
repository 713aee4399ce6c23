// A map from a 64-bit word to a plain value, for the packet path's lookups
// in HostTables (pods by address, the prefixes of segments, remote blocks
// and host routes, neighbours): open addressing with linear probing, at most
// half full, Fibonacci hashing.
//
// A lookup is a multiply, a shift and, at that load, one or two compares in
// one cache line: about 12 instructions where absl::flat_hash_map's salted
// hash and control-byte group take about 40. A new flow looks up three or
// four of these. The keys come from the control plane, not from packets; a
// packet only chooses what is looked up, and cannot lengthen a probe.
//
// Built by the control thread and read by the workers only once published
// (HostTables is never written while a worker can see it).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace atl::dataplane::dpdk {

template <typename T>
class WordMap {
  static_assert(std::is_trivially_copyable_v<T>, "plain values: the table copies them as it grows");

 public:
  // The one key the map cannot hold: it marks a free slot. No key HostTables
  // uses comes near it (an address, or a prefix length << 32 | an address).
  static constexpr uint64_t kFree = ~uint64_t{0};

  WordMap() { Reset(kMinCapacity); }

  const T* Find(uint64_t key) const {
    const Slot& s = slots_[SlotFor(key)];
    return s.key == key ? &s.value : nullptr;
  }
  T* Find(uint64_t key) { return const_cast<T*>(std::as_const(*this).Find(key)); }

  // The value of `key`, a value-initialised one added when it has none.
  T& operator[](uint64_t key) {
    size_t i = SlotFor(key);
    if (slots_[i].key == key) return slots_[i].value;
    if (2 * (size_ + 1) > slots_.size()) {
      Grow();
      i = SlotFor(key);  // the free slot moved with the growth
    }
    slots_[i].key = key;
    slots_[i].value = T{};
    ++size_;
    return slots_[i].value;
  }

  void Clear() { Reset(kMinCapacity); }
  size_t size() const { return size_; }

  // f(key, value&) for every entry, in no particular order.
  template <typename F>
  void ForEach(F&& f) {
    for (Slot& s : slots_) {
      if (s.key != kFree) f(s.key, s.value);
    }
  }

 private:
  static constexpr size_t kMinCapacity = 16;
  struct Slot {
    uint64_t key = kFree;
    T value{};
  };

  // The product's top bits, which every bit of the key reaches: its low bits
  // see only the key's low bits (an address's constant first octets, in
  // network order).
  size_t SlotOf(uint64_t key) const {
    return static_cast<size_t>((key * 0x9e3779b97f4a7c15ull) >> shift_);
  }
  // The slot holding `key`, or the free one where it would go: one probe
  // serves both a lookup and an insertion.
  size_t SlotFor(uint64_t key) const {
    assert(key != kFree);
    size_t i = SlotOf(key);
    while (slots_[i].key != key && slots_[i].key != kFree) i = (i + 1) & mask_;
    return i;
  }
  void Reset(size_t capacity) {
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    shift_ = 64;
    for (size_t c = capacity; c > 1; c >>= 1) --shift_;
    size_ = 0;
  }
  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    Reset(old.size() * 2);
    for (const Slot& s : old) {
      if (s.key != kFree) (*this)[s.key] = s.value;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
};

}  // namespace atl::dataplane::dpdk
