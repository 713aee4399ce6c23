// Address and port translation of packets in place, with every checksum
// updated incrementally (RFC 1624) rather than recomputed.
#pragma once

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
// left, or an IPv4 loose or strict source route).
bool RewriteFlow(uint8_t* packet, const ParsedPacket& parsed, const FlowKey& to);
// RewriteFlow to the reverse of `tuple`, read where it is: a conntrack hit
// goes to the reverse of its flow's other tuple (lb::Flow::Translated).
bool RewriteFlowToReverseOf(uint8_t* packet, const ParsedPacket& parsed, const FlowKey& tuple);

// Translates an ICMP error that quotes a translated flow: the quoted header
// becomes `quoted_to` and the outer addresses `outer_src` and `outer_dst`
// (RFC 5508 section 6, what a NAT must do to ICMP errors). The quoted IPv4
// header checksum, the quoted transport checksum when the quote holds it, and
// the ICMP checksum follow.
bool RewriteIcmpError(uint8_t* packet, const ParsedPacket& parsed, const FlowKey& quoted_to,
                      const IpAddr& outer_src, const IpAddr& outer_dst);

}  // namespace atl::lb
