// What the DPDK workers read: one host's state (dataplane.h's Update applied
// to an InProcessDataplane, the validating model both backends share) and the
// indexes the packet path looks things up in, keyed the way packets carry
// them (IPv4 addresses in network order, DPDK port ids).
//
// Workers only read a HostTables; the control thread writes the one no worker
// can see (DpdkDataplane keeps two and swaps them, see dpdk_dataplane.h).
// IPv4 only, as in the eBPF backend.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/dataplane.h"
#include "dataplane/dpdk/host_link.h"
#include "dataplane/dpdk/word_map.h"
#include "dataplane/in_process_dataplane.h"
#include "lb/net.h"
#include "lb/prefetch.h"
#include "lb/service_table.h"
#include "lb/table_memory.h"

namespace atl::dataplane::dpdk {

inline constexpr uint16_t kNoPort = 0xffff;
inline constexpr uint32_t kNoDestination = 0xffffffff;
// The outer Ethernet, IPv4, UDP and VXLAN headers in front of an overlay frame.
inline constexpr size_t kVxlanOverhead = 50;
inline constexpr uint16_t kVxlanPort = 4789;           // IANA, RFC 7348 section 5
inline constexpr uint32_t kVxlanFlagVni = 0x08000000;  // RFC 7348 section 5: the VNI is valid

// The tables' IPv4 addresses: the four bytes as they stand in a header,
// read as a native word (network order), and back.
inline uint32_t Be32(const lb::IpAddr& a) {
  uint32_t v;
  std::memcpy(&v, a.v4_bytes(), 4);
  return v;
}
inline lb::IpAddr FromBe32(uint32_t v) {
  return lb::IpAddr::FromV4Bytes(reinterpret_cast<const uint8_t*>(&v));
}

struct PodEntry {
  uint32_t addr = 0;                      // network order; its only source address
  uint16_t port = kNoPort;                // the DPDK port of its host-side interface
  uint32_t segment = 0;                   // the segment id (VNI)
  lb::MacAddr mac{};                      // its only source MAC
  uint32_t destination = kNoDestination;  // HostTables::destination(), delivery to it
};

struct SegmentEntry {
  uint32_t id = 0;       // the VNI
  uint32_t gateway = 0;  // network order; hairpin SNAT source
  uint32_t egress = 0;   // network order; SNAT source leaving the cluster, 0: the node's
  bool isolated = true;
};

struct RemoteBlock {
  uint32_t underlay = 0;  // network order; the host that has the block
  uint32_t vni = 0;
  // HostTables::destination(), its encapsulation; kNoDestination until the
  // next hop's MAC is known (and this host has an address).
  uint32_t destination = kNoDestination;
};

// The outer headers of an overlay frame from this host (RFC 7348): Ethernet
// to `next_hop` with the source MAC left zero (the sender's uplink MAC), IPv4
// `node` -> `underlay` (network order) with TTL 64, UDP to port 4789, VXLAN
// with `vni`. What depends on the frame is zero: the IPv4 total length, with
// the header checksum computed over it so, the UDP source port and length.
using OuterHeaders = std::array<uint8_t, kVxlanOverhead>;
OuterHeaders MakeOuterHeaders(const lb::MacAddr& next_hop, uint32_t node, uint32_t underlay,
                              uint32_t vni);

// Where a packet goes once translated, resolved by the tables in advance so
// that a flow can keep it (lb::Flow::route) and skip the route, neighbour and
// header work on every later packet.
struct Destination {
  enum class Kind : uint8_t { kPod, kEncap };
  Kind kind = Kind::kPod;
  uint16_t port = kNoPort;  // kPod: the pod's port
  lb::MacAddr mac{};        // kPod: the pod's MAC
  OuterHeaders outer{};     // kEncap
};

// A frontend's service as a new flow's balancing reads it, in one cache
// line: the frontend's key, the Maglev table of its lb::Service, and its
// first eligible backends themselves (the rest through a pointer), with
// where Route would send a frame to each. Found in one open-addressed table,
// a new flow to a service of up to kInlineBackends backends then misses on
// this line and on its Maglev slot, where the model's table costs a hash
// map's control bytes, its slot, the Service, the Maglev slot and the
// backend, one after the other; and its route is known without looking up
// the backend's address in the pods and the remote blocks (75
// instructions less per new flow, perf/RESULTS.md 2026-11-24).
struct alignas(64) ServiceEntry {
  static constexpr uint16_t kInlineBackends = 4;
  // inline_destination's "not resolved here": Route decides.
  static constexpr uint16_t kRouteLooks = 0xffff;

