#include "dataplane/dpdk/pipeline.h"

#include <arpa/inet.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lb/checksum.h"
#include "lb/flow_hash.h"
#include "lb/nat.h"
#include "lb/prefetch.h"
#include "lb/status_macros.h"

namespace atl::dataplane::dpdk {
namespace {

constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr size_t kEthLen = 14;
constexpr size_t kIpv4Len = 20;
constexpr uint8_t kIpProtoUdp = 17;

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint32_t LoadNative32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The offset of Pipeline::Handoff in the mbuf (rte_mbuf_dynfield_register).
int handoff_offset = -1;

// Where a frame goes on (Verdict::drop is only read for Next::kDrop).
Verdict Go(Next next, uint16_t port = kNoPort) { return {next, DropReason::kMalformed, port}; }

void SetMacs(uint8_t* frame, const lb::MacAddr& dst, const lb::MacAddr& src) {
  std::memcpy(frame, dst.data(), 6);
  std::memcpy(frame + 6, src.data(), 6);
}

}  // namespace

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kMalformed:
      return "malformed";
    case DropReason::kUnsupported:
      return "unsupported";
    case DropReason::kUnknownPort:
      return "unknown-port";
    case DropReason::kSpoofed:
      return "spoofed";
    case DropReason::kFragment:
      return "fragment";
    case DropReason::kNoBackend:
      return "no-backend";
    case DropReason::kIsolated:
      return "isolated";
    case DropReason::kNoRoute:
      return "no-route";
    case DropReason::kVniMismatch:
      return "vni-mismatch";
    case DropReason::kNatExhausted:
      return "nat-exhausted";
    case DropReason::kFib:
      return "fib";
    case DropReason::kNoNeighbour:
      return "no-neighbour";
    case DropReason::kTxFull:
      return "tx-full";
    case DropReason::kNoHostPath:
      return "no-host-path";
    case DropReason::kNoUplink:
      return "no-uplink";
    case DropReason::kHandoffFull:
      return "handoff-full";
    case DropReason::kCount:
      break;
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Create(const PipelineConfig& config) {
  lb::ConntrackConfig ct;
  ct.max_flows = config.conntrack_flows;  // and a seed of its own, at random
  ATL_ASSIGN_OR_RETURN(std::unique_ptr<lb::ConntrackShard> shard, lb::ConntrackShard::Create(ct));
  if (config.workers == 0 || config.worker >= config.workers) {
    return absl::InvalidArgumentError(
        absl::StrCat("pipeline: worker ", config.worker, " of ", config.workers));
  }
  if (config.workers > 1) {
    if (config.owners == nullptr || config.affinity == nullptr) {
      return absl::InvalidArgumentError(
          "pipeline: several workers share a flow owners table and an affinity table");
    }
    static const rte_mbuf_dynfield kHandoffField = {
        .name = "atoll_handoff", .size = sizeof(Handoff), .align = alignof(Handoff), .flags = 0};
    handoff_offset = rte_mbuf_dynfield_register(&kHandoffField);
    if (handoff_offset < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("pipeline: mbuf field for handoffs: ", rte_strerror(rte_errno)));
    }
  }
  return std::unique_ptr<Pipeline>(new Pipeline(config, std::move(shard)));
}

Pipeline::Pipeline(const PipelineConfig& config, std::unique_ptr<lb::ConntrackShard> conntrack)
    : config_(config), conntrack_(std::move(conntrack)), affinity_(config.affinity) {
  if (affinity_ == nullptr) {
    own_affinity_ = std::make_unique<SharedAffinity>(config.affinity_entries);
    affinity_ = own_affinity_.get();
  }
  if (config_.owners != nullptr) conntrack_->OnRemove(&Pipeline::Forget, this);
}

uint16_t Pipeline::OwnerOf(const lb::FlowKey& key, uint16_t workers) {
  // The two endpoints in a fixed order, so that a tuple and its reverse agree.
  const auto fold = [](const lb::IpAddr& a) {
    uint32_t w[4];
    std::memcpy(w, &a, sizeof(w));
    return w[0] ^ w[1] ^ w[2] ^ w[3];
  };
  uint32_t a = fold(key.src);
  uint32_t b = fold(key.dst);
  uint16_t pa = key.src_port;
  uint16_t pb = key.dst_port;
  if (a > b || (a == b && pa > pb)) {
    std::swap(a, b);
    std::swap(pa, pb);
  }
  const uint32_t words[3] = {a, b, uint32_t{pa} << 16 | pb};
  return static_cast<uint16_t>((uint64_t{lb::Jhash2(words, 3, 0)} * workers) >> 32);
}

Verdict Pipeline::HandOff(rte_mbuf* m, const Pending& in, uint16_t worker, bool redirected,
                          uint16_t tried) {
  Handoff& carried = *RTE_MBUF_DYNFIELD(m, handoff_offset, Handoff*);
  carried = in;
  carried.redirected = redirected;
  carried.tried = tried;
  ++stats_.handed_off;
  return Go(Next::kHandoff, worker);
}

