#include "lb/net.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <string>

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

std::string FormatMac(const MacAddr& mac) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return buf;
}

std::optional<IpPrefix> IpPrefix::Parse(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::optional<IpAddr> addr = IpAddr::Parse(text.substr(0, slash));
  std::string_view len_text = text.substr(slash + 1);
  if (!addr || len_text.empty() || len_text.size() > 3) return std::nullopt;
  unsigned len = 0;
  for (char c : len_text) {
    if (c < '0' || c > '9') return std::nullopt;
    len = len * 10 + static_cast<unsigned>(c - '0');
  }
  if (len > (addr->IsV4() ? 32u : 128u)) return std::nullopt;
  IpPrefix prefix{*addr, static_cast<uint8_t>(len)};
  // Host bits must be zero: the network contains its own address only then.
  IpPrefix masked = prefix;
  const unsigned mapped = prefix.mapped_len();
  for (unsigned bit = mapped; bit < 128; ++bit) {
    masked.addr.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  if (masked.addr != prefix.addr) return std::nullopt;
  return prefix;
}

bool IpPrefix::Contains(const IpAddr& a) const {
  if (a.IsV4() != addr.IsV4()) return false;
  const unsigned bits = mapped_len();
  const unsigned whole = bits / 8;
  if (std::memcmp(a.bytes.data(), addr.bytes.data(), whole) != 0) return false;
  if (bits % 8 == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff00u >> (bits % 8));
  return (a.bytes[whole] & mask) == addr.bytes[whole];
}

IpAddr IpPrefix::Last() const {
  IpAddr last = addr;
  for (unsigned bit = mapped_len(); bit < 128; ++bit) {
    last.bytes[bit / 8] |= static_cast<uint8_t>(0x80u >> (bit % 8));
  }
  return last;
}

std::string IpPrefix::ToString() const { return addr.ToString() + "/" + std::to_string(len); }

std::string FlowKey::ToString() const {
  const bool v6 = !src.IsV4();
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%s%s%s:%u -> %s%s%s:%u proto %u", v6 ? "[" : "",
                src.ToString().c_str(), v6 ? "]" : "", src_port, v6 ? "[" : "",
                dst.ToString().c_str(), v6 ? "]" : "", dst_port, static_cast<unsigned>(proto));
  return buf;
}

}  // namespace atl::lb
