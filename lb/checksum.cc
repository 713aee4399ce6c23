#include "lb/checksum.h"

namespace atl::lb {

uint32_t ChecksumAdd(uint32_t sum, const uint8_t* data, size_t len) {
  // Accumulate in 64 bits so that no carry is lost before the final fold.
  uint64_t acc = sum;
  size_t i = 0;
  for (; i + 1 < len; i += 2) {
    uint16_t w;
    std::memcpy(&w, data + i, 2);
    acc += w;
  }
  if (i < len) {
    uint8_t tail[2] = {data[i], 0};
    uint16_t w;
    std::memcpy(&w, tail, 2);
    acc += w;
  }
  while (acc >> 32) acc = (acc & 0xffffffff) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

uint16_t Ipv4HeaderChecksum(const uint8_t* header, size_t len) {
  uint32_t sum = ChecksumAdd(0, header, 10);
  sum = ChecksumAdd(sum, header + 12, len - 12);  // skips the checksum field
  return ChecksumFinish(sum);
}

uint16_t L4Checksum(const IpAddr& src, const IpAddr& dst, IpProto proto, const uint8_t* data,
                    size_t len) {
  uint32_t sum = 0;
  const uint8_t be_len[4] = {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
                             static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
  const uint8_t be_proto[2] = {0, static_cast<uint8_t>(proto)};
  if (src.IsV4()) {
    // RFC 768 / RFC 793 pseudo-header: src, dst, zero, protocol, length (16 bits).
    sum = ChecksumAdd(sum, src.v4_bytes(), 4);
    sum = ChecksumAdd(sum, dst.v4_bytes(), 4);
    sum = ChecksumAdd(sum, be_proto, 2);
    sum = ChecksumAdd(sum, be_len + 2, 2);
  } else {
    // RFC 8200 section 8.1: src, dst, 32-bit length, 24 zero bits, next header.
    sum = ChecksumAdd(sum, src.bytes.data(), 16);
    sum = ChecksumAdd(sum, dst.bytes.data(), 16);
    sum = ChecksumAdd(sum, be_len, 4);
    sum = ChecksumAdd(sum, be_proto, 2);
  }
  sum = ChecksumAdd(sum, data, len);
  return ChecksumFinish(sum);
}

}  // namespace atl::lb
