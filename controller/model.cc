#include "controller/model.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/validate.h"

namespace atl::controller {
namespace {

constexpr absl::string_view kNone = "None";  // the ClusterIP of a headless service

// In Kind order, the order List returns them in.
constexpr std::array<api::Kind, 5> kKinds = {api::KIND_NAMESPACE, api::KIND_SEGMENT,
                                             api::KIND_SERVICE, api::KIND_ENDPOINT_SLICE,
                                             api::KIND_NODE};

bool WantsNodePorts(const api::Service& svc) {
  return svc.type() == api::SERVICE_TYPE_NODE_PORT || svc.type() == api::SERVICE_TYPE_LOAD_BALANCER;
}

std::string ServiceOwner(const api::Service& svc) {
  return absl::StrCat(svc.namespace_(), "/", svc.name());
}

// How an owner string of the indexes reads in an error.
std::string QuotedService(absl::string_view owner) {
  return absl::StrCat("Service \"", owner, "\"");
}

absl::string_view ProtocolText(api::Protocol p) {
  switch (p) {
    case api::PROTOCOL_UDP:
      return "UDP";
    case api::PROTOCOL_SCTP:
      return "SCTP";
    default:
      return "TCP";
  }
}

std::string Describe(const api::Resource& r) { return QuotedKey(KeyOf(r)); }

api::ResourceKey NamespaceKey(absl::string_view ns) { return MakeKey(api::KIND_NAMESPACE, "", ns); }
api::ResourceKey SegmentKey(absl::string_view ns) { return MakeKey(api::KIND_SEGMENT, "", ns); }
api::ResourceKey NodeKey(absl::string_view node) { return MakeKey(api::KIND_NODE, "", node); }

std::string JoinIps(const google::protobuf::RepeatedPtrField<std::string>& ips) {
  return ips.empty() ? "none" : absl::StrJoin(ips, ",");
}

// A node's blocks as a set of (namespace, cidr), to compare what a user sent
// with what is stored regardless of order.
absl::btree_set<std::pair<std::string, std::string>> BlockSet(const api::Node& node) {
  absl::btree_set<std::pair<std::string, std::string>> out;
  for (const api::NodeBlock& b : node.blocks()) out.emplace(b.namespace_(), b.cidr());
  return out;
}

}  // namespace

// --- ClusterConfig ----------------------------------------------------------

ClusterConfig ClusterConfig::Default() {
  ClusterConfig c;
  c.pod_cidr = *lb::IpPrefix::Parse("198.19.0.0/16");
  c.service_cidrs = {*lb::IpPrefix::Parse("198.18.64.0/18")};
  return c;
}

absl::Status ClusterConfig::Validate() const {
  const unsigned max_len = pod_cidr.addr.IsV4() ? 32 : 128;
  if (namespace_prefix_len < pod_cidr.len || namespace_prefix_len > max_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("namespace prefix length /", namespace_prefix_len,
                     " does not fit the pod CIDR ", pod_cidr.ToString()));
  }
  if (node_block_len < namespace_prefix_len || node_block_len > max_len) {
    return absl::InvalidArgumentError(absl::StrCat("node block length /", node_block_len,
                                                   " must be between the namespace prefix length /",
                                                   namespace_prefix_len, " and /", max_len));
  }
  if (service_cidrs.empty()) return absl::InvalidArgumentError("no service CIDR is configured");
  for (size_t i = 0; i < service_cidrs.size(); ++i) {
    const lb::IpPrefix& s = service_cidrs[i];
    // The network (and IPv4 broadcast) address is never handed out; leave at least two.
    if (s.len > (s.addr.IsV4() ? 30 : 126)) {
      return absl::InvalidArgumentError(
          absl::StrCat("service CIDR ", s.ToString(), " is too small for ClusterIPs"));
    }
    if (s.Overlaps(pod_cidr)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "service CIDR ", s.ToString(), " overlaps the pod CIDR ", pod_cidr.ToString()));
    }
    for (size_t j = 0; j < i; ++j) {
      if (service_cidrs[j].family() == s.family()) {
        return absl::InvalidArgumentError(
            absl::StrCat("service CIDRs ", service_cidrs[j].ToString(), " and ", s.ToString(),
                         " are of the same family; at most one per family is allowed"));
      }
    }
  }
  if (node_port_min < 1 || node_port_min > node_port_max || node_port_max > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("node port range ", node_port_min, "-",
                                                   node_port_max, " is not within 1-65535"));
  }
  return absl::OkStatus();
}

