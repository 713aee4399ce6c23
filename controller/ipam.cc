#include "controller/ipam.h"

#include <algorithm>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace atl::controller {
namespace {

// The host part of a prefix of `mapped_len` bits (in the 128-bit mapped form).
absl::uint128 HostMask(unsigned mapped_len) {
  if (mapped_len == 0) return absl::Uint128Max();
  return (absl::uint128(1) << (128 - mapped_len)) - 1;
}

// The mapped length a prefix of `len` bits has in the family of `like`.
unsigned MappedLen(const lb::IpPrefix& like, uint8_t len) {
  return like.addr.IsV4() ? len + 96u : len;
}

// `inner` lies entirely inside `outer` (same family, at least as long).
bool Inside(const lb::IpPrefix& inner, const lb::IpPrefix& outer) {
  return inner.addr.IsV4() == outer.addr.IsV4() && inner.len >= outer.len &&
         outer.Contains(inner.addr);
}

}  // namespace

absl::uint128 AddrToU128(const lb::IpAddr& a) {
  uint64_t hi = 0;
  uint64_t lo = 0;
  for (int i = 0; i < 8; ++i) hi = (hi << 8) | a.bytes[i];
  for (int i = 8; i < 16; ++i) lo = (lo << 8) | a.bytes[i];
  return absl::MakeUint128(hi, lo);
}

lb::IpAddr U128ToAddr(absl::uint128 v) {
  lb::IpAddr a;
  uint64_t hi = absl::Uint128High64(v);
  uint64_t lo = absl::Uint128Low64(v);
  for (int i = 7; i >= 0; --i, hi >>= 8) a.bytes[i] = static_cast<uint8_t>(hi);
  for (int i = 15; i >= 8; --i, lo >>= 8) a.bytes[i] = static_cast<uint8_t>(lo);
  return a;
}

absl::uint128 PrefixFirst(const lb::IpPrefix& p) { return AddrToU128(p.addr); }

absl::uint128 PrefixLast(const lb::IpPrefix& p) {
  return AddrToU128(p.addr) | HostMask(p.mapped_len());
}

lb::IpAddr FirstHost(const lb::IpPrefix& p) { return U128ToAddr(PrefixFirst(p) + 1); }

// --- PrefixAllocator -------------------------------------------------------

PrefixAllocator::PrefixAllocator(lb::IpPrefix parent, uint8_t len) : parent_(parent), len_(len) {}

std::optional<lb::IpPrefix> PrefixAllocator::FindFree(const lb::IpPrefix& within,
                                                      std::span<const lb::IpPrefix> pending) const {
  if (!Inside(within, parent_) || len_ < within.len) return std::nullopt;
  const absl::uint128 mask = HostMask(MappedLen(within, len_));
  const absl::uint128 end = PrefixLast(within);
  absl::uint128 cand = PrefixFirst(within);
  // Each round either returns or jumps past one used prefix, so the search costs
  // one lookup per used prefix in the way, not one per candidate.
  while (true) {
    const absl::uint128 cand_last = cand | mask;
    if (cand_last > end) return std::nullopt;
    bool blocked = false;
    absl::uint128 blocked_until = 0;
    auto it = used_.upper_bound(cand_last);
    if (it != used_.begin()) {
      --it;
      const absl::uint128 hi = PrefixLast(it->second);
      if (hi >= cand) {
        blocked = true;
        blocked_until = hi;
      }
    }
    for (const lb::IpPrefix& p : pending) {
      const absl::uint128 lo = PrefixFirst(p);
      const absl::uint128 hi = PrefixLast(p);
      if (lo <= cand_last && hi >= cand) {
        blocked_until = blocked ? std::max(blocked_until, hi) : hi;
        blocked = true;
      }
    }
    if (!blocked) {
      lb::IpPrefix out{U128ToAddr(cand), len_};
      return out;
    }
    const absl::uint128 next = (blocked_until | mask) + 1;
    if (next == 0) return std::nullopt;  // wrapped past the end of the address space
    cand = next;
  }
}

absl::StatusOr<lb::IpPrefix> PrefixAllocator::Allocate() {
  std::optional<lb::IpPrefix> p = FindFree(parent_);
  if (!p) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no free /", len_, " left in ", parent_.ToString()));
  }
  used_.emplace(PrefixFirst(*p), *p);
  return *p;
}

