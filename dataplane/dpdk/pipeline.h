// The DPDK dataplane's packet path, one instance per worker core (DESIGN.md
// "Dataplane pipeline", the stages named as in dataplane/ebpf/):
//   from a pod:      parse -> spoof_check -> conntrack -> service_lb -> isolation
//                    -> route -> (encap | deliver | snat)
//   from the uplink: decap (VXLAN to this node) -> conntrack -> isolation -> deliver,
//                    or parse -> service_lb -> conntrack -> route (NodePort)
// It reads a HostTables the control thread publishes and owns its conntrack
// shard: nothing allocated per packet. Frames are rewritten in place in their
// mbufs (VXLAN in the headroom).
//
// Several workers: the stages before conntrack need only the tables and run
// on the worker that received the frame; conntrack onwards runs on the
// worker that owns the tuple, OwnerOf(tuple), to which the frame is handed
// over (Next::kHandoff). OwnerOf is symmetric, so a flow's two directions
// come to one worker unless NAT changed the tuple. A flow is recorded by the
// worker that owns its reply tuple, the only one that can tell whether
// another flow holds that tuple already (two flows must never share one):
// SNAT picks a port whose reply tuple this worker owns, and a DNAT'd flow's
// first packet is handed to its reply tuple's owner. When the original
// tuple hashes elsewhere, FlowOwners says where the flow is.
#pragma once

#include <rte_spinlock.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/dpdk/flow_owners.h"
#include "dataplane/dpdk/host_tables.h"
#include "lb/affinity.h"
#include "lb/conntrack.h"
#include "lb/packet.h"

struct rte_mbuf;
struct rte_ring;

namespace atl::dataplane::dpdk {

// One counter each; the names are the eBPF backend's (EbpfDataplane::Drops).
enum class DropReason : uint8_t {
  kMalformed,     // truncated or inconsistent headers
  kUnsupported,   // not IPv4 or ARP
  kUnknownPort,   // from a port that is no pod's
  kSpoofed,       // source MAC or address not the pod's own
  kFragment,      // a non-first IPv4 fragment: no ports to balance on
  kNoBackend,     // a service with no eligible backend
  kIsolated,      // an isolated segment refused the source
  kNoRoute,       // destination in a segment but on no host
  kVniMismatch,   // overlay packet whose VNI is not its pod's segment
  kNatExhausted,  // no free source port for SNAT, or no backend leaves a free reply tuple
  kFib,           // leaving the cluster, but the host has no route there
  kNoNeighbour,   // leaving the cluster to a next hop whose MAC is being resolved
  kTxFull,        // the output port's queue was full
  kNoHostPath,    // for the host, but the dataplane has no exception path
  kNoUplink,      // for the underlay, but the dataplane has no uplink
  kHandoffFull,   // the flow's worker had no room: its queue, or the flow owners table
  kCount,
};
const char* DropReasonName(DropReason reason);

// Where a frame goes once the pipeline is done with it.
enum class Next : uint8_t {
  kDrop,
  kHost,     // the exception path: the host's own stack, untouched
  kPod,      // Verdict::port, a local pod
  kUplink,   // the underlay: VXLAN to another host, or out of the cluster
  kBack,     // out of the port it came in on (an ARP answer)
  kHandoff,  // to worker Verdict::port, which owns the flow (RunHandedOff)
};

struct Verdict {
  Next next = Next::kDrop;
  DropReason drop = DropReason::kMalformed;  // for kDrop
  uint16_t port = kNoPort;                   // for kPod; the worker for kHandoff
};

// Session affinity shared by the workers: a client's flows to a sticky
// service are spread over workers like any others, and must all find the
// client's backend. Touched only by new flows of sticky services.
struct SharedAffinity {
  explicit SharedAffinity(uint32_t entries) : table(entries) {}
  rte_spinlock_t lock = RTE_SPINLOCK_INITIALIZER;
  lb::AffinityTable table;
};

struct PipelineConfig {
  uint32_t conntrack_flows = 1 << 18;
  uint32_t affinity_entries = 1 << 16;
  lb::MacAddr router_mac = kRouterMac;
  // Source of the frames this host puts on the underlay, and the exception
  // path's own MAC (DpdkDataplane::ForHost gives the TAP the uplink's).
  lb::MacAddr uplink_mac{};
  // Where the pipeline asks for MACs it needed and the host's neighbour table
  // lacked: IPv4 addresses (network order) as pointer values, for the control
  // thread to have the kernel resolve. Full: the request is dropped; the next
  // packet asks again.
  rte_ring* resolve = nullptr;
  // This pipeline is worker `worker` of `workers`. With more than one, flows
  // are steered to OwnerOf and `owners` and `affinity` are shared (neither
  // is needed with one worker).
  uint16_t worker = 0;
  uint16_t workers = 1;
  FlowOwners* owners = nullptr;
  SharedAffinity* affinity = nullptr;
};

struct PipelineStats {
  uint64_t packets = 0;
  uint64_t new_flows = 0;
  // New flows forwarded without a conntrack entry because the shard was full
  // (lb::ConntrackShard's fallback): Maglev's choice still holds. Only a
  // flow whose source stays is: a translated source cannot be undone
  // without the entry, so such a flow is dropped (nat-exhausted).
  uint64_t stateless = 0;
  // Replies of such flows from their backends, given their frontend's
  // address without an entry (lb::ServiceTable::ReverseLookup).
  uint64_t stateless_replies = 0;
  // Frames handed to the worker that owns their flow.
  uint64_t handed_off = 0;
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> drops{};
};

class Pipeline {
 public:
  static absl::StatusOr<std::unique_ptr<Pipeline>> Create(const PipelineConfig& config);
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  static constexpr uint16_t kMaxBurst = 64;

