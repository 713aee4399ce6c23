#include "lb/affinity.h"

#include <algorithm>

namespace atl::lb {
namespace {
constexpr uint64_t kNsPerSec = 1'000'000'000;
constexpr uint32_t kEvictionScan = 16;
}  // namespace

AffinityTable::AffinityTable(uint32_t max_entries, uint32_t seed)
    : seed_(seed), index_(std::max(1u, max_entries)), entries_(std::max(1u, max_entries)) {
  free_.reserve(entries_.size());
  for (uint32_t id = static_cast<uint32_t>(entries_.size()); id > 0; --id) free_.push_back(id - 1);
}

uint32_t AffinityTable::Hash(ServiceId svc, const IpAddr& client) const {
  uint32_t words[5];
  std::memcpy(words, client.bytes.data(), 16);
  words[4] = svc;
  return Jhash2(words, 5, seed_);
}

uint32_t AffinityTable::Find(ServiceId svc, const IpAddr& client, uint32_t hash) const {
  return index_.Find(hash, [&](uint32_t id) {
    return entries_[id].service == svc && entries_[id].client == client;
  });
}

void AffinityTable::Remove(uint32_t id) {
  Entry& e = entries_[id];
  index_.Erase(e.hash, id);
  e.in_use = false;
  free_.push_back(id);
  --live_;
}

std::optional<uint16_t> AffinityTable::Lookup(const Service& svc, const IpAddr& client,
                                              uint64_t now_ns) {
  const uint32_t id = Find(svc.id, client, Hash(svc.id, client));
  if (id == HashIndex::kNone) return std::nullopt;
  Entry& e = entries_[id];
  if (e.expires_ns <= now_ns) {
    Remove(id);
    return std::nullopt;
  }
  // The endpoint, not the generation alone, is the truth: a table rebuilt
  // elsewhere may reuse a generation number for another backend set.
  if (e.generation != svc.generation || e.index >= svc.eligible.size() ||
      svc.eligible[e.index].endpoint != e.backend) {
    // The eligible set changed since: find the backend again, or forget it.
    uint32_t i = 0;
    while (i < svc.eligible.size() && svc.eligible[i].endpoint != e.backend) ++i;
    if (i == svc.eligible.size()) {
      Remove(id);
      return std::nullopt;
    }
    e.index = static_cast<uint16_t>(i);
    e.generation = svc.generation;
  }
  e.expires_ns = now_ns + svc.affinity_timeout_s * kNsPerSec;
  return e.index;
}

void AffinityTable::Record(const Service& svc, const IpAddr& client, uint16_t index,
                           uint64_t now_ns) {
  const uint32_t hash = Hash(svc.id, client);
  uint32_t id = Find(svc.id, client, hash);
  if (id == HashIndex::kNone) {
    if (free_.empty()) {
      // Make room: the entry nearest to expiry within a small window.
      uint32_t victim = cursor_;
      for (uint32_t n = 0; n < kEvictionScan && n < entries_.size(); ++n) {
        const uint32_t c = (cursor_ + n) % entries_.size();
        if (entries_[c].expires_ns < entries_[victim].expires_ns) victim = c;
      }
      cursor_ = (cursor_ + kEvictionScan) % entries_.size();
      Remove(victim);
    }
    id = free_.back();
    free_.pop_back();
    ++live_;
    entries_[id].in_use = true;
    entries_[id].hash = hash;
    entries_[id].service = svc.id;
    entries_[id].client = client;
    index_.Insert(hash, id);
  }
  Entry& e = entries_[id];
  e.index = index;
  e.backend = svc.eligible[index].endpoint;
  e.generation = svc.generation;
  e.expires_ns = now_ns + svc.affinity_timeout_s * kNsPerSec;
}

}  // namespace atl::lb