std::optional<uint16_t> Pipeline::RecordedElsewhere(const lb::FlowKey& key) const {
  const std::optional<uint16_t> owner = config_.owners->Find(key);
  if (!owner || *owner == config_.worker) return std::nullopt;
  return owner;
}

bool Pipeline::ReplyTaken(const lb::FlowKey& reply) const {
  return conntrack_->Contains(reply) ||
         (config_.owners != nullptr && config_.owners->Find(reply).has_value());
}

void Pipeline::Forget(void* self, const lb::Flow& flow) {
  auto* p = static_cast<Pipeline*>(self);
  if (!p->Owns(flow.tuple[0])) p->config_.owners->Erase(flow.tuple[0]);
}

bool Pipeline::FromPod(rte_mbuf* m, uint16_t in_port, const HostTables& t, Pending* out,
                       Verdict* v) {
  const PodEntry* port = t.PodByPort(in_port);
  if (port == nullptr) return Decided(v, Drop(DropReason::kUnknownPort));
  uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
  const size_t len = rte_pktmbuf_data_len(m);

  // spoof_check: the pod's own MAC, and below its own address.
  if (len < kEthLen) return Decided(v, Drop(DropReason::kMalformed));
  if (std::memcmp(frame + 6, port->mac.data(), 6) != 0) {
    return Decided(v, Drop(DropReason::kSpoofed));
  }
  const uint16_t ethertype = Load16(frame + 12);
  if (ethertype == kEtherTypeArp) return Decided(v, AnswerArp(m, *port));
  if (ethertype != lb::kEtherTypeIpv4) return Decided(v, Drop(DropReason::kUnsupported));
  if (len < kEthLen + kIpv4Len) return Decided(v, Drop(DropReason::kMalformed));
  if (LoadNative32(frame + kEthLen + 12) != port->addr) {
    return Decided(v, Drop(DropReason::kSpoofed));
  }
  return Parse(m, Origin::kPod, port->segment, Tunnel{}, out, v);
}

// The dataplane answers every ARP request a pod makes for another address
// (its gateway, a peer of its segment) with the router MAC, and routes
// (RFC 826). A probe or announcement of the pod's own address gets no answer.
Verdict Pipeline::AnswerArp(rte_mbuf* m, const PodEntry& port) {
  uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
  constexpr size_t kArpLen = 28;
  if (rte_pktmbuf_data_len(m) < kEthLen + kArpLen) return Drop(DropReason::kMalformed);
  uint8_t* arp = frame + kEthLen;
  if (Load16(arp) != 1 || Load16(arp + 2) != lb::kEtherTypeIpv4 || arp[4] != 6 || arp[5] != 4) {
    return Drop(DropReason::kMalformed);
  }
  uint8_t* sha = arp + 8;
  const uint32_t spa = LoadNative32(arp + 14);
  const uint32_t tpa = LoadNative32(arp + 24);
  if (Load16(arp + 6) != 1 || spa == 0 || tpa == port.addr) {
    return {Next::kDrop, DropReason::kUnsupported, kNoPort};  // nothing to answer; no error
  }
  if (spa != port.addr || std::memcmp(sha, port.mac.data(), 6) != 0) {
    return Drop(DropReason::kSpoofed);
  }
  Store16(arp + 6, 2);             // reply
  std::memcpy(arp + 18, sha, 6);   // tha: the asker
  std::memcpy(arp + 24, &spa, 4);  // tpa
  std::memcpy(sha, config_.router_mac.data(), 6);
  std::memcpy(arp + 14, &tpa, 4);  // spa: the address asked for
  SetMacs(frame, port.mac, config_.router_mac);
  return Go(Next::kBack);
}

bool Pipeline::FromUplink(rte_mbuf* m, const HostTables& t, Pending* out, Verdict* v) {
  const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
  const size_t len = rte_pktmbuf_data_len(m);
  if (len < kEthLen + kIpv4Len + 8 || Load16(frame + 12) != lb::kEtherTypeIpv4) {
    return Decided(v, Go(Next::kHost));
  }
  // A unicast frame for another MAC, which the underlay flooded and the
  // promiscuous uplink took in, is the host's to drop: balanced here too, its
  // flow would have a backend on each host that saw it.
  if ((frame[0] & 1) == 0 && std::memcmp(frame, config_.uplink_mac.data(), 6) != 0) {
    return Decided(v, Go(Next::kHost));
  }
  const uint8_t* ip = frame + kEthLen;
  const uint8_t* udp = ip + kIpv4Len;
  // decap: the overlay's packets to this node (UDP to its address, port 4789).
  if (ip[0] == 0x45 && ip[9] == kIpProtoUdp && Load16(udp + 2) == kVxlanPort &&
      LoadNative32(ip + 16) == t.node_addr() && (Load16(ip + 6) & 0x3fff) == 0) {
    return Decap(m, t, out, v);
  }
  return Parse(m, Origin::kUplink, 0, Tunnel{}, out, v);
}

