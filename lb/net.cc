#include "lb/net.h"

#include <arpa/inet.h>

#include <cstdio>

namespace atl::lb {

std::optional<IpAddr> IpAddr::Parse(std::string_view text) {
  // inet_pton wants a terminated string; addresses are short, so copy to the stack.
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  uint8_t raw[16];
  if (inet_pton(AF_INET, buf, raw) == 1) return FromV4Bytes(raw);
  if (inet_pton(AF_INET6, buf, raw) == 1) return FromV6Bytes(raw);
  return std::nullopt;
}

std::string IpAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (IsV4()) {
    inet_ntop(AF_INET, v4_bytes(), buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  }
  return buf;
}

std::string FlowKey::ToString() const {
  const bool v6 = !src.IsV4();
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%s%s%s:%u -> %s%s%s:%u proto %u", v6 ? "[" : "",
                src.ToString().c_str(), v6 ? "]" : "", src_port, v6 ? "[" : "",
                dst.ToString().c_str(), v6 ? "]" : "", dst_port, static_cast<unsigned>(proto));
  return buf;
}

}  // namespace atl::lb
