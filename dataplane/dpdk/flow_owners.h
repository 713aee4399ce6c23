// Which worker owns a flow that a packet's own tuple does not steer to it.
//
// Workers steer a packet by a symmetric hash of its tuple (Pipeline's
// OwnerOf), so a flow's two directions reach one worker unless NAT changed
// the tuple: a client's packets to a service are steered by (client, VIP),
// the replies by (backend, client). The flow is recorded by the owner of its
// reply tuple (Pipeline, "Several workers"), which notes here that the
// original tuple is its own; a worker that finds no flow for a packet looks
// here before treating it as new, and hands it over. Only NAT'd flows whose
// original tuple hashes to another worker have an entry, and the owner
// removes it when the flow goes (lb::ConntrackShard::OnRemove).
//
// DPDK's rte_hash, lock-free for readers, with one writer lock; removed
// entries are reused only after every worker has passed a quiescent state
// of `qsbr`, the RCU variable the workers report to.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "lb/net.h"

struct rte_hash;
struct rte_rcu_qsbr;

namespace atl::dataplane::dpdk {

class FlowOwners {
 public:
  static absl::StatusOr<std::unique_ptr<FlowOwners>> Create(uint32_t capacity, rte_rcu_qsbr* qsbr);
  ~FlowOwners();
  FlowOwners(const FlowOwners&) = delete;
  FlowOwners& operator=(const FlowOwners&) = delete;

  // Only from EAL lcores (the workers): the writers' free-slot caches are per lcore.
  // False when the table is full.
  bool Set(const lb::FlowKey& key, uint16_t worker);
  void Erase(const lb::FlowKey& key);
  std::optional<uint16_t> Find(const lb::FlowKey& key) const;

 private:
  explicit FlowOwners(rte_hash* hash) : hash_(hash) {}
  rte_hash* hash_;
};

}  // namespace atl::dataplane::dpdk
