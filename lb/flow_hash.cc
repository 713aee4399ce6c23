// lookup3's templates take vectors here (Words8), inlined into a function
// built for AVX2: the ABI GCC warns of for passing them is never used.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "lb/flow_hash.h"

#include <immintrin.h>

#include <bit>
#include <cstddef>

namespace atl::lb {
namespace {

// Eight words, one a lane: lookup3's templates run on them unchanged. A
// struct around the vector, not the vector itself: Clang refuses to pass an
// AVX vector by value to a function not built for AVX (the templates), where
// a struct is passed as any other and all of it is inlined.
struct Words8 {
  using Vector = uint32_t __attribute__((vector_size(32)));
  Vector v;

  // Always inline, as lookup3's templates: built without AVX, they must
  // never be called with these as arguments.
  [[gnu::always_inline]] friend Words8 operator+(const Words8& a, const Words8& b) {
    return {a.v + b.v};
  }
  [[gnu::always_inline]] friend Words8 operator+(const Words8& a, uint32_t b) { return {a.v + b}; }
  [[gnu::always_inline]] friend Words8 operator^(const Words8& a, uint32_t b) { return {a.v ^ b}; }
  [[gnu::always_inline]] friend Words8 operator|(const Words8& a, const Words8& b) {
    return {a.v | b.v};
  }
  [[gnu::always_inline]] friend Words8 operator<<(const Words8& a, int k) { return {a.v << k}; }
  [[gnu::always_inline]] friend Words8 operator>>(const Words8& a, int k) { return {a.v >> k}; }
  [[gnu::always_inline]] Words8& operator+=(const Words8& b) { return v += b.v, *this; }
  [[gnu::always_inline]] Words8& operator-=(const Words8& b) { return v -= b.v, *this; }
  [[gnu::always_inline]] Words8& operator^=(const Words8& b) { return v ^= b.v, *this; }
};

// The gathers read a key's words where WordsOf reads them.
static_assert(std::endian::native == std::endian::little, "the ports word is read little-endian");
static_assert(offsetof(FlowKey, dst_port) == offsetof(FlowKey, src_port) + 2);
static_assert(offsetof(FlowKey, pad) == offsetof(FlowKey, proto) + 1 && sizeof(FlowKey::pad) == 3);
static_assert(sizeof(IpAddr) == 16, "an IPv4 address is the last 4 of 16 bytes");

// The word `offset` bytes into each of the eight keys at `base` + `at`.
[[gnu::target("avx2"), gnu::always_inline]] inline Words8 Gather(const char* base, size_t offset,
                                                                 __m256i at) {
  return {reinterpret_cast<Words8::Vector>(
      _mm256_i32gather_epi32(reinterpret_cast<const int*>(base + offset), at, 1))};
}

}  // namespace

namespace hash_detail {

[[gnu::target("avx2")]] void HashIpv4KeysAvx2(const FlowKey* first, size_t stride,
                                              uint32_t table_seed, uint32_t* table_hash,
                                              uint32_t flow_seed, uint32_t* flow_hash) {
  const auto* base = reinterpret_cast<const char*>(first);
  const __m256i at = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                        _mm256_set1_epi32(static_cast<int>(stride)));
  // IpAddr holds an IPv4 address in its last four bytes (IPv4-mapped).
  const Words8 src = Gather(base, offsetof(FlowKey, src) + 12, at);
  const Words8 dst = Gather(base, offsetof(FlowKey, dst) + 12, at);
  // src_port, dst_port read as one little-endian word: the halves swapped.
  const Words8 ports_le = Gather(base, offsetof(FlowKey, src_port), at);
  const Words8 ports = (ports_le << 16) | (ports_le >> 16);
  const Words8 proto = {Gather(base, offsetof(FlowKey, proto), at).v & 0xff};
  const Words8 table = Ipv4TableHash(src, dst, ports, proto, table_seed);
  const Words8 flow = Ipv4FlowHash(src, dst, ports, proto, flow_seed);
  std::memcpy(table_hash, &table, sizeof(table));
  std::memcpy(flow_hash, &flow, sizeof(flow));
}

void HashIpv4KeysOneByOne(const FlowKey* first, size_t stride, uint32_t table_seed,
                          uint32_t* table_hash, uint32_t flow_seed, uint32_t* flow_hash) {
  for (uint32_t i = 0; i < kHashLanes; ++i) {
    const auto* key =
        reinterpret_cast<const FlowKey*>(reinterpret_cast<const char*>(first) + stride * i);
    const Ipv4Words w = WordsOf(*key);
    table_hash[i] = Ipv4TableHash(w.src, w.dst, w.ports, w.proto, table_seed);
    flow_hash[i] = Ipv4FlowHash(w.src, w.dst, w.ports, w.proto, flow_seed);
  }
}

// The CPU's features are read first: this may run before the constructor
// that reads them (a static initializer).
bool HasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") != 0;
}

}  // namespace hash_detail

namespace {
// Asked once, while the program starts (before it, false: one key at a time).
const bool has_avx2 = hash_detail::HasAvx2();
}  // namespace

void HashIpv4Keys(const FlowKey* first, size_t stride, uint32_t table_seed,
                  uint32_t table_hash[kHashLanes], uint32_t flow_seed,
                  uint32_t flow_hash[kHashLanes]) {
  if (has_avx2) {
    hash_detail::HashIpv4KeysAvx2(first, stride, table_seed, table_hash, flow_seed, flow_hash);
  } else {
    hash_detail::HashIpv4KeysOneByOne(first, stride, table_seed, table_hash, flow_seed, flow_hash);
  }
}

}  // namespace atl::lb
