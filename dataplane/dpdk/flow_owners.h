// Which worker owns a flow that a packet's own tuple does not steer to it.
//
// Workers steer a packet by a symmetric hash of its tuple (Pipeline's
// OwnerOf), so a flow's replies reach its owner unless NAT changed the tuple:
// a client's flow to a service is owned by hash(client, VIP), its replies
// come as (backend, client). The worker that records such a flow notes here
// that its reply tuple is its own; a worker that finds no flow for a packet
// looks here before treating it as new, and hands it over. Only NAT'd flows
// whose reply tuple hashes to another worker have an entry, and the owner
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
  bool Set(const lb::FlowKey& reply, uint16_t worker);
  void Erase(const lb::FlowKey& reply);
  std::optional<uint16_t> Find(const lb::FlowKey& reply) const;

 private:
  explicit FlowOwners(rte_hash* hash) : hash_(hash) {}
  rte_hash* hash_;
};

}  // namespace atl::dataplane::dpdk