// --- Keys -------------------------------------------------------------------

std::string QuotedKey(const api::ResourceKey& key) {
  if (key.namespace_().empty()) return absl::StrCat(KindName(key.kind()), " \"", key.name(), "\"");
  return absl::StrCat(KindName(key.kind()), " \"", key.namespace_(), "/", key.name(), "\"");
}

api::ResourceKey MakeKey(api::Kind kind, absl::string_view ns, absl::string_view name) {
  api::ResourceKey key;
  key.set_kind(kind);
  key.set_namespace_(std::string(ns));
  key.set_name(std::string(name));
  return key;
}

// --- Model ------------------------------------------------------------------

// One resource of a batch on its way through PlanApply's passes.
struct Model::PlanItem {
  api::Resource r;
  std::optional<api::Resource> segment;  // a new Namespace's Segment
  bool new_namespace = false;
  bool needs_cluster_ip = false;
  std::vector<int> needs_node_port;  // indexes into spec.ports
};

// What a plan has taken so far, on top of the committed allocators.
struct Model::PlanState {
  absl::flat_hash_set<Key> keys;
  absl::flat_hash_set<std::string> batch_namespaces;
  std::vector<lb::IpPrefix> cidrs;
  std::vector<std::string> cidr_owners;
  absl::flat_hash_set<uint32_t> vnis;
  IpAddrSet ips;
  absl::flat_hash_map<lb::IpAddr, std::string, IpAddrHash> ip_owners;
  std::vector<lb::IpAddr> ip_cursors;  // per service CIDR
  std::array<absl::flat_hash_set<uint32_t>, 3> ports;
  absl::flat_hash_map<std::pair<int, uint32_t>, std::string> port_owners;
  std::array<uint32_t, 3> port_cursors{};
  absl::flat_hash_map<lb::IpAddr, std::string, IpAddrHash> underlays;
  Changes changes;
};

Model::Model(ClusterConfig config)
    : config_(std::move(config)),
      namespace_cidrs_(config_.pod_cidr, config_.namespace_prefix_len),
      node_blocks_(config_.pod_cidr, config_.node_block_len),
      node_ports_{PortAllocator(config_.node_port_min, config_.node_port_max),
                  PortAllocator(config_.node_port_min, config_.node_port_max),
                  PortAllocator(config_.node_port_min, config_.node_port_max)} {
  for (const lb::IpPrefix& s : config_.service_cidrs) service_ips_.emplace_back(s);
}

Model::Key Model::ToKey(api::Kind kind, absl::string_view ns, absl::string_view name) {
  return Key(static_cast<int>(kind), std::string(ns), std::string(name));
}

Model::Key Model::ToKey(const api::ResourceKey& key) {
  return ToKey(key.kind(), key.namespace_(), key.name());
}

const api::Resource* Model::Find(const Key& key) const {
  auto it = resources_.find(key);
  return it == resources_.end() ? nullptr : it->second.get();
}

const api::Resource* Model::Get(const api::ResourceKey& key) const { return Find(ToKey(key)); }

std::vector<const api::Resource*> Model::List(api::Kind kind, std::string_view ns_filter) const {
  const absl::string_view ns(ns_filter.data(), ns_filter.size());
  std::vector<const api::Resource*> out;
  for (api::Kind k : kKinds) {
    if (kind != api::KIND_UNSPECIFIED && kind != k) continue;
    // Keys sort by (kind, namespace, name), so each request is one range.
    for (auto it = resources_.lower_bound(ToKey(k, ns, "")); it != resources_.end(); ++it) {
      const auto& [key_kind, key_ns, key_name] = it->first;
      if (key_kind != k || (!ns.empty() && key_ns != ns)) break;
      out.push_back(it->second.get());
    }
  }
  return out;
}