  // The pipeline over a burst of `n` (at most kMaxBurst) frames received on
  // DPDK port `in_port`: from a pod (kind kPod) or from the underlay (kind
  // kUplink). out[i] says where pkts[i] goes, rewritten in place.
  void Run(Next kind, uint16_t in_port, rte_mbuf** pkts, uint16_t n, const HostTables& t,
           uint64_t now_ns, Verdict* out);
  // The same for frames another worker handed over (Next::kHandoff): they
  // pick up where they left, at conntrack.
  void RunHandedOff(rte_mbuf** pkts, uint16_t n, const HostTables& t, uint64_t now_ns,
                    Verdict* out);

  // The worker, of `workers`, that owns the flow of a packet with tuple
  // `key`; the same for the tuple and its reverse.
  static uint16_t OwnerOf(const lb::FlowKey& key, uint16_t workers);

  // Counts a drop decided outside the pipeline (a full TX queue).
  void CountDrop(DropReason reason) { ++stats_.drops[static_cast<size_t>(reason)]; }
  // Between bursts: removes up to `budget` expired conntrack entries.
  void ExpireSome(uint64_t now_ns, uint32_t budget) { conntrack_->ExpireSome(now_ns, budget); }
  // Between bursts: the next `budget` records of a walk over the conntrack
  // shard, removing the flows with an end in `addrs` (pods that left, or
  // addresses new pods take). A flow's ends are its initiator, tuple[0].src,
  // and its responder after any DNAT, tuple[1].src.
  void RemoveFlowsOf(const std::vector<lb::IpAddr>& addrs, uint32_t budget) {
    conntrack_->RemoveSome(
        [&](const lb::Flow& f) {
          for (const lb::IpAddr& a : addrs) {
            if (f.tuple[0].src == a || f.tuple[1].src == a) return true;
          }
          return false;
        },
        budget);
  }

  const PipelineStats& stats() const { return stats_; }
  const lb::ConntrackShard& conntrack() const { return *conntrack_; }

 private:
  enum class Origin : uint8_t { kPod, kOverlay, kUplink };
  // The frontends a new flow of this origin may reach (none from the overlay).
  static lb::Scope ScopeOf(Origin origin) {
    return origin == Origin::kPod ? lb::Scope::kInternal : lb::Scope::kExternal;
  }
  // A flow that came in through the overlay remembers where from, so that
  // its replies go back there when no route names the destination (another
  // host's NodePort SNAT source). Kept in lb::Flow's opaque fields.
  struct Tunnel {
    uint32_t underlay = 0;  // network order; 0: none
    uint32_t vni = 0;
  };
  // What a frame handed to another worker carries with it (an mbuf dynamic
  // field): what the stages before conntrack found, which the frame's bytes
  // no longer show (the outer headers are gone) or cannot (the port).
  struct Handoff {
    Tunnel tunnel;
    uint32_t src_segment = 0;
    Origin origin = Origin::kPod;
    // Sent on by the flow owners table, or by a worker that looked there:
    // the next worker does not look again.
    bool redirected = false;
    // A new service flow handed to its reply tuple's owner: how many of the
    // service's backends, from the chosen one on, were tried already.
    uint16_t tried = 0;
  };

  Pipeline(const PipelineConfig& config, std::unique_ptr<lb::ConntrackShard> conntrack);