bool Pipeline::Decap(rte_mbuf* m, const HostTables& t, Pending* out, Verdict* v) {
  const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
  if (rte_pktmbuf_data_len(m) < kVxlanOverhead + kEthLen + kIpv4Len) {
    return Decided(v, Drop(DropReason::kMalformed));
  }
  const uint8_t* vxlan = frame + kEthLen + kIpv4Len + 8;
  if (LoadNative32(vxlan) != htonl(kVxlanFlagVni)) return Decided(v, Drop(DropReason::kMalformed));
  const Tunnel from{.underlay = LoadNative32(frame + kEthLen + 12),
                    .vni = ntohl(LoadNative32(vxlan + 4)) >> 8};
  // The outer headers go; the inner frame keeps its own Ethernet header.
  rte_pktmbuf_adj(m, kVxlanOverhead);
  // From another host. The underlay is trusted: the sender's segment is the
  // one its source address belongs to.
  frame = rte_pktmbuf_mtod(m, const uint8_t*);
  if (Load16(frame + 12) != lb::kEtherTypeIpv4) return Decided(v, Drop(DropReason::kUnsupported));
  const SegmentEntry* src = t.SegmentOf(LoadNative32(frame + kEthLen + 12));
  return Parse(m, Origin::kOverlay, src ? src->id : 0, from, out, v);
}

// parse: the frame's headers into `out`, for conntrack and what follows.
bool Pipeline::Parse(rte_mbuf* m, Origin origin, uint32_t src_segment, Tunnel tunnel, Pending* out,
                     Verdict* v) {
  const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
  lb::ParsedPacket& p = out->p;
  if (lb::ParseEthernet(frame, rte_pktmbuf_data_len(m), &p) != lb::DropReason::kNone ||
      p.ethertype != lb::kEtherTypeIpv4) {
    if (origin == Origin::kUplink) return Decided(v, Go(Next::kHost));
    return Decided(v, Drop(DropReason::kMalformed));
  }
  if (p.ip.non_first_fragment) {
    if (origin == Origin::kUplink) return Decided(v, Go(Next::kHost));
    return Decided(v, Drop(DropReason::kFragment));
  }
  static_cast<Handoff&>(*out) = {.tunnel = tunnel, .src_segment = src_segment, .origin = origin};
  return true;
}

// Where a frame starts is in its mbuf's first line, which another core may
// have written last: a ring feed's or another worker's. Those lines start
// loading together, before the frames' own (kAhead frames ahead) need them;
// a PMD that filled them on this core makes it an instruction per frame.
void Pipeline::PrefetchFrames(rte_mbuf* const* pkts, uint16_t n) {
  for (uint16_t i = 0; i < n; ++i) rte_prefetch0(pkts[i]);
}

void Pipeline::Run(Next kind, uint16_t in_port, rte_mbuf** pkts, uint16_t n, const HostTables& t,
                   uint64_t now_ns, Verdict* out) {
  // Two passes over the burst, as lb::Worker's: the first parses every frame
  // and starts loading its conntrack slot; between them, each slot gives a
  // guess of the frame's flow, whose record starts loading; the second finds
  // the flows from those guesses.
  stats_.packets += n;
  PrefetchFrames(pkts, n);
  for (uint16_t i = 0; i < n; ++i) {
    if (i + kAhead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kAhead], void*));
    bool ready = kind == Next::kPod ? FromPod(pkts[i], in_port, t, &pending_[i], &out[i])
                                    : FromUplink(pkts[i], t, &pending_[i], &out[i]);
    if (ready && config_.workers > 1) {
      if (const uint16_t owner = Owner(pending_[i].p); owner != config_.worker) {
        out[i] = HandOff(pkts[i], pending_[i], owner, false);
        ready = false;
      }
    }
    FirstPassDone(i, n, ready);
  }
  ProcessReady(pkts, n, t, now_ns, out);
}

void Pipeline::RunHandedOff(rte_mbuf** pkts, uint16_t n, const HostTables& t, uint64_t now_ns,
                            Verdict* out) {
  PrefetchFrames(pkts, n);
  for (uint16_t i = 0; i < n; ++i) {
    if (i + kAhead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kAhead], void*));
    const Handoff& h = *RTE_MBUF_DYNFIELD(pkts[i], handoff_offset, const Handoff*);
    const bool ready = Parse(pkts[i], h.origin, h.src_segment, h.tunnel, &pending_[i], &out[i]);
    static_cast<Handoff&>(pending_[i]) = h;
    FirstPassDone(i, n, ready);
  }
  ProcessReady(pkts, n, t, now_ns, out);
}

