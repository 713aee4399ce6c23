// Helpers the lb unit tests share: addresses from the project's address plan
// (DESIGN.md, "Test bed") and flow keys written out in one line.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "lb/net.h"
#include "lb/packet.h"

namespace atl::lb::test_support {

// An address literal; a malformed one fails the test that wrote it.
inline IpAddr Addr(std::string_view text) {
  const std::optional<IpAddr> a = IpAddr::Parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddr{});
}

inline FlowKey Key(std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport,
                   IpProto proto) {
  FlowKey k;
  k.src = Addr(src);
  k.dst = Addr(dst);
  k.src_port = sport;
  k.dst_port = dport;
  k.proto = proto;
  return k;
}

// C is a client, V a service's virtual address, B a backend, L the
// balancer's own address for full NAT, R a router between the balancer and B.
inline constexpr char kClient4[] = "198.18.0.10";
inline constexpr char kVip4[] = "198.18.64.1";
inline constexpr char kBackend4[] = "198.19.0.20";
inline constexpr char kLb4[] = "198.18.255.1";
inline constexpr char kRouter4[] = "198.19.255.1";
inline constexpr char kClient6[] = "fd00:a70::10";
inline constexpr char kVip6[] = "fd00:a70:40::1";
inline constexpr char kBackend6[] = "fd00:a70:1::20";
inline constexpr char kLb6[] = "fd00:a70:ff::ff";
inline constexpr char kRouter6[] = "fd00:a70:ff::1";

// Where the headers start in an untagged Ethernet frame without options.
inline constexpr size_t kL3 = kEthHeaderLen;
inline constexpr size_t kL4v4 = kL3 + kIpv4MinHeaderLen;
inline constexpr size_t kL4v6 = kL3 + kIpv6HeaderLen;

}  // namespace atl::lb::test_support