const AddressAllocator* Model::service_allocator(lb::Family family) const {
  for (const AddressAllocator& a : service_ips_) {
    if (a.range().family() == family) return &a;
  }
  return nullptr;
}

PortAllocator* Model::node_ports(api::Protocol protocol) {
  return &node_ports_[protocol == api::PROTOCOL_UDP ? 1 : protocol == api::PROTOCOL_SCTP ? 2 : 0];
}

const PortAllocator* Model::node_ports(api::Protocol protocol) const {
  return const_cast<Model*>(this)->node_ports(protocol);
}

// --- Indexes ------------------------------------------------------------------

// Claims that fail here were checked by a plan (Commit) or come from a store the
// controller wrote itself (Load); they are skipped rather than trusted twice.
void Model::Index(const api::Resource& r, bool loading) {
  switch (r.kind_case()) {
    case api::Resource::kSegment: {
      const api::Segment& seg = r.segment();
      (void)vnis_.MarkUsed(seg.id());
      for (const std::string& text : seg.cidrs()) {
        std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(text);
        if (p && namespace_cidrs_.MarkUsed(*p).ok()) cidr_owner_[*p] = seg.namespace_();
      }
      break;
    }
    case api::Resource::kService: {
      const api::Service& svc = r.service();
      const std::string owner = ServiceOwner(svc);
      for (const std::string& text : svc.cluster_ips()) {
        std::optional<lb::IpAddr> a = lb::IpAddr::Parse(text);
        if (!a) continue;
        for (AddressAllocator& alloc : service_ips_) {
          if (!alloc.Allocatable(*a) || !alloc.MarkUsed(*a).ok()) continue;
          cluster_ip_owner_[*a] = owner;
          // After a restart, allocation resumes after the highest address in use.
          if (loading && AddrToU128(*a) >= AddrToU128(alloc.cursor())) alloc.AdvancePast(*a);
        }
      }
      for (const api::ServicePort& p : svc.ports()) {
        if (p.node_port() == 0) continue;
        PortAllocator* alloc = node_ports(p.protocol());
        if (!alloc->MarkUsed(p.node_port()).ok()) continue;
        node_port_owner_[{static_cast<int>(p.protocol()), p.node_port()}] = owner;
        if (loading && p.node_port() >= alloc->cursor()) alloc->AdvancePast(p.node_port());
      }
      ++counts_[svc.namespace_()].services;
      break;
    }
    case api::Resource::kEndpointSlice:
      ++counts_[r.endpoint_slice().namespace_()].slices;
      break;
    case api::Resource::kNode: {
      const api::Node& node = r.node();
      if (std::optional<lb::IpAddr> a = lb::IpAddr::Parse(node.underlay_address())) {
        underlay_owner_.try_emplace(*a, node.name());
      }
      for (const api::NodeBlock& b : node.blocks()) {
        std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(b.cidr());
        if (p && node_blocks_.MarkUsed(*p).ok()) block_owner_[*p] = {b.namespace_(), node.name()};
      }
      break;
    }
    case api::Resource::kNamespace:
    case api::Resource::KIND_NOT_SET:
      break;
  }
}

