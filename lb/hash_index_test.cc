#include "lb/hash_index.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>
#include <vector>

namespace atl::lb {
namespace {

// The caller's records: here just a key per reference, as conntrack keeps a
// flow tuple per reference.
class Records {
 public:
  explicit Records(uint32_t n) : keys_(n, kUnused) {}

  uint32_t Find(const HashIndex& index, uint32_t hash, uint32_t key) const {
    return index.Find(hash, [&](uint32_t ref) { return keys_.at(ref) == key; });
  }
  void Set(uint32_t ref, uint32_t key) { keys_.at(ref) = key; }

 private:
  static constexpr uint32_t kUnused = 0xffffffff;
  std::vector<uint32_t> keys_;
};

TEST(HashIndexTest, CapacityKeepsLoadAtMostHalf) {
  EXPECT_EQ(HashIndex(1).capacity(), 16u);
  EXPECT_EQ(HashIndex(8).capacity(), 16u);
  EXPECT_EQ(HashIndex(9).capacity(), 32u);
  EXPECT_EQ(HashIndex(1000).capacity(), 2048u);
  EXPECT_EQ(HashIndex(1024).capacity(), 2048u);
}

TEST(HashIndexTest, FindsInsertedEntriesAndNothingElse) {
  HashIndex index(100);
  Records records(100);
  for (uint32_t ref = 0; ref < 100; ++ref) {
    const uint32_t key = 1000 + ref;
    records.Set(ref, key);
    index.Insert(key * 2654435761u, ref);
  }
  for (uint32_t ref = 0; ref < 100; ++ref) {
    const uint32_t key = 1000 + ref;
    EXPECT_EQ(records.Find(index, key * 2654435761u, key), ref);
  }
  EXPECT_EQ(records.Find(index, 5 * 2654435761u, 5), HashIndex::kNone);
}

// The stored hash is compared before the record: an entry with another hash is
// never a match even when the caller's predicate would accept it.
TEST(HashIndexTest, MatchRequiresTheSameHash) {
  HashIndex index(4);
  index.Insert(0x100, 7);
  EXPECT_EQ(index.Find(0x100, [](uint32_t) { return true; }), 7u);
  // Same home slot (the low bits), different hash.
  EXPECT_EQ(index.Find(0x200, [](uint32_t) { return true; }), HashIndex::kNone);
}

// FirstOf reads the index alone: the entry of a hash some entry has, even
// past other hashes of its cluster, kNone for any other.
TEST(HashIndexTest, FirstOfSeesEveryHashInTheCluster) {
  HashIndex index(8);  // 16 slots
  EXPECT_EQ(index.FirstOf(3), HashIndex::kNone);
  index.Insert(3, 0);
  index.Insert(19, 1);  // home slot 3 too: the next slot
  EXPECT_EQ(index.FirstOf(3), 0u);
  EXPECT_EQ(index.FirstOf(19), 1u);
  EXPECT_EQ(index.FirstOf(35), HashIndex::kNone) << "home slot 3, in no entry";
  EXPECT_EQ(index.FirstOf(4), HashIndex::kNone) << "slot 4 holds 19, whose hash is not 4";
  ASSERT_TRUE(index.Erase(3, 0));
  EXPECT_EQ(index.FirstOf(3), HashIndex::kNone);
  EXPECT_EQ(index.FirstOf(19), 1u);
}

TEST(HashIndexTest, ManyEntriesWithTheSameHash) {
  constexpr uint32_t kHash = 0xabcd0005;
  HashIndex index(32);
  Records records(32);
  for (uint32_t ref = 0; ref < 32; ++ref) {
    records.Set(ref, 500 + ref);
    index.Insert(kHash, ref);
  }
  for (uint32_t ref = 0; ref < 32; ++ref) EXPECT_EQ(records.Find(index, kHash, 500 + ref), ref);
  EXPECT_EQ(records.Find(index, kHash, 499), HashIndex::kNone);
}

TEST(HashIndexTest, EraseFromTheMiddleOfAClusterKeepsTheRestFindable) {
  constexpr uint32_t kHash = 5;
  HashIndex index(16);
  Records records(16);
  for (uint32_t ref = 0; ref < 10; ++ref) {
    records.Set(ref, ref);
    index.Insert(kHash, ref);
  }
  for (uint32_t gone : {4u, 0u, 9u, 5u}) {
    ASSERT_TRUE(index.Erase(kHash, gone));
    EXPECT_EQ(records.Find(index, kHash, gone), HashIndex::kNone);
  }
  for (uint32_t ref : {1u, 2u, 3u, 6u, 7u, 8u}) EXPECT_EQ(records.Find(index, kHash, ref), ref);
  // Erasing twice, or something never inserted, reports it was not there.
  EXPECT_FALSE(index.Erase(kHash, 4));
  EXPECT_FALSE(index.Erase(kHash, 12));
  EXPECT_FALSE(index.Erase(kHash + 1, 12));
}

// A cluster made of several home slots: after an erase an entry may move back
// into the hole only if the hole is not before its home slot, or a lookup
// (which starts at the home slot) would miss it.
TEST(HashIndexTest, EraseShiftsBackOnlyEntriesThatMayMove) {
  HashIndex index(8);  // 16 slots
  Records records(8);
  // Homes 3, 3, 4, 6, 4, 7 fill slots 3 .. 8 in this order.
  const uint32_t homes[] = {3, 3, 4, 6, 4, 7};
  for (uint32_t ref = 0; ref < 6; ++ref) {
    records.Set(ref, ref);
    index.Insert(homes[ref], ref);
  }
  for (uint32_t gone = 0; gone < 6; ++gone) {
    ASSERT_TRUE(index.Erase(homes[gone], gone));
    EXPECT_EQ(records.Find(index, homes[gone], gone), HashIndex::kNone);
    for (uint32_t ref = gone + 1; ref < 6; ++ref) {
      EXPECT_EQ(records.Find(index, homes[ref], ref), ref) << "after erasing " << gone;
    }
  }
  // Nothing is left: every home slot is free again.
  for (uint32_t h = 0; h < 16; ++h) EXPECT_EQ(index.HomeRef(h), HashIndex::kNone);
}

// The index is circular: a cluster near the end continues at slot 0, and an
// erase near the end pulls entries back across the wrap.
TEST(HashIndexTest, ClustersWrapAroundTheEnd) {
  HashIndex index(8);  // 16 slots
  ASSERT_EQ(index.capacity(), 16u);
  Records records(8);
  // Homes 14, 15, 14, 0, 15, 1: slots 14, 15, 0, 1, 2, 3.
  const uint32_t homes[] = {14, 15, 14, 0, 15, 1};
  for (uint32_t ref = 0; ref < 6; ++ref) {
    records.Set(ref, ref);
    index.Insert(homes[ref] + 0x1000 * ref, ref);  // high bits differ, home slot does not
  }
  for (uint32_t ref = 0; ref < 6; ++ref) {
    EXPECT_EQ(records.Find(index, homes[ref] + 0x1000 * ref, ref), ref);
  }
  ASSERT_TRUE(index.Erase(homes[0], 0));
  ASSERT_TRUE(index.Erase(homes[1] + 0x1000, 1));
  for (uint32_t ref = 2; ref < 6; ++ref) {
    EXPECT_EQ(records.Find(index, homes[ref] + 0x1000 * ref, ref), ref) << ref;
  }
  // The entries homed at 14 and 15 moved back to their home slots.
  EXPECT_EQ(index.HomeRef(14), 2u);
  EXPECT_EQ(index.HomeRef(15), 4u);
}

// Many inserts, erases and lookups with hashes crowded into a few home slots
// near the end of the table, checked against std::unordered_map.
TEST(HashIndexTest, MatchesAModelUnderChurn) {
  constexpr uint32_t kMaxEntries = 256;
  constexpr uint32_t kKeys = 1000;
  HashIndex index(kMaxEntries);
  const uint32_t mask = static_cast<uint32_t>(index.capacity() - 1);
  Records records(kMaxEntries);
  std::mt19937 rng(20240607);

  // Random high bits; the home slot is one of 48 slots that straddle the wrap.
  std::vector<uint32_t> hash_of(kKeys);
  for (uint32_t& h : hash_of) h = (rng() & ~mask) | ((mask - 23 + rng() % 48) & mask);

  std::unordered_map<uint32_t, uint32_t> model;  // key -> ref
  std::vector<uint32_t> free_refs;
  for (uint32_t ref = kMaxEntries; ref > 0; --ref) free_refs.push_back(ref - 1);

  for (int op = 0; op < 200000; ++op) {
    const uint32_t key = rng() % kKeys;
    const auto it = model.find(key);
    switch (rng() % 3) {
      case 0:  // insert
        if (it == model.end() && !free_refs.empty()) {
          const uint32_t ref = free_refs.back();
          free_refs.pop_back();
          records.Set(ref, key);
          index.Insert(hash_of[key], ref);
          model.emplace(key, ref);
        }
        break;
      case 1:  // erase
        if (it != model.end()) {
          ASSERT_TRUE(index.Erase(hash_of[key], it->second)) << "op " << op;
          free_refs.push_back(it->second);
          model.erase(it);
        }
        break;
      default:  // find
        ASSERT_EQ(records.Find(index, hash_of[key], key),
                  it == model.end() ? HashIndex::kNone : it->second)
            << "op " << op << " key " << key;
        break;
    }
    if (op % 10000 == 0) {
      for (const auto& [k, ref] : model) ASSERT_EQ(records.Find(index, hash_of[k], k), ref);
    }
  }
  for (const auto& [k, ref] : model) EXPECT_EQ(records.Find(index, hash_of[k], k), ref);
}

}  // namespace
}  // namespace atl::lb
