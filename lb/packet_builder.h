// Builds well-formed packets (lengths and checksums filled in) for fixtures,
// fuzz seeds and benchmarks. Not for the packet path: it allocates.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "lb/net.h"
#include "lb/packet.h"

namespace atl::lb {

using Mac = std::array<uint8_t, 6>;

class PacketBuilder {
 public:
  // Addresses are text; a malformed literal is a bug in the caller and aborts.
  PacketBuilder& Ethernet(const Mac& src, const Mac& dst);
  PacketBuilder& NoEthernet();  // start at the IP header
  PacketBuilder& Vlan(uint16_t vid);
  PacketBuilder& Ip(std::string_view src, std::string_view dst);
  PacketBuilder& Ip(const IpAddr& src, const IpAddr& dst);
  PacketBuilder& Ttl(uint8_t ttl);
  PacketBuilder& Ipv4Options(std::vector<uint8_t> options);  // padded to 4 bytes with EOL
  // IPv4: offset in 8-byte units and the MF bit. IPv6: adds a fragment header.
  PacketBuilder& Fragment(uint16_t offset_units, bool more);
  // An IPv6 extension header of `proto` (hop-by-hop, routing, destination
  // options, AH) of `len8` 8-byte units (at least 1), inserted in order.
  PacketBuilder& Ipv6Ext(IpProto proto, uint8_t len8 = 1);
  PacketBuilder& Tcp(uint16_t sport, uint16_t dport, uint8_t flags = kTcpSyn);
  PacketBuilder& Udp(uint16_t sport, uint16_t dport);
  PacketBuilder& Sctp(uint16_t sport, uint16_t dport);
  PacketBuilder& IcmpEcho(bool request, uint16_t id, uint16_t seq = 1);
  // An ICMP error quoting `quoted` (an IP packet, usually built with NoEthernet()).
  PacketBuilder& IcmpError(uint8_t type, uint8_t code, std::vector<uint8_t> quoted);
  PacketBuilder& Payload(size_t len, uint8_t fill = 0xab);
  PacketBuilder& Payload(std::vector<uint8_t> bytes);

  std::vector<uint8_t> Build() const;

 private:
  struct Ext {
    IpProto proto;
    uint8_t len8;
  };
  bool ethernet_ = true;
  Mac src_mac_ = {0x02, 0, 0, 0, 0, 1};
  Mac dst_mac_ = {0x02, 0, 0, 0, 0, 2};
  std::vector<uint16_t> vlans_;
  IpAddr src_;
  IpAddr dst_;
  uint8_t ttl_ = 64;
  std::vector<uint8_t> ip_options_;
  bool fragment_ = false;
  uint16_t frag_offset_ = 0;
  bool more_fragments_ = false;
  std::vector<Ext> exts_;
  IpProto proto_ = IpProto::kUdp;
  uint16_t sport_ = 0;
  uint16_t dport_ = 0;
  uint8_t tcp_flags_ = 0;
  uint8_t icmp_type_ = 0;
  std::optional<bool> icmp_echo_request_;  // set for an echo: true for a request
  uint8_t icmp_code_ = 0;
  uint16_t icmp_id_ = 0;
  uint16_t icmp_seq_ = 0;
  std::vector<uint8_t> payload_;
};

// Recomputes every checksum of a parsed packet from scratch (IPv4 header, TCP,
// UDP, ICMP; for an ICMP error also the quoted IPv4 header) and reports whether
// the stored ones match. Tests use it to check incremental rewrites.
bool ChecksumsValid(const std::vector<uint8_t>& frame, bool ethernet = true);

}  // namespace atl::lb