void Model::Unindex(const api::Resource& r) {
  switch (r.kind_case()) {
    case api::Resource::kSegment: {
      const api::Segment& seg = r.segment();
      vnis_.Release(seg.id());
      for (const std::string& text : seg.cidrs()) {
        std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(text);
        if (!p) continue;
        auto it = cidr_owner_.find(*p);
        if (it == cidr_owner_.end() || it->second != seg.namespace_()) continue;
        namespace_cidrs_.Release(*p);
        cidr_owner_.erase(it);
      }
      break;
    }
    case api::Resource::kService: {
      const api::Service& svc = r.service();
      const std::string owner = ServiceOwner(svc);
      for (const std::string& text : svc.cluster_ips()) {
        std::optional<lb::IpAddr> a = lb::IpAddr::Parse(text);
        if (!a) continue;
        auto it = cluster_ip_owner_.find(*a);
        if (it == cluster_ip_owner_.end() || it->second != owner) continue;
        cluster_ip_owner_.erase(it);
        for (AddressAllocator& alloc : service_ips_) alloc.Release(*a);
      }
      for (const api::ServicePort& p : svc.ports()) {
        auto it = node_port_owner_.find({static_cast<int>(p.protocol()), p.node_port()});
        if (p.node_port() == 0 || it == node_port_owner_.end() || it->second != owner) continue;
        node_port_owner_.erase(it);
        node_ports(p.protocol())->Release(p.node_port());
      }
      auto it = counts_.find(svc.namespace_());
      if (it != counts_.end() && it->second.services > 0) --it->second.services;
      break;
    }
    case api::Resource::kEndpointSlice: {
      auto it = counts_.find(r.endpoint_slice().namespace_());
      if (it != counts_.end() && it->second.slices > 0) --it->second.slices;
      break;
    }
    case api::Resource::kNode: {
      const api::Node& node = r.node();
      if (std::optional<lb::IpAddr> a = lb::IpAddr::Parse(node.underlay_address())) {
        auto it = underlay_owner_.find(*a);
        if (it != underlay_owner_.end() && it->second == node.name()) underlay_owner_.erase(it);
      }
      for (const api::NodeBlock& b : node.blocks()) {
        std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(b.cidr());
        if (!p) continue;
        auto it = block_owner_.find(*p);
        if (it == block_owner_.end() || it->second.node != node.name()) continue;
        block_owner_.erase(it);
        node_blocks_.Release(*p);
      }
      break;
    }
    case api::Resource::kNamespace:
    case api::Resource::KIND_NOT_SET:
      break;
  }
}

void Model::Load(const api::Resource& r) {
  const Key key = ToKey(KeyOf(r));
  auto it = resources_.find(key);
  if (it != resources_.end()) {
    Unindex(*it->second);
    *it->second = r;
  } else {
    resources_.emplace(key, std::make_unique<api::Resource>(r));
  }
  Index(r, /*loading=*/true);
}

void Model::Commit(const Changes& changes) {
  // Everything replaced or removed gives up its claims before anything new
  // takes one, so a claim that moves between resources in one change (a block
  // released from one node while allocated to another) never collides.
  for (const api::ResourceKey& key : changes.removals) {
    auto it = resources_.find(ToKey(key));
    if (it == resources_.end()) continue;
    Unindex(*it->second);
    resources_.erase(it);
  }
  for (const api::Resource& r : changes.upserts) {
    auto it = resources_.find(ToKey(KeyOf(r)));
    if (it != resources_.end()) Unindex(*it->second);
  }
  for (const api::Resource& r : changes.upserts) {
    const Key key = ToKey(KeyOf(r));
    auto it = resources_.find(key);
    if (it != resources_.end()) {
      *it->second = r;
    } else {
      resources_.emplace(key, std::make_unique<api::Resource>(r));
    }
    Index(r, /*loading=*/false);
  }
  for (const lb::IpAddr& a : changes.allocated_ips) {
    for (AddressAllocator& alloc : service_ips_) {
      if (alloc.range().Contains(a)) alloc.AdvancePast(a);
    }
  }
  for (const auto& [protocol, port] : changes.allocated_node_ports) {
    node_ports(protocol)->AdvancePast(port);
  }
}

// --- PlanApply ----------------------------------------------------------------

absl::Status Model::CheckNamespaceExists(const PlanState& plan, const api::Resource& r,
                                         absl::string_view ns) const {
  if (plan.batch_namespaces.contains(ns) || Get(NamespaceKey(ns)) != nullptr) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(Describe(r), ": namespace \"", ns, "\" does not exist"));
}

