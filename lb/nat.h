// Address and port translation of packets in place, with every checksum
// updated incrementally (RFC 1624) rather than recomputed.
#pragma once

#include <array>
#include <cstdint>

#include "lb/checksum.h"
#include "lb/net.h"
#include "lb/packet.h"

namespace atl::lb {

// Rewrites the addresses and ports of a parsed packet so that its key becomes
// `to`: the IPv4 header checksum and the TCP, UDP, ICMP or ICMPv6 checksum
// follow. ICMP echo carries its identifier in both ports of `to`. Returns false,
// leaving the packet untouched, when the translation cannot be done (an SCTP
// port change, whose CRC32c cannot be updated incrementally, an IP family
// change, or a source-routed packet: an IPv6 routing header with segments
// left, or an IPv4 loose or strict source route). `parsed` must be the
// packet's parse as it is now: its fields are taken for the packet's.
bool RewriteFlow(uint8_t* packet, const ParsedPacket& parsed, const FlowKey& to);

// What rewriting an IPv4 TCP or UDP packet of key `from` to `to` changes in
// its checksums, each a ChecksumDelta folded to 16 bits. Conntrack sums each
// direction of a flow once, when it records the flow, so that a hit writes the
// new fields and adds these without comparing a field.
struct Ipv4RewriteSums {
  uint16_t l3 = 0;  // the IPv4 header's: the addresses that change
  uint16_t l4 = 0;  // the transport checksum's: those and the ports that change
};
Ipv4RewriteSums SumIpv4Rewrite(const FlowKey& from, const FlowKey& to);
// SumIpv4Rewrite to the reverse of `tuple`, read where it is.
Ipv4RewriteSums SumIpv4RewriteToReverseOf(const FlowKey& from, const FlowKey& tuple);
// Both directions' sums of a flow with tuples `original` and `reply`, as
// conntrack keeps them: SumIpv4RewriteToReverseOf(original, reply) and
// (reply, original). Each field pair changes one way in one direction and
// back in the other, so the terms are summed once for both.
std::array<Ipv4RewriteSums, 2> SumIpv4FlowRewrites(const FlowKey& original, const FlowKey& reply);

// RewriteFlow to the reverse of `tuple`, read where it is: a conntrack hit
// goes to the reverse of its flow's other tuple (lb::Flow::Translated).
// `sums` must be SumIpv4Rewrite(parsed.ip.key, tuple.Reversed()) when both
// are IPv4 (lb::Flow::rewrite); a plain IPv4 TCP or UDP packet is rewritten
// with them.
bool RewriteFlowToReverseOf(uint8_t* packet, const ParsedPacket& parsed, const FlowKey& tuple,
                            Ipv4RewriteSums sums);

// Translates an ICMP error that quotes a translated flow: the quoted header
// becomes `quoted_to` and the outer addresses `outer_src` and `outer_dst`
// (RFC 5508 section 6, what a NAT must do to ICMP errors). The quoted IPv4
// header checksum, the quoted transport checksum when the quote holds it, and
// the ICMP checksum follow.
bool RewriteIcmpError(uint8_t* packet, const ParsedPacket& parsed, const FlowKey& quoted_to,
                      const IpAddr& outer_src, const IpAddr& outer_dst);

}  // namespace atl::lb