// A frame's hashes are computed with those of the seven before or after
// it, when the last of the eight is parsed (or the burst's last); its slot
// then starts loading. Maglev's hash comes along, for the new flows among
// them: computed eight at a time, it costs less than picking out which
// frames will need it. The keys are IPv4 (Parse passes nothing else),
// which HashEight requires.
void Pipeline::FirstPassDone(uint16_t i, uint16_t n, bool ready) {
  static_assert(kMaxBurst % lb::kHashLanes == 0, "the last eight frames' records exist");
  ready_[i] = ready;
  if (i % lb::kHashLanes != lb::kHashLanes - 1 && i + 1 != n) return;
  const uint16_t first = i - i % lb::kHashLanes;
  uint32_t hash[lb::kHashLanes];
  uint32_t maglev_hash[lb::kHashLanes];
  conntrack_->HashEight(&pending_[first].p.ip.key, sizeof(Pending), hash, lb::kMaglevSeed,
                        maglev_hash);
  for (uint16_t j = first; j <= i; ++j) {
    if (!ready_[j]) continue;
    pending_[j].hash = hash[j - first];
    pending_[j].maglev_hash = maglev_hash[j - first];
    conntrack_->Prefetch(pending_[j].hash);
  }
}

// A frame whose slot names no flow of its hash is most likely a new flow.
// A new flow's service entry, its Maglev slot, its backend (unless the entry
// holds it) and the reply tuple's conntrack slot are each a likely cache miss
// that depends on the one before. They are walked in passes over the burst's
// new flows, as lb::Worker does, so that the misses of different flows
// overlap. It decides nothing: it finds the service, which FirstPacket
// takes as found (Maglev's hash came with conntrack's, in FirstPassDone),
// and guesses the reply tuple only to prefetch its slot: Maglev's DNAT
// choice, and Destine's SNAT to the node for an external client under
// policy Cluster (Kubernetes' default for a NodePort), whose first try keeps
// the client's port. Affinity, SnatPort's other tries and the rarer SNATs
// (hairpin, egress) may choose otherwise. A wrong guess costs a wait: the
// slot of the SNAT'd tuple missed on every such flow until the guess had it
// (perf/RESULTS.md, 2026-11-24).
void Pipeline::PrefetchFlows(uint16_t n, const HostTables& t) {
  uint16_t fresh[kMaxBurst];
  uint16_t n_fresh = 0;
  for (uint16_t i = 0; i < n; ++i) {
    Pending& in = pending_[i];
    in.new_flow = false;
    if (!ready_[i] || in.p.icmp_error) continue;
    in.flow_guess = conntrack_->Guess(in.hash);
    if (in.origin == Origin::kOverlay || in.flow_guess != lb::ConntrackShard::kNoGuess) continue;
    const lb::FlowKey& key = in.p.ip.key;
    t.PrefetchService(Be32(key.dst), key.dst_port, key.proto, ScopeOf(in.origin));
    fresh[n_fresh++] = i;
  }
  for (uint16_t j = 0; j < n_fresh; ++j) {
    Pending& in = pending_[fresh[j]];
    const lb::FlowKey& key = in.p.ip.key;
    in.new_flow = true;
    in.service = t.ServiceOf(Be32(key.dst), key.dst_port, key.proto, ScopeOf(in.origin));
    if (in.service != nullptr && in.service->has_backend()) {
      lb::Prefetch(&in.service->maglev[lb::ReduceHash(in.maglev_hash, in.service->maglev_size)]);
    }
  }
  uint32_t creations = 0;
  for (uint16_t j = 0; j < n_fresh; ++j) {
    const Pending& in = pending_[fresh[j]];
    const ServiceEntry* svc = in.service;
    if (svc == nullptr || !svc->has_backend()) continue;
    const lb::Endpoint backend = svc->backend(svc->MaglevPick(in.maglev_hash));
    lb::FlowKey reply = in.p.ip.key.Reversed();
    reply.src = backend.addr;
    reply.src_port = backend.port;
    if (in.origin == Origin::kUplink && !svc->keeps_source) reply.dst = FromBe32(t.node_addr());
    conntrack_->PrefetchInsert(reply, creations++);
  }
}

void Pipeline::ProcessReady(rte_mbuf** pkts, uint16_t n, const HostTables& t, uint64_t now_ns,
                            Verdict* out) {
  PrefetchFlows(n, t);
  for (uint16_t i = 0; i < n; ++i) {
    if (ready_[i]) out[i] = Process(pkts[i], pending_[i], t, now_ns);
  }
}

