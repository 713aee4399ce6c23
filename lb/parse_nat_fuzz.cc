// libFuzzer target for parsing and NAT. Beyond "no crash, no out-of-bounds
// read" (ASan and UBSan watch those), it checks two properties on every input
// that parses: a rewrite yields a packet that parses again to exactly the
// requested key, and a packet whose checksums were valid keeps them valid.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "lb/nat.h"
#include "lb/packet.h"
#include "lb/packet_builder.h"

namespace atl::lb {
namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    __builtin_trap();
  }
}

DropReason ParseAs(bool ethernet, std::vector<uint8_t>& pkt, ParsedPacket* p) {
  return ethernet ? ParseEthernet(pkt.data(), pkt.size(), p) : ParseIp(pkt.data(), pkt.size(), p);
}

// A translation target derived from the packet's own key, so that the fuzzer
// explores changes of each field separately as well as together.
FlowKey Target(const IpHeaders& ip, uint8_t which) {
  FlowKey to = ip.key;
  const bool v4 = ip.key.src.IsV4();
  const IpAddr a = v4 ? IpAddr::V4(0xc6130001 + which) : *IpAddr::Parse("fd00:a70::1:1");
  if (which & 1) to.src = a;
  if (which & 2) to.dst = a;
  if (ip.has_l4 && ip.proto != IpProto::kSctp) {
    const bool echo = ip.proto == IpProto::kIcmp || ip.proto == IpProto::kIcmpV6;
    if (which & 4) to.src_port = static_cast<uint16_t>(to.src_port + 7919);
    if (which & 8) to.dst_port = static_cast<uint16_t>(to.dst_port ^ 0x5a5a);
    if (echo) to.dst_port = to.src_port;  // an echo identifier stands in both ports
  }
  return to;
}

}  // namespace
}  // namespace atl::lb

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace atl::lb;
  if (size < 2) return 0;
  // The first byte picks the framing and which fields to translate.
  const bool ethernet = data[0] & 0x80;
  const uint8_t which = data[0] & 0x0f;
  std::vector<uint8_t> pkt(data + 1, data + size);
  ParsedPacket p;
  if (ParseAs(ethernet, pkt, &p) != DropReason::kNone || !p.is_ip()) return 0;
  const bool valid = ChecksumsValid(pkt, ethernet);

  bool rewritten;
  FlowKey want;
  if (p.icmp_error) {
    want = Target(p.inner, which);
    rewritten = RewriteIcmpError(pkt.data(), p, want, want.dst, want.src);
  } else {
    want = Target(p.ip, which);
    rewritten = RewriteFlow(pkt.data(), p, want);
  }
  if (!rewritten) return 0;

  ParsedPacket after;
  Require(ParseAs(ethernet, pkt, &after) == DropReason::kNone, "a rewritten packet parses");
  if (p.icmp_error) {
    Require(after.icmp_error && after.inner.key == want, "the quoted key is the target");
    Require(after.ip.key.src == want.dst && after.ip.key.dst == want.src, "outer addresses follow");
  } else {
    Require(after.ip.key == want, "the key is the target");
  }
  if (valid) Require(ChecksumsValid(pkt, ethernet), "valid checksums stay valid");
  return 0;
}
