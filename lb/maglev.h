// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4), with weights.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lb/net.h"

namespace atl::lb {

// Table sizes must be prime (the permutation needs skip and M coprime); these
// are the ones a service may use. 65537 is the paper's benchmark size.
inline constexpr std::array<uint32_t, 11> kMaglevSizes = {251,   509,   1021,  2039,  4093,  8191,
                                                          16381, 32749, 65521, 65537, 131071};
inline constexpr uint32_t kDefaultMaglevSize = 16381;
// Below this many slots per backend the shares drift apart by more than ~1%.
inline constexpr uint32_t kMaglevSlotsPerBackend = 100;
// A table slot holds an index into the service's backend list.
using MaglevSlot = uint16_t;
inline constexpr uint32_t kMaglevMaxBackends = 65535;

struct MaglevBackend {
  Endpoint endpoint;    // its identity: the permutation is derived from it
  uint32_t weight = 1;  // relative share; 0 gets no slot
};

struct MaglevTable {
  // slots[h] is an index into the backends given to BuildMaglev. Empty when
  // no backend has a positive weight.
  std::vector<MaglevSlot> slots;
  // Set when M < 100·N: the table still works but balances worse.
  std::string warning;
};

// Builds the lookup table. It depends only on the set of backends, their
// weights, `m` and `seed`, never on the order of `backends`, so every host
// builds the same table. Errors: `m` not in kMaglevSizes, more than
// kMaglevMaxBackends backends, or a backend listed twice.
absl::StatusOr<MaglevTable> BuildMaglev(std::span<const MaglevBackend> backends, uint32_t m,
                                        uint32_t seed);

}  // namespace atl::lb