// conntrack -> (a new flow: service_lb -> isolation -> snat -> record) -> NAT -> route.
// `in.src_segment` is the sender's segment (0: a host, or outside);
// `in.tunnel` says which host sent a packet that came by the overlay.
Verdict Pipeline::Process(rte_mbuf* m, const Pending& in, const HostTables& t, uint64_t now_ns) {
  if (in.p.icmp_error) return IcmpError(m, in, t, now_ns);
  // conntrack: an established flow is translated as it was and not judged again.
  const lb::ConntrackShard::Hit hit =
      conntrack_->Lookup(in.p.ip.key, in.hash, now_ns, in.flow_guess);
  if (!hit.found()) return FirstPacket(m, in, t, now_ns);
  if (lb::Reopens(conntrack_->flow(hit.flow), hit.dir, in.p.tcp_flags)) [[unlikely]] {
    conntrack_->Remove(hit.flow);
    return FirstPacket(m, in, t, now_ns);
  }
  conntrack_->Update(hit.flow, hit.dir, in.p.tcp_flags, now_ns);
  const lb::Flow& flow = conntrack_->flow(hit.flow);
  const auto d = static_cast<size_t>(hit.dir);
  // The other direction's tuple, reversed: Translated(dir).
  if (flow.translated && !lb::RewriteFlowToReverseOf(rte_pktmbuf_mtod(m, uint8_t*), in.p,
                                                     flow.tuple[d ^ 1], flow.rewrite[d])) {
    return Drop(DropReason::kMalformed);
  }
  // route: as resolved for the flow's earlier packets, while the tables stay as they were.
  const uint32_t daddr = Be32(flow.tuple[d ^ 1].src);  // Translated(dir).dst
  if (flow.route_version[d] == t.version()) {
    return SendTo(m, daddr, t.destination(flow.route[d]));
  }
  const Tunnel back = hit.dir == lb::CtDir::kReply ? Tunnel{flow.service, flow.backend} : Tunnel{};
  uint32_t resolved;
  const Verdict v = Route(m, daddr, back, t, &resolved);
  if (resolved != kNoDestination) conntrack_->SetRoute(hit.flow, hit.dir, t.version(), resolved);
  return v;
}

Verdict Pipeline::FirstPacket(rte_mbuf* m, const Pending& in, const HostTables& t,
                              uint64_t now_ns) {
  uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
  const lb::ParsedPacket& p = in.p;
  const Origin origin = in.origin;
  const Tunnel tunnel = in.tunnel;
  const lb::FlowKey& key = p.ip.key;
  // A packet of a flow another worker recorded.
  if (uint16_t owner; OwnedElsewhere(key, in, &owner)) return HandOff(m, in, owner, true);

  // service_lb
  const ServiceEntry* svc = nullptr;
  uint16_t chosen = 0;
  if (origin != Origin::kUplink && stats_.stateless != 0) {
    if (std::optional<Verdict> v = StatelessReply(m, in, t, now_ns)) return *v;
  }
  if (origin != Origin::kOverlay) {
    svc = in.new_flow ? in.service
                      : t.ServiceOf(Be32(key.dst), key.dst_port, key.proto, ScopeOf(origin));
    if (svc != nullptr) {
      const std::optional<uint16_t> pick = Select(*svc, key, in.maglev_hash, t, now_ns);
      if (!pick) return Drop(DropReason::kNoBackend);
      chosen = *pick;
    } else if (origin == Origin::kUplink) {
      return Go(Next::kHost);  // the host's own traffic
    } else if (t.IsNodeAddress(Be32(key.dst))) {
      // A pod reaching its own host, or answering it (the host reaches its
      // pods through their veths, outside the dataplane): to the host stack,
      // from the pod's own address, addressed to the exception path's MAC.
      SetMacs(rte_pktmbuf_mtod(m, uint8_t*), config_.uplink_mac, config_.router_mac);
      return Go(Next::kHost);
    }
  }

  // Record the flow, on the worker that owns its reply tuple. Two flows never
  // share a reply tuple, or their replies could not be told apart: a service
  // flow whose tuple is taken tries the service's next backend, as lb::Worker
  // does, judged by isolation as the first; up to kMaxBackendTries of them.
  uint32_t flow = lb::ConntrackShard::kNoFlow;
  lb::FlowKey to;
  ServiceBackend backend;
  for (uint16_t tried = in.tried;; ++tried) {
    // The backend `tried` places after the chosen one, dividing only when
    // that wraps: a division is some 20 cycles on a new flow's critical path.
    uint32_t index = uint32_t{chosen} + tried;
    if (svc != nullptr && index >= svc->eligible_count) index %= svc->eligible_count;
    backend = svc == nullptr ? ServiceBackend{} : ServiceBackend{svc, static_cast<uint16_t>(index)};
    if (const std::optional<DropReason> refused = Destine(in, backend, t, &to)) {
      return Drop(*refused);
    }
    if (!(to.src == key.src) && key.proto != lb::IpProto::kIcmp) {  // snat: a port too
      to.src_port = SnatPort(to, key.src, now_ns);
      if (to.src_port == 0) return Drop(DropReason::kNatExhausted);
    }
    const lb::FlowKey reply = to.Reversed();
    if (!Owns(reply)) return HandOff(m, in, OwnerOf(reply, config_.workers), true, tried);
    if (!(config_.owners != nullptr && config_.owners->Find(reply))) {
      flow =
          conntrack_->Insert(key, in.hash, reply, p.tcp_flags, now_ns, tunnel.underlay, tunnel.vni);
      if (flow != lb::ConntrackShard::kNoFlow) {
        // Its original direction is steered to another worker: tell it where the flow is.
        if (!Owns(key) && !config_.owners->Set(key, config_.worker)) {
          conntrack_->Remove(flow);
          return Drop(DropReason::kHandoffFull);
        }
        ++stats_.new_flows;
        break;
      }
    }
    if (!ReplyTaken(reply)) {  // no room: forward statelessly, if nothing needs undoing
      if (!(to.src == key.src)) return Drop(DropReason::kNatExhausted);
      flow = lb::ConntrackShard::kNoFlow;
      ++stats_.stateless;
      last_stateless_ns_ = now_ns;
      break;
    }
    if (svc == nullptr || tried + 1u >= svc->eligible_count || tried + 1u >= kMaxBackendTries) {
      return Drop(DropReason::kNatExhausted);
    }
  }
  if (!(to == key)) {
    // A recorded flow's rewrite sums serve its first packet as they serve its hits.
    const bool rewritten =
        flow != lb::ConntrackShard::kNoFlow
            ? lb::RewriteFlowToReverseOf(frame, p, conntrack_->flow(flow).tuple[1],
                                         conntrack_->flow(flow).rewrite[0])
            : lb::RewriteFlow(frame, p, to);
    if (!rewritten) return Drop(DropReason::kMalformed);
  }
  // route: to a backend whose destination the tables resolved, or as Route finds it.
  uint32_t resolved =
      backend.service == nullptr ? kNoDestination : backend.service->destination(backend.index);
  const Verdict v = resolved != kNoDestination ? SendTo(m, Be32(to.dst), t.destination(resolved))
                                               : Route(m, Be32(to.dst), Tunnel{}, t, &resolved);
  if (flow != lb::ConntrackShard::kNoFlow && resolved != kNoDestination) {
    conntrack_->SetRoute(flow, lb::CtDir::kOriginal, t.version(), resolved);
  }
  return v;
}

