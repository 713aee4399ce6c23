#include "lb/packet.h"

#include <algorithm>

namespace atl::lb {
namespace {

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// Which ICMP messages carry an identifier that pairs a request with its reply.
bool IsIcmpEcho(Family family, uint8_t type) {
  return family == Family::kIpv4 ? (type == 0 || type == 8) : (type == 128 || type == 129);
}

// Whether IPv4 options (RFC 791 section 3.1) carry a loose or strict source
// route, whose final destination the transport checksum covers instead of
// the header's. A malformed option list ends the walk: the packet is not
// ours to judge, only to translate or not.
bool HasSourceRoute(const uint8_t* opt, size_t len) {
  constexpr uint8_t kEndOfList = 0;
  constexpr uint8_t kNoOp = 1;
  constexpr uint8_t kLooseSourceRoute = 131;
  constexpr uint8_t kStrictSourceRoute = 137;
  size_t i = 0;
  while (i < len && opt[i] != kEndOfList) {
    if (opt[i] == kNoOp) {
      ++i;
      continue;
    }
    if (opt[i] == kLooseSourceRoute || opt[i] == kStrictSourceRoute) return true;
    if (i + 1 >= len || opt[i + 1] < 2) return false;
    i += opt[i + 1];
  }
  return false;
}

// Parses the transport header at `off` within a packet that ends at `end`;
// sets ports and has_l4. `quoted` relaxes the checks that a header quoted in an
// ICMP error cannot pass (RFC 792 guarantees only its first 8 bytes).
DropReason ParseL4(const uint8_t* data, size_t off, size_t end, bool quoted, IpHeaders* ip,
                   ParsedPacket* outer) {
  const size_t avail = end - off;
  const uint8_t* l4 = data + off;
  ip->l4_offset = static_cast<uint16_t>(off);
  switch (ip->proto) {
    case IpProto::kTcp: {
      if (quoted) {
        if (avail < 8) return DropReason::kIcmpInnerMalformed;
      } else {
        if (avail < kTcpMinHeaderLen) return DropReason::kL4Truncated;
        const size_t doff = static_cast<size_t>(l4[12] >> 4) * 4;
        if (doff < kTcpMinHeaderLen || doff > avail) return DropReason::kTcpBadDataOffset;
        outer->tcp_flags = l4[13];
      }
      break;
    }
    case IpProto::kUdp: {
      if (avail < kUdpHeaderLen) {
        return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kL4Truncated;
      }
      // RFC 768: the length covers header and data. A quoted datagram may be
      // cut short, and a first fragment carries only the start of its datagram.
      const size_t udp_len = Load16(l4 + 4);
      if (udp_len < kUdpHeaderLen || (!quoted && !ip->fragment && udp_len > avail)) {
        return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kUdpBadLength;
      }
      break;
    }
    case IpProto::kSctp:
      // RFC 9260 section 3.1: ports are the first 4 bytes of the 12-byte common header.
      if (avail < (quoted ? 8 : kSctpCommonHeaderLen)) {
        return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kL4Truncated;
      }
      break;
    case IpProto::kIcmp:
    case IpProto::kIcmpV6: {
      const Family fam = ip->proto == IpProto::kIcmp ? Family::kIpv4 : Family::kIpv6;
      if (fam != ip->family) return DropReason::kNone;  // ICMP in IPv6 or ICMPv6 in IPv4: opaque
      if (avail < kIcmpHeaderLen) {
        return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kL4Truncated;
      }
      if (!quoted) {
        outer->icmp_type = l4[0];
        outer->icmp_code = l4[1];
      }
      if (IsIcmpEcho(fam, l4[0])) {
        ip->key.src_port = ip->key.dst_port = Load16(l4 + 4);
        ip->has_l4 = true;
      }
      return DropReason::kNone;
    }
    default:
      return DropReason::kNone;  // ESP, GRE, ...: no ports, forwarded on addresses alone
  }
  ip->key.src_port = Load16(l4);
  ip->key.dst_port = Load16(l4 + 2);
  ip->has_l4 = true;
  return DropReason::kNone;
}

// Parses an IP header at `off`. `quoted` marks the copy inside an ICMP error,
// whose length fields describe the original packet rather than this buffer.
DropReason ParseIpHeaders(const uint8_t* data, size_t len, size_t off, Family family, bool quoted,
                          IpHeaders* ip, ParsedPacket* outer) {
  ip->family = family;
  ip->l3_offset = static_cast<uint16_t>(off);
  const uint8_t* l3 = data + off;
  const size_t avail = len - off;
  size_t end;  // one past the last byte of this IP packet in the buffer
  size_t l4_off;
  if (family == Family::kIpv4) {
    // RFC 791 section 3.1.
    if (avail < kIpv4MinHeaderLen) {
      return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kIpv4Truncated;
    }
    if ((l3[0] >> 4) != 4)
      return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kIpVersionMismatch;
    const size_t ihl = static_cast<size_t>(l3[0] & 0x0f) * 4;
    if (ihl < kIpv4MinHeaderLen || ihl > avail) {
      return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kIpv4BadHeaderLength;
    }
    const size_t total = Load16(l3 + 2);
    if (total < ihl)
      return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kIpv4BadTotalLength;
    if (quoted) {
      end = off + std::min(total, avail);
    } else {
      if (total > avail) return DropReason::kIpv4BadTotalLength;
      end = off + total;  // excludes Ethernet padding
      outer->ttl = l3[8];
    }
    ip->has_ip_options = ihl > kIpv4MinHeaderLen;
    if (ip->has_ip_options)
      ip->source_routed = HasSourceRoute(l3 + kIpv4MinHeaderLen, ihl - kIpv4MinHeaderLen);
    const uint16_t frag = Load16(l3 + 6);
    const uint16_t frag_offset = frag & 0x1fff;
    ip->fragment = (frag & 0x2000) != 0 || frag_offset != 0;
    ip->non_first_fragment = frag_offset != 0;
    ip->proto = static_cast<IpProto>(l3[9]);
    ip->key.src = IpAddr::FromV4Bytes(l3 + 12);
    ip->key.dst = IpAddr::FromV4Bytes(l3 + 16);
    l4_off = off + ihl;
  } else {
    // RFC 8200 section 3.
    if (avail < kIpv6HeaderLen) {
      return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kIpv6Truncated;
    }
    if ((l3[0] >> 4) != 6)
      return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kIpVersionMismatch;
    const size_t total = kIpv6HeaderLen + Load16(l3 + 4);
    if (quoted) {
      end = off + std::min(total, avail);
    } else {
      if (total > avail) return DropReason::kIpv6BadPayloadLength;
      end = off + total;
      outer->ttl = l3[7];
    }
    ip->key.src = IpAddr::FromV6Bytes(l3 + 8);
    ip->key.dst = IpAddr::FromV6Bytes(l3 + 24);
    // Walk the extension headers (RFC 8200 section 4) up to the upper layer.
    uint8_t next = l3[6];
    size_t cur = off + kIpv6HeaderLen;
    for (int n = 0;; ++n) {
      const auto hdr = static_cast<IpProto>(next);
      const bool is_ext = hdr == IpProto::kHopByHop || hdr == IpProto::kRouting ||
                          hdr == IpProto::kDestOpts || hdr == IpProto::kFragment ||
                          hdr == IpProto::kAh;
      if (!is_ext) break;
      if (n == kMaxIpv6ExtHeaders) {
        return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kIpv6TooManyExtHeaders;
      }
      if (end - cur < 8)
        return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kIpv6ExtTruncated;
      const uint8_t* ext = data + cur;
      size_t ext_len;
      if (hdr == IpProto::kFragment) {
        // RFC 8200 section 4.5: offset in 8-byte units in the top 13 bits, M in bit 0.
        const uint16_t fo = Load16(ext + 2);
        ip->fragment = true;
        ip->non_first_fragment = (fo >> 3) != 0;
        ext_len = 8;
      } else if (hdr == IpProto::kAh) {
        ext_len = (static_cast<size_t>(ext[1]) + 2) * 4;  // RFC 4302 section 2.2
      } else {
        // RFC 8200 section 4.4: with segments left, the destination field is
        // only the next hop and the transport checksum covers the final one.
        if (hdr == IpProto::kRouting && ext[3] != 0) ip->source_routed = true;
        ext_len = (static_cast<size_t>(ext[1]) + 1) * 8;
      }
      if (ext_len > end - cur) {
        return quoted ? DropReason::kIcmpInnerMalformed : DropReason::kIpv6ExtTruncated;
      }
      next = ext[0];
      cur += ext_len;
      if (ip->non_first_fragment) break;
    }
    ip->proto = static_cast<IpProto>(next);
    l4_off = cur;
  }
  ip->key.proto = ip->proto;
  ip->l3_len = static_cast<uint32_t>(end - off);
  if (ip->non_first_fragment) return DropReason::kNone;  // the transport header is elsewhere
  return ParseL4(data, l4_off, end, quoted, ip, outer);
}

// Parses the packet quoted by an ICMP error (RFC 792; RFC 4443 section 2.4).
DropReason ParseIcmpError(const uint8_t* data, size_t end, ParsedPacket* out) {
  const size_t inner_off = out->ip.l4_offset + kIcmpHeaderLen;
  if (inner_off >= end) return DropReason::kIcmpInnerMalformed;
  const DropReason r =
      ParseIpHeaders(data, end, inner_off, out->ip.family, /*quoted=*/true, &out->inner, out);
  if (r != DropReason::kNone) return r;
  // A quote without ports (a non-first fragment, an ICMP message other than
  // echo) is kept: inner.has_l4 tells the caller it matches no flow.
  out->icmp_error = true;
  return DropReason::kNone;
}

DropReason ParseFromL3(const uint8_t* data, size_t len, size_t off, ParsedPacket* out) {
  const Family family = out->ethertype == kEtherTypeIpv4 ? Family::kIpv4 : Family::kIpv6;
  const DropReason r = ParseIpHeaders(data, len, off, family, /*quoted=*/false, &out->ip, out);
  if (r != DropReason::kNone) return r;
  const bool is_icmp = (family == Family::kIpv4 && out->ip.proto == IpProto::kIcmp) ||
                       (family == Family::kIpv6 && out->ip.proto == IpProto::kIcmpV6);
  if (is_icmp && !out->ip.non_first_fragment &&
      out->ip.l4_offset + kIcmpHeaderLen <= off + out->ip.l3_len &&
      IsIcmpError(family, out->icmp_type)) {
    return ParseIcmpError(data, off + out->ip.l3_len, out);
  }
  return DropReason::kNone;
}

// Resets what a parse reads or reports. Field by field on purpose: assigning a
// whole ParsedPacket{} compiles to `rep stos`, whose start-up cost was most of
// the parse time of a short packet.
void Reset(IpHeaders* ip) {
  ip->proto = IpProto::kNoNext;
  ip->l3_len = 0;
  ip->l4_offset = 0;
  ip->has_l4 = false;
  ip->fragment = false;
  ip->non_first_fragment = false;
  ip->has_ip_options = false;
  ip->source_routed = false;
  ip->key.src_port = 0;
  ip->key.dst_port = 0;
  ip->key.pad[0] = ip->key.pad[1] = ip->key.pad[2] = 0;  // hashed and compared
}
void Reset(ParsedPacket* out, uint16_t ethertype) {
  out->ethertype = ethertype;
  out->vlan_count = 0;
  out->vlan_id = 0;
  out->ttl = 0;
  out->tcp_flags = 0;
  out->icmp_type = 0;
  out->icmp_code = 0;
  out->icmp_error = false;
  out->plain_ipv4 = false;
  Reset(&out->ip);
  Reset(&out->inner);
}

}  // namespace

bool IsIcmpError(Family family, uint8_t type) {
  if (family == Family::kIpv4) {
    // Destination unreachable, source quench, redirect, time exceeded, parameter problem.
    return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  }
  // RFC 4443 section 2.1: errors are types 0-127; 1-4 are those that quote a packet.
  return type >= 1 && type <= 4;
}

// With the checks ParseIpHeaders and ParseL4 would make on such a frame;
// anything else the walk takes, and finds what it finds.
bool ParsePlainIpv4(const uint8_t* data, size_t len, ParsedPacket* out) {
  constexpr size_t kL3 = kEthHeaderLen;
  constexpr size_t kL4 = kL3 + kIpv4MinHeaderLen;
  if (len < kL4 + kUdpHeaderLen || Load16(data + 12) != kEtherTypeIpv4) return false;
  const uint8_t* l3 = data + kL3;
  // Version 4, IHL 5; neither MF nor a fragment offset (DF may be set).
  if (l3[0] != 0x45 || (Load16(l3 + 6) & 0x3fff) != 0) return false;
  const size_t total = Load16(l3 + 2);
  if (total > len - kL3) return false;
  const size_t l4_len = total < kIpv4MinHeaderLen ? 0 : total - kIpv4MinHeaderLen;
  const uint8_t* l4 = data + kL4;
  const auto proto = static_cast<IpProto>(l3[9]);
  // l4_len bounds every read below: the frame holds the whole IP packet.
  uint8_t tcp_flags = 0;
  if (proto == IpProto::kTcp) {
    if (l4_len < kTcpMinHeaderLen) return false;
    const size_t doff = static_cast<size_t>(l4[12] >> 4) * 4;
    if (doff < kTcpMinHeaderLen || doff > l4_len) return false;
    tcp_flags = l4[13];
  } else if (proto == IpProto::kUdp) {
    if (l4_len < kUdpHeaderLen) return false;
    const size_t udp_len = Load16(l4 + 4);
    if (udp_len < kUdpHeaderLen || udp_len > l4_len) return false;
  } else {
    return false;
  }
  // Every field Reset would clear, written once (`inner` means nothing
  // without icmp_error).
  out->ethertype = kEtherTypeIpv4;
  out->vlan_count = 0;
  out->vlan_id = 0;
  out->ttl = l3[8];
  out->tcp_flags = tcp_flags;
  out->icmp_type = 0;
  out->icmp_code = 0;
  out->icmp_error = false;
  out->plain_ipv4 = true;
  IpHeaders& ip = out->ip;
  ip.family = Family::kIpv4;
  ip.proto = proto;
  ip.l3_offset = kL3;
  ip.l4_offset = kL4;
  ip.l3_len = static_cast<uint32_t>(total);
  ip.has_l4 = true;
  ip.fragment = false;
  ip.non_first_fragment = false;
  ip.has_ip_options = false;
  ip.source_routed = false;
  ip.key.src = IpAddr::FromV4Bytes(l3 + 12);
  ip.key.dst = IpAddr::FromV4Bytes(l3 + 16);
  ip.key.src_port = Load16(l4);
  ip.key.dst_port = Load16(l4 + 2);
  ip.key.proto = proto;
  ip.key.pad[0] = ip.key.pad[1] = ip.key.pad[2] = 0;
  return true;
}

DropReason ParseEthernetWalk(const uint8_t* data, size_t len, ParsedPacket* out) {
  Reset(out, 0);
  if (len < kEthHeaderLen) return DropReason::kEthTruncated;
  size_t off = 12;
  uint16_t type = Load16(data + off);
  while (type == kEtherTypeVlan || type == kEtherTypeQinQ) {
    if (out->vlan_count == kMaxVlanTags) return DropReason::kTooManyVlanTags;
    if (len < off + 2 + kVlanTagLen) return DropReason::kVlanTruncated;
    if (out->vlan_count == 0) out->vlan_id = Load16(data + off + 2) & 0x0fff;
    ++out->vlan_count;
    off += kVlanTagLen;
    type = Load16(data + off);
  }
  out->ethertype = type;
  off += 2;
  if (!out->is_ip()) return DropReason::kNone;
  return ParseFromL3(data, len, off, out);
}

DropReason ParseIp(const uint8_t* data, size_t len, ParsedPacket* out) {
  Reset(out, 0);
  if (len < 1) return DropReason::kIpv4Truncated;
  const uint8_t version = data[0] >> 4;
  if (version != 4 && version != 6) return DropReason::kIpVersionMismatch;
  out->ethertype = version == 4 ? kEtherTypeIpv4 : kEtherTypeIpv6;
  return ParseFromL3(data, len, 0, out);
}

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone:
      return "none";
    case DropReason::kEthTruncated:
      return "eth_truncated";
    case DropReason::kVlanTruncated:
      return "vlan_truncated";
    case DropReason::kTooManyVlanTags:
      return "too_many_vlan_tags";
    case DropReason::kIpVersionMismatch:
      return "ip_version_mismatch";
    case DropReason::kIpv4Truncated:
      return "ipv4_truncated";
    case DropReason::kIpv4BadHeaderLength:
      return "ipv4_bad_header_length";
    case DropReason::kIpv4BadTotalLength:
      return "ipv4_bad_total_length";
    case DropReason::kIpv6Truncated:
      return "ipv6_truncated";
    case DropReason::kIpv6BadPayloadLength:
      return "ipv6_bad_payload_length";
    case DropReason::kIpv6ExtTruncated:
      return "ipv6_ext_truncated";
    case DropReason::kIpv6TooManyExtHeaders:
      return "ipv6_too_many_ext_headers";
    case DropReason::kL4Truncated:
      return "l4_truncated";
    case DropReason::kTcpBadDataOffset:
      return "tcp_bad_data_offset";
    case DropReason::kUdpBadLength:
      return "udp_bad_length";
    case DropReason::kIcmpInnerMalformed:
      return "icmp_inner_malformed";
    case DropReason::kNoBackend:
      return "no_backend";
    case DropReason::kNatUnsupported:
      return "nat_unsupported";
    case DropReason::kNatTupleClash:
      return "nat_tuple_clash";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace atl::lb
