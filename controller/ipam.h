// The controller's allocators: namespace CIDRs and node blocks carved out of the
// pod CIDR, ClusterIPs from a service CIDR, nodePorts, and segment ids (VNIs).
//
// Each allocator holds only what is committed. The Model plans a change without
// touching them: the Find* calls take the addresses a plan has already taken
// (`pending`) and a starting point, and the Model marks the result used when the
// store has written the change (Model::Commit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lb/net.h"

namespace atl::controller {

// lb::IpAddr carries no hash of its own; lb stays free of absl's hashing.
struct IpAddrHash {
  size_t operator()(const lb::IpAddr& a) const { return absl::Hash<decltype(a.bytes)>{}(a.bytes); }
};
using IpAddrSet = absl::flat_hash_set<lb::IpAddr, IpAddrHash>;

// The 128-bit number of an address in its IPv4-mapped form, and back.
absl::uint128 AddrToU128(const lb::IpAddr& a);
lb::IpAddr U128ToAddr(absl::uint128 v);
// The first and the last address of a prefix, as numbers.
absl::uint128 PrefixFirst(const lb::IpPrefix& p);
absl::uint128 PrefixLast(const lb::IpPrefix& p);
// The first host address of a prefix (the network address + 1): a segment's gateway.
lb::IpAddr FirstHost(const lb::IpPrefix& p);

// Disjoint prefixes inside one parent prefix (the pod CIDR), and the lowest free
// prefix of a fixed length inside any part of it. Used prefixes may have any
// length (a namespace may request a /23 while the default is /24); allocation
// returns aligned prefixes of `len`. The Model keeps one for namespace CIDRs and
// one for every node block of every namespace: blocks of different namespaces
// never overlap because their namespace CIDRs do not.
class PrefixAllocator {
 public:
  PrefixAllocator(lb::IpPrefix parent, uint8_t len);

  const lb::IpPrefix& parent() const { return parent_; }
  uint8_t len() const { return len_; }
  size_t used() const { return used_.size(); }

  // The lowest free prefix of len() inside `within` (a part of parent()) that
  // overlaps neither a used prefix nor one of `pending`; nullopt when full.
  std::optional<lb::IpPrefix> FindFree(const lb::IpPrefix& within,
                                       std::span<const lb::IpPrefix> pending = {}) const;
  // FindFree over the whole parent, marked used. RESOURCE_EXHAUSTED when full.
  absl::StatusOr<lb::IpPrefix> Allocate();
  // Marks a chosen prefix used: INVALID_ARGUMENT when it is not inside parent(),
  // ALREADY_EXISTS naming the used prefix it overlaps.
  absl::Status MarkUsed(const lb::IpPrefix& p);
  // A used prefix that overlaps `p`, if any.
  std::optional<lb::IpPrefix> FindOverlap(const lb::IpPrefix& p) const;
  bool IsUsed(const lb::IpPrefix& p) const;
  // Frees a prefix marked before; false when it was not used exactly so.
  bool Release(const lb::IpPrefix& p);
  // The used prefixes inside `within`, in address order.
  std::vector<lb::IpPrefix> UsedWithin(const lb::IpPrefix& within) const;

 private:
  lb::IpPrefix parent_;
  uint8_t len_;
  // Keyed by first address; prefixes are disjoint, so first addresses order them.
  absl::btree_map<absl::uint128, lb::IpPrefix> used_;
};

// Single addresses of one prefix (a service CIDR) for ClusterIPs. The network
// address is never handed out, nor the IPv4 broadcast address, as kube-apiserver
// does. Allocation is sequential from a cursor that wraps around, so that an
// address just freed is the last to be handed out again: a client that still
// holds a stale ClusterIP does not reach a different service at once.
class AddressAllocator {
 public:
  explicit AddressAllocator(lb::IpPrefix range);

  const lb::IpPrefix& range() const { return range_; }
  size_t used() const { return used_.size(); }
  // How many addresses can be handed out (saturates at 2^64 - 1).
  uint64_t capacity() const;
  // Inside the range and neither its network nor broadcast address.
  bool Allocatable(const lb::IpAddr& a) const;
  bool IsUsed(const lb::IpAddr& a) const { return used_.contains(AddrToU128(a)); }

  // Where the next sequential search starts.
  lb::IpAddr cursor() const { return U128ToAddr(cursor_); }
  // The first free address at or after `start` (wrapping around) that is not in
  // `pending`; nullopt when none is left.
  std::optional<lb::IpAddr> FindFree(const lb::IpAddr& start, const IpAddrSet& pending) const;
  // The address after `a` in the cursor's order (wrapping around).
  lb::IpAddr After(const lb::IpAddr& a) const;

  // FindFree from the cursor, marked used, cursor moved past it.
  absl::StatusOr<lb::IpAddr> Allocate();
  // INVALID_ARGUMENT when not allocatable, ALREADY_EXISTS when used.
  absl::Status MarkUsed(const lb::IpAddr& a);
  bool Release(const lb::IpAddr& a);
  // Moves the cursor past `a`: what Allocate does, for an address a plan chose.
  void AdvancePast(const lb::IpAddr& a);

 private:
  lb::IpPrefix range_;
  absl::uint128 first_;  // the lowest allocatable address
  absl::uint128 last_;   // the highest allocatable address
  absl::uint128 cursor_;
  absl::flat_hash_set<absl::uint128> used_;
};

// Ports of [min, max] (nodePorts of one protocol), sequential from a wrapping
// cursor for the same reason as ClusterIPs.
class PortAllocator {
 public:
  PortAllocator(uint32_t min, uint32_t max);

  uint32_t min() const { return min_; }
  uint32_t max() const { return max_; }
  size_t used() const { return used_count_; }
  bool InRange(uint32_t port) const { return port >= min_ && port <= max_; }
  bool IsUsed(uint32_t port) const { return InRange(port) && used_[port - min_]; }

  uint32_t cursor() const { return cursor_; }
  // The first free port at or after `start` (wrapping) that is not in `pending`.
  std::optional<uint32_t> FindFree(uint32_t start,
                                   const absl::flat_hash_set<uint32_t>& pending) const;
  uint32_t After(uint32_t port) const { return port >= max_ || port < min_ ? min_ : port + 1; }

  absl::StatusOr<uint32_t> Allocate();
  absl::Status MarkUsed(uint32_t port);
  bool Release(uint32_t port);
  void AdvancePast(uint32_t port) { cursor_ = After(port); }

 private:
  uint32_t min_;
  uint32_t max_;
  uint32_t cursor_;
  size_t used_count_ = 0;
  std::vector<bool> used_;
};

// Segment ids, used as VXLAN VNIs (24 bits, RFC 7348 section 5): the smallest
// free one, so that ids stay small and readable in captures.
class VniAllocator {
 public:
  static constexpr uint32_t kMin = 1;
  static constexpr uint32_t kMax = (1u << 24) - 1;

  size_t used() const { return used_count_; }
  bool IsUsed(uint32_t vni) const { return vni < used_.size() && used_[vni]; }
  // The smallest free id not in `pending`; nullopt when all are used.
  std::optional<uint32_t> FindFree(const absl::flat_hash_set<uint32_t>& pending = {}) const;
  absl::StatusOr<uint32_t> Allocate();
  absl::Status MarkUsed(uint32_t vni);
  bool Release(uint32_t vni);

 private:
  // Every id below lowest_free_ is used; the search starts there.
  uint32_t lowest_free_ = kMin;
  size_t used_count_ = 0;
  std::vector<bool> used_;  // grows up to the highest id used
};

}  // namespace atl::controller
