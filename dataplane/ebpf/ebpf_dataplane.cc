#include "dataplane/ebpf/ebpf_dataplane.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
// The skeleton embeds the BPF object as one long string literal.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
#include "dataplane/ebpf/atoll.skel.h"
#pragma GCC diagnostic pop
#include "dataplane/ebpf/overlay_device.h"
#include "lb/maglev.h"
#include "lb/status_macros.h"

namespace atl::dataplane {
namespace {

using ebpf::AtollBpf;
using ebpf::Program;

// The C++ side of atoll_types.h's layouts: the BPF object was compiled with them.
static_assert(sizeof(atl_svc_key) == 8);
static_assert(sizeof(atl_svc) == 28);
static_assert(sizeof(atl_backend) == 8);
static_assert(sizeof(atl_maglev_entry) == 8);  // the array's element stride
static_assert(sizeof(atl_ct_key) == 16);
static_assert(sizeof(atl_ct) == 40);
static_assert(sizeof(atl_affinity_key) == 8);
static_assert(sizeof(atl_affinity) == 16);
static_assert(sizeof(atl_pod) == 20);
static_assert(sizeof(atl_lpm_key) == 8);
static_assert(sizeof(atl_segment) == 16);
static_assert(sizeof(atl_remote_block) == 8);
static_assert(sizeof(atl_admit_key) == 8);
static_assert(sizeof(atl_config) == 20);

constexpr const char* kDropNames[ATL_DROP_REASONS] = {
    "malformed", "unsupported", "unknown-port", "spoofed",       "fragment", "no-backend",
    "isolated",  "no-route",    "vni-mismatch", "nat-exhausted", "fib",
};

__be32 Be32(const lb::IpAddr& a) {
  __be32 v;
  std::memcpy(&v, a.v4_bytes(), 4);
  return v;
}
lb::IpAddr FromBe32(__be32 v) { return lb::IpAddr::FromV4Bytes(reinterpret_cast<uint8_t*>(&v)); }

atl_svc_key SvcKey(const lb::FrontendKey& k) {
  atl_svc_key key{};
  key.addr = k.addr.IsUnspecified() ? 0 : Be32(k.addr);
  key.port = htons(k.port);
  key.proto = static_cast<uint8_t>(k.proto);
  key.scope = static_cast<uint8_t>(k.scope);
  return key;
}
lb::FrontendKey FrontendKeyOf(const atl_svc_key& key) {
  return lb::FrontendKey{.addr = key.addr == 0 ? lb::IpAddr::V4(0) : FromBe32(key.addr),
                         .port = ntohs(key.port),
                         .proto = static_cast<lb::IpProto>(key.proto),
                         .scope = static_cast<lb::Scope>(key.scope)};
}

atl_lpm_key LpmKey(const lb::IpPrefix& p) { return atl_lpm_key{p.len, Be32(p.addr)}; }
lb::IpPrefix PrefixOf(const atl_lpm_key& k) {
  return lb::IpPrefix{FromBe32(k.addr), static_cast<uint8_t>(k.prefixlen)};
}

int Fd(bpf_map* map) { return bpf_map__fd(map); }

uint32_t MaglevEntries(uint32_t slots) {
  return (slots + ATL_MAGLEV_PER_ENTRY - 1) / ATL_MAGLEV_PER_ENTRY;
}

absl::Status MapError(std::string_view op, std::string_view map, std::string_view what) {
  const int err = errno;
  return absl::InternalError(absl::StrCat(absl::string_view(op.data(), op.size()), " ",
                                          absl::string_view(what.data(), what.size()), " in ",
                                          absl::string_view(map.data(), map.size()), ": ",
                                          std::strerror(err)));
}

template <typename K, typename V>
absl::Status Put(bpf_map* map, const K& key, const V& value, std::string_view what) {
  if (bpf_map_update_elem(Fd(map), &key, &value, BPF_ANY) != 0) {
    return MapError("writing", bpf_map__name(map), what);
  }
  return absl::OkStatus();
}

template <typename K>
absl::Status Erase(bpf_map* map, const K& key, std::string_view what) {
  if (bpf_map_delete_elem(Fd(map), &key) != 0 && errno != ENOENT) {
    return MapError("removing", bpf_map__name(map), what);
  }
  return absl::OkStatus();
}

// Every key of a map (an LPM trie's too).
template <typename K>
std::vector<K> Keys(bpf_map* map) {
  std::vector<K> keys;
  K key{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(Fd(map), prev, &key) == 0) {
    keys.push_back(key);
    prev = &keys.back();
  }
  return keys;
}

template <typename K, typename V>
std::optional<V> Get(bpf_map* map, const K& key) {
  V value{};
  if (bpf_map_lookup_elem(Fd(map), &key, &value) != 0) return std::nullopt;
  return value;
}

// A service's eligible backends, as its region of atl_backends holds them.
std::vector<lb::Backend> BackendsOf(const atl_svc& svc, const atl_backend* region) {
  std::vector<lb::Backend> backends;
  for (uint32_t i = 0; i < svc.backend_count; ++i) {
    const atl_backend& b = region[svc.backend_offset + i];
    backends.push_back(lb::Backend{.endpoint = {FromBe32(b.addr), ntohs(b.port)},
                                   .node_local = (b.flags & ATL_BACKEND_LOCAL) != 0});
  }
  return backends;
}

// Whether conntrack entry (k, v) belongs to a flow with an end in `addrs`:
// its key holds one, or its rewrite does (a client's entry DNATed to the pod
// as backend, the reply entry of a pod's SNATed flow).
bool InvolvesAny(const atl_ct_key& k, const atl_ct& v, const absl::flat_hash_set<__be32>& addrs) {
  return addrs.contains(k.saddr) || addrs.contains(k.daddr) ||
         ((v.flags & ATL_CT_DNAT) && addrs.contains(v.nat_daddr)) ||
         ((v.flags & ATL_CT_SNAT) && addrs.contains(v.nat_saddr));
}

// Removes the conntrack entries of every flow with an end at one of `addrs`,
// in one walk of the map.
absl::Status ForgetFlowsOf(bpf_map* ct, const absl::flat_hash_set<__be32>& addrs,
                           std::string_view what) {
  if (addrs.empty()) return absl::OkStatus();
  constexpr uint32_t kChunk = 1024;
  std::vector<atl_ct_key> keys(kChunk);
  std::vector<atl_ct> values(kChunk);
  std::vector<atl_ct_key> doomed;
  uint32_t batch = 0;  // a hash map's position: its bucket
  for (bool first = true;; first = false) {
    uint32_t count = kChunk;
    const int err = bpf_map_lookup_batch(Fd(ct), first ? nullptr : &batch, &batch, keys.data(),
                                         values.data(), &count, nullptr);
    if (err != 0 && errno != ENOENT) return MapError("walking", bpf_map__name(ct), what);
    for (uint32_t i = 0; i < count; ++i) {
      if (InvolvesAny(keys[i], values[i], addrs)) doomed.push_back(keys[i]);
    }
    if (err != 0) break;  // ENOENT: that was the last of them
  }
  for (const atl_ct_key& k : doomed) {
    // The programs may have given the key to another flow since the walk
    // read it (an expired entry is overwritten): only a match goes.
    std::optional<atl_ct> now = Get<atl_ct_key, atl_ct>(ct, k);
    if (now.has_value() && InvolvesAny(k, *now, addrs)) ATL_RETURN_IF_ERROR(Erase(ct, k, what));
  }
  return absl::OkStatus();
}

atl_pod PodValue(const PodPort& p) {
  atl_pod v{};
  v.addr = Be32(p.address);
  v.ifindex = p.host_ifindex;
  std::memcpy(v.mac, p.mac.data(), 6);
  return v;
}

bool Ipv4Frontend(const Frontend& f) {
  return f.key.addr.IsV4() &&
         (f.key.proto == lb::IpProto::kTcp || f.key.proto == lb::IpProto::kUdp);
}

}  // namespace

EbpfDataplane::EbpfDataplane(const Options& options, std::unique_ptr<AtollBpf> bpf)
    : options_(options),
      bpf_(std::move(bpf)),
      backend_regions_(ATL_MAX_BACKEND_SLOTS),
      maglev_regions_(ATL_MAX_MAGLEV_ENTRIES),
      id_used_(ATL_MAX_SERVICES, false) {}

absl::StatusOr<std::unique_ptr<EbpfDataplane>> EbpfDataplane::Create(const Options& options) {
  absl::StatusOr<std::unique_ptr<AtollBpf>> bpf =
      AtollBpf::Load(options.pin_dir, options.clock_offset_ns);
  if (!bpf.ok()) return bpf.status();
  std::unique_ptr<EbpfDataplane> dp(new EbpfDataplane(options, *std::move(bpf)));
  // With an uplink the programs write VXLAN themselves: no device to make.
  if (!options.overlay_device.empty() && options.uplink.empty()) {
    absl::StatusOr<uint32_t> overlay = ebpf::EnsureOverlayDevice(options.overlay_device);
    if (!overlay.ok()) return overlay.status();
    dp->overlay_ifindex_ = *overlay;
  }
  if (!options.uplink.empty()) {
    absl::StatusOr<uint32_t> uplink = ebpf::IfIndex(options.uplink);
    if (!uplink.ok()) return uplink.status();
    dp->uplink_ifindex_ = *uplink;
  }
  if (absl::Status s = dp->Restore(); !s.ok()) return s;
  if (absl::Status s = dp->WriteConfig(); !s.ok()) return s;
  // Attached last: the programs find their configuration in place.
  if (dp->overlay_ifindex_ != 0) {
    if (absl::Status s = dp->bpf_->Attach(Program::kFromOverlay, dp->overlay_ifindex_); !s.ok()) {
      return s;
    }
  }
  if (dp->uplink_ifindex_ != 0) {
    if (absl::Status s = dp->bpf_->Attach(Program::kFromUplink, dp->uplink_ifindex_); !s.ok()) {
      return s;
    }
  }
  return dp;
}

// What an earlier agent left in the pinned maps becomes this one's starting
// point: services keep their ids and regions, so nothing moves under a
// connection until the first Update says otherwise.
absl::Status EbpfDataplane::Restore() {
  const atoll_bpf& skel = bpf_->skel();
  for (const atl_svc_key& key : Keys<atl_svc_key>(skel.maps.atl_services)) {
    std::optional<atl_svc> svc = Get<atl_svc_key, atl_svc>(skel.maps.atl_services, key);
    if (!svc.has_value() || svc->id >= ATL_MAX_SERVICES || id_used_[svc->id] ||
        !backend_regions_.Claim(svc->backend_offset, svc->backend_count) ||
        !maglev_regions_.Claim(svc->maglev_offset, MaglevEntries(svc->maglev_size))) {
      // Not something this code wrote: it goes, rather than corrupt what does.
      if (absl::Status s = Erase(skel.maps.atl_services, key, "a malformed service"); !s.ok()) {
        return s;
      }
      continue;
    }
    id_used_[svc->id] = true;
    InstalledFrontend& f = frontends_[FrontendKeyOf(key)];
    f.frontend.key = FrontendKeyOf(key);
    f.svc = *svc;
    f.frontend.config.backends = BackendsOf(*svc, bpf_->backends());
  }
  for (const atl_lpm_key& key : Keys<atl_lpm_key>(skel.maps.atl_segments)) {
    segment_prefixes_[PrefixOf(key)] = InstalledPrefix{};
  }
  for (const atl_lpm_key& key : Keys<atl_lpm_key>(skel.maps.atl_remote_blocks)) {
    std::optional<atl_remote_block> block =
        Get<atl_lpm_key, atl_remote_block>(skel.maps.atl_remote_blocks, key);
    if (!block.has_value()) continue;
    routes_[PrefixOf(key)] = Route{PrefixOf(key), block->vni, "", FromBe32(block->underlay)};
    restored_routes_.insert(PrefixOf(key));
  }
  for (uint32_t ifindex : Keys<uint32_t>(skel.maps.atl_pod_ports)) {
    restored_pod_ifindexes_.insert(ifindex);
  }
  restored_admits_ = !Keys<atl_admit_key>(skel.maps.atl_admit).empty();
  for (__be32 addr : Keys<__be32>(skel.maps.atl_node_addrs)) {
    node_addresses_.push_back(FromBe32(addr));
  }
  if (!frontends_.empty() || !restored_pod_ifindexes_.empty()) {
    std::fprintf(stderr,
                 "atoll-agent: ebpf: found %zu frontends, %zu segment prefixes, %zu routes and "
                 "%zu pod ports pinned in %s\n",
                 frontends_.size(), segment_prefixes_.size(), routes_.size(),
                 restored_pod_ifindexes_.size(), options_.pin_dir.c_str());
  }
  return absl::OkStatus();
}

absl::Status EbpfDataplane::WriteConfig() {
  atl_config config{};
  for (const lb::IpAddr& a : node_addresses_) {
    if (a.IsV4()) {
      config.node_addr = Be32(a);
      break;
    }
  }
  config.overlay_ifindex = overlay_ifindex_;
  config.uplink_ifindex = uplink_ifindex_;
  std::memcpy(config.router_mac, kRouterMac.data(), 6);
  const uint32_t zero = 0;
  return Put(bpf_->skel().maps.atl_config, zero, config, "the host configuration");
}

absl::Status EbpfDataplane::Apply(const Update& update) {
  const atoll_bpf& skel = bpf_->skel();

  // 1. Everything that can be refused is decided before any map changes:
  //    each upserted frontend's eligible backends, Maglev table, regions and id.
  struct Prepared {
    const Frontend* frontend;
    std::vector<lb::Backend> eligible;
    lb::MaglevTable maglev;
    atl_svc svc{};
  };
  std::vector<Prepared> prepared;
  std::vector<uint32_t> new_ids;
  auto undo = [&] {
    for (const Prepared& p : prepared) {
      backend_regions_.FreeNow(p.svc.backend_offset, p.svc.backend_count);
      maglev_regions_.FreeNow(p.svc.maglev_offset, MaglevEntries(p.svc.maglev_size));
    }
    for (uint32_t id : new_ids) id_used_[id] = false;
  };
  uint32_t next_free_id = 0;
  for (const Frontend& f : update.upsert_frontends) {
    if (!Ipv4Frontend(f)) continue;  // IPv6 and SCTP are not on the kernel path yet
    Prepared p;
    p.frontend = &f;
    for (const lb::Backend& b : lb::EligibleBackends(f.config, f.key.scope)) {
      if (b.endpoint.addr.IsV4()) p.eligible.push_back(b);
    }
    if (!p.eligible.empty()) {
      std::vector<lb::MaglevBackend> mb;
      for (const lb::Backend& b : p.eligible) mb.push_back({b.endpoint, b.weight});
      absl::StatusOr<lb::MaglevTable> table = lb::BuildMaglev(mb, f.config.maglev_size, 0);
      if (!table.ok()) {
        undo();
        return absl::InvalidArgumentError(
            absl::StrCat("frontend ", f.key.ToString(), " of ", f.name, ": ",
                         table.status().message()));
      }
      p.maglev = *std::move(table);
    }
    const uint32_t slots = static_cast<uint32_t>(p.maglev.slots.size());
    std::optional<uint32_t> backends = backend_regions_.Allocate(p.eligible.size());
    std::optional<uint32_t> maglev =
        backends.has_value() ? maglev_regions_.Allocate(MaglevEntries(slots)) : std::nullopt;
    if (!maglev.has_value()) {
      if (backends.has_value()) backend_regions_.FreeNow(*backends, p.eligible.size());
      undo();
      return absl::ResourceExhaustedError(absl::StrCat(
          "frontend ", f.key.ToString(), " of ", f.name, ": no room for its ", p.eligible.size(),
          " backends and ", slots, " Maglev slots (", backend_regions_.used(), " of ",
          ATL_MAX_BACKEND_SLOTS, " backends and ",
          maglev_regions_.used() * ATL_MAGLEV_PER_ENTRY, " of ",
          ATL_MAX_MAGLEV_ENTRIES * ATL_MAGLEV_PER_ENTRY, " slots in use)"));
    }
    p.svc.backend_offset = *backends;
    p.svc.backend_count = static_cast<uint32_t>(p.eligible.size());
    p.svc.maglev_offset = *maglev;
    p.svc.maglev_size = slots;
    p.svc.affinity_timeout = f.config.affinity_timeout_s;
    if (f.key.scope == lb::Scope::kExternal &&
        f.config.external_policy == lb::TrafficPolicy::kLocal) {
      p.svc.flags |= ATL_SVC_KEEP_SOURCE;
    }
    if (auto it = frontends_.find(f.key); it != frontends_.end()) {
      p.svc.id = it->second.svc.id;  // affinity entries stay valid
    } else {
      while (next_free_id < ATL_MAX_SERVICES && id_used_[next_free_id]) ++next_free_id;
      if (next_free_id == ATL_MAX_SERVICES) {
        prepared.push_back(std::move(p));
        undo();
        return absl::ResourceExhaustedError(absl::StrCat(
            "frontend ", f.key.ToString(), " of ", f.name, ": the eBPF dataplane holds at most ",
            ATL_MAX_SERVICES, " frontends"));
      }
      p.svc.id = next_free_id;
      id_used_[next_free_id] = true;
      new_ids.push_back(next_free_id);
    }
    prepared.push_back(std::move(p));
  }
  if (options_.attach_pod_ports) {
    for (const PodPort& port : update.upsert_pod_ports) {
      if (absl::Status s = bpf_->Attach(Program::kFromPod, port.host_ifindex); !s.ok()) {
        undo();
        return absl::InvalidArgumentError(
            absl::StrCat("pod port ", port.host_ifname, " of ", port.pod, ": ", s.message()));
      }
    }
  }

  // 2. New regions, which nothing reads yet.
  for (const Prepared& p : prepared) {
    for (size_t i = 0; i < p.eligible.size(); ++i) {
      const lb::Backend& b = p.eligible[i];
      atl_backend& out = bpf_->backends()[p.svc.backend_offset + i];
      out.addr = Be32(b.endpoint.addr);
      out.port = htons(b.endpoint.port);
      out.flags = b.node_local ? ATL_BACKEND_LOCAL : 0;
      out.pad = 0;
    }
    uint16_t* slots = bpf_->maglev()[p.svc.maglev_offset].backend;
    std::copy(p.maglev.slots.begin(), p.maglev.slots.end(), slots);
  }

  // 3. Segments, admissions, routes, pods and node addresses.
  std::set<lb::IpPrefix> written_prefixes;
  for (const Segment& seg : update.upsert_segments) {
    atl_segment value{};
    value.id = seg.vni;
    value.gateway = seg.gateway.IsV4() ? Be32(seg.gateway) : 0;
    value.egress = seg.egress_ip.IsV4() && !seg.egress_ip.IsUnspecified() ? Be32(seg.egress_ip) : 0;
    value.flags = seg.isolated ? ATL_SEGMENT_ISOLATED : 0;
    for (const lb::IpPrefix& cidr : seg.cidrs) {
      if (!cidr.addr.IsV4()) continue;
      ATL_RETURN_IF_ERROR(Put(skel.maps.atl_segments, LpmKey(cidr), value,
                              absl::StrCat("segment ", seg.name, " CIDR ", cidr.ToString())));
      segment_prefixes_[cidr] = InstalledPrefix{seg.name};
      written_prefixes.insert(cidr);
    }
    segments_[seg.name] = seg;
  }
  std::vector<std::string> removed_segments;
  for (const std::string& name : update.remove_segments) {
    if (segments_.erase(name) > 0) removed_segments.push_back(name);
  }
  // CIDRs no segment has any more: its new version dropped them, it is gone,
  // or (at a full sync) nothing has named them since a restart.
  std::set<std::string> upserted_segments;
  for (const Segment& seg : update.upsert_segments) upserted_segments.insert(seg.name);
  for (auto it = segment_prefixes_.begin(); it != segment_prefixes_.end();) {
    const std::string& owner = it->second.owner;
    const bool written = written_prefixes.contains(it->first);
    const bool stale = owner.empty() ? update.full_sync && !written
                                     : !segments_.contains(owner) ||
                                           (upserted_segments.contains(owner) && !written);
    if (stale) {
      ATL_RETURN_IF_ERROR(Erase(skel.maps.atl_segments, LpmKey(it->first),
                                absl::StrCat("segment CIDR ", it->first.ToString())));
      it = segment_prefixes_.erase(it);
    } else {
      ++it;
    }
  }
  if (!update.upsert_segments.empty() || !removed_segments.empty() || update.full_sync) {
    std::set<std::pair<uint32_t, uint32_t>> admitted;
    for (const auto& [name, seg] : segments_) {
      if (!seg.isolated) continue;
      for (const std::string& other : seg.admitted) {
        if (auto it = segments_.find(other); it != segments_.end()) {
          admitted.insert({it->second.vni, seg.vni});
        }
      }
    }
    const uint8_t yes = 1;
    for (const auto& [src, dst] : admitted) {
      if (admitted_.contains({src, dst})) continue;
      ATL_RETURN_IF_ERROR(Put(skel.maps.atl_admit, atl_admit_key{src, dst}, yes,
                              absl::StrCat("admission of segment ", src, " to ", dst)));
    }
    std::set<std::pair<uint32_t, uint32_t>> drop;
    std::set_difference(admitted_.begin(), admitted_.end(), admitted.begin(), admitted.end(),
                        std::inserter(drop, drop.begin()));
    if (restored_admits_) {
      for (const atl_admit_key& k : Keys<atl_admit_key>(skel.maps.atl_admit)) {
        if (!admitted.contains({k.src, k.dst})) drop.insert({k.src, k.dst});
      }
      restored_admits_ = !update.full_sync;
    }
    for (const auto& [src, dst] : drop) {
      ATL_RETURN_IF_ERROR(Erase(skel.maps.atl_admit, atl_admit_key{src, dst},
                                absl::StrCat("admission of segment ", src, " to ", dst)));
    }
    admitted_ = std::move(admitted);
  }

  std::set<lb::IpPrefix> upserted_routes;
  for (const Route& r : update.upsert_routes) {
    if (!r.cidr.addr.IsV4() || !r.underlay.IsV4()) continue;  // an IPv4 underlay only
    atl_remote_block block{Be32(r.underlay), r.vni};
    ATL_RETURN_IF_ERROR(Put(skel.maps.atl_remote_blocks, LpmKey(r.cidr), block,
                            absl::StrCat("route ", r.cidr.ToString(), " to node ", r.node)));
    routes_[r.cidr] = r;
    restored_routes_.erase(r.cidr);
    upserted_routes.insert(r.cidr);
  }
  std::vector<lb::IpPrefix> route_removals = update.remove_routes;
  if (update.full_sync) {
    route_removals.insert(route_removals.end(), restored_routes_.begin(), restored_routes_.end());
    restored_routes_.clear();
  }
  for (const lb::IpPrefix& cidr : route_removals) {
    if (upserted_routes.contains(cidr) || routes_.erase(cidr) == 0) continue;
    ATL_RETURN_IF_ERROR(Erase(skel.maps.atl_remote_blocks, LpmKey(cidr),
                              absl::StrCat("route ", cidr.ToString())));
  }

  // A pod that leaves takes its flows with it, so that a new pod given its
  // address finds none of them (their reply tuples would keep it from its
  // services' backends, and its ports' flows would follow the old ones). An
  // address a pod takes is cleared too, unless its flows went with its last
  // pod: that pod may have gone while the agent was away (the maps outlive
  // it), or still hold the address on another interface.
  absl::flat_hash_set<__be32> departed;
  absl::flat_hash_set<__be32> arriving;
  for (const PodPort& port : update.upsert_pod_ports) {
    if (!port.address.IsV4()) continue;
    const __be32 addr = Be32(port.address);
    const std::optional<atl_pod> held = Get<__be32, atl_pod>(skel.maps.atl_pods, addr);
    if (held.has_value() ? held->ifindex != port.host_ifindex : !cleared_addrs_.contains(addr)) {
      arriving.insert(addr);
    }
    cleared_addrs_.erase(addr);
  }
  ATL_RETURN_IF_ERROR(ForgetFlowsOf(skel.maps.atl_ct, arriving, "the flows of arriving pods"));
  // `address_goes`: false when the port stays at its address with other
  // fields changed; its flows stay then.
  auto remove_pod = [&](const PodPort& port, bool address_goes) -> absl::Status {
    const __be32 addr = Be32(port.address);
    if (std::optional<atl_pod> by_addr = Get<__be32, atl_pod>(skel.maps.atl_pods, addr);
        by_addr.has_value() && by_addr->ifindex == port.host_ifindex) {
      ATL_RETURN_IF_ERROR(Erase(skel.maps.atl_pods, addr, absl::StrCat("pod ", port.pod)));
      if (address_goes) departed.insert(addr);
    }
    ATL_RETURN_IF_ERROR(Erase(skel.maps.atl_pod_ports, port.host_ifindex,
                              absl::StrCat("pod port ", port.host_ifname)));
    // The veth is usually gone already, and its program with it.
    if (options_.attach_pod_ports) (void)bpf_->Detach(port.host_ifindex);
    return absl::OkStatus();
  };
  for (const PodPort& port : update.upsert_pod_ports) {
    if (!port.address.IsV4()) continue;
    if (auto it = pod_ports_.find(port.host_ifname); it != pod_ports_.end() && it->second != port) {
      ATL_RETURN_IF_ERROR(remove_pod(it->second, it->second.address != port.address));
    }
    atl_pod value = PodValue(port);
    if (auto seg = segments_.find(port.segment); seg != segments_.end()) {
      value.segment = seg->second.vni;
    }
    ATL_RETURN_IF_ERROR(Put(skel.maps.atl_pod_ports, port.host_ifindex, value,
                            absl::StrCat("pod port ", port.host_ifname, " of ", port.pod)));
    ATL_RETURN_IF_ERROR(Put(skel.maps.atl_pods, value.addr, value,
                            absl::StrCat("pod ", port.pod, " at ", port.address.ToString())));
    pod_ports_[port.host_ifname] = port;
    restored_pod_ifindexes_.erase(port.host_ifindex);
  }
  for (const std::string& ifname : update.remove_pod_ports) {
    auto it = pod_ports_.find(ifname);
    if (it == pod_ports_.end()) continue;
    ATL_RETURN_IF_ERROR(remove_pod(it->second, true));
    pod_ports_.erase(it);
  }
  if (update.full_sync_pod_ports) {
    for (uint32_t ifindex : restored_pod_ifindexes_) {
      std::optional<atl_pod> value = Get<uint32_t, atl_pod>(skel.maps.atl_pod_ports, ifindex);
      ATL_RETURN_IF_ERROR(Erase(skel.maps.atl_pod_ports, ifindex, "a pod port from before"));
      if (value.has_value()) {
        std::optional<atl_pod> by_addr = Get<__be32, atl_pod>(skel.maps.atl_pods, value->addr);
        if (by_addr.has_value() && by_addr->ifindex == ifindex) {
          ATL_RETURN_IF_ERROR(Erase(skel.maps.atl_pods, value->addr, "a pod from before"));
          departed.insert(value->addr);
        }
      }
    }
    restored_pod_ifindexes_.clear();
  }
  // Not an address another pod holds now: its flows are that pod's.
  absl::erase_if(departed,
                 [&](__be32 a) { return Get<__be32, atl_pod>(skel.maps.atl_pods, a).has_value(); });
  // The pods are gone whether or not this walk succeeds; if it fails, their
  // flows go when a new pod takes the address (above).
  if (absl::Status s = ForgetFlowsOf(skel.maps.atl_ct, departed, "the flows of departed pods");
      s.ok()) {
    cleared_addrs_.insert(departed.begin(), departed.end());
  } else {
    std::fprintf(stderr, "eBPF dataplane: %s\n", s.ToString().c_str());
  }
  // A pod's segment id follows its segment (a namespace known after its pod).
  if (!update.upsert_segments.empty()) {
    for (const auto& [ifname, port] : pod_ports_) {
      auto seg = segments_.find(port.segment);
      if (seg == segments_.end()) continue;
      atl_pod value = PodValue(port);
      value.segment = seg->second.vni;
      ATL_RETURN_IF_ERROR(Put(skel.maps.atl_pod_ports, port.host_ifindex, value, ifname));
      ATL_RETURN_IF_ERROR(Put(skel.maps.atl_pods, value.addr, value, ifname));
    }
  }

  // A full sync's node addresses are all there are, listed or not.
  if (update.set_node_addresses || update.full_sync) {
    const uint8_t yes = 1;
    for (const lb::IpAddr& a : node_addresses_) {
      if (std::find(update.node_addresses.begin(), update.node_addresses.end(), a) ==
          update.node_addresses.end()) {
        ATL_RETURN_IF_ERROR(Erase(skel.maps.atl_node_addrs, Be32(a),
                                  absl::StrCat("node address ", a.ToString())));
      }
    }
    node_addresses_.clear();
    for (const lb::IpAddr& a : update.node_addresses) {
      if (!a.IsV4()) continue;
      ATL_RETURN_IF_ERROR(Put(skel.maps.atl_node_addrs, Be32(a), yes,
                              absl::StrCat("node address ", a.ToString())));
      node_addresses_.push_back(a);
    }
    ATL_RETURN_IF_ERROR(WriteConfig());
  }

  // 4. Service entries last: a lookup that finds one finds its regions whole.
  absl::flat_hash_set<lb::FrontendKey> upserted;
  for (Prepared& p : prepared) {
    const lb::FrontendKey& key = p.frontend->key;
    ATL_RETURN_IF_ERROR(Put(skel.maps.atl_services, SvcKey(key), p.svc,
                            absl::StrCat("frontend ", key.ToString(), " of ", p.frontend->name)));
    InstalledFrontend& f = frontends_[key];
    if (f.svc.backend_count + f.svc.maglev_size > 0 &&
        (f.svc.backend_offset != p.svc.backend_offset || f.svc.maglev_offset != p.svc.maglev_offset)) {
      backend_regions_.Free(f.svc.backend_offset, f.svc.backend_count);
      maglev_regions_.Free(f.svc.maglev_offset, MaglevEntries(f.svc.maglev_size));
    }
    f.frontend = *p.frontend;
    f.frontend.config.backends = std::move(p.eligible);
    f.svc = p.svc;
    upserted.insert(key);
  }
  prepared.clear();
  std::vector<lb::FrontendKey> frontend_removals = update.remove_frontends;
  if (update.full_sync) {
    for (const auto& [key, f] : frontends_) {
      if (!upserted.contains(key)) frontend_removals.push_back(key);
    }
  }
  for (const lb::FrontendKey& key : frontend_removals) {
    auto it = frontends_.find(key);
    if (it == frontends_.end() || upserted.contains(key)) continue;
    ATL_RETURN_IF_ERROR(Erase(skel.maps.atl_services, SvcKey(key),
                              absl::StrCat("frontend ", key.ToString())));
    backend_regions_.Free(it->second.svc.backend_offset, it->second.svc.backend_count);
    maglev_regions_.Free(it->second.svc.maglev_offset, MaglevEntries(it->second.svc.maglev_size));
    id_used_[it->second.svc.id] = false;
    frontends_.erase(it);
  }
  return absl::OkStatus();
}

Programmed EbpfDataplane::Dump() const {
  const atoll_bpf& skel = bpf_->skel();
  Programmed out;
  for (const atl_svc_key& key : Keys<atl_svc_key>(skel.maps.atl_services)) {
    std::optional<atl_svc> svc = Get<atl_svc_key, atl_svc>(skel.maps.atl_services, key);
    if (!svc.has_value()) continue;
    Frontend f;
    f.key = FrontendKeyOf(key);
    if (auto it = frontends_.find(f.key); it != frontends_.end()) {
      f.name = it->second.frontend.name;
      f.config = it->second.frontend.config;
    }
    f.config.backends = BackendsOf(*svc, bpf_->backends());
    f.config.affinity_timeout_s = svc->affinity_timeout;
    f.config.maglev_size = svc->maglev_size;
    out.frontends.push_back(std::move(f));
  }
  // Segments as their CIDRs are programmed, named from what the agent said.
  std::map<uint32_t, Segment> by_id;
  for (const atl_lpm_key& key : Keys<atl_lpm_key>(skel.maps.atl_segments)) {
    std::optional<atl_segment> v = Get<atl_lpm_key, atl_segment>(skel.maps.atl_segments, key);
    if (!v.has_value()) continue;
    Segment& seg = by_id[v->id];
    seg.vni = v->id;
    seg.cidrs.push_back(PrefixOf(key));
    seg.gateway = FromBe32(v->gateway);
    seg.isolated = (v->flags & ATL_SEGMENT_ISOLATED) != 0;
    if (v->egress != 0) seg.egress_ip = FromBe32(v->egress);
  }
  for (auto& [id, seg] : by_id) {
    for (const auto& [name, known] : segments_) {
      if (known.vni == id) {
        seg.name = name;
        seg.admitted = known.admitted;
      }
    }
    std::sort(seg.cidrs.begin(), seg.cidrs.end());
    out.segments.push_back(std::move(seg));
  }
  for (const atl_lpm_key& key : Keys<atl_lpm_key>(skel.maps.atl_remote_blocks)) {
    std::optional<atl_remote_block> v =
        Get<atl_lpm_key, atl_remote_block>(skel.maps.atl_remote_blocks, key);
    if (!v.has_value()) continue;
    auto known = routes_.find(PrefixOf(key));
    out.routes.push_back(Route{PrefixOf(key), v->vni,
                               known == routes_.end() ? "" : known->second.node,
                               FromBe32(v->underlay)});
  }
  for (uint32_t ifindex : Keys<uint32_t>(skel.maps.atl_pod_ports)) {
    std::optional<atl_pod> v = Get<uint32_t, atl_pod>(skel.maps.atl_pod_ports, ifindex);
    if (!v.has_value()) continue;
    PodPort port;
    port.host_ifindex = ifindex;
    port.address = FromBe32(v->addr);
    std::memcpy(port.mac.data(), v->mac, 6);
    for (const auto& [name, known] : pod_ports_) {
      if (known.host_ifindex == ifindex) {
        port.host_ifname = name;
        port.segment = known.segment;
        port.pod = known.pod;
      }
    }
    out.pod_ports.push_back(std::move(port));
  }
  for (__be32 addr : Keys<__be32>(skel.maps.atl_node_addrs)) {
    out.node_addresses.push_back(FromBe32(addr));
  }
  return out;
}

Dataplane::Counters EbpfDataplane::Drops() const {
  Counters drops;
  const int cpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(cpus > 0 ? cpus : 1);
  for (uint32_t reason = 0; reason < ATL_DROP_REASONS; ++reason) {
    uint64_t total = 0;
    if (bpf_map_lookup_elem(Fd(bpf_->skel().maps.atl_drops), &reason, per_cpu.data()) == 0) {
      for (uint64_t n : per_cpu) total += n;
    }
    drops.emplace_back(kDropNames[reason], total);
  }
  return drops;
}

}  // namespace atl::dataplane
