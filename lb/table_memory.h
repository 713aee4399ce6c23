// Fixed-size arrays for the big packet-path tables (conntrack, its index,
// affinity), backed by transparent huge pages where the kernel allows.
//
// A million flows span a few hundred MiB; with 4 KiB pages nearly every
// lookup also misses the TLB, and under virtualisation a TLB miss is a
// two-dimensional page walk that costs more than the cache miss itself.
// 2 MiB pages cut the TLB reach problem by 512x. This is what DPDK's
// hugepage memory buys its tables; here it needs no reserved pool.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

namespace atl::lb {

template <typename T>
class TableArray {
  static_assert(std::is_trivially_destructible_v<T>, "table entries are plain data");

 public:
  TableArray() = default;
  // `n` value-initialised elements; aborts if the memory cannot be had, as
  // std::vector would throw: the tables are sized once at start.
  explicit TableArray(size_t n) : size_(n) {
    constexpr size_t kHuge = size_t{2} << 20;
    bytes_ = (n * sizeof(T) + kHuge - 1) / kHuge * kHuge;
    if (bytes_ == 0) bytes_ = kHuge;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    madvise(p, bytes_, MADV_HUGEPAGE);  // advice only: without THP it stays 4 KiB pages
    data_ = static_cast<T*>(p);
    for (size_t i = 0; i < n; ++i) new (&data_[i]) T();
  }
  ~TableArray() {
    if (data_ != nullptr) munmap(data_, bytes_);
  }
  TableArray(TableArray&& o) noexcept { *this = std::move(o); }
  TableArray& operator=(TableArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  TableArray(const TableArray&) = delete;
  TableArray& operator=(const TableArray&) = delete;

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  size_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
  size_t bytes_ = 0;
};

}  // namespace atl::lb
