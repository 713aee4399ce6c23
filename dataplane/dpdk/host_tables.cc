#include "dataplane/dpdk/host_tables.h"

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cassert>

#include "lb/checksum.h"
#include "lb/packet.h"
#include "lb/status_macros.h"

namespace atl::dataplane::dpdk {
namespace {

// HostTables::version's source: unique in the process, so that no two
// tables, nor two states of one, share a version.
uint32_t NextVersion() {
  static std::atomic<uint32_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace

template <typename T>
void PrefixMap<T>::Insert(uint32_t addr_host_order, int length, const T& value) {
  by_length_[uint64_t(length) << 32 | (addr_host_order & Mask(length))] = value;
  if (std::find(lengths_.begin(), lengths_.end(), length) == lengths_.end()) {
    lengths_.push_back(length);
    std::sort(lengths_.begin(), lengths_.end(), std::greater<>());
  }
}

template <typename T>
const T* PrefixMap<T>::Find(uint32_t addr_be) const {
  const uint32_t addr = ntohl(addr_be);
  for (int length : lengths_) {
    if (const T* v = by_length_.Find(uint64_t(length) << 32 | (addr & Mask(length)))) return v;
  }
  return nullptr;
}

template class PrefixMap<SegmentEntry>;
template class PrefixMap<RemoteBlock>;
template class PrefixMap<uint32_t>;

OuterHeaders MakeOuterHeaders(const lb::MacAddr& next_hop, uint32_t node, uint32_t underlay,
                              uint32_t vni) {
  OuterHeaders h{};
  std::memcpy(h.data(), next_hop.data(), 6);
  h[12] = lb::kEtherTypeIpv4 >> 8;
  h[13] = lb::kEtherTypeIpv4 & 0xff;
  uint8_t* ip = h.data() + lb::kEthHeaderLen;
  ip[0] = 0x45;
  ip[8] = 64;  // TTL
  ip[9] = static_cast<uint8_t>(lb::IpProto::kUdp);
  std::memcpy(ip + 12, &node, 4);
  std::memcpy(ip + 16, &underlay, 4);
  // RFC 791 section 3.1; the sender adds its total length (RFC 1624).
  const uint16_t sum = lb::Ipv4HeaderChecksum(ip, lb::kIpv4MinHeaderLen);
  std::memcpy(ip + 10, &sum, 2);
  uint8_t* udp = ip + lb::kIpv4MinHeaderLen;
  udp[2] = kVxlanPort >> 8;
  udp[3] = kVxlanPort & 0xff;
  // The UDP checksum stays 0: none (IPv4).
  const uint32_t flags = htonl(kVxlanFlagVni);
  const uint32_t vni_field = htonl(vni << 8);
  std::memcpy(udp + 8, &flags, 4);
  std::memcpy(udp + 12, &vni_field, 4);
  return h;
}

void HostTables::SetHostRoutes(const std::vector<HostRoute>& routes) {
  host_routes_.Clear();
  for (const HostRoute& r : routes) host_routes_.Insert(ntohl(r.addr), r.len, r.gateway);
  ResolveDestinations();
}

void HostTables::SetNeighbours(const std::vector<Neighbour>& neighbours) {
  for (const Neighbour& n : neighbours) neighbours_[Be32(n.addr)] = n.mac;
  ResolveDestinations();
}

void HostTables::ResolveDestinations() {
  version_ = NextVersion();
  destinations_.clear();
  pods_by_addr_.ForEach([&](uint64_t, PodEntry& pod) {
    pod.destination = static_cast<uint32_t>(destinations_.size());
    pods_by_port_[pod.port].destination = pod.destination;
    destinations_.push_back({.kind = Destination::Kind::kPod, .port = pod.port, .mac = pod.mac});
  });
  // One destination per underlay host and VNI, shared by its blocks.
  absl::flat_hash_map<uint64_t, uint32_t> encap_of;
  remote_blocks_.ForEach([&](RemoteBlock& block) {
    block.destination = kNoDestination;
    const uint32_t next_hop = NextHop(block.underlay);
    const lb::MacAddr* mac = NeighbourOf(next_hop != 0 ? next_hop : block.underlay);
    if (mac == nullptr || node_addr_ == 0) return;
    const uint64_t key = uint64_t{block.underlay} << 32 | block.vni;
    auto [it, added] = encap_of.try_emplace(key, static_cast<uint32_t>(destinations_.size()));
    if (added) {
      destinations_.push_back(
          {.kind = Destination::Kind::kEncap,
           .outer = MakeOuterHeaders(*mac, node_addr_, block.underlay, block.vni)});
    }
    block.destination = it->second;
  });
  ResolveServiceDestinations();
}

absl::StatusOr<std::unique_ptr<HostTables>> HostTables::Create(uint32_t maglev_seed) {
  ATL_ASSIGN_OR_RETURN(
      std::unique_ptr<InProcessDataplane> model,
      InProcessDataplane::Create(InProcessDataplane::kDefaultMaxFrontends, maglev_seed));
  auto tables = std::unique_ptr<HostTables>(new HostTables(std::move(model)));
  tables->ResolveDestinations();  // a version, even for tables never changed
  return tables;
}

absl::Status HostTables::Apply(const Update& update,
                               const absl::flat_hash_map<std::string, uint16_t>& port_of) {
  for (const PodPort& p : update.upsert_pod_ports) {
    if (!p.address.IsV4()) {
      return absl::InvalidArgumentError("pod port \"" + p.host_ifname + "\": address " +
                                        p.address.ToString() +
                                        " is not IPv4 (the DPDK dataplane routes IPv4 only)");
    }
    if (!port_of.contains(p.host_ifname)) {
      return absl::FailedPreconditionError("pod port \"" + p.host_ifname +
                                           "\" has no DPDK port attached");
    }
  }
  ATL_RETURN_IF_ERROR(model_->Apply(update));
  Reindex(port_of);
  return absl::OkStatus();
}

void HostTables::Reindex(const absl::flat_hash_map<std::string, uint16_t>& port_of) {
  segments_.Clear();
  absl::flat_hash_map<std::string, uint32_t> vni_of;
  for (const auto& [name, s] : model_->segments()) {
    vni_of[name] = s.vni;
    SegmentEntry e{
        .id = s.vni,
        .gateway = s.gateway.IsV4() ? Be32(s.gateway) : 0,
        .egress = s.egress_ip.IsV4() && !s.egress_ip.IsUnspecified() ? Be32(s.egress_ip) : 0,
        .isolated = s.isolated};
    for (const lb::IpPrefix& c : s.cidrs) {
      if (c.addr.IsV4()) segments_.Insert(ntohl(Be32(c.addr)), c.len, e);
    }
  }
  admitted_.clear();
  for (const auto& [name, s] : model_->segments()) {
    for (const std::string& other : s.admitted) {
      auto it = vni_of.find(other);
      if (it != vni_of.end()) admitted_.insert(uint64_t{it->second} << 32 | s.vni);
    }
  }

  remote_blocks_.Clear();
  underlays_.clear();
  for (const auto& [cidr, r] : model_->routes()) {
    if (cidr.addr.IsV4() && r.underlay.IsV4()) {
      if (std::find(underlays_.begin(), underlays_.end(), Be32(r.underlay)) == underlays_.end()) {
        underlays_.push_back(Be32(r.underlay));
      }
      remote_blocks_.Insert(ntohl(Be32(cidr.addr)), cidr.len,
                            RemoteBlock{.underlay = Be32(r.underlay), .vni = r.vni});
    }
  }

  pods_by_addr_.Clear();
  pods_by_port_.assign(pods_by_port_.size(), PodEntry{});
  pod_port_ids_.clear();
  for (const auto& [ifname, p] : model_->pod_ports()) {
    auto it = vni_of.find(p.segment);
    PodEntry e{.addr = Be32(p.address),
               .port = port_of.at(ifname),
               .segment = it == vni_of.end() ? 0 : it->second,
               .mac = p.mac};
    pods_by_addr_[e.addr] = e;
    if (e.port >= pods_by_port_.size()) pods_by_port_.resize(e.port + 1u);
    pods_by_port_[e.port] = e;
    pod_port_ids_.push_back(e.port);
  }

  node_addrs_.clear();
  for (const lb::IpAddr& a : model_->node_addresses()) {
    if (a.IsV4()) node_addrs_.push_back(Be32(a));
  }
  node_addr_ = node_addrs_.empty() ? 0 : node_addrs_.front();
  IndexServices();
  ResolveDestinations();
}

void HostTables::IndexServices() {
  uint64_t capacity = 16;
  uint32_t shift = 60;
  for (; capacity < 2 * model_->frontends().size(); capacity <<= 1) --shift;
  if (capacity != service_entries_.size()) {
    service_entries_ = lb::TableArray<ServiceEntry>(capacity);
    service_mask_ = static_cast<uint32_t>(capacity - 1);
    service_shift_ = shift;
  } else {
    for (uint64_t i = 0; i < capacity; ++i) service_entries_[i] = ServiceEntry{};
  }
  entry_services_.assign(capacity, nullptr);
  for (const auto& [key, entry] : model_->frontends()) {
    if (!key.addr.IsV4()) continue;  // the packet path is IPv4's
    const lb::Service* svc = services().Lookup(key.addr, key.port, key.proto, key.scope);
    if (svc == nullptr) continue;
    const uint64_t k = ServiceKey(Be32(key.addr), key.port, key.proto, key.scope);
    assert(k != 0);
    uint32_t i = SlotOf(k);
    while (service_entries_[i].key != 0) i = (i + 1) & service_mask_;
    ServiceEntry& e = service_entries_[i];
    e = ServiceEntry{.key = k,
                     .maglev = svc->maglev.slots.data(),
                     .eligible = svc->eligible.data(),
                     .maglev_size = static_cast<uint32_t>(svc->maglev.slots.size()),
                     .eligible_count = static_cast<uint16_t>(svc->eligible.size()),
                     .sticky = svc->affinity_timeout_s > 0,
                     .keeps_source = entry.config.external_policy == lb::TrafficPolicy::kLocal};
    for (size_t b = 0; b < ServiceEntry::kInlineBackends && b < svc->eligible.size(); ++b) {
      e.inline_addr[b] = Be32(svc->eligible[b].endpoint.addr);
      e.inline_port[b] = svc->eligible[b].endpoint.port;
    }
    entry_services_[i] = svc;
  }
}

void HostTables::ResolveServiceDestinations() {
  for (uint64_t i = 0; i < service_entries_.size(); ++i) {
    ServiceEntry& e = service_entries_[i];
    if (e.key == 0) continue;
    for (uint16_t b = 0; b < ServiceEntry::kInlineBackends && b < e.eligible_count; ++b) {
      // Route's first two answers: a local pod, or a remote block whose
      // encapsulation is resolved.
      uint32_t d = kNoDestination;
      if (const PodEntry* pod = PodByAddr(e.inline_addr[b])) {
        d = pod->destination;
      } else if (const RemoteBlock* remote = RemoteBlockOf(e.inline_addr[b])) {
        d = remote->destination;
      }
      e.inline_destination[b] =
          d < ServiceEntry::kRouteLooks ? static_cast<uint16_t>(d) : ServiceEntry::kRouteLooks;
    }
  }
}

}  // namespace atl::dataplane::dpdk
