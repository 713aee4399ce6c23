// Packet parsing: Ethernet, 802.1Q, IPv4, IPv6, TCP, UDP, SCTP, ICMPv4 and
// ICMPv6, including the header quoted by an ICMP error. Every read is checked
// against the buffer; malformed input yields a drop reason, never a read out of
// bounds. Parsing allocates nothing and writes only the result struct.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lb/net.h"

namespace atl::lb {

// Why a packet is dropped. One counter per reason; the names are what the
// counters are called in every backend.
enum class DropReason : uint8_t {
  kNone = 0,
  kEthTruncated,
  kVlanTruncated,
  kTooManyVlanTags,
  kIpVersionMismatch,
  kIpv4Truncated,
  kIpv4BadHeaderLength,
  kIpv4BadTotalLength,
  kIpv6Truncated,
  kIpv6BadPayloadLength,
  kIpv6ExtTruncated,
  kIpv6TooManyExtHeaders,
  kL4Truncated,
  kTcpBadDataOffset,
  kUdpBadLength,
  kIcmpInnerMalformed,
  kNoBackend,
  kNatUnsupported,
  kNatTupleClash,
  kCount,
};
const char* DropReasonName(DropReason reason);

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint16_t kEtherTypeQinQ = 0x88a8;
constexpr size_t kEthHeaderLen = 14;
constexpr size_t kVlanTagLen = 4;
constexpr size_t kIpv4MinHeaderLen = 20;
constexpr size_t kIpv6HeaderLen = 40;
constexpr size_t kTcpMinHeaderLen = 20;
constexpr size_t kUdpHeaderLen = 8;
constexpr size_t kSctpCommonHeaderLen = 12;
constexpr size_t kIcmpHeaderLen = 8;
// 802.1ad double tagging is the most a host port sees.
constexpr int kMaxVlanTags = 2;
// The bound on the IPv6 extension header walk: a legitimate packet carries a
// handful (RFC 8200 section 4.1 lists six kinds, each at most once or twice).
constexpr int kMaxIpv6ExtHeaders = 8;

// TCP flag bits (RFC 9293 section 3.1).
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;

// The layer 3 and 4 headers of one IP packet, as offsets into the buffer.
struct IpHeaders {
  Family family = Family::kIpv4;
  IpProto proto = IpProto::kNoNext;  // upper-layer protocol after extension headers
  uint16_t l3_offset = 0;
  uint16_t l4_offset = 0;  // valid only when has_l4
  // Bytes from l3_offset to the end of the IP packet (its total length), or to
  // the end of the buffer for a quoted header, whichever is shorter. 32 bits:
  // an IPv6 packet with a full 65535-byte payload is 65575 bytes long.
  uint32_t l3_len = 0;
  bool has_l4 = false;              // a transport header with ports is present in full
  bool fragment = false;            // IPv4 MF/offset or an IPv6 fragment header
  bool non_first_fragment = false;  // offset > 0: no transport header
  bool has_ip_options = false;      // IPv4 IHL > 5
  // An IPv6 routing header with segments left, or an IPv4 source route option.
  bool source_routed = false;
  FlowKey key;  // ports are zero when !has_l4
};

struct ParsedPacket {
  uint16_t ethertype = 0;  // after VLAN tags; IP fields are valid only for IPv4/IPv6
  uint8_t vlan_count = 0;
  uint16_t vlan_id = 0;  // outermost tag's VID
  IpHeaders ip;
  uint8_t ttl = 0;        // IPv4 TTL or IPv6 hop limit
  uint8_t tcp_flags = 0;  // valid for TCP
  uint8_t icmp_type = 0;  // valid for ICMP and ICMPv6
  uint8_t icmp_code = 0;
  // ICMP errors (destination unreachable, time exceeded, ...) quote the packet
  // that caused them; that packet's headers are here. Conntrack finds the flow
  // an error belongs to through inner.key.
  bool icmp_error = false;
  IpHeaders inner;  // valid only with icmp_error
  // ParsePlainIpv4's shape: untagged IPv4 without options or fragmentation,
  // the whole TCP or UDP header in the packet. The rewrite's short path
  // (lb/nat.h) takes it on this alone.
  bool plain_ipv4 = false;

  bool is_ip() const { return ethertype == kEtherTypeIpv4 || ethertype == kEtherTypeIpv6; }
};

// The frame nearly every packet is (ParsedPacket::plain_ipv4), parsed in one
// go; false for anything else, with `out` untouched.
bool ParsePlainIpv4(const uint8_t* data, size_t len, ParsedPacket* out);
// Every frame, walking its headers one by one.
DropReason ParseEthernetWalk(const uint8_t* data, size_t len, ParsedPacket* out);

// Parses an Ethernet frame. Returns kNone on success; a frame that is not IP
// also succeeds (is_ip() is false) so the caller can pass ARP and the like on.
// Inline, so that the common frame costs its callers one call.
inline DropReason ParseEthernet(const uint8_t* data, size_t len, ParsedPacket* out) {
  return ParsePlainIpv4(data, len, out) ? DropReason::kNone : ParseEthernetWalk(data, len, out);
}

// Parses an IP packet that starts at `data` (an L3 device or a decapsulated
// packet).
DropReason ParseIp(const uint8_t* data, size_t len, ParsedPacket* out);

// True for the ICMP/ICMPv6 types that quote the offending packet.
bool IsIcmpError(Family family, uint8_t type);

}  // namespace atl::lb