  // HostTables::ServiceKey(); 0: a free slot (no frontend's key is 0: its
  // protocol's byte is not).
  uint64_t key = 0;
  const uint16_t* maglev = nullptr;       // the service's maglev.slots
  const lb::Backend* eligible = nullptr;  // the service's eligible
  uint32_t maglev_size = 0;               // 0: no eligible backend
  uint16_t eligible_count = 0;
  bool sticky = false;  // session affinity: the choice is kept per client
  // externalTrafficPolicy Local: an external client's address reaches the
  // backend unchanged (no SNAT to the node).
  bool keeps_source = false;
  // eligible's first kInlineBackends (as many as it has), as IPv4 (the
  // model keeps a frontend's backends in its family, and the packet path is
  // IPv4's): 6 bytes each where an lb::Endpoint takes 18, 8 with the
  // destination, which keeps the entry to one line. backend(i) reads them
  // for i < kInlineBackends.
  uint32_t inline_addr[kInlineBackends] = {};  // network order
  uint16_t inline_port[kInlineBackends] = {};
  // HostTables::destination() of a local pod or a resolved remote block
  // that the backend's address is in, for this version of the tables; else
  // kRouteLooks (as when the index does not fit 16 bits).
  uint16_t inline_destination[kInlineBackends] = {kRouteLooks, kRouteLooks, kRouteLooks,
                                                  kRouteLooks};

  bool has_backend() const { return maglev_size != 0; }
  // Maglev's choice for a flow hash (lb::Service::MaglevPick); requires has_backend().
  uint16_t MaglevPick(uint32_t flow_hash) const {
    return maglev[lb::ReduceHash(flow_hash, maglev_size)];
  }
  lb::Endpoint backend(uint16_t i) const {
    if (i >= kInlineBackends) return eligible[i].endpoint;
    return {lb::IpAddr::FromV4Bytes(reinterpret_cast<const uint8_t*>(&inline_addr[i])),
            inline_port[i]};
  }
  // Where a frame translated to backend(i) goes (HostTables::destination()),
  // or kNoDestination when Route must find it.
  uint32_t destination(uint16_t i) const {
    if (i >= kInlineBackends || inline_destination[i] == kRouteLooks) return kNoDestination;
    return inline_destination[i];
  }
};
static_assert(sizeof(ServiceEntry) == 64, "a service entry is one cache line");

// Longest-prefix match over the few prefix lengths a host holds (segment
// CIDRs, remote blocks): one hash probe per length, longest first.
template <typename T>
class PrefixMap {
 public:
  void Clear() {
    by_length_.Clear();
    lengths_.clear();
  }
  void Insert(uint32_t addr_host_order, int length, const T& value);
  const T* Find(uint32_t addr_be) const;
  template <typename F>
  void ForEach(F&& f) {
    by_length_.ForEach([&](uint64_t, T& value) { f(value); });
  }

 private:
  static uint32_t Mask(int length) { return length == 0 ? 0 : ~0u << (32 - length); }
  WordMap<T> by_length_;                        // length << 32 | masked address (host order)
  std::vector<int> lengths_;                    // longest first
};

class HostTables {
 public:
  static absl::StatusOr<std::unique_ptr<HostTables>> Create(uint32_t maglev_seed = 0);

  // Applies all of `update` or none of it (the model's rule), then rebuilds
  // the indexes. `port_of` gives the DPDK port of every pod port the update
  // leaves in place: host interface name -> port id.
  absl::Status Apply(const Update& update,
                     const absl::flat_hash_map<std::string, uint16_t>& port_of);

  Programmed Dump() const { return model_->Dump(); }

  // The packet path's lookups. Addresses in network order.
  const PodEntry* PodByAddr(uint32_t addr) const { return pods_by_addr_.Find(addr); }
  const PodEntry* PodByPort(uint16_t port) const {
    return port < pods_by_port_.size() && pods_by_port_[port].port != kNoPort ? &pods_by_port_[port]
                                                                              : nullptr;
  }
  const SegmentEntry* SegmentOf(uint32_t addr) const { return segments_.Find(addr); }
  const RemoteBlock* RemoteBlockOf(uint32_t addr) const { return remote_blocks_.Find(addr); }
  // DESIGN.md "Isolation": whether `dst` accepts a packet from segment
  // `src_segment` (0: a host, or outside the cluster).
  bool IsolationAllows(uint32_t src_segment, const SegmentEntry* dst) const {
    if (dst == nullptr || !dst->isolated || src_segment == dst->id || src_segment == 0) return true;
    return admitted_.contains(uint64_t{src_segment} << 32 | dst->id);
  }
  const lb::ServiceTable& services() const { return model_->services(); }
  // The model's service of an entry ServiceOf found (what session affinity keys on).
  const lb::Service& ServiceAt(const ServiceEntry& e) const {
    return *entry_services_[static_cast<size_t>(&e - &service_entries_[0])];
  }
  // The service of the frontend a packet to addr:port reaches from `scope`,
  // as lb::ServiceTable::Lookup finds it (a NodePort on this node's own
  // addresses only); nullptr when none.
  const ServiceEntry* ServiceOf(uint32_t addr, uint16_t port, lb::IpProto proto,
                                lb::Scope scope) const {
    if (const ServiceEntry* e = FindService(ServiceKey(addr, port, proto, scope))) return e;
    if (!IsNodeAddress(addr)) return nullptr;
    return FindService(ServiceKey(0, port, proto, scope));
  }
  // Starts loading the entry ServiceOf finds for an exact frontend.
  void PrefetchService(uint32_t addr, uint16_t port, lb::IpProto proto, lb::Scope scope) const {
    const void* e = &service_entries_[SlotOf(ServiceKey(addr, port, proto, scope))];
    lb::Prefetch(e);
  }
  uint32_t node_addr() const { return node_addr_; }  // network order; 0: none yet
  bool IsNodeAddress(uint32_t addr) const {
    return std::find(node_addrs_.begin(), node_addrs_.end(), addr) != node_addrs_.end();
  }
  // Other hosts' underlay addresses (network order), whose MACs encap needs.
  const std::vector<uint32_t>& underlays() const { return underlays_; }
  // The DPDK ports of the pods, for the workers to poll.
  const std::vector<uint16_t>& pod_ports() const { return pod_port_ids_; }