std::optional<Verdict> Pipeline::StatelessReply(rte_mbuf* m, const Pending& in, const HostTables& t,
                                                uint64_t now_ns) {
  if (now_ns - last_stateless_ns_ > kStatelessReplyWindowNs) return std::nullopt;
  const lb::FlowKey& key = in.p.ip.key;
  const std::optional<lb::Endpoint> frontend =
      t.services().ReverseLookup(key.src, key.src_port, key.proto);
  if (!frontend) return std::nullopt;
  lb::FlowKey to = key;
  to.src = frontend->addr;
  to.src_port = frontend->port;
  if (!lb::RewriteFlow(rte_pktmbuf_mtod(m, uint8_t*), in.p, to)) {
    return Drop(DropReason::kMalformed);
  }
  ++stats_.stateless_replies;
  return Route(m, Be32(to.dst), Tunnel{}, t);
}

std::optional<DropReason> Pipeline::Destine(const Pending& in, ServiceBackend to,
                                            const HostTables& t, lb::FlowKey* out) const {
  const lb::FlowKey& key = in.p.ip.key;
  *out = key;
  if (to.service != nullptr) {
    const lb::Endpoint backend = to.service->backend(to.index);
    out->dst = backend.addr;
    out->dst_port = backend.port;
    if (in.origin == Origin::kUplink) {
      // An external frontend admits its clients (no isolation to judge);
      // with policy Cluster the source becomes this node, so that replies
      // come back through it.
      if (!to.service->keeps_source) out->src = FromBe32(t.node_addr());
      return std::nullopt;
    }
    if (out->dst == key.src) {
      // Hairpin: a pod reaching itself through a service would see its own
      // address as the source, which its stack drops: it sees the gateway.
      if (const SegmentEntry* seg = t.SegmentOf(Be32(key.src))) out->src = FromBe32(seg->gateway);
    }
  }
  // isolation, on the final destination
  const SegmentEntry* dst_segment = t.SegmentOf(Be32(out->dst));
  if (!t.IsolationAllows(in.src_segment, dst_segment)) return DropReason::kIsolated;
  if (in.origin == Origin::kOverlay) {
    // Another host sends only to pods of this one, in the segment of the VNI.
    const PodEntry* pod = t.PodByAddr(Be32(out->dst));
    if (pod == nullptr) return DropReason::kNoRoute;
    if (pod->segment != in.tunnel.vni) return DropReason::kVniMismatch;
  } else if (dst_segment == nullptr && in.origin == Origin::kPod) {
    // snat: leaving the cluster as the namespace's egress IP or the node.
    const SegmentEntry* seg = t.SegmentOf(Be32(key.src));
    out->src = FromBe32(seg && seg->egress ? seg->egress : t.node_addr());
  }
  return std::nullopt;
}