// The claims a Namespace makes before anything is allocated: an existing one
// keeps its CIDR, a new one with a requested CIDR takes it.
absl::Status Model::PlanNamespaceClaims(PlanState& plan, PlanItem& item) const {
  api::Namespace& ns = *item.r.mutable_namespace_();
  if (const api::Resource* stored = Get(NamespaceKey(ns.name()))) {
    const std::string& stored_cidr = stored->namespace_().cidr();
    if (ns.cidr().empty()) {
      ns.set_cidr(stored_cidr);
    } else if (ns.cidr() != stored_cidr) {
      return absl::InvalidArgumentError(absl::StrCat(Describe(item.r),
                                                     ": spec.cidr: field is immutable (",
                                                     stored_cidr, " -> ", ns.cidr(), ")"));
    }
    return absl::OkStatus();
  }
  item.new_namespace = true;
  if (ns.cidr().empty()) return absl::OkStatus();
  const lb::IpPrefix p = *lb::IpPrefix::Parse(ns.cidr());  // ValidateResource parsed it
  std::optional<lb::IpPrefix> other = namespace_cidrs_.FindOverlap(p);
  std::string owner;
  if (other) {
    owner = cidr_owner_.at(*other);
  } else {
    for (size_t i = 0; i < plan.cidrs.size(); ++i) {
      if (plan.cidrs[i].Overlaps(p)) {
        other = plan.cidrs[i];
        owner = plan.cidr_owners[i];
        break;
      }
    }
  }
  if (other) {
    return absl::InvalidArgumentError(absl::StrCat(Describe(item.r), ": spec.cidr: ", ns.cidr(),
                                                 " overlaps the segment of Namespace \"", owner,
                                                 "\" (", other->ToString(), ")"));
  }
  plan.cidrs.push_back(p);
  plan.cidr_owners.push_back(ns.name());
  return absl::OkStatus();
}

// A new Namespace's Segment: its VNI and, unless requested, its CIDR.
absl::Status Model::PlanNamespaceAllocations(PlanState& plan, PlanItem& item) const {
  if (!item.new_namespace) return absl::OkStatus();
  api::Namespace& ns = *item.r.mutable_namespace_();
  if (ns.cidr().empty()) {
    std::optional<lb::IpPrefix> p = namespace_cidrs_.FindFree(config_.pod_cidr, plan.cidrs);
    if (!p) {
      return absl::ResourceExhaustedError(absl::StrCat(
          Describe(item.r), ": the pod CIDR ", config_.pod_cidr.ToString(), " has no free /",
          config_.namespace_prefix_len, " left for the namespace's segment"));
    }
    ns.set_cidr(p->ToString());
    plan.cidrs.push_back(*p);
    plan.cidr_owners.push_back(ns.name());
  }
  std::optional<uint32_t> vni = vnis_.FindFree(plan.vnis);
  if (!vni) {
    return absl::ResourceExhaustedError(
        absl::StrCat(Describe(item.r), ": all segment ids (VNIs) are in use"));
  }
  plan.vnis.insert(*vni);
  api::Segment& seg = *item.segment.emplace().mutable_segment();
  seg.set_namespace_(ns.name());
  seg.set_id(*vni);
  seg.add_cidrs(ns.cidr());
  seg.set_gateway(FirstHost(*lb::IpPrefix::Parse(ns.cidr())).ToString());
  return absl::OkStatus();
}

