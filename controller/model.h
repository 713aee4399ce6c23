// The controller's model of the cluster: every stored resource, the indexes
// that cross-resource checks need, and the allocators behind segment IPAM,
// ClusterIPs and nodePorts.
//
// A change is planned first (PlanApply, PlanDelete, PlanAllocateBlock: const,
// all-or-nothing, O(size of the change)), written to the store by the caller,
// then committed (Commit). The caller serializes plan + write + commit: a plan
// is only valid against the model it was made from.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "atoll.pb.h"
#include "resource_key.h"
#include "controller/ipam.h"
#include "lb/net.h"

namespace atl::controller {

namespace api = ::atl::api::v1;

struct ClusterConfig {
  lb::IpPrefix pod_cidr;                    // default 198.19.0.0/16
  uint8_t namespace_prefix_len = 24;        // size of each namespace CIDR carved from pod_cidr
  uint8_t node_block_len = 28;              // per-node block size carved from a namespace CIDR
  std::vector<lb::IpPrefix> service_cidrs;  // default {198.18.64.0/18}; at most one per family
  uint32_t node_port_min = 30000, node_port_max = 32767;

  static ClusterConfig Default();
  // Checks lengths, ranges and that no two CIDRs overlap; the error names both.
  absl::Status Validate() const;
};

// KeyOf, KindOf, KindName and Describe ("Service shop/web") are in
// proto/resource_key.h.
using ::atl::api::v1::Describe;
using ::atl::api::v1::KeyOf;
using ::atl::api::v1::KindName;
using ::atl::api::v1::KindOf;
// `Service "shop/web"`, `Namespace "shop"`: how errors name a resource.
std::string QuotedKey(const api::ResourceKey& key);
api::ResourceKey MakeKey(api::Kind kind, absl::string_view ns, absl::string_view name);

// What one operation writes, all together.
struct Changes {
  std::vector<api::Resource> upserts;
  std::vector<api::ResourceKey> removals;
  // The ClusterIPs and nodePorts the plan chose itself (not the user). Commit
  // moves the allocators' cursors past them; callers need not look at them.
  std::vector<lb::IpAddr> allocated_ips;
  std::vector<std::pair<api::Protocol, uint32_t>> allocated_node_ports;
};

class Model {
 public:
  explicit Model(ClusterConfig config);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ClusterConfig& config() const { return config_; }

  // At startup: adds a stored resource without checks, rebuilding allocator state.
  // The ClusterIP and nodePort cursors resume after the highest loaded value.
  void Load(const api::Resource& r);
  // The effect of applying `batch` all together: the applied resources with
  // defaults filled and ClusterIPs / nodePorts allocated (keeping the ones already
  // allocated to the stored object when the user leaves them out: they are
  // immutable as in Kubernetes), the Segment created for each new Namespace (VNI
  // allocated, CIDR allocated or the requested one checked), Node blocks preserved
  // on re-apply. Does not change the model. Every applied resource is an upsert,
  // in batch order, each new Segment right after its Namespace. Every refusal is
  // INVALID_ARGUMENT (conflicts with stored objects too, as Kubernetes answers
  // 422 Invalid to "provided IP is already allocated"), but RESOURCE_EXHAUSTED
  // when an allocator is full.
  absl::StatusOr<Changes> PlanApply(std::span<const api::Resource> batch) const;
  // Deleting a Namespace that still has Services or EndpointSlices (not deleted
  // by the same call) fails with FAILED_PRECONDITION; deleting a Namespace
  // removes its Segment and releases its blocks from every Node (those Nodes are
  // upserts). Deleting a Node releases its blocks. Unknown key: NOT_FOUND.
  // Segments cannot be deleted by users (INVALID_ARGUMENT).
  absl::StatusOr<Changes> PlanDelete(std::span<const api::ResourceKey> keys) const;
  // A new block of `ns`'s addresses for `node` (a Node upsert). When the
  // namespace's CIDRs are exhausted the segment grows: another CIDR from the pod
  // CIDR is appended (a Segment upsert). RESOURCE_EXHAUSTED when the pod CIDR is
  // full; NOT_FOUND for an unknown node or namespace.
  absl::StatusOr<Changes> PlanAllocateBlock(std::string_view node, std::string_view ns) const;
  // Makes a planned change part of the model (after the store wrote it).
  void Commit(const Changes& changes);

  // Valid until the resource is replaced or removed.
  const api::Resource* Get(const api::ResourceKey& key) const;
  // Sorted by (kind, namespace, name); KIND_UNSPECIFIED = all kinds, ns "" = all.
  std::vector<const api::Resource*> List(api::Kind kind, std::string_view ns) const;
  size_t size() const { return resources_.size(); }

  // Allocator state, for tests and status pages.
  const AddressAllocator* service_allocator(lb::Family family) const;
  const PrefixAllocator& namespace_cidrs() const { return namespace_cidrs_; }
  const PrefixAllocator& node_blocks() const { return node_blocks_; }
  const VniAllocator& vnis() const { return vnis_; }

 private:
  // Ordered as List promises: (kind, namespace, name).
  using Key = std::tuple<int, std::string, std::string>;
  struct NamespaceCounts {
    size_t services = 0;
    size_t slices = 0;
  };
  struct BlockOwner {
    std::string ns;
    std::string node;
  };
  struct PlanItem;
  struct PlanState;

  static Key ToKey(const api::ResourceKey& key);
  static Key ToKey(api::Kind kind, absl::string_view ns, absl::string_view name);
  const api::Resource* Find(const Key& key) const;
  PortAllocator* node_ports(api::Protocol protocol);
  const PortAllocator* node_ports(api::Protocol protocol) const;

  // Adds (Index) or removes (Unindex) a resource's claims on allocators and indexes.
  void Index(const api::Resource& r, bool loading);
  void Unindex(const api::Resource& r);

  absl::Status CheckNamespaceExists(const PlanState& plan, const api::Resource& r,
                                    absl::string_view ns) const;
  absl::Status PlanNamespaceClaims(PlanState& plan, PlanItem& item) const;
  absl::Status PlanNamespaceAllocations(PlanState& plan, PlanItem& item) const;
  absl::Status PlanServiceClaims(PlanState& plan, PlanItem& item) const;
  absl::Status PlanServiceAllocations(PlanState& plan, PlanItem& item) const;
  absl::Status PlanNode(PlanState& plan, PlanItem& item) const;

  ClusterConfig config_;
  absl::btree_map<Key, std::unique_ptr<api::Resource>> resources_;

  PrefixAllocator namespace_cidrs_;  // segment CIDRs, from the pod CIDR
  PrefixAllocator node_blocks_;      // every node block of every segment
  VniAllocator vnis_;
  std::vector<AddressAllocator> service_ips_;  // one per service CIDR
  std::array<PortAllocator, 3> node_ports_;    // TCP, UDP, SCTP

  // Who holds what, for conflict errors that name the holder.
  absl::btree_map<lb::IpPrefix, std::string> cidr_owner_;  // segment CIDR -> namespace
  absl::btree_map<lb::IpPrefix, BlockOwner> block_owner_;
  absl::flat_hash_map<lb::IpAddr, std::string, IpAddrHash> cluster_ip_owner_;  // -> "ns/name"
  absl::flat_hash_map<std::pair<int, uint32_t>, std::string> node_port_owner_;
  absl::flat_hash_map<lb::IpAddr, std::string, IpAddrHash> underlay_owner_;  // -> node
  absl::flat_hash_map<std::string, NamespaceCounts> counts_;
};

}  // namespace atl::controller
