// The seeded 5-tuple hash of a flow: the Maglev slot a new flow gets, and
// where conntrack's index keeps it.
//
// Why Jenkins' lookup3 (the kernel's jhash2) and not xxHash or a CRC: the eBPF
// backend must compute the very same value inside a tc program, where no library
// can be linked and the verifier wants short, loop-free code; lookup3 over ten
// 32-bit words is three mixing rounds of adds, xors and rotates, it is what
// Katran and Cilium already run in BPF, and it costs a few nanoseconds here. It
// is hand-written because the only packaged copies live in the kernel's private
// headers and in DPDK, and lb depends on neither.
#pragma once

#include <cstdint>
#include <cstring>

#include "lb/net.h"

namespace atl::lb {

// What the hashes below are made of, and HashIpv4Keys' two ways.
namespace hash_detail {
// The rounds read as in lookup3.c, three steps to a line. Templates: the
// same rounds hash eight keys at once in vectors (HashIpv4Keys), and always
// inline, so that vectors are never passed to a function built without the
// caller's vector instructions.
// clang-format off
template <typename T> [[gnu::always_inline]] constexpr T Rol32(const T& x, int k) {
  return (x << k) | (x >> (32 - k));
}
template <typename T> [[gnu::always_inline]] constexpr void Mix(T& a, T& b, T& c) {
  a -= c; a ^= Rol32(c, 4);  c += b;
  b -= a; b ^= Rol32(a, 6);  a += c;
  c -= b; c ^= Rol32(b, 8);  b += a;
  a -= c; a ^= Rol32(c, 16); c += b;
  b -= a; b ^= Rol32(a, 19); a += c;
  c -= b; c ^= Rol32(b, 4);  b += a;
}
template <typename T> [[gnu::always_inline]] constexpr void Final(T& a, T& b, T& c) {
  c ^= b; c -= Rol32(b, 14);
  a ^= c; a -= Rol32(c, 11);
  b ^= a; b -= Rol32(a, 25);
  c ^= b; c -= Rol32(b, 16);
  a ^= c; a -= Rol32(c, 4);
  b ^= a; b -= Rol32(a, 14);
  c ^= b; c -= Rol32(b, 24);
}
// clang-format on
}  // namespace hash_detail

// lookup3 hashword() / the kernel's jhash2(): `n` 32-bit words, seeded.
constexpr uint32_t Jhash2(const uint32_t* k, uint32_t n, uint32_t seed) {
  uint32_t a = 0xdeadbeef + (n << 2) + seed;
  uint32_t b = a;
  uint32_t c = a;
  while (n > 3) {
    a += k[0];
    b += k[1];
    c += k[2];
    hash_detail::Mix(a, b, c);
    n -= 3;
    k += 3;
  }
  switch (n) {
    case 3:
      c += k[2];
      [[fallthrough]];
    case 2:
      b += k[1];
      [[fallthrough]];
    case 1:
      a += k[0];
      hash_detail::Final(a, b, c);
      break;
    default:
      break;
  }
  return c;
}

// An IPv4 tuple's hashes, over its words: the addresses as native words
// of their header bytes, the ports in one (src_port << 16 | dst_port), the
// protocol in another. T is a word, or a vector of words (one key a lane).
//
// FlowHash of an IPv4 tuple: lookup3 over the four words, one mixing round,
// half the cost of the whole key (Jhash2(words, 4, seed)).
template <typename T>
[[gnu::always_inline]] constexpr T Ipv4FlowHash(const T& src, const T& dst, const T& ports,
                                                const T& proto, uint32_t seed) {
  T a = T{} + (0xdeadbeef + 16 + seed);
  T b = a;
  T c = a;
  a += src;
  b += dst;
  c += ports;
  hash_detail::Mix(a, b, c);
  a += proto;
  hash_detail::Final(a, b, c);
  return c;
}
// The cheaper hash a table private to this process may use (ConntrackShard's):
// three words, the protocol folded into the seed, lookup3's final mix alone
// (Jhash2({src, dst, ports}, 3, seed ^ proto)).
template <typename T>
[[gnu::always_inline]] constexpr T Ipv4TableHash(const T& src, const T& dst, const T& ports,
                                                 const T& proto, uint32_t seed) {
  T a = (proto ^ seed) + (0xdeadbeef + 12);
  T b = a + dst;
  T c = a + ports;
  a += src;
  hash_detail::Final(a, b, c);
  return c;
}

// The words of an IPv4 key, for the hashes above.
struct Ipv4Words {
  uint32_t src;
  uint32_t dst;
  uint32_t ports;
  uint32_t proto;
};
inline Ipv4Words WordsOf(const FlowKey& key) {
  Ipv4Words w;
  std::memcpy(&w.src, key.src.v4_bytes(), 4);
  std::memcpy(&w.dst, key.dst.v4_bytes(), 4);
  w.ports = static_cast<uint32_t>(key.src_port) << 16 | key.dst_port;
  w.proto = static_cast<uint32_t>(key.proto);
  return w;
}

// Hash of a flow key. An IPv4 flow hashes as Ipv4FlowHash; an IPv6 flow
// hashes the whole key as ten native-order words. The eBPF side computes the same.
inline uint32_t FlowHash(const FlowKey& key, uint32_t seed) {
  if (key.src.IsV4()) {
    const Ipv4Words w = WordsOf(key);
    return Ipv4FlowHash(w.src, w.dst, w.ports, w.proto, seed);
  }
  uint32_t words[sizeof(FlowKey) / 4];
  std::memcpy(words, &key, sizeof(words));
  return Jhash2(words, sizeof(FlowKey) / 4, seed);
}

// Both hashes of eight IPv4 keys at once, for a burst: key i is the FlowKey
// `stride` * i bytes after `first` (a field of the caller's per-frame
// records). With AVX2, chosen at run time, their words are gathered from
// there straight into vectors and hashed eight per instruction: a key costs
// a few instructions where hashing it alone costs some 35. Gathered, not
// copied into columns first: a vector load of words stored one by one just
// before waits for the stores to reach the cache (no store forwarding).
inline constexpr uint32_t kHashLanes = 8;
void HashIpv4Keys(const FlowKey* first, size_t stride, uint32_t table_seed,
                  uint32_t table_hash[kHashLanes], uint32_t flow_seed,
                  uint32_t flow_hash[kHashLanes]);

namespace hash_detail {
// HashIpv4Keys' two ways, each, for its test to check both on any CPU;
// HashIpv4KeysAvx2 only where the CPU has AVX2.
bool HasAvx2();
void HashIpv4KeysAvx2(const FlowKey* first, size_t stride, uint32_t table_seed,
                      uint32_t* table_hash, uint32_t flow_seed, uint32_t* flow_hash);
void HashIpv4KeysOneByOne(const FlowKey* first, size_t stride, uint32_t table_seed,
                          uint32_t* table_hash, uint32_t flow_seed, uint32_t* flow_hash);
}  // namespace hash_detail

// The seed of FlowHash for Maglev: the eBPF programs' (0), so that every
// backend picks the same slot for a flow. Tables of flows hash with a seed
// of their own (ConntrackConfig::hash_seed).
constexpr uint32_t kMaglevSeed = 0;

// Maps a 32-bit hash onto [0, n) with a multiply and a shift instead of a
// division (Lemire's fast range reduction): unbiased enough for n far below 2^32
// and cheap in BPF, which has 64-bit multiplies but slow or no 64-bit modulo.
constexpr uint32_t ReduceHash(uint32_t hash, uint32_t n) {
  return static_cast<uint32_t>((static_cast<uint64_t>(hash) * n) >> 32);
}

}  // namespace atl::lb