// The ClusterIPs and nodePorts a Service keeps or names itself.
absl::Status Model::PlanServiceClaims(PlanState& plan, PlanItem& item) const {
  api::Service& svc = *item.r.mutable_service();
  const std::string owner = ServiceOwner(svc);
  const api::Resource* stored_r = Find(ToKey(api::KIND_SERVICE, svc.namespace_(), svc.name()));
  const api::Service* stored = stored_r ? &stored_r->service() : nullptr;

  if (stored != nullptr && !stored->cluster_ips().empty()) {
    if (svc.cluster_ips().empty()) {
      *svc.mutable_cluster_ips() = stored->cluster_ips();
    } else if (!std::equal(svc.cluster_ips().begin(), svc.cluster_ips().end(),
                           stored->cluster_ips().begin(), stored->cluster_ips().end())) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(item.r), ": spec.clusterIPs: field is immutable (",
                       JoinIps(stored->cluster_ips()), " -> ", JoinIps(svc.cluster_ips()), ")"));
    }
  }
  item.needs_cluster_ip = svc.cluster_ips().empty();
  for (int i = 0; i < svc.cluster_ips_size(); ++i) {
    if (svc.cluster_ips(i) == kNone) continue;
    const lb::IpAddr a = *lb::IpAddr::Parse(svc.cluster_ips(i));
    std::string holder;
    if (auto it = cluster_ip_owner_.find(a); it != cluster_ip_owner_.end() && it->second != owner) {
      holder = it->second;
    } else if (auto pit = plan.ip_owners.find(a); pit != plan.ip_owners.end()) {
      holder = pit->second;
    }
    if (!holder.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(Describe(item.r), ": spec.clusterIPs[", i,
                                                   "]: ", svc.cluster_ips(i),
                                                   " is already used by ", QuotedService(holder)));
    }
    plan.ips.insert(a);
    plan.ip_owners.emplace(a, owner);
  }

  if (!WantsNodePorts(svc)) return absl::OkStatus();
  // As Kubernetes does, a port left without a nodePort keeps the one its
  // namesake had, so re-applying a manifest never moves a nodePort.
  absl::flat_hash_map<std::string, uint32_t> kept;
  if (stored != nullptr && WantsNodePorts(*stored)) {
    for (const api::ServicePort& p : stored->ports()) kept.emplace(p.name(), p.node_port());
  }
  for (int i = 0; i < svc.ports_size(); ++i) {
    api::ServicePort& p = *svc.mutable_ports(i);
    if (p.node_port() == 0) {
      auto it = kept.find(p.name());
      if (it != kept.end()) p.set_node_port(it->second);
    }
    if (p.node_port() == 0) {
      item.needs_node_port.push_back(i);
      continue;
    }
    const std::pair<int, uint32_t> key(static_cast<int>(p.protocol()), p.node_port());
    std::string holder;
    if (auto it = node_port_owner_.find(key); it != node_port_owner_.end() && it->second != owner) {
      holder = it->second;
    } else if (auto pit = plan.port_owners.find(key); pit != plan.port_owners.end()) {
      holder = pit->second;
    }
    if (!holder.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(item.r), ": spec.ports[", i, "].nodePort: ", p.node_port(), "/",
                       ProtocolText(p.protocol()), " is already used by ", QuotedService(holder)));
    }
    plan.ports[node_ports(p.protocol()) - node_ports_.data()].insert(p.node_port());
    plan.port_owners.emplace(key, owner);
  }
  return absl::OkStatus();
}

// The ClusterIP and nodePorts a Service still lacks, after every claim of the batch.
absl::Status Model::PlanServiceAllocations(PlanState& plan, PlanItem& item) const {
  api::Service& svc = *item.r.mutable_service();
  if (item.needs_cluster_ip) {
    // Kubernetes' default ipFamilyPolicy is SingleStack, of the first service CIDR's family.
    const AddressAllocator& alloc = service_ips_.front();
    std::optional<lb::IpAddr> a = alloc.FindFree(plan.ip_cursors.front(), plan.ips);
    if (!a) {
      return absl::ResourceExhaustedError(
          absl::StrCat(Describe(item.r), ": no free clusterIP left in ", alloc.range().ToString()));
    }
    svc.add_cluster_ips(a->ToString());
    plan.ips.insert(*a);
    plan.ip_owners.emplace(*a, ServiceOwner(svc));
    plan.ip_cursors.front() = alloc.After(*a);
    plan.changes.allocated_ips.push_back(*a);
  }
  for (int i : item.needs_node_port) {
    api::ServicePort& p = *svc.mutable_ports(i);
    const PortAllocator* alloc = node_ports(p.protocol());
    const size_t slot = alloc - node_ports_.data();
    std::optional<uint32_t> port = alloc->FindFree(plan.port_cursors[slot], plan.ports[slot]);
    if (!port) {
      return absl::ResourceExhaustedError(absl::StrCat(
          Describe(item.r), ": spec.ports[", i, "].nodePort: no free ", ProtocolText(p.protocol()),
          " port left in ", alloc->min(), "-", alloc->max()));
    }
    p.set_node_port(*port);
    plan.ports[slot].insert(*port);
    plan.port_owners.emplace(std::pair(static_cast<int>(p.protocol()), *port), ServiceOwner(svc));
    plan.port_cursors[slot] = alloc->After(*port);
    plan.changes.allocated_node_ports.emplace_back(p.protocol(), *port);
  }
  return absl::OkStatus();
}

