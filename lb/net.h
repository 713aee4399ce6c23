// Addresses, protocol numbers and the flow key shared by every part of lb.
//
// Atoll's C++ namespace is `atl`: `atoll` is taken by the C library's atoll().
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace atl::lb {

// The `i`th 8-byte word of an object, loaded directly. Comparisons read
// their operands this way: copied into a uint64_t array instead, GCC stages
// them through the stack with 16-byte stores and reads halves back, which
// the store buffer cannot always forward (a stall on every conntrack probe).
inline uint64_t Word64(const void* object, size_t i) {
  uint64_t w;
  std::memcpy(&w, static_cast<const char*>(object) + 8 * i, 8);
  return w;
}

// IANA protocol numbers (https://www.iana.org/assignments/protocol-numbers).
enum class IpProto : uint8_t {
  kHopByHop = 0,
  kIcmp = 1,
  kTcp = 6,
  kUdp = 17,
  kRouting = 43,
  kFragment = 44,
  kEsp = 50,
  kAh = 51,
  kIcmpV6 = 58,
  kNoNext = 59,
  kDestOpts = 60,
  kSctp = 132,
};

enum class Family : uint8_t { kIpv4 = 4, kIpv6 = 6 };

// An IPv4 or IPv6 address in network byte order. IPv4 is held IPv4-mapped
// (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2) so that one key layout serves both
// families and a v4 flow can never equal a v6 one.
struct IpAddr {
  std::array<uint8_t, 16> bytes{};

  static IpAddr V4(uint32_t host_order) {
    IpAddr a;
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    a.bytes[12] = static_cast<uint8_t>(host_order >> 24);
    a.bytes[13] = static_cast<uint8_t>(host_order >> 16);
    a.bytes[14] = static_cast<uint8_t>(host_order >> 8);
    a.bytes[15] = static_cast<uint8_t>(host_order);
    return a;
  }
  static IpAddr FromV4Bytes(const uint8_t* p) {
    IpAddr a;
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(&a.bytes[12], p, 4);
    return a;
  }
  static IpAddr FromV6Bytes(const uint8_t* p) {
    IpAddr a;
    std::memcpy(a.bytes.data(), p, 16);
    return a;
  }
  // Parses dotted-quad IPv4 or RFC 4291 IPv6 text; nullopt when malformed.
  static std::optional<IpAddr> Parse(std::string_view text);

  bool IsV4() const {
    // ::ffff:0:0/96 read as two words, in whatever byte order loads them.
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint64_t head;
    uint32_t mid;
    uint64_t want_head;
    uint32_t want_mid;
    std::memcpy(&head, bytes.data(), 8);
    std::memcpy(&mid, bytes.data() + 8, 4);
    std::memcpy(&want_head, kMapped, 8);
    std::memcpy(&want_mid, kMapped + 8, 4);
    return head == want_head && mid == want_mid;
  }
  Family family() const { return IsV4() ? Family::kIpv4 : Family::kIpv6; }
  // The four address bytes of an IPv4 address, as they stand in the header.
  const uint8_t* v4_bytes() const { return &bytes[12]; }
  bool IsUnspecified() const {
    return bytes == std::array<uint8_t, 16>{} ||
           (IsV4() && bytes[12] == 0 && bytes[13] == 0 && bytes[14] == 0 && bytes[15] == 0);
  }
  std::string ToString() const;

  friend bool operator==(const IpAddr& a, const IpAddr& b) {
    return ((Word64(&a, 0) ^ Word64(&b, 0)) | (Word64(&a, 1) ^ Word64(&b, 1))) == 0;
  }
  // Byte order is network order, so memcmp orders addresses numerically.
  friend std::strong_ordering operator<=>(const IpAddr& a, const IpAddr& b) {
    return std::memcmp(a.bytes.data(), b.bytes.data(), 16) <=> 0;
  }
};

// An Ethernet MAC address, in the order it stands in the header.
using MacAddr = std::array<uint8_t, 6>;

// "0a:58:c6:13:00:05", as ip(8) and the CNI result write it.
std::string FormatMac(const MacAddr& mac);

// The 5-tuple of a packet as the dataplane sees it. Ports are in host byte
// order; for ICMP echo both ports hold the identifier so that a request and its
// reply are each other's reverse. The layout is fixed (40 bytes, no implicit
// padding) because the flow hash reads it as ten 32-bit words.
struct FlowKey {
  IpAddr src;
  IpAddr dst;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  IpProto proto = IpProto::kHopByHop;
  uint8_t pad[3] = {0, 0, 0};

  FlowKey Reversed() const {
    FlowKey r = *this;
    r.src = dst;
    r.dst = src;
    r.src_port = dst_port;
    r.dst_port = src_port;
    return r;
  }
  // Whether this is `other` reversed (other.Reversed() == *this), read in
  // place: no reversed copy is built to compare.
  bool IsReverseOf(const FlowKey& other) const {
    return src == other.dst && dst == other.src && src_port == other.dst_port &&
           dst_port == other.src_port && proto == other.proto &&
           std::memcmp(pad, other.pad, sizeof(pad)) == 0;
  }
  std::string ToString() const;

  // Five 8-byte compares the compiler keeps inline; memcmp would be a call.
  friend bool operator==(const FlowKey& a, const FlowKey& b) {
    return ((Word64(&a, 0) ^ Word64(&b, 0)) | (Word64(&a, 1) ^ Word64(&b, 1)) |
            (Word64(&a, 2) ^ Word64(&b, 2)) | (Word64(&a, 3) ^ Word64(&b, 3)) |
            (Word64(&a, 4) ^ Word64(&b, 4))) == 0;
  }
};
static_assert(sizeof(FlowKey) == 40, "FlowKey is hashed as ten 32-bit words");

// An address with a port: a service frontend or a backend.
struct Endpoint {
  IpAddr addr;
  uint16_t port = 0;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

// An address prefix (CIDR). `len` counts bits of the address's own family
// (0..32 for IPv4, 0..128 for IPv6); the host bits of `addr` are zero.
struct IpPrefix {
  IpAddr addr;
  uint8_t len = 0;

  // Parses "a.b.c.d/n" or "x::/n"; nullopt when malformed or when host bits
  // are set (a prefix must name a network, not a host inside it).
  static std::optional<IpPrefix> Parse(std::string_view text);
  Family family() const { return addr.family(); }
  // The length counted in the 128 bits of the IPv4-mapped form.
  unsigned mapped_len() const { return addr.IsV4() ? len + 96u : len; }
  bool Contains(const IpAddr& a) const;
  // The last address: the host bits all set (an IPv4 prefix's broadcast address).
  IpAddr Last() const;
  bool Overlaps(const IpPrefix& other) const {
    return other.mapped_len() >= mapped_len() ? Contains(other.addr) : other.Contains(addr);
  }
  std::string ToString() const;

  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
  friend auto operator<=>(const IpPrefix&, const IpPrefix&) = default;
};

}  // namespace atl::lb
