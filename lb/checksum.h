// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// Sums are taken over native-order 16-bit loads: the ones' complement sum is
// independent of byte order (RFC 1071 section 2(B)), so a checksum read from a
// packet with a native load can be updated and stored back the same way without
// a byte swap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lb/net.h"

namespace atl::lb {

// Adds `len` bytes to a running 32-bit ones' complement sum (odd tails padded
// with a zero byte, RFC 1071).
uint32_t ChecksumAdd(uint32_t sum, const uint8_t* data, size_t len);

// Folds a running sum to 16 bits and complements it: the value a checksum field holds.
inline uint16_t ChecksumFinish(uint32_t sum) {
  uint64_t s = sum;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

// The full checksum of an IPv4 header whose checksum field is zero or is
// skipped: `header` is ihl*4 bytes long.
uint16_t Ipv4HeaderChecksum(const uint8_t* header, size_t len);

// The full TCP, UDP or ICMPv6 checksum of `len` bytes of transport data
// including the IPv4 or IPv6 pseudo-header (RFC 793, RFC 768, RFC 8200 section
// 8.1). The data's own checksum field must be zero.
uint16_t L4Checksum(const IpAddr& src, const IpAddr& dst, IpProto proto, const uint8_t* data,
                    size_t len);

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit word changing from
// `old_word` to `new_word`, all in the same (native) byte order.
inline uint16_t ChecksumReplace16(uint16_t csum, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = static_cast<uint16_t>(~csum);
  sum += static_cast<uint16_t>(~old_word);
  sum += new_word;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// The sum of changes to words covered by a checksum: each overwrite adds
// ~old + new (RFC 1624 eqn. 3), and Apply folds the total into a checksum. One
// delta serves every checksum that covers the changed bytes (an IPv4 header
// and a pseudo-header; a quoted header and the ICMP message around it).
class ChecksumDelta {
 public:
  // Records that `len` bytes (even, at an even offset of the covered data)
  // change from `old_bytes` to `new_bytes`.
  void Add(const uint8_t* old_bytes, const uint8_t* new_bytes, size_t len) {
    for (size_t i = 0; i + 1 < len; i += 2) {
      uint16_t o;
      uint16_t n;
      std::memcpy(&o, old_bytes + i, 2);
      std::memcpy(&n, new_bytes + i, 2);
      sum_ += static_cast<uint16_t>(~o);
      sum_ += n;
    }
  }
  void Add(const ChecksumDelta& other) { sum_ += other.sum_; }
  uint16_t Apply(uint16_t csum) const {
    uint64_t s = static_cast<uint16_t>(~csum) + sum_;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s);
  }

 private:
  uint64_t sum_ = 0;  // 64 bits: no carry is lost however many words change
};

// ChecksumDelta::Apply for a sum of changes folded to 16 bits beforehand
// (lb::SumIpv4Rewrite). The result is the same: the folded and the unfolded
// sum are equal modulo 0xffff, and each is zero only when all its terms are.
inline uint16_t ChecksumAddFolded(uint16_t csum, uint16_t folded) {
  uint32_t s = static_cast<uint32_t>(static_cast<uint16_t>(~csum)) + folded;
  s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

// The same for a run of `len` bytes (even, at an even offset of the covered data).
inline uint16_t ChecksumReplace(uint16_t csum, const uint8_t* old_bytes, const uint8_t* new_bytes,
                                size_t len) {
  ChecksumDelta delta;
  delta.Add(old_bytes, new_bytes, len);
  return delta.Apply(csum);
}

}  // namespace atl::lb