absl::Status Model::PlanNode(PlanState& plan, PlanItem& item) const {
  api::Node& node = *item.r.mutable_node();
  const api::Resource* stored = Get(NodeKey(node.name()));
  if (node.blocks().empty()) {
    if (stored != nullptr) *node.mutable_blocks() = stored->node().blocks();
  } else if (stored == nullptr || BlockSet(node) != BlockSet(stored->node())) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(item.r),
                     ": spec.blocks: blocks are allocated by the controller; leave them out "
                     "(the stored ones are kept)"));
  }
  const lb::IpAddr a = *lb::IpAddr::Parse(node.underlay_address());
  std::string holder;
  if (auto it = underlay_owner_.find(a); it != underlay_owner_.end() && it->second != node.name()) {
    holder = it->second;
  } else if (auto pit = plan.underlays.find(a); pit != plan.underlays.end()) {
    holder = pit->second;
  }
  if (!holder.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(item.r), ": spec.underlayAddress: ", node.underlay_address(),
                     " is already used by Node \"", holder, "\""));
  }
  plan.underlays.emplace(a, node.name());
  return absl::OkStatus();
}

absl::StatusOr<Changes> Model::PlanApply(std::span<const api::Resource> batch) const {
  PlanState plan;
  for (const AddressAllocator& a : service_ips_) plan.ip_cursors.push_back(a.cursor());
  for (size_t i = 0; i < node_ports_.size(); ++i) plan.port_cursors[i] = node_ports_[i].cursor();

  std::vector<PlanItem> items(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    PlanItem& item = items[i];
    item.r = batch[i];
    ApplyDefaults(item.r);
    if (absl::Status s = ValidateResource(item.r, config_); !s.ok()) return s;
    if (!plan.keys.insert(ToKey(KeyOf(item.r))).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(item.r), ": appears more than once in the batch"));
    }
    if (item.r.has_namespace_()) plan.batch_namespaces.insert(item.r.namespace_().name());
  }
  // Claims first, allocations after: an address or CIDR a resource names itself
  // is never handed to an earlier resource of the same batch that left its own out.
  for (PlanItem& item : items) {
    absl::Status s;
    switch (item.r.kind_case()) {
      case api::Resource::kNamespace:
        s = PlanNamespaceClaims(plan, item);
        break;
      case api::Resource::kService:
        s = CheckNamespaceExists(plan, item.r, item.r.service().namespace_());
        if (s.ok()) s = PlanServiceClaims(plan, item);
        break;
      case api::Resource::kEndpointSlice:
        s = CheckNamespaceExists(plan, item.r, item.r.endpoint_slice().namespace_());
        break;
      case api::Resource::kNode:
        s = PlanNode(plan, item);
        break;
      default:
        break;
    }
    if (!s.ok()) return s;
  }
  for (PlanItem& item : items) {
    absl::Status s;
    if (item.r.has_namespace_()) s = PlanNamespaceAllocations(plan, item);
    if (item.r.has_service()) s = PlanServiceAllocations(plan, item);
    if (!s.ok()) return s;
  }
  Changes& changes = plan.changes;
  changes.upserts.reserve(items.size());
  for (PlanItem& item : items) {
    changes.upserts.push_back(std::move(item.r));
    if (item.segment) changes.upserts.push_back(std::move(*item.segment));
  }
  return std::move(changes);
}

// --- PlanDelete ---------------------------------------------------------------

