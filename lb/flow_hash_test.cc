#include "lb/flow_hash.h"

#include <gtest/gtest.h>

#include <random>

#include "lb/conntrack.h"

namespace atl::lb {
namespace {

FlowKey RandomIpv4Key(std::mt19937& rng) {
  static constexpr IpProto kProtos[] = {IpProto::kTcp, IpProto::kUdp, IpProto::kIcmp,
                                        IpProto::kSctp};
  FlowKey k;
  k.src = IpAddr::V4(rng());
  k.dst = IpAddr::V4(rng());
  k.src_port = static_cast<uint16_t>(rng());
  k.dst_port = static_cast<uint16_t>(rng());
  k.proto = kProtos[rng() % 4];
  return k;
}

// FlowHash of an IPv4 key is lookup3 over its four words, as the eBPF
// programs compute it (atoll_lb.h): the address bytes as native words, the
// ports in one, the protocol in the last. The table hash is lookup3 over
// the first three, the protocol folded into the seed.
TEST(FlowHashTest, Ipv4KeysHashTheirWordsWithLookup3) {
  std::mt19937 rng(3);
  for (int i = 0; i < 1000; ++i) {
    const FlowKey k = RandomIpv4Key(rng);
    const uint32_t seed = i == 0 ? 0 : static_cast<uint32_t>(rng());
    uint32_t words[4];
    std::memcpy(&words[0], k.src.v4_bytes(), 4);
    std::memcpy(&words[1], k.dst.v4_bytes(), 4);
    words[2] = uint32_t{k.src_port} << 16 | k.dst_port;
    words[3] = static_cast<uint32_t>(k.proto);
    ASSERT_EQ(FlowHash(k, seed), Jhash2(words, 4, seed)) << k.ToString();
    const Ipv4Words w = WordsOf(k);
    ASSERT_EQ(Ipv4TableHash(w.src, w.dst, w.ports, w.proto, seed),
              Jhash2(words, 3, seed ^ words[3]))
        << k.ToString();
  }
}

// Eight keys inside larger records, as a burst keeps them, hash as each
// alone, whichever way this CPU hashes them (AVX2 or one by one).
TEST(FlowHashTest, EightKeysHashAsEachAlone) {
  struct Record {
    uint64_t before = ~0ull;
    FlowKey key;
    uint8_t after[13] = {0xff};
  };
  std::mt19937 rng(7);
  for (int round = 0; round < 1000; ++round) {
    Record records[kHashLanes];
    for (Record& r : records) r.key = RandomIpv4Key(rng);
    const uint32_t table_seed = static_cast<uint32_t>(rng());
    const uint32_t flow_seed = round == 0 ? kMaglevSeed : static_cast<uint32_t>(rng());
    uint32_t table[kHashLanes];
    uint32_t flow[kHashLanes];
    HashIpv4Keys(&records[0].key, sizeof(Record), table_seed, table, flow_seed, flow);
    for (uint32_t i = 0; i < kHashLanes; ++i) {
      const FlowKey& k = records[i].key;
      const Ipv4Words w = WordsOf(k);
      ASSERT_EQ(table[i], Ipv4TableHash(w.src, w.dst, w.ports, w.proto, table_seed))
          << k.ToString();
      ASSERT_EQ(flow[i], FlowHash(k, flow_seed)) << k.ToString();
    }
  }
}

TEST(FlowHashTest, ConntrackHashesEightKeysAsItHashesOne) {
  ConntrackConfig config;
  config.max_flows = 16;
  auto shard = ConntrackShard::Create(config);
  ASSERT_TRUE(shard.ok());
  std::mt19937 rng(11);
  FlowKey keys[kHashLanes];
  for (FlowKey& k : keys) k = RandomIpv4Key(rng);
  uint32_t hashes[kHashLanes];
  uint32_t maglev[kHashLanes];
  (*shard)->HashEight(keys, sizeof(FlowKey), hashes, kMaglevSeed, maglev);
  for (uint32_t i = 0; i < kHashLanes; ++i) {
    EXPECT_EQ(hashes[i], (*shard)->Hash(keys[i])) << keys[i].ToString();
    EXPECT_EQ(maglev[i], FlowHash(keys[i], kMaglevSeed)) << keys[i].ToString();
  }
}

}  // namespace
}  // namespace atl::lb
