#include "lb/checksum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace atl::lb {
namespace {

// Sums are kept in native order (checksum.h); these turn a folded sum or a
// checksum into the two bytes it stands for on the wire.
std::array<uint8_t, 2> WireBytes(uint16_t native) {
  std::array<uint8_t, 2> b;
  std::memcpy(b.data(), &native, 2);
  return b;
}
uint16_t FoldedSum(uint32_t sum) { return static_cast<uint16_t>(~ChecksumFinish(sum)); }
uint16_t FullChecksum(const std::vector<uint8_t>& data) {
  return ChecksumFinish(ChecksumAdd(0, data.data(), data.size()));
}
uint16_t LoadNative(const uint8_t* p) {
  uint16_t x;
  std::memcpy(&x, p, 2);
  return x;
}

TEST(ChecksumAdd, Rfc1071WorkedExample) {
  // RFC 1071 section 3: these bytes sum to dd f2 (before the complement),
  // whatever the byte order of the machine that adds them.
  const std::vector<uint8_t> data = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(WireBytes(FoldedSum(ChecksumAdd(0, data.data(), data.size()))),
            (std::array<uint8_t, 2>{0xdd, 0xf2}));
  EXPECT_EQ(WireBytes(FullChecksum(data)), (std::array<uint8_t, 2>{0x22, 0x0d}));
}

TEST(ChecksumAdd, OddLengthPadsTheLastByteWithZero) {
  const std::vector<uint8_t> odd = {0x45, 0x00, 0x12, 0x34, 0xab};
  const std::vector<uint8_t> padded = {0x45, 0x00, 0x12, 0x34, 0xab, 0x00};
  EXPECT_EQ(FullChecksum(odd), FullChecksum(padded));

  const std::vector<uint8_t> one = {0x01};
  EXPECT_EQ(WireBytes(FoldedSum(ChecksumAdd(0, one.data(), one.size()))),
            (std::array<uint8_t, 2>{0x01, 0x00}));
}

TEST(ChecksumAdd, ChainsAtEvenSplits) {
  std::mt19937 rng(1071);
  for (int iter = 0; iter < 1000; ++iter) {
    std::vector<uint8_t> data(1 + rng() % 200);
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    const size_t split = 2 * (rng() % (data.size() / 2 + 1));
    const uint32_t chained =
        ChecksumAdd(ChecksumAdd(0, data.data(), split), data.data() + split, data.size() - split);
    ASSERT_EQ(ChecksumFinish(chained), FullChecksum(data)) << "length " << data.size() << " split " << split;
  }
}

TEST(ChecksumAdd, KeepsCarriesOfLongAndNearlyFullSums) {
  // 32768 words of ffff: a sum that overflows 16 bits many times over. It
  // folds to ffff (negative zero), whose complement is zero.
  const std::vector<uint8_t> ones(65536, 0xff);
  EXPECT_EQ(FullChecksum(ones), 0x0000);

  // A running sum just below 2^32 must not lose the carry of the next word.
  const std::vector<uint8_t> word = {0x00, 0x02};
  const uint32_t sum = ChecksumAdd(0xffffffffu, word.data(), word.size());
  // ffffffff folds to ffff, i.e. zero; adding the word leaves the word.
  EXPECT_EQ(FoldedSum(sum), FoldedSum(ChecksumAdd(0, word.data(), word.size())));
}

TEST(Ipv4HeaderChecksum, KnownHeader) {
  // A classic worked example of an IPv4 header (UDP, 0x73 bytes long); only
  // a checksum vector, so its private addresses go nowhere.
  std::vector<uint8_t> header = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                                 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(WireBytes(Ipv4HeaderChecksum(header.data(), header.size())),
            (std::array<uint8_t, 2>{0xb8, 0x61}));

  // The checksum field is skipped, so a header that already holds one gives
  // the same answer, and the whole header then sums to negative zero.
  header[10] = 0xb8;
  header[11] = 0x61;
  EXPECT_EQ(WireBytes(Ipv4HeaderChecksum(header.data(), header.size())),
            (std::array<uint8_t, 2>{0xb8, 0x61}));
  EXPECT_EQ(FullChecksum(header), 0x0000);
}

TEST(Ipv4HeaderChecksum, CoversOptions) {
  std::vector<uint8_t> header = {0x46, 0x00, 0x00, 0x18, 0x42, 0x42, 0x00, 0x00, 0x40, 0x11,
                                 0x00, 0x00, 0xc6, 0x12, 0x00, 0x0a, 0xc6, 0x12, 0x40, 0x01,
                                 0x94, 0x04, 0x00, 0x00};  // router alert (RFC 2113)
  const uint16_t with_option = Ipv4HeaderChecksum(header.data(), header.size());
  std::memcpy(&header[10], &with_option, 2);
  EXPECT_EQ(FullChecksum(header), 0x0000);
}

TEST(L4Checksum, IncludesThePseudoHeader) {
  // The pseudo-headers spelled out byte by byte (RFC 768, RFC 8200 section
  // 8.1), against which L4Checksum must agree.
  const std::vector<uint8_t> udp = {0x9c, 0x40, 0x00, 0x35, 0x00, 0x0b, 0x00, 0x00, 'a', 'b', 'c'};

  const IpAddr src4 = *IpAddr::Parse("198.18.0.10");
  const IpAddr dst4 = *IpAddr::Parse("198.19.1.2");
  std::vector<uint8_t> v4 = {198, 18, 0, 10, 198, 19, 1, 2, 0, 17, 0x00, 0x0b};
  v4.insert(v4.end(), udp.begin(), udp.end());
  EXPECT_EQ(L4Checksum(src4, dst4, IpProto::kUdp, udp.data(), udp.size()), FullChecksum(v4));

  const IpAddr src6 = *IpAddr::Parse("fd00:a70::10");
  const IpAddr dst6 = *IpAddr::Parse("fd00:a70:1::20");
  std::vector<uint8_t> v6(src6.bytes.begin(), src6.bytes.end());
  v6.insert(v6.end(), dst6.bytes.begin(), dst6.bytes.end());
  v6.insert(v6.end(), {0, 0, 0, 0x0b, 0, 0, 0, 17});
  v6.insert(v6.end(), udp.begin(), udp.end());
  EXPECT_EQ(L4Checksum(src6, dst6, IpProto::kUdp, udp.data(), udp.size()), FullChecksum(v6));
}

// RFC 1624: an incrementally updated checksum must equal the one computed
// afresh over the changed data.
TEST(ChecksumReplace16, MatchesFullRecomputation) {
  std::mt19937 rng(1624);
  for (int iter = 0; iter < 20000; ++iter) {
    // The first word stays 4500, as in an IPv4 header: data that becomes all
    // zero is the one case where eqn. 3 gives 0000 and a full sum ffff (RFC
    // 1624 section 3), and no header a NAT rewrites is all zero.
    std::vector<uint8_t> data(2 * (2 + rng() % 40));
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    data[0] = 0x45;
    data[1] = 0x00;
    uint16_t csum = FullChecksum(data);
    // Several changes in a row, as a NAT makes to one header.
    for (int change = 0; change < 4; ++change) {
      const size_t at = 2 * (1 + rng() % (data.size() / 2 - 1));
      const uint16_t old_word = LoadNative(&data[at]);
      // Now and then the word does not change at all, or becomes 0 or ffff.
      const uint32_t pick = rng() % 8;
      const uint16_t new_word = pick == 0   ? old_word
                                : pick == 1 ? 0x0000
                                : pick == 2 ? 0xffff
                                            : static_cast<uint16_t>(rng());
      std::memcpy(&data[at], &new_word, 2);
      csum = ChecksumReplace16(csum, old_word, new_word);
      ASSERT_EQ(csum, FullChecksum(data)) << "iteration " << iter << " change " << change;
    }
  }
}

TEST(ChecksumReplace, MatchesFullRecomputation) {
  std::mt19937 rng(3022);
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> data(2 * (2 + rng() % 40));
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    data[0] = 0x45;  // never all zero, as above
    data[1] = 0x00;
    const uint16_t before = FullChecksum(data);
    // A run as long as an IPv6 address at most, at an even offset.
    const size_t words = data.size() / 2;
    const size_t at = 2 * (1 + rng() % (words - 1));
    const size_t len = 2 * (1 + rng() % std::min<size_t>(8, words - at / 2));
    std::vector<uint8_t> old_bytes(data.begin() + at, data.begin() + at + len);
    std::vector<uint8_t> new_bytes(len);
    for (auto& b : new_bytes) b = static_cast<uint8_t>(rng());
    std::copy(new_bytes.begin(), new_bytes.end(), data.begin() + at);
    ASSERT_EQ(ChecksumReplace(before, old_bytes.data(), new_bytes.data(), len), FullChecksum(data))
        << "iteration " << iter << " run of " << len << " at " << at;
  }
}

TEST(ChecksumReplace, OneWordRunEqualsReplace16) {
  std::mt19937 rng(16);
  for (int iter = 0; iter < 1000; ++iter) {
    const auto csum = static_cast<uint16_t>(rng());
    const auto o = static_cast<uint16_t>(rng());
    const auto n = static_cast<uint16_t>(rng());
    uint8_t ob[2];
    uint8_t nb[2];
    std::memcpy(ob, &o, 2);
    std::memcpy(nb, &n, 2);
    ASSERT_EQ(ChecksumReplace(csum, ob, nb, 2), ChecksumReplace16(csum, o, n));
  }
}

}  // namespace
}  // namespace atl::lb
