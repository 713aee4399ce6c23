#include "lb/flow_hash.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
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
// alone, both ways: gathered with AVX2 (where this CPU has it) and one by
// one. The records' other bytes, and the keys' padding, are all ones: a
// gather that read a byte too many would see them.
using HashEight = void (*)(const FlowKey*, size_t, uint32_t, uint32_t*, uint32_t, uint32_t*);

void ExpectEightHashAsEachAlone(HashEight hash_eight) {
  // Records of 62 bytes (a FlowKey is 2-aligned), a key 8 bytes in.
  constexpr size_t kRecord = 62;
  constexpr size_t kKeyAt = 8;
  std::mt19937 rng(7);
  for (int round = 0; round < 1000; ++round) {
    alignas(8) unsigned char records[kHashLanes * kRecord];
    std::memset(records, 0xff, sizeof(records));
    FlowKey keys[kHashLanes];
    for (uint32_t i = 0; i < kHashLanes; ++i) {
      keys[i] = RandomIpv4Key(rng);
      // All but the padding, which stays all ones.
      std::memcpy(records + i * kRecord + kKeyAt, &keys[i], offsetof(FlowKey, pad));
    }
    const uint32_t table_seed = static_cast<uint32_t>(rng());
    const uint32_t flow_seed = round == 0 ? kMaglevSeed : static_cast<uint32_t>(rng());
    uint32_t table[kHashLanes];
    uint32_t flow[kHashLanes];
    hash_eight(reinterpret_cast<const FlowKey*>(records + kKeyAt), kRecord, table_seed, table,
               flow_seed, flow);
    for (uint32_t i = 0; i < kHashLanes; ++i) {
      const Ipv4Words w = WordsOf(keys[i]);
      ASSERT_EQ(table[i], Ipv4TableHash(w.src, w.dst, w.ports, w.proto, table_seed))
          << keys[i].ToString();
      ASSERT_EQ(flow[i], FlowHash(keys[i], flow_seed)) << keys[i].ToString();
    }
  }
}

TEST(FlowHashTest, EightKeysHashAsEachAloneOneByOne) {
  ExpectEightHashAsEachAlone(hash_detail::HashIpv4KeysOneByOne);
}

TEST(FlowHashTest, EightKeysHashAsEachAloneGathered) {
  if (!hash_detail::HasAvx2()) GTEST_SKIP() << "this CPU has no AVX2";
  ExpectEightHashAsEachAlone(hash_detail::HashIpv4KeysAvx2);
}

TEST(FlowHashTest, EightKeysHashAsEachAloneWhicheverWay) {
  ExpectEightHashAsEachAlone(HashIpv4Keys);
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
