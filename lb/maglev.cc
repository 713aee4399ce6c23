#include "lb/maglev.h"

#include <xxhash.h>

#include <algorithm>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"

namespace atl::lb {
namespace {

constexpr MaglevSlot kEmpty = 0xffff;  // never a backend index: N <= 65535

// The paper's h1 and h2: two independent hashes of the backend's name. The
// control plane may hash anything, so the packaged xxHash (XXH3) is used.
uint64_t EndpointHash(const Endpoint& e, uint64_t seed) {
  uint8_t name[18];
  std::memcpy(name, e.addr.bytes.data(), 16);
  name[16] = static_cast<uint8_t>(e.port >> 8);
  name[17] = static_cast<uint8_t>(e.port);
  return XXH3_64bits_withSeed(name, sizeof(name), seed);
}

// The last few free slots are where probing is slowest: a backend walks M/F
// taken slots to find one of F free ones. TailSearch finds the same slot by
// arithmetic instead: the free slot f that backend's permutation reaches first
// is the one with the fewest steps (f - pos) * skip^-1 (mod M), found in F
// multiplications. Same table, about a quarter less time for M = 65537.
//
// The search costs F^2/2 for the last F slots, probing about M ln F: it pays
// for the last 256 slots of a large table, but of a small one (the agent sizes
// tables to 100 slots a backend, so most are 1021 or 2039) only for the last
// M/16 or so. At 256 for M = 1021 it took 90 us of a 100 us build.
uint32_t TailFreeSlots(uint32_t m) { return std::min<uint32_t>(256, m / 16); }

__extension__ using Uint128 = unsigned __int128;  // a GCC/Clang extension; -Wpedantic knows

class TailSearch {
 public:
  explicit TailSearch(uint32_t m)
      : m_(m), magic_(static_cast<uint64_t>((static_cast<Uint128>(1) << 64) / m)) {}

  bool started() const { return started_; }
  void Start(const std::vector<uint64_t>& taken) {
    started_ = true;
    for (uint32_t s = 0; s < m_; ++s) {
      if (!(taken[s >> 6] & (uint64_t{1} << (s & 63)))) free_.push_back(s);
    }
  }
  // Takes the first free slot of the permutation at `pos` with step `skip`.
  uint32_t Claim(uint32_t pos, uint32_t skip) {
    const uint32_t inv = Inverse(skip);
    size_t best = 0;
    uint32_t best_steps = UINT32_MAX;
    for (size_t k = 0; k < free_.size(); ++k) {
      const uint32_t f = free_[k];
      const uint32_t steps = Mod(static_cast<uint64_t>(f >= pos ? f - pos : f + m_ - pos) * inv);
      if (steps < best_steps) {
        best_steps = steps;
        best = k;
      }
    }
    const uint32_t slot = free_[best];
    free_[best] = free_.back();
    free_.pop_back();
    return slot;
  }

 private:
  // x mod M by Barrett reduction (x < 2^64): no division instruction.
  uint32_t Mod(uint64_t x) const {
    const auto q = static_cast<uint64_t>((static_cast<Uint128>(x) * magic_) >> 64);
    const uint64_t r = x - q * m_;
    return static_cast<uint32_t>(r >= m_ ? r - m_ : r);
  }
  // skip^-1 mod M by the extended Euclidean algorithm (M is prime, 0 < skip < M).
  uint32_t Inverse(uint32_t skip) const {
    int64_t t = 0, new_t = 1, r = m_, new_r = skip;
    while (new_r != 0) {
      const int64_t q = r / new_r;
      t = std::exchange(new_t, t - q * new_t);
      r = std::exchange(new_r, r - q * new_r);
    }
    return static_cast<uint32_t>(t < 0 ? t + m_ : t);
  }

