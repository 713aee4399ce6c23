#include "lb/maglev.h"

#include <xxhash.h>

#include <algorithm>
#include <numeric>

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

}  // namespace

absl::StatusOr<MaglevTable> BuildMaglev(std::span<const MaglevBackend> backends, uint32_t m,
                                        uint32_t seed) {
  if (std::find(kMaglevSizes.begin(), kMaglevSizes.end(), m) == kMaglevSizes.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Maglev table size ", m, " is not one of the allowed primes (251, 509, 1021, 2039, 4093, "
        "8191, 16381, 32749, 65521, 65537, 131071)"));
  }
  if (backends.size() > kMaglevMaxBackends) {
    return absl::InvalidArgumentError(absl::StrCat("a service has ", backends.size(),
                                                   " backends; at most ", kMaglevMaxBackends));
  }
  // Work in a canonical order so that the table does not depend on the order
  // the backends arrived in.
  const uint32_t n = static_cast<uint32_t>(backends.size());
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return backends[a].endpoint < backends[b].endpoint;
  });
  for (uint32_t i = 1; i < n; ++i) {
    const Endpoint& e = backends[order[i]].endpoint;
    if (e == backends[order[i - 1]].endpoint) {
      return absl::InvalidArgumentError(
          absl::StrCat("backend ", e.addr.ToString(), ":", e.port, " is listed twice"));
    }
  }
  // Backends with no weight take no turn at all.
  std::erase_if(order, [&](uint32_t i) { return backends[i].weight == 0; });

  MaglevTable table;
  if (n > 0 && m < kMaglevSlotsPerBackend * n) {
    table.warning = absl::StrCat("Maglev table size ", m, " is below ", kMaglevSlotsPerBackend,
                                 " slots per backend for ", n,
                                 " backends; backend shares will be uneven");
  }
  if (order.empty()) return table;

  // Permutation of backend i: offset_i + j * skip_i (mod M), walked one step per probe.
  const size_t k = order.size();
  std::vector<uint32_t> pos(k);
  std::vector<uint32_t> skip(k);
  std::vector<uint32_t> weight(k);
  uint32_t max_weight = 0;
  for (size_t i = 0; i < k; ++i) {
    const Endpoint& e = backends[order[i]].endpoint;
    pos[i] = static_cast<uint32_t>(EndpointHash(e, seed) % m);
    skip[i] = static_cast<uint32_t>(EndpointHash(e, ~static_cast<uint64_t>(seed)) % (m - 1)) + 1;
    weight[i] = backends[order[i]].weight;
    max_weight = std::max(max_weight, weight[i]);
  }

  std::vector<MaglevSlot>& slots = table.slots;
  slots.assign(m, kEmpty);
  uint32_t filled = 0;
  for (uint64_t pass = 0;; ++pass) {
    for (size_t i = 0; i < k; ++i) {
      // Weighted turns: backend i claims a slot in `w_i / w_max` of the passes,
      // spread evenly; with equal weights every backend takes every turn, which
      // is the paper's unweighted algorithm.
      if (weight[i] != max_weight &&
          (pass + 1) * weight[i] / max_weight == pass * weight[i] / max_weight) {
        continue;
      }
      uint32_t c = pos[i];
      while (slots[c] != kEmpty) {
        c += skip[i];
        if (c >= m) c -= m;
      }
      slots[c] = static_cast<MaglevSlot>(order[i]);
      c += skip[i];
      if (c >= m) c -= m;
      pos[i] = c;
      if (++filled == m) return table;
    }
  }
}

}  // namespace atl::lb