  // Resolved destinations, numbered in PodEntry and RemoteBlock. An index
  // holds for one version of the tables only: each change gives them a new
  // one, never 0 and unique in the process.
  const Destination& destination(uint32_t i) const { return destinations_[i]; }
  uint32_t version() const { return version_; }

  // The underlay as the host sees it, learnt by the control side from the
  // host's tables: its routes through the uplink, and its neighbours' MACs.
  void SetHostRoutes(const std::vector<HostRoute>& routes);
  // The address whose MAC a frame to `daddr` goes to: the route's gateway,
  // or `daddr` itself on the link; 0 when no route leads there.
  uint32_t NextHop(uint32_t daddr) const {
    const uint32_t* gateway = host_routes_.Find(daddr);
    return gateway == nullptr ? 0 : *gateway != 0 ? *gateway : daddr;
  }
  void SetNeighbours(const std::vector<Neighbour>& neighbours);
  const lb::MacAddr* NeighbourOf(uint32_t addr) const { return neighbours_.Find(addr); }

 private:
  explicit HostTables(std::unique_ptr<InProcessDataplane> model) : model_(std::move(model)) {}
  void Reindex(const absl::flat_hash_map<std::string, uint16_t>& port_of);
  // Renumbers the destinations of the pods and remote blocks, after any of
  // the tables they come from changed.
  void ResolveDestinations();
  // Fills service_entries_ from the model's frontends; their destinations
  // are ResolveDestinations' (which comes after).
  void IndexServices();
  // The service entries' inline_destination, after the destinations were renumbered.
  void ResolveServiceDestinations();
  // A frontend as one word (IPv4 only).
  static uint64_t ServiceKey(uint32_t addr, uint16_t port, lb::IpProto proto, lb::Scope scope) {
    return uint64_t{addr} << 32 | uint32_t{port} << 16 | static_cast<uint32_t>(proto) << 8 |
           static_cast<uint32_t>(scope);
  }
  // Fibonacci hashing: the product's top bits, which every bit of the key
  // reaches (its low bits see only the key's low bits: the constant first
  // octets of an address in network order).
  uint32_t SlotOf(uint64_t key) const {
    return static_cast<uint32_t>((key * 0x9e3779b97f4a7c15ull) >> service_shift_);
  }
  const ServiceEntry* FindService(uint64_t key) const {
    for (uint32_t i = SlotOf(key);; i = (i + 1) & service_mask_) {
      const ServiceEntry& e = service_entries_[i];
      if (e.key == key) return &e;
      if (e.key == 0) return nullptr;
    }
  }

  std::unique_ptr<InProcessDataplane> model_;
  WordMap<PodEntry> pods_by_addr_;
  std::vector<PodEntry> pods_by_port_;  // by port id; port == kNoPort where none
  std::vector<uint16_t> pod_port_ids_;
  std::vector<uint32_t> underlays_;
  PrefixMap<SegmentEntry> segments_;
  PrefixMap<RemoteBlock> remote_blocks_;
  absl::flat_hash_set<uint64_t> admitted_;  // source segment << 32 | destination segment
  // Open addressing, linear probing, at most half full: points into model_'s
  // services, rebuilt with every change to them; their destinations with
  // every change to those.
  lb::TableArray<ServiceEntry> service_entries_{16};
  std::vector<const lb::Service*> entry_services_ = std::vector<const lb::Service*>(16);  // by slot
  uint32_t service_mask_ = 15;
  uint32_t service_shift_ = 60;  // 64 - log2 of the capacity
  uint32_t node_addr_ = 0;
  std::vector<uint32_t> node_addrs_;  // network order: where NodePorts answer
  PrefixMap<uint32_t> host_routes_;   // to the gateway (0: on the link)
  WordMap<lb::MacAddr> neighbours_;
  std::vector<Destination> destinations_;
  uint32_t version_ = 0;
};

}  // namespace atl::dataplane::dpdk
