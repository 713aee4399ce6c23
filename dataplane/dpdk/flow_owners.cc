#include "dataplane/dpdk/flow_owners.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"

namespace atl::dataplane::dpdk {

absl::StatusOr<std::unique_ptr<FlowOwners>> FlowOwners::Create(uint32_t capacity,
                                                               rte_rcu_qsbr* qsbr) {
  static std::atomic<int> serial{0};
  const std::string name = absl::StrCat("atoll_owners_", serial++);
  rte_hash_parameters params{};
  params.name = name.c_str();
  params.entries = capacity < 8 ? 8 : capacity;
  params.key_len = sizeof(lb::FlowKey);  // padding bytes are zero: FlowKey's pad[]
  params.hash_func = rte_hash_crc;
  params.socket_id = static_cast<int>(rte_socket_id());
  // Lock-free readers, several writers, and an overflow table so that a
  // full bucket does not refuse an entry below capacity.
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF |
                      RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD | RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
  rte_hash* hash = rte_hash_create(&params);
  if (hash == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("flow owners table of ", capacity, " entries: ", rte_strerror(rte_errno)));
  }
  rte_hash_rcu_config rcu{};
  rcu.v = qsbr;
  rcu.mode = RTE_HASH_QSBR_MODE_DQ;
  if (rte_hash_rcu_qsbr_add(hash, &rcu) != 0) {
    rte_hash_free(hash);
    return absl::InternalError(absl::StrCat("flow owners table: RCU: ", rte_strerror(rte_errno)));
  }
  return std::unique_ptr<FlowOwners>(new FlowOwners(hash));
}

FlowOwners::~FlowOwners() { rte_hash_free(hash_); }

// rte_hash_crc reads a key 8 bytes at a time through a uint64_t pointer,
// so each call hands rte_hash an 8-byte-aligned copy: a FlowKey within a
// ParsedPacket is only 2-byte aligned (UBSan caught the misaligned loads).

bool FlowOwners::Set(const lb::FlowKey& key, uint16_t worker) {
  alignas(8) const lb::FlowKey k = key;
  return rte_hash_add_key_data(hash_, &k, reinterpret_cast<void*>(uintptr_t{worker})) == 0;
}

void FlowOwners::Erase(const lb::FlowKey& key) {
  alignas(8) const lb::FlowKey k = key;
  rte_hash_del_key(hash_, &k);
}

std::optional<uint16_t> FlowOwners::Find(const lb::FlowKey& key) const {
  alignas(8) const lb::FlowKey k = key;
  void* data;
  if (rte_hash_lookup_data(hash_, &k, &data) < 0) return std::nullopt;
  return static_cast<uint16_t>(reinterpret_cast<uintptr_t>(data));
}

}  // namespace atl::dataplane::dpdk