std::optional<lb::IpPrefix> PrefixAllocator::FindOverlap(const lb::IpPrefix& p) const {
  if (p.addr.IsV4() != parent_.addr.IsV4()) return std::nullopt;
  auto it = used_.upper_bound(PrefixLast(p));
  if (it == used_.begin()) return std::nullopt;
  --it;
  // Used prefixes are disjoint: if the last one starting inside or before `p`
  // ends before it, so do all earlier ones.
  if (PrefixLast(it->second) >= PrefixFirst(p)) return it->second;
  return std::nullopt;
}

absl::Status PrefixAllocator::MarkUsed(const lb::IpPrefix& p) {
  if (!Inside(p, parent_)) {
    return absl::InvalidArgumentError(
        absl::StrCat(p.ToString(), " is not inside ", parent_.ToString()));
  }
  if (std::optional<lb::IpPrefix> other = FindOverlap(p)) {
    return absl::AlreadyExistsError(
        absl::StrCat(p.ToString(), " overlaps ", other->ToString(), ", which is in use"));
  }
  used_.emplace(PrefixFirst(p), p);
  return absl::OkStatus();
}

bool PrefixAllocator::IsUsed(const lb::IpPrefix& p) const {
  auto it = used_.find(PrefixFirst(p));
  return it != used_.end() && it->second == p;
}

bool PrefixAllocator::Release(const lb::IpPrefix& p) {
  auto it = used_.find(PrefixFirst(p));
  if (it == used_.end() || it->second != p) return false;
  used_.erase(it);
  return true;
}

std::vector<lb::IpPrefix> PrefixAllocator::UsedWithin(const lb::IpPrefix& within) const {
  std::vector<lb::IpPrefix> out;
  const absl::uint128 first = PrefixFirst(within);
  const absl::uint128 last = PrefixLast(within);
  auto it = used_.lower_bound(first);
  // A used prefix that starts before `within` may still reach into it.
  if (it != used_.begin()) {
    auto prev = std::prev(it);
    if (PrefixLast(prev->second) >= first) out.push_back(prev->second);
  }
  for (; it != used_.end() && it->first <= last; ++it) out.push_back(it->second);
  return out;
}

// --- AddressAllocator ------------------------------------------------------

AddressAllocator::AddressAllocator(lb::IpPrefix range) : range_(range) {
  // Kubernetes never hands out the network address, nor the IPv4 broadcast
  // address (pkg/registry/core/service/ipallocator).
  first_ = PrefixFirst(range) + 1;
  last_ = PrefixLast(range) - (range.addr.IsV4() ? 1 : 0);
  cursor_ = first_;
}

uint64_t AddressAllocator::capacity() const {
  if (last_ < first_) return 0;
  const absl::uint128 n = last_ - first_ + 1;
  if (n == 0 || absl::Uint128High64(n) != 0) return std::numeric_limits<uint64_t>::max();
  return absl::Uint128Low64(n);
}

bool AddressAllocator::Allocatable(const lb::IpAddr& a) const {
  if (!range_.Contains(a)) return false;
  const absl::uint128 v = AddrToU128(a);
  return v >= first_ && v <= last_;
}

std::optional<lb::IpAddr> AddressAllocator::FindFree(const lb::IpAddr& start,
                                                     const IpAddrSet& pending) const {
  if (last_ < first_) return std::nullopt;
  absl::uint128 v = AddrToU128(start);
  if (!Allocatable(start)) v = first_;
  // Only used or pending addresses can be passed over, so that many steps plus one
  // either finds a free address or has seen the whole range.
  const absl::uint128 span = last_ - first_;  // range size - 1, never overflows
  const absl::uint128 bound =
      std::min<absl::uint128>(absl::uint128(used_.size() + pending.size()) + 1,
                              span == absl::Uint128Max() ? span : span + 1);
  for (absl::uint128 i = 0; i < bound; ++i) {
    const lb::IpAddr a = U128ToAddr(v);
    if (!used_.contains(v) && !pending.contains(a)) return a;
    v = v == last_ ? first_ : v + 1;
  }
  return std::nullopt;
}

