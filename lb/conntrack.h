// Connection tracking: one record per flow, found from either direction.
//
// A shard has a fixed capacity chosen at start and is used by one thread (a
// worker core) without locks; a dataplane keeps one shard per worker and
// steers each flow to one worker. Nothing is allocated after Create().
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "lb/conntrack_timeouts.h"
#include "lb/flow_hash.h"
#include "lb/hash_index.h"
#include "lb/nat.h"
#include "lb/net.h"
#include "lb/packet.h"
#include "lb/prefetch.h"
#include "lb/table_memory.h"

namespace atl::lb {

// TCP states are just those needed for the right timeout (RFC 9293 section 3.3.2
// collapsed: who sent SYN, SYN-ACK and FIN is all that matters here).
enum class CtState : uint8_t {
  kSynSent,      // SYN from the original side
  kSynRecv,      // SYN-ACK from the reply side
  kEstablished,  // the handshake completed, or the flow was picked up mid-stream
  kFinWait,      // one side sent FIN
  kTimeWait,     // both sides sent FIN
  kClosed,       // RST
  kUnreplied,    // UDP, ICMP and others: no reply yet
  kReplied,      // ... a reply was seen
};
const char* CtStateName(CtState state);
// A handshake or a request still waiting for its answer.
inline bool IsEmbryonic(CtState s) {
  return s == CtState::kSynSent || s == CtState::kSynRecv || s == CtState::kUnreplied;
}

enum class CtDir : uint8_t { kOriginal = 0, kReply = 1 };

struct ConntrackConfig {
  uint32_t max_flows = 1 << 20;
  // The index's FlowHash seed; 0: one drawn at random by Create. A seed
  // nobody outside knows, as Linux's conntrack draws (nf_conntrack_hash_rnd):
  // with a fixed one, a sender could pick tuples that all land in one run of
  // the index and make every lookup walk it.
  uint32_t hash_seed = 0;
  // Timeouts in seconds; the defaults are every backend's (conntrack_timeouts.h).
  uint32_t tcp_syn_s = ATL_CT_TCP_SYN_S;
  uint32_t tcp_established_s = ATL_CT_TCP_ESTABLISHED_S;
  uint32_t tcp_fin_wait_s = ATL_CT_TCP_FIN_WAIT_S;
  uint32_t tcp_closing_s = ATL_CT_TCP_CLOSING_S;  // both FINs, or a RST
  uint32_t udp_unreplied_s = ATL_CT_UDP_UNREPLIED_S;
  uint32_t udp_replied_s = ATL_CT_UDP_REPLIED_S;
  uint32_t icmp_s = ATL_CT_ICMP_S;
  uint32_t other_s = ATL_CT_OTHER_S;
  // Records examined per insertion into a full table for one to evict.
  uint32_t eviction_scan = 64;
};

struct ConntrackStats {
  uint64_t created = 0;
  uint64_t expired = 0;  // removed after their timeout
  // Removed before their timeout to make room: flows no reply has been seen
  // for (embryonic ones, and TCP picked up mid-stream) and closing ones.
  uint64_t evicted = 0;
  uint64_t full = 0;  // creations refused: the caller fell back to a stateless choice
  // Creations refused because another flow already answers to the reply tuple.
  uint64_t reply_taken = 0;
};

// What a flow is: its two tuples as they appear on the wire. original is the
// first packet's key; reply is the key the replies carry, after any NAT, e.g.
// for a client reaching a service: original = client -> VIP:port,
// reply = backend:port -> client.
struct alignas(64) Flow {
  FlowKey tuple[2];
  uint64_t expires_ns = 0;
  // Opaque to conntrack: the caller's service and backend for this flow.
  uint32_t service = 0;
  uint32_t backend = 0;
  // What each direction's rewrite changes in an IPv4 packet's checksums
  // (lb/nat.h), for a translated IPv4 flow: a hit adds them without comparing.
  Ipv4RewriteSums rewrite[2];
  // Opaque to conntrack: where the caller sent each direction's packets, as
  // it caches it (the DPDK pipeline's resolved destination, and the version
  // of the tables it was resolved in); zero when the flow is recorded.
  uint32_t route[2] = {0, 0};
  uint32_t route_version[2] = {0, 0};
  CtState state = CtState::kUnreplied;
  uint8_t fin_seen = 0;  // bit per direction
  uint8_t seen = 0;      // bit per direction that has carried a packet