  Verdict Drop(DropReason reason) {
    ++stats_.drops[static_cast<size_t>(reason)];
    return {Next::kDrop, reason, kNoPort};
  }
  // A frame between parse and conntrack: what it would carry to another
  // worker, and what that worker finds again by parsing it.
  struct Pending : Handoff {
    lb::ParsedPacket p;
    // p.ip.key's hashes, from the first pass's end (FirstPassDone):
    // conntrack's, and Maglev's (lb::FlowHash with lb::kMaglevSeed).
    uint32_t hash = 0;
    uint32_t maglev_hash = 0;
    // Set before the second pass (but not for ICMP errors): conntrack's guess
    // of the frame's flow, for its Lookup.
    uint32_t flow_guess = lb::ConntrackShard::kNoGuess;
    // What PrefetchFlows found for a frame it took for a new flow, so that
    // FirstPacket need not look again (`new_flow` says which frames): the
    // service its destination is (nullptr: none). Not the reply tuple's
    // conntrack hash: kept here with what it was computed for, it saved
    // Insert's hash but its stores and check cost most of that back (1 %
    // fewer instructions net, no gain this host could time; perf/RESULTS.md,
    // 2026-11-24).
    bool new_flow = false;
    const ServiceEntry* service = nullptr;
  };

  // The worker owning the flow of a parsed frame (an ICMP error's: the flow it quotes).
  uint16_t Owner(const lb::ParsedPacket& p) const {
    return OwnerOf(p.icmp_error ? p.inner.key : p.ip.key, config_.workers);
  }
  // Hands `m` to `worker` with what `in` knew of it.
  Verdict HandOff(rte_mbuf* m, const Pending& in, uint16_t worker, bool redirected,
                  uint16_t tried = 0);
  // The frames' data start loading this many frames before the first pass
  // parses them.
  static constexpr uint16_t kAhead = 3;
  // Starts loading the mbufs' first lines, where each frame's data is found.
  static void PrefetchFrames(rte_mbuf* const* pkts, uint16_t n);
  // The first pass's end for frame i of n: decided (its verdict is in
  // `out`), or ready for the second. At every eighth frame, and the last,
  // the eight are hashed together and the ready ones' conntrack slots start loading.
  [[gnu::always_inline]] inline void FirstPassDone(uint16_t i, uint16_t n, bool ready);
  // Before the second pass: guesses each ready frame's flow from its
  // conntrack slot, which starts loading the flow's record, and starts
  // loading what the new flows among them will read; decides nothing (what
  // it finds for a new flow is in its Pending, for FirstPacket).
  void PrefetchFlows(uint16_t n, const HostTables& t);
  // The second pass: the stages from conntrack on, for the frames whose ready_[i] is set.
  void ProcessReady(rte_mbuf** pkts, uint16_t n, const HostTables& t, uint64_t now_ns,
                    Verdict* out);
  // Whether another worker than this one recorded a flow whose original
  // tuple is `key`, and `in` has not been sent on by it already; if so,
  // which, in `owner`. Inline: with one worker, the first test answers, and
  // a call would cost every new flow more than the test. A bool, not an
  // optional: GCC built that on the stack a byte at a time and read it back
  // whole, a stalled load on every new flow (perf/RESULTS.md, 2026-11-24).
  bool OwnedElsewhere(const lb::FlowKey& key, const Pending& in, uint16_t* owner) const {
    if (config_.owners == nullptr || in.redirected) return false;
    const std::optional<uint16_t> recorded = RecordedElsewhere(key);
    if (recorded) *owner = *recorded;
    return recorded.has_value();
  }
  std::optional<uint16_t> RecordedElsewhere(const lb::FlowKey& key) const;
  // Whether a flow holds `reply` as either of its tuples. Only the worker
  // that owns `reply` can tell (see "Several workers" above).
  bool ReplyTaken(const lb::FlowKey& reply) const;
  bool Owns(const lb::FlowKey& key) const {
    return config_.workers == 1 || OwnerOf(key, config_.workers) == config_.worker;
  }
  // lb::ConntrackShard::OnRemove: a flow that goes takes its owners entry with it.
  static void Forget(void* self, const lb::Flow& flow);
  // The stages up to parse (the first pass). True: the frame goes on to
  // conntrack, with `out` filled for Process; false: `*v` says where it goes.
  // Not a std::optional<Verdict>: returned through the stack, one is written
  // with narrow stores and read back wide, a store-forwarding stall on every
  // frame (about 5 % of a conntrack hit's time).
  bool FromPod(rte_mbuf* m, uint16_t in_port, const HostTables& t, Pending* out, Verdict* v);
  bool FromUplink(rte_mbuf* m, const HostTables& t, Pending* out, Verdict* v);
  bool Decap(rte_mbuf* m, const HostTables& t, Pending* out, Verdict* v);
  // Inline in each of its callers: a call of its own costs a hit about 25 instructions.
  [[gnu::always_inline]] inline bool Parse(rte_mbuf* m, Origin origin, uint32_t src_segment,
                                           Tunnel tunnel, Pending* out, Verdict* v);
  // A first-pass stage's end for a frame it decided.
  static bool Decided(Verdict* v, Verdict verdict) {
    *v = verdict;
    return false;
  }
  Verdict AnswerArp(rte_mbuf* m, const PodEntry& port);
  // conntrack onwards.
  Verdict Process(rte_mbuf* m, const Pending& in, const HostTables& t, uint64_t now_ns);
  // Process for a packet conntrack has no flow of: a flow of another worker,
  // or a new one (service_lb -> isolation -> snat -> record).
  Verdict FirstPacket(rte_mbuf* m, const Pending& in, const HostTables& t, uint64_t now_ns);
  Verdict IcmpError(rte_mbuf* m, const Pending& in, const HostTables& t, uint64_t now_ns);
  // A packet without a flow from a backend of a frontend, while new flows
  // go without entries (a full shard): the reply of one of them, sent on
  // with the frontend's address as its source (lb::Worker::StatelessReply);
  // nullopt when it is not one.
  std::optional<Verdict> StatelessReply(rte_mbuf* m, const Pending& in, const HostTables& t,
                                        uint64_t now_ns);
  // How long after the last flow that went without an entry its replies are
  // looked for (lb::Worker's).
  static constexpr uint64_t kStatelessReplyWindowNs = 120'000'000'000;
  // service_lb for a new flow of `svc`: the backend index, or nullopt (no
  // backend). Inline but for session affinity, which few services ask for.
  std::optional<uint16_t> Select(const ServiceEntry& svc, const lb::FlowKey& key,
                                 uint32_t maglev_hash, const HostTables& t, uint64_t now_ns) {
    if (!svc.has_backend()) return std::nullopt;
    if (!svc.sticky) return svc.MaglevPick(maglev_hash);
    return SelectSticky(svc, key, maglev_hash, t, now_ns);
  }
  uint16_t SelectSticky(const ServiceEntry& svc, const lb::FlowKey& key, uint32_t maglev_hash,
                        const HostTables& t, uint64_t now_ns);
  // The most backends a new flow tries when their reply tuples are taken: as
  // many as the eBPF programs (ATL_MAX_BACKEND_TRIES), whose verifier wants a bound.
  static constexpr uint16_t kMaxBackendTries = 16;
  // One of a service's backends, by its index among the eligible ones; no
  // service: a flow to its own destination.
  struct ServiceBackend {
    const ServiceEntry* service = nullptr;
    uint16_t index = 0;
  };
  // service_lb's translation of a new flow's frame to `to`, then isolation
  // and snat's address: the tuple it goes on as (`*out`, its source port not
  // chosen yet), or the reason it is dropped. Inline in FirstPacket, its one
  // caller: a call costs every new flow some 20 instructions.
  [[gnu::always_inline]] inline std::optional<DropReason> Destine(const Pending& in,
                                                                  ServiceBackend to,
                                                                  const HostTables& t,
                                                                  lb::FlowKey* out) const;
  // A source port for SNAT to `to.src` whose reply tuple this worker owns and
  // no flow holds; 0: none. `client` is the flow's original source.
  uint16_t SnatPort(const lb::FlowKey& to, const lb::IpAddr& client, uint64_t now_ns) const;
  // route. `*resolved`, when asked for, is the tables' destination the packet
  // went to, for its flow to keep, or kNoDestination when they have none for it.
  Verdict Route(rte_mbuf* m, uint32_t daddr, Tunnel tunnel, const HostTables& t,
                uint32_t* resolved = nullptr);
  // A packet to `daddr` to a destination resolved in advance.
  Verdict SendTo(rte_mbuf* m, uint32_t daddr, const Destination& to);
  // encap, with outer headers made for this packet, or made in advance.
  Verdict Encap(rte_mbuf* m, uint32_t daddr, Tunnel to, const HostTables& t);
  Verdict EncapWith(rte_mbuf* m, uint32_t daddr, const OuterHeaders& outer);
  // The MAC of `addr` (a next hop on the underlay); nullptr, and a
  // resolution asked for, when the host has not resolved it yet.
  const lb::MacAddr* MacOf(uint32_t addr, const HostTables& t);

  PipelineConfig config_;
  std::unique_ptr<lb::ConntrackShard> conntrack_;
  std::unique_ptr<SharedAffinity> own_affinity_;  // unless config_.affinity
  SharedAffinity* affinity_;
  PipelineStats stats_;
  uint64_t last_stateless_ns_ = 0;  // when a new flow last went without an entry
  // Run's scratch, kept here so that a burst constructs nothing.
  Pending pending_[kMaxBurst];
  bool ready_[kMaxBurst];
};

}  // namespace atl::dataplane::dpdk