lb::IpAddr AddressAllocator::After(const lb::IpAddr& a) const {
  const absl::uint128 v = AddrToU128(a);
  if (!Allocatable(a) || v == last_) return U128ToAddr(first_);
  return U128ToAddr(v + 1);
}

absl::StatusOr<lb::IpAddr> AddressAllocator::Allocate() {
  std::optional<lb::IpAddr> a = FindFree(cursor(), {});
  if (!a) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no free address left in ", range_.ToString()));
  }
  used_.insert(AddrToU128(*a));
  AdvancePast(*a);
  return *a;
}

absl::Status AddressAllocator::MarkUsed(const lb::IpAddr& a) {
  if (!Allocatable(a)) {
    return absl::InvalidArgumentError(
        absl::StrCat(a.ToString(), " is not an allocatable address of ", range_.ToString()));
  }
  if (!used_.insert(AddrToU128(a)).second) {
    return absl::AlreadyExistsError(absl::StrCat(a.ToString(), " is already in use"));
  }
  return absl::OkStatus();
}

bool AddressAllocator::Release(const lb::IpAddr& a) { return used_.erase(AddrToU128(a)) == 1; }

void AddressAllocator::AdvancePast(const lb::IpAddr& a) { cursor_ = AddrToU128(After(a)); }

// --- PortAllocator ---------------------------------------------------------

PortAllocator::PortAllocator(uint32_t min, uint32_t max)
    : min_(min), max_(std::max(min, max)), cursor_(min), used_(max_ - min_ + 1, false) {}

std::optional<uint32_t> PortAllocator::FindFree(
    uint32_t start, const absl::flat_hash_set<uint32_t>& pending) const {
  uint32_t p = InRange(start) ? start : min_;
  const size_t n = used_.size();
  for (size_t i = 0; i < n; ++i) {
    if (!used_[p - min_] && !pending.contains(p)) return p;
    p = After(p);
  }
  return std::nullopt;
}

absl::StatusOr<uint32_t> PortAllocator::Allocate() {
  std::optional<uint32_t> p = FindFree(cursor_, {});
  if (!p) {
    return absl::ResourceExhaustedError(absl::StrCat("no free port left in ", min_, "-", max_));
  }
  used_[*p - min_] = true;
  ++used_count_;
  AdvancePast(*p);
  return *p;
}

absl::Status PortAllocator::MarkUsed(uint32_t port) {
  if (!InRange(port)) {
    return absl::InvalidArgumentError(absl::StrCat(port, " is outside ", min_, "-", max_));
  }
  if (used_[port - min_]) return absl::AlreadyExistsError(absl::StrCat(port, " is already in use"));
  used_[port - min_] = true;
  ++used_count_;
  return absl::OkStatus();
}

bool PortAllocator::Release(uint32_t port) {
  if (!IsUsed(port)) return false;
  used_[port - min_] = false;
  --used_count_;
  return true;
}

// --- VniAllocator ----------------------------------------------------------

std::optional<uint32_t> VniAllocator::FindFree(const absl::flat_hash_set<uint32_t>& pending) const {
  for (uint32_t v = lowest_free_; v <= kMax; ++v) {
    if (!IsUsed(v) && !pending.contains(v)) return v;
  }
  return std::nullopt;
}

absl::StatusOr<uint32_t> VniAllocator::Allocate() {
  std::optional<uint32_t> v = FindFree();
  if (!v) return absl::ResourceExhaustedError("all segment ids (VNIs) are in use");
  if (absl::Status s = MarkUsed(*v); !s.ok()) return s;
  return *v;
}

absl::Status VniAllocator::MarkUsed(uint32_t vni) {
  if (vni < kMin || vni > kMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment id ", vni, " is outside ", kMin, "-", kMax));
  }
  if (IsUsed(vni)) return absl::AlreadyExistsError(absl::StrCat("segment id ", vni, " is in use"));
  if (vni >= used_.size()) used_.resize(vni + 1, false);
  used_[vni] = true;
  ++used_count_;
  while (lowest_free_ <= kMax && IsUsed(lowest_free_)) ++lowest_free_;
  return absl::OkStatus();
}

bool VniAllocator::Release(uint32_t vni) {
  if (!IsUsed(vni)) return false;
  used_[vni] = false;
  --used_count_;
  lowest_free_ = std::min(lowest_free_, vni);
  return true;
}

}  // namespace atl::controller