uint16_t Pipeline::SelectSticky(const ServiceEntry& svc, const lb::FlowKey& key,
                                uint32_t maglev_hash, const HostTables& t, uint64_t now_ns) {
  const lb::Service& service = t.ServiceAt(svc);
  rte_spinlock_lock(&affinity_->lock);
  std::optional<uint16_t> index = affinity_->table.Lookup(service, key.src, now_ns);
  if (!index) {
    index = svc.MaglevPick(maglev_hash);
    affinity_->table.Record(service, key.src, *index, now_ns);
  }
  rte_spinlock_unlock(&affinity_->lock);
  return *index;
}

// The flow's own port when its reply tuple is free (and this worker's), else
// a few hashed tries in the ephemeral range (IANA 49152-65535, RFC 6335
// section 6), as the eBPF programs choose. The replies then come to this
// worker by themselves, as in DPVS and VPP's NAT, which pick the port for
// the queue RSS will steer the replies to.
uint16_t Pipeline::SnatPort(const lb::FlowKey& to, const lb::IpAddr& client,
                            uint64_t now_ns) const {
  lb::FlowKey reply = to.Reversed();
  if (Owns(reply) && !ReplyTaken(reply)) return to.src_port;
  // From the original source, so that clients sharing a source port (one
  // burst, one clock reading) do not try the same ports in the same order.
  // With several workers, about one port in `workers` has a reply tuple this
  // one owns: as many more tries.
  uint32_t h = Be32(client) ^ (uint32_t{to.src_port} << 16) ^ static_cast<uint32_t>(now_ns);
  for (int i = 0; i < 8 * config_.workers; ++i) {
    h = h * 2654435761u + 0x9e3779b9u;
    reply.dst_port = static_cast<uint16_t>(49152 + (h >> 16) % 16384);
    if (Owns(reply) && !ReplyTaken(reply)) return reply.dst_port;
  }
  return 0;
}

// An ICMP error about a flow conntrack knows is translated as the flow was
// (RFC 5508 section 6) and follows the flow's reply; any other is routed as it is.
Verdict Pipeline::IcmpError(rte_mbuf* m, const Pending& in, const HostTables& t, uint64_t now_ns) {
  uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
  const lb::ParsedPacket& p = in.p;
  const lb::FlowKey back = p.inner.key.Reversed();
  const lb::ConntrackShard::Hit hit = conntrack_->Lookup(back, conntrack_->Hash(back), now_ns);
  if (hit.found() && p.inner.has_l4) {
    const lb::Flow& flow = conntrack_->flow(hit.flow);
    // The quote was translated in the other direction: restore it as it was sent.
    const lb::FlowKey& quoted_to = flow.tuple[hit.dir == lb::CtDir::kOriginal ? 1 : 0];
    // The outer source is the far endpoint itself or a router on the way;
    // only the endpoint's address is translated.
    const lb::IpAddr outer_src = p.ip.key.src == p.inner.key.dst ? quoted_to.dst : p.ip.key.src;
    if (!(quoted_to == p.inner.key) &&
        !lb::RewriteIcmpError(frame, p, quoted_to, outer_src, quoted_to.src)) {
      return Drop(DropReason::kMalformed);
    }
    const Tunnel tunnel =
        hit.dir == lb::CtDir::kReply ? Tunnel{flow.service, flow.backend} : Tunnel{};
    return Route(m, Be32(quoted_to.src), tunnel, t);
  }
  if (uint16_t owner; OwnedElsewhere(back, in, &owner)) return HandOff(m, in, owner, true);
  if (in.origin == Origin::kUplink) return Go(Next::kHost);
  const uint32_t daddr = Be32(p.ip.key.dst);
  if (!t.IsolationAllows(in.src_segment, t.SegmentOf(daddr))) return Drop(DropReason::kIsolated);
  if (in.origin == Origin::kOverlay && t.PodByAddr(daddr) == nullptr) {
    return Drop(DropReason::kNoRoute);
  }
  return Route(m, daddr, Tunnel{}, t);
}

