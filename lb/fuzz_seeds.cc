// Writes a seed corpus for lb_parse_nat_fuzz into the directory given: one
// file per packet shape, each prefixed with the fuzz target's control byte.
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "lb/packet_builder.h"

using atl::lb::IpProto;
using atl::lb::PacketBuilder;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  mkdir(dir.c_str(), 0755);
  auto quoted_tcp =
      PacketBuilder().NoEthernet().Ip("198.19.0.2", "198.19.1.7").Tcp(40000, 8080).Build();
  auto quoted_udp6 = PacketBuilder()
                         .NoEthernet()
                         .Ip("fd00:a70::2", "fd00:a70::1:7")
                         .Udp(5353, 53)
                         .Payload(20)
                         .Build();
  std::vector<std::vector<uint8_t>> l2 = {
      PacketBuilder().Ip("198.19.0.2", "198.18.64.10").Tcp(40000, 80).Build(),
      PacketBuilder().Ip("198.19.0.2", "198.18.64.10").Udp(40000, 53).Payload(32).Build(),
      PacketBuilder().Ip("198.19.0.2", "198.18.64.10").Sctp(40000, 38412).Build(),
      PacketBuilder().Ip("198.19.0.2", "198.18.64.10").IcmpEcho(true, 77).Payload(16).Build(),
      PacketBuilder().Vlan(100).Ip("198.19.0.2", "198.18.64.10").Tcp(1, 2, 0x12).Build(),
      PacketBuilder()
          .Ip("198.19.0.2", "198.18.64.10")
          .Ipv4Options({0x94, 0x04, 0, 0})
          .Udp(9, 9)
          .Build(),
      PacketBuilder()
          .Ip("198.19.0.2", "198.18.64.10")
          .Fragment(0, true)
          .Udp(7, 7)
          .Payload(64)
          .Build(),
      PacketBuilder()
          .Ip("198.19.0.2", "198.18.64.10")
          .Fragment(8, false)
          .Udp(7, 7)
          .Payload(64)
          .Build(),
      PacketBuilder().Ip("fd00:a70::2", "fd00:a70:40::a").Tcp(40000, 443).Build(),
      PacketBuilder()
          .Ip("fd00:a70::2", "fd00:a70:40::a")
          .Ipv6Ext(IpProto::kHopByHop)
          .Ipv6Ext(IpProto::kDestOpts, 2)
          .Udp(1000, 53)
          .Build(),
      PacketBuilder().Ip("fd00:a70::2", "fd00:a70:40::a").Fragment(0, true).Tcp(5, 6).Build(),
      PacketBuilder().Ip("fd00:a70::2", "fd00:a70:40::a").IcmpEcho(false, 9).Build(),
      PacketBuilder().Ip("198.19.1.7", "198.19.0.2").IcmpError(3, 3, quoted_tcp).Build(),
      PacketBuilder().Ip("fd00:a70::1:7", "fd00:a70::2").IcmpError(1, 4, quoted_udp6).Build(),
  };
  int n = 0;
  auto write = [&](uint8_t control, const std::vector<uint8_t>& bytes) {
    const std::string path = dir + "/seed_" + std::to_string(n++);
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return false;
    std::fputc(control, f);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    return std::fclose(f) == 0;
  };
  for (const auto& p : l2) {
    if (!write(0x80 | (n % 16), p)) return 1;
  }
  // The same shapes without Ethernet, for ParseIp.
  if (!write(0x0f, quoted_tcp) || !write(0x05, quoted_udp6)) return 1;
  return 0;
}