absl::StatusOr<Changes> Model::PlanDelete(std::span<const api::ResourceKey> keys) const {
  Changes changes;
  absl::flat_hash_set<Key> deleting;
  absl::flat_hash_map<std::string, NamespaceCounts> deleted_counts;
  std::vector<std::string> namespaces;
  for (const api::ResourceKey& key : keys) {
    if (key.kind() == api::KIND_SEGMENT) {
      return absl::InvalidArgumentError(absl::StrCat(
          QuotedKey(key), ": segments are managed by the controller; delete Namespace \"",
          key.name(), "\" instead"));
    }
    const api::Resource* r = Get(key);
    if (r == nullptr) return absl::NotFoundError(absl::StrCat(QuotedKey(key), " not found"));
    if (!deleting.insert(ToKey(key)).second) continue;
    changes.removals.push_back(key);
    if (r->has_service()) ++deleted_counts[r->service().namespace_()].services;
    if (r->has_endpoint_slice()) ++deleted_counts[r->endpoint_slice().namespace_()].slices;
    if (r->has_namespace_()) namespaces.push_back(key.name());
  }

  absl::flat_hash_set<std::string> deleted_namespaces(namespaces.begin(), namespaces.end());
  absl::btree_set<std::string> touched_nodes;  // ordered, so the upserts are deterministic
  for (const std::string& ns : namespaces) {
    NamespaceCounts left;
    if (auto it = counts_.find(ns); it != counts_.end()) left = it->second;
    if (auto it = deleted_counts.find(ns); it != deleted_counts.end()) {
      left.services -= it->second.services;
      left.slices -= it->second.slices;
    }
    if (left.services > 0 || left.slices > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("Namespace \"", ns, "\" still has ", left.services, " Services and ",
                       left.slices, " EndpointSlices; delete them first"));
    }
    const api::Resource* seg = Get(SegmentKey(ns));
    if (seg == nullptr) continue;
    changes.removals.push_back(SegmentKey(ns));
    for (const std::string& text : seg->segment().cidrs()) {
      std::optional<lb::IpPrefix> cidr = lb::IpPrefix::Parse(text);
      if (!cidr) continue;
      for (const lb::IpPrefix& block : node_blocks_.UsedWithin(*cidr)) {
        auto it = block_owner_.find(block);
        if (it != block_owner_.end()) touched_nodes.insert(it->second.node);
      }
    }
  }
  for (const std::string& name : touched_nodes) {
    if (deleting.contains(ToKey(api::KIND_NODE, "", name))) continue;
    const api::Resource* stored = Get(NodeKey(name));
    if (stored == nullptr) continue;
    api::Resource& node = changes.upserts.emplace_back(*stored);
    auto* blocks = node.mutable_node()->mutable_blocks();
    blocks->erase(std::remove_if(blocks->begin(), blocks->end(),
                                 [&](const api::NodeBlock& b) {
                                   return deleted_namespaces.contains(b.namespace_());
                                 }),
                  blocks->end());
  }
  return changes;
}

// --- PlanAllocateBlock ----------------------------------------------------------

absl::StatusOr<Changes> Model::PlanAllocateBlock(std::string_view node_name,
                                                 std::string_view ns_name) const {
  const absl::string_view node(node_name.data(), node_name.size());
  const absl::string_view ns(ns_name.data(), ns_name.size());
  const api::Resource* node_r = Get(NodeKey(node));
  if (node_r == nullptr) return absl::NotFoundError(absl::StrCat("Node \"", node, "\" not found"));
  if (Get(NamespaceKey(ns)) == nullptr) {
    return absl::NotFoundError(absl::StrCat("Namespace \"", ns, "\" not found"));
  }
  const api::Resource* seg_r = Get(SegmentKey(ns));
  if (seg_r == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("Namespace \"", ns, "\" has no segment to allocate from"));
  }
  Changes changes;
  std::optional<lb::IpPrefix> block;
  for (const std::string& text : seg_r->segment().cidrs()) {
    std::optional<lb::IpPrefix> cidr = lb::IpPrefix::Parse(text);
    if (cidr && (block = node_blocks_.FindFree(*cidr))) break;
  }
  if (!block) {
    // The segment grows by another namespace-sized CIDR (DESIGN.md, "The model").
    std::optional<lb::IpPrefix> cidr = namespace_cidrs_.FindFree(config_.pod_cidr);
    if (!cidr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("Namespace \"", ns, "\": its segment is full and the pod CIDR ",
                       config_.pod_cidr.ToString(), " has no free /", config_.namespace_prefix_len,
                       " left to grow it"));
    }
    block = node_blocks_.FindFree(*cidr);
    api::Resource& seg = changes.upserts.emplace_back(*seg_r);
    seg.mutable_segment()->add_cidrs(cidr->ToString());
  }
  api::Resource& updated = changes.upserts.emplace_back(*node_r);
  api::NodeBlock& b = *updated.mutable_node()->add_blocks();
  b.set_namespace_(std::string(ns));
  b.set_cidr(block->ToString());
  return changes;
}

}  // namespace atl::controller