// route: a packet already translated, to `daddr`: a local pod, a remote block,
// back through the tunnel its flow came from, or out of the cluster.
Verdict Pipeline::Route(rte_mbuf* m, uint32_t daddr, Tunnel tunnel, const HostTables& t,
                        uint32_t* resolved) {
  if (resolved != nullptr) *resolved = kNoDestination;
  if (const PodEntry* pod = t.PodByAddr(daddr)) {  // deliver
    if (resolved != nullptr) *resolved = pod->destination;
    return SendTo(m, daddr, t.destination(pod->destination));
  }
  if (const RemoteBlock* remote = t.RemoteBlockOf(daddr)) {
    if (remote->destination == kNoDestination) {  // its next hop is not resolved yet
      return Encap(m, daddr, Tunnel{remote->underlay, remote->vni}, t);
    }
    if (resolved != nullptr) *resolved = remote->destination;
    return SendTo(m, daddr, t.destination(remote->destination));
  }
  if (tunnel.underlay != 0) return Encap(m, daddr, tunnel, t);
  if (t.SegmentOf(daddr) != nullptr) return Drop(DropReason::kNoRoute);
  // Out of the cluster, through the host's next hop on the underlay.
  uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
  const uint32_t next_hop = t.NextHop(daddr);
  if (next_hop == 0) return Drop(DropReason::kFib);
  const lb::MacAddr* mac = MacOf(next_hop, t);
  if (mac == nullptr) return Drop(DropReason::kNoNeighbour);
  SetMacs(frame, *mac, config_.uplink_mac);
  return Go(Next::kUplink);
}

Verdict Pipeline::SendTo(rte_mbuf* m, uint32_t daddr, const Destination& to) {
  if (to.kind == Destination::Kind::kEncap) return EncapWith(m, daddr, to.outer);
  SetMacs(rte_pktmbuf_mtod(m, uint8_t*), to.mac, config_.router_mac);
  return Go(Next::kPod, to.port);
}

const lb::MacAddr* Pipeline::MacOf(uint32_t addr, const HostTables& t) {
  if (const lb::MacAddr* mac = t.NeighbourOf(addr)) return mac;
  if (config_.resolve != nullptr) {
    rte_ring_enqueue(config_.resolve, reinterpret_cast<void*>(static_cast<uintptr_t>(addr)));
  }
  return nullptr;
}

Verdict Pipeline::Encap(rte_mbuf* m, uint32_t daddr, Tunnel to, const HostTables& t) {
  // Until the next hop is resolved the frame is flooded on the underlay
  // segment, where every other host's dataplane drops what is not addressed
  // to its node.
  static constexpr lb::MacAddr kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const uint32_t next_hop = t.NextHop(to.underlay);
  const lb::MacAddr* neighbour = MacOf(next_hop != 0 ? next_hop : to.underlay, t);
  return EncapWith(
      m, daddr,
      MakeOuterHeaders(neighbour ? *neighbour : kBroadcast, t.node_addr(), to.underlay, to.vni));
}

// encap: RFC 7348's headers in front of the frame, which becomes the inner
// frame addressed to the pod; the same bytes the eBPF programs write.
Verdict Pipeline::EncapWith(rte_mbuf* m, uint32_t daddr, const OuterHeaders& outer) {
  if (rte_pktmbuf_data_len(m) < kEthLen + kIpv4Len + 4) return Drop(DropReason::kMalformed);
  uint8_t* inner = rte_pktmbuf_mtod(m, uint8_t*);
  SetMacs(inner, PodMac(FromBe32(daddr)), config_.router_mac);
  // The outer source port spreads flows over the underlay's paths (RFC 7348
  // section 5): a hash of the inner addresses and the first four bytes after
  // a 20-byte header (the ports), as the eBPF programs compute it.
  const uint8_t* ip = inner + kEthLen;
  uint32_t hash = LoadNative32(ip + 12) ^ LoadNative32(ip + 16) ^ LoadNative32(ip + kIpv4Len);
  hash ^= hash >> 16;

  uint8_t* h = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, kVxlanOverhead));
  if (h == nullptr) return Drop(DropReason::kMalformed);  // no headroom
  std::memcpy(h, outer.data(), kVxlanOverhead);
  std::memcpy(h + 6, config_.uplink_mac.data(), 6);
  // The frame's own fields: the lengths, to the end of the inner frame, with
  // the IPv4 checksum made over a zero length updated (RFC 1624), and the port.
  uint8_t* oip = h + kEthLen;
  const size_t outer_ip_len = rte_pktmbuf_pkt_len(m) - kEthLen;
  const uint16_t len_word = htons(static_cast<uint16_t>(outer_ip_len));
  uint16_t sum;
  std::memcpy(&sum, oip + 10, 2);
  sum = lb::ChecksumReplace16(sum, 0, len_word);
  std::memcpy(oip + 2, &len_word, 2);
  std::memcpy(oip + 10, &sum, 2);
  uint8_t* udp = oip + kIpv4Len;
  Store16(udp, static_cast<uint16_t>(49152 | (hash & 0x3fff)));
  Store16(udp + 4, static_cast<uint16_t>(outer_ip_len - kIpv4Len));
  return Go(Next::kUplink);
}

}  // namespace atl::dataplane::dpdk