  // Whether the flow may go early when the table is full. Only flows that have
  // carried traffic both ways and are not closing are protected: dropping one
  // would cost its client the connection, dropping any other at most a
  // retransmission. Like Linux's "assured" bit, this keeps a flood of stray
  // ACKs (picked up mid-stream, never answered) from pinning the table.
  bool Evictable() const {
    return seen != 3 || state == CtState::kTimeWait || state == CtState::kClosed;
  }
  bool in_use = false;
  // The reply tuple is not the original's reverse: packets are rewritten (NAT).
  bool translated = false;

  // The tuple a packet travelling in `dir` is rewritten to so that it looks
  // like the other side expects: the reverse of the other direction's tuple.
  FlowKey Translated(CtDir dir) const { return tuple[dir == CtDir::kOriginal ? 1 : 0].Reversed(); }
};
// Two cache lines, which the L2's adjacent-line prefetch brings in together.
static_assert(sizeof(Flow) == 128, "a flow record is two cache lines");

// The first packet of a TCP connection: a SYN alone.
inline bool IsOpeningSyn(IpProto proto, uint8_t tcp_flags) {
  return proto == IpProto::kTcp && (tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpSyn;
}
// A TCP connection that is over (both FINs, or a RST). A new connection's
// SYN may take its tuples, as Linux lets a SYN reuse a tuple in TIME_WAIT.
inline bool IsFinished(const Flow& f) {
  return f.tuple[0].proto == IpProto::kTcp &&
         (f.state == CtState::kTimeWait || f.state == CtState::kClosed);
}
// A client recycling the port of a finished connection opens a new one: it
// is balanced afresh, or it would follow the old backend even after that left
// the service, for as long as the client keeps retrying (the IPVS
// connection-reuse problem, kubernetes/kubernetes#81775). Every backend's
// conntrack removes the old flow on such a packet.
inline bool Reopens(const Flow& f, CtDir dir, uint8_t tcp_flags) {
  return dir == CtDir::kOriginal && IsOpeningSyn(f.tuple[0].proto, tcp_flags) && IsFinished(f);
}

class ConntrackShard {
 public:
  static constexpr uint32_t kNoFlow = HashIndex::kNone;

  static absl::StatusOr<std::unique_ptr<ConntrackShard>> Create(const ConntrackConfig& config);
  ConntrackShard(const ConntrackShard&) = delete;
  ConntrackShard& operator=(const ConntrackShard&) = delete;

  // The index's hash of a key, with this shard's seed. Only this process
  // reads it (Maglev's FlowHash must match the eBPF programs'), so an IPv4
  // key hashes as lb::Ipv4TableHash: lookup3's final mix alone, a quarter of
  // a conntrack hit's hashing fewer.
  uint32_t Hash(const FlowKey& key) const {
    if (!key.src.IsV4()) return FlowHash(key, config_.hash_seed);
    const Ipv4Words w = WordsOf(key);
    return Ipv4TableHash(w.src, w.dst, w.ports, w.proto, config_.hash_seed);
  }
  // Hash of eight IPv4 keys at once, `stride` bytes apart from `first`, and
  // alongside, for little more, their FlowHash with `flow_seed` (Maglev's,
  // for a burst's new flows): lb::HashIpv4Keys.
  void HashEight(const FlowKey* first, size_t stride, uint32_t hash[kHashLanes], uint32_t flow_seed,
                 uint32_t flow_hash[kHashLanes]) const {
    HashIpv4Keys(first, stride, config_.hash_seed, hash, flow_seed, flow_hash);
  }
  // Burst callers hash a few packets ahead and prefetch their slots.
  void Prefetch(uint32_t hash) const { index_.Prefetch(hash); }
  // Once the slot is loaded: prefetches the flow it most likely names.
  void PrefetchFlow(uint32_t hash) const {
    const uint32_t ref = index_.HomeRef(hash);
    if (ref != HashIndex::kNone) PrefetchRecord(ref);
  }

  // Once the slot is loaded: the flow a packet of this hash most likely
  // belongs to, from the index alone, with its record prefetched, for
  // Lookup to start from. kNoGuess when no flow has a tuple of this hash: a
  // new flow, unless one is recorded before its Lookup.
  static constexpr uint32_t kNoGuess = HashIndex::kNone;
  uint32_t Guess(uint32_t hash) const {
    const uint32_t ref = index_.FirstOf(hash);
    if (ref != HashIndex::kNone) PrefetchRecord(ref);
    return ref;
  }

  // Before the `nth` next Insert (0 = the very next) of a flow whose reply
  // tuple is `reply`: prefetches the record it will fill and the index slot
  // of the reply tuple, the two lines a creation misses on.
  void PrefetchInsert(const FlowKey& reply, uint32_t nth) const {
    index_.Prefetch(Hash(reply));
    if (nth < free_.size()) lb::Prefetch(&flows_[free_[free_.size() - 1 - nth]]);
  }

  struct Hit {
    uint32_t flow = kNoFlow;
    CtDir dir = CtDir::kOriginal;
    bool found() const { return flow != kNoFlow; }
  };
  // Finds the live flow that `key` belongs to; an expired one is removed and
  // not found. A `guess` from Guess that names it spares the index probe; a
  // wrong or stale one (a flow gone since) costs only a record compare.
  Hit Lookup(const FlowKey& key, uint32_t hash, uint64_t now_ns, uint32_t guess = kNoGuess) {
    // Nearly every packet of a burst: the guess names its live flow. Inline.
    if (guess != kNoGuess) {
      const Flow& f = flows_[guess >> 1];
      if (f.in_use && f.tuple[guess & 1] == key && f.expires_ns > now_ns) {
        return {guess >> 1, static_cast<CtDir>(guess & 1)};
      }
    }
    return Find(key, hash, now_ns);
  }

  // Records a new flow and returns its id, or kNoFlow when the table is full
  // and nothing could be evicted (stats().full counts these) or when the
  // reply tuple already belongs to another flow (stats().reply_taken), unless
  // that flow is over: expired, or a finished TCP connection and this one
  // starts with a SYN (the old flow is removed). `original_hash` is
  // Hash(original), which the caller's Lookup had; `first_tcp_flags` is the
  // first packet's TCP flags (0 for other protocols).
  uint32_t Insert(const FlowKey& original, uint32_t original_hash, const FlowKey& reply,
                  uint8_t first_tcp_flags, uint64_t now_ns, uint32_t service = 0,
                  uint32_t backend = 0);

  // Whether a live or expired-but-not-yet-removed flow owns `key` in either
  // direction. Keys are unique: Insert refuses a reply tuple already taken.
  bool Contains(const FlowKey& key) const { return RefOf(key, Hash(key)) != HashIndex::kNone; }

  // Advances the state for a packet of the flow and extends its lifetime.
  void Update(uint32_t flow, CtDir dir, uint8_t tcp_flags, uint64_t now_ns) {
    Flow& f = flows_[flow];
    // Nearly every packet leaves its flow as it is, and only moves its
    // expiry: a TCP connection established without a FIN yet, in a direction
    // already seen, a packet with none of the flags that move it; or a UDP
    // flow already replied to. Done here as UpdateState would do it, inline
    // and without the timeout's switch.
    if ((f.seen & (1u << static_cast<unsigned>(dir))) != 0 && f.fin_seen == 0) {
      if (f.state == CtState::kEstablished && f.tuple[0].proto == IpProto::kTcp &&
          (tcp_flags & (kTcpSyn | kTcpFin | kTcpRst)) == 0) {
        // Picked up mid-stream and not answered yet: as short-lived as a SYN.
        Refresh(f, now_ns + (f.seen == 3 ? tcp_established_ns_ : tcp_syn_ns_));
        return;
      }
      if (f.state == CtState::kReplied && f.tuple[0].proto == IpProto::kUdp) {
        Refresh(f, now_ns + udp_replied_ns_);
        return;
      }
    }
    UpdateState(f, dir, tcp_flags, now_ns);
  }

  void Remove(uint32_t flow);

  // Caches where packets of the flow going in `dir` are sent (Flow::route).
  void SetRoute(uint32_t flow, CtDir dir, uint32_t version, uint32_t route) {
    const auto d = static_cast<size_t>(dir);
    flows_[flow].route[d] = route;
    flows_[flow].route_version[d] = version;
  }

  // Called with every flow as it goes (removed, expired or evicted), before
  // its record is reused: for a caller that keeps something per flow
  // elsewhere (the DPDK dataplane's table of which worker owns a reply tuple).
  using RemoveHook = void (*)(void* context, const Flow& flow);
  void OnRemove(RemoveHook hook, void* context) {
    on_remove_ = hook;
    on_remove_context_ = context;
  }

  // Examines up to `budget` records, continuing where the last call stopped,
  // and removes the expired ones; returns how many it removed. Workers call it
  // between bursts, so the budget bounds the work, not the removals.
  uint32_t ExpireSome(uint64_t now_ns, uint32_t budget);

  // The same walk for flows that must go before their time (those of a pod
  // that left): examines up to `budget` records, continuing where the last
  // call stopped (a cursor of its own), and removes those `doomed(flow)`
  // names; `capacity()` records make a full pass.
  template <typename Doomed>
  void RemoveSome(Doomed&& doomed, uint32_t budget) {
    for (uint32_t n = 0; n < budget && n < config_.max_flows; ++n) {
      const uint32_t id = remove_cursor_;
      remove_cursor_ = remove_cursor_ + 1 == config_.max_flows ? 0 : remove_cursor_ + 1;
      if (flows_[id].in_use && doomed(static_cast<const Flow&>(flows_[id]))) Remove(id);
    }
  }

  const Flow& flow(uint32_t id) const { return flows_[id]; }
  uint32_t size() const { return live_; }
  uint32_t capacity() const { return config_.max_flows; }
  const ConntrackStats& stats() const { return stats_; }

 private:
  explicit ConntrackShard(const ConntrackConfig& config);
  uint64_t TimeoutNs(const Flow& f) const;
  // Lookup without a guess that names the flow: through the index.
  Hit Find(const FlowKey& key, uint32_t hash, uint64_t now_ns);
  // Update's general case: any state, any flags.
  void UpdateState(Flow& f, CtDir dir, uint8_t tcp_flags, uint64_t now_ns);
  // Most packets move a flow's expiry by little: writing it only once it
  // moves by a second keeps the flow's cache line clean, which halves the
  // memory traffic of a conntrack hit. A flow may so expire up to a second early.
  static constexpr uint64_t kExpiryRefreshNs = 1'000'000'000;
  static void Refresh(Flow& f, uint64_t expires_ns) {
    if (expires_ns >= f.expires_ns + kExpiryRefreshNs) f.expires_ns = expires_ns;
  }
  uint32_t Allocate(uint64_t now_ns);
  static uint32_t Ref(uint32_t flow, CtDir dir) { return flow << 1 | static_cast<uint32_t>(dir); }
  void PrefetchRecord(uint32_t ref) const {
    const char* f = reinterpret_cast<const char*>(&flows_[ref >> 1]);
    lb::Prefetch(f);
    lb::Prefetch(f + 64);
  }
  // The Ref of the flow that owns `key` (of hash `hash`) in either direction,
  // or HashIndex::kNone.
  uint32_t RefOf(const FlowKey& key, uint32_t hash) const {
    return index_.Find(hash, [&](uint32_t r) { return flows_[r >> 1].tuple[r & 1] == key; });
  }

  ConntrackConfig config_;
  // The common timeouts of Update and Insert, in nanoseconds.
  uint64_t tcp_established_ns_;
  uint64_t tcp_syn_ns_;
  uint64_t udp_unreplied_ns_;
  uint64_t udp_replied_ns_;
  HashIndex index_;  // two entries per flow, one per direction
  TableArray<Flow> flows_;
  std::vector<uint32_t> free_;  // a stack of unused flow ids
  uint32_t live_ = 0;
  uint32_t expire_cursor_ = 0;
  uint32_t evict_cursor_ = 0;
  uint32_t remove_cursor_ = 0;
  ConntrackStats stats_;
  RemoveHook on_remove_ = nullptr;
  void* on_remove_context_ = nullptr;
};

}  // namespace atl::lb
