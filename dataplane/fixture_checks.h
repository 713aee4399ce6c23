// What every backend's fixture runner checks the same way (gtest): a frame's
// bytes printed for a diff, and the VXLAN headers in front of an
// encapsulated frame, which must be the same bytes from every backend.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/packet_fixtures.h"
#include "lb/net.h"

namespace atl::dataplane::fixtures {

inline std::string Hex(const std::vector<uint8_t>& b) {
  std::string s;
  for (size_t i = 0; i < b.size(); ++i) {
    absl::StrAppend(&s, i % 16 == 0 ? "\n  " : " ");
    char h[3];
    std::snprintf(h, sizeof(h), "%02x", b[i]);
    s += h;
  }
  return s;
}

// Outer Ethernet, IPv4, UDP and VXLAN headers in front of an encapsulated frame.
constexpr size_t kVxlanHeaders = 14 + 20 + 8 + 8;

// `out` is a frame encapsulated by this host (kNodeAddr) to `underlay` with
// `vni` (RFC 7348): UDP to port 4789 from a port hashed from the inner
// addresses and ports, no UDP checksum, the VNI with its flag, a valid outer
// IPv4 checksum and lengths. The outer MACs are the underlay's business.
inline void ExpectVxlan(const std::vector<uint8_t>& out, uint32_t vni, const lb::IpAddr& underlay) {
  ASSERT_GT(out.size(), kVxlanHeaders + 14 + 24) << Hex(out);
  const uint8_t* ip = &out[14];
  EXPECT_EQ(ip[0], 0x45);
  EXPECT_EQ(ip[8], 64) << "TTL";
  EXPECT_EQ(ip[9], 17) << "UDP";
  EXPECT_EQ(lb::IpAddr::FromV4Bytes(ip + 12), kNodeAddr) << "outer source";
  EXPECT_EQ(lb::IpAddr::FromV4Bytes(ip + 16), underlay) << "outer destination";
  EXPECT_EQ(ip[2] * 256 + ip[3], out.size() - 14) << "outer total length";
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += ip[i] * 256 + ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  EXPECT_EQ(sum, 0xffffu) << "outer IPv4 checksum";
  const uint8_t* udp = ip + 20;
  // The inner addresses and the four bytes after a 20-byte header, folded
  // (the words as a little-endian machine loads them, as both backends do).
  const uint8_t* inner_ip = &out[kVxlanHeaders + 14];
  uint32_t words[3];
  std::memcpy(&words[0], inner_ip + 12, 4);
  std::memcpy(&words[1], inner_ip + 16, 4);
  std::memcpy(&words[2], inner_ip + 20, 4);
  uint32_t hash = words[0] ^ words[1] ^ words[2];
  hash ^= hash >> 16;
  EXPECT_EQ(udp[0] * 256 + udp[1], 49152 | (hash & 0x3fff)) << "source port from the inner flow";
  EXPECT_EQ(udp[2] * 256 + udp[3], 4789);
  EXPECT_EQ(udp[4] * 256 + udp[5], out.size() - 14 - 20) << "UDP length";
  EXPECT_EQ(udp[6] * 256 + udp[7], 0) << "no UDP checksum";
  const uint8_t* vxlan = udp + 8;
  EXPECT_EQ(vxlan[0], 0x08) << "VNI flag";
  EXPECT_EQ((vxlan[4] << 16) | (vxlan[5] << 8) | vxlan[6], vni);
}

}  // namespace atl::dataplane::fixtures
