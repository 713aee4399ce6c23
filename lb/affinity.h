// Session affinity (Service.spec.sessionAffinity ClientIP): a client keeps the
// backend it was given until it has made no new connection for the timeout.
// Soft state: when full, the entry closest to expiry in a small window goes.
// Single writer, like a conntrack shard.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "lb/flow_hash.h"
#include "lb/hash_index.h"
#include "lb/service_table.h"

namespace atl::lb {

class AffinityTable {
 public:
  explicit AffinityTable(uint32_t max_entries, uint32_t seed = 0x3c6ef372);

  // The index into svc.eligible this client is bound to, if the binding is
  // live and its backend still eligible; a lookup refreshes the timeout.
  std::optional<uint16_t> Lookup(const Service& svc, const IpAddr& client, uint64_t now_ns);
  // Binds the client to svc.eligible[index].
  void Record(const Service& svc, const IpAddr& client, uint16_t index, uint64_t now_ns);

  uint32_t size() const { return live_; }

 private:
  struct Entry {
    IpAddr client;
    ServiceId service = 0;
    uint32_t generation = 0;  // of svc when `index` was last checked
    uint32_t hash = 0;
    uint16_t index = 0;
    bool in_use = false;
    Endpoint backend;
    uint64_t expires_ns = 0;
  };
  uint32_t Hash(ServiceId svc, const IpAddr& client) const;
  uint32_t Find(ServiceId svc, const IpAddr& client, uint32_t hash) const;
  void Remove(uint32_t id);

  uint32_t seed_;
  HashIndex index_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_;
  uint32_t live_ = 0;
  uint32_t cursor_ = 0;
};

}  // namespace atl::lb