  uint32_t m_;
  uint64_t magic_;
  bool started_ = false;
  std::vector<uint32_t> free_;
};

}  // namespace

absl::StatusOr<MaglevTable> BuildMaglev(std::span<const MaglevBackend> backends, uint32_t m,
                                        uint32_t seed) {
  if (std::find(kMaglevSizes.begin(), kMaglevSizes.end(), m) == kMaglevSizes.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Maglev table size ", m,
                     " is not one of the allowed primes (251, 509, 1021, 2039, 4093, "
                     "8191, 16381, 32749, 65521, 65537, 131071)"));
  }
  if (backends.size() > kMaglevMaxBackends) {
    return absl::InvalidArgumentError(
        absl::StrCat("a service has ", backends.size(), " backends; at most ", kMaglevMaxBackends));
  }
  // Work in a canonical order so that the table does not depend on the order
  // the backends arrived in.
  const uint32_t n = static_cast<uint32_t>(backends.size());
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return backends[a].endpoint < backends[b].endpoint; });
  for (uint32_t i = 1; i < n; ++i) {
    const Endpoint& e = backends[order[i]].endpoint;
    if (e == backends[order[i - 1]].endpoint) {
      // An IPv6 address is bracketed (RFC 3986 section 3.2.2) so its port reads as one.
      const bool v6 = !e.addr.IsV4();
      return absl::InvalidArgumentError(absl::StrCat("backend ", v6 ? "[" : "", e.addr.ToString(),
                                                     v6 ? "]" : "", ":", e.port,
                                                     " is listed twice"));
    }
  }
  // Backends with no weight take no turn at all.
  std::erase_if(order, [&](uint32_t i) { return backends[i].weight == 0; });

  MaglevTable table;
  if (!order.empty() && m < kMaglevSlotsPerBackend * order.size()) {
    table.warning = absl::StrCat("Maglev table size ", m, " is below ", kMaglevSlotsPerBackend,
                                 " slots per backend for ", order.size(),
                                 " backends; backend shares will be uneven");
  }
  if (order.empty()) return table;

  // Permutation of backend i: offset_i + j * skip_i (mod M), walked one step per probe.
  const size_t k = order.size();
  struct Walk {
    uint32_t pos;
    uint32_t skip;
  };
  std::vector<Walk> walk(k);
  std::vector<uint32_t> weight(k);
  uint32_t max_weight = 0;
  for (size_t i = 0; i < k; ++i) {
    const Endpoint& e = backends[order[i]].endpoint;
    walk[i].pos = static_cast<uint32_t>(EndpointHash(e, seed) % m);
    walk[i].skip =
        static_cast<uint32_t>(EndpointHash(e, ~static_cast<uint64_t>(seed)) % (m - 1)) + 1;
    weight[i] = backends[order[i]].weight;
    max_weight = std::max(max_weight, weight[i]);
  }

  std::vector<MaglevSlot>& slots = table.slots;
  slots.assign(m, kEmpty);
  // Probes test a bitmap of taken slots: 8 KiB for M = 65537 stays in L1,
  // where the slot array itself would not.
  std::vector<uint64_t> taken((m + 63) / 64, 0);
  TailSearch tail(m);
  const uint32_t probe_until = m - TailFreeSlots(m);
  const bool weighted =
      std::any_of(weight.begin(), weight.end(), [&](uint32_t w) { return w != max_weight; });
  uint32_t filled = 0;
  for (uint64_t pass = 0;; ++pass) {
    for (size_t i = 0; i < k; ++i) {
      // Weighted turns: backend i claims a slot in `w_i / w_max` of the passes,
      // spread evenly; with equal weights every backend takes every turn, which
      // is the paper's unweighted algorithm.
      if (weighted && weight[i] != max_weight &&
          (pass + 1) * weight[i] / max_weight == pass * weight[i] / max_weight) {
        continue;
      }
      const uint32_t step = walk[i].skip;
      uint32_t c = walk[i].pos;
      if (filled < probe_until) {
        while (taken[c >> 6] & (uint64_t{1} << (c & 63))) {
          c += step;
          if (c >= m) c -= m;
        }
        taken[c >> 6] |= uint64_t{1} << (c & 63);
      } else {
        if (!tail.started()) tail.Start(taken);
        c = tail.Claim(c, step);
      }
      slots[c] = static_cast<MaglevSlot>(order[i]);
      c += step;
      if (c >= m) c -= m;
      walk[i].pos = c;
      if (++filled == m) return table;
    }
  }
}

}  // namespace atl::lb
