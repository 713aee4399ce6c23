// The load-balancing packet path of one worker core:
//   parse -> conntrack -> service_lb -> NAT
// over single packets or bursts. It owns no tables: the service table is
// shared read-only, the conntrack shard and the affinity table are this
// worker's alone. Backends (DPDK, the agent's in-process renderer, tests and
// benchmarks) drive it; the eBPF programs implement the same stages in C.
// Session affinity is per worker too, so a dataplane with several workers
// steers the clients of a sticky service by source address.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "lb/affinity.h"
#include "lb/conntrack.h"
#include "lb/packet.h"
#include "lb/service_table.h"

namespace atl::lb {

enum class Action : uint8_t {
  kPass,        // not a service flow: forward unchanged
  kTranslated,  // rewritten in place (DNAT to a backend, or reverse NAT of a reply)
  kDrop,        // see Verdict::reason
};

struct Verdict {
  Action action = Action::kPass;
  DropReason reason = DropReason::kNone;
};

struct WorkerStats {
  uint64_t packets = 0;
  uint64_t new_flows = 0;
  uint64_t translated = 0;
  // Packets of new service flows balanced without a conntrack entry because
  // the shard was full: they still reach Maglev's backend, but a backend
  // change can move them. Every packet of such a flow counts.
  uint64_t stateless = 0;
  // Replies of such flows, given the frontend's address by the service
  // table's reverse map instead of by conntrack. Only while stateless flows
  // are recent (kStatelessReplyWindowNs): the reverse map cannot tell such a
  // reply from a pod talking to the backend directly.
  uint64_t stateless_replies = 0;
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> drops{};
};

struct PacketRef {
  uint8_t* data;
  uint16_t len;
};

class Worker {
 public:
  static constexpr size_t kMaxBurst = 64;
  static constexpr uint64_t kStatelessReplyWindowNs = 120'000'000'000;

  Worker(const ServiceTable* services, ConntrackShard* conntrack, AffinityTable* affinity)
      : services_(services), conntrack_(conntrack), affinity_(affinity) {}

  // `scope` says where the packet entered: from a local pod (internal) or
  // from outside the cluster (external); `now_ns` is a monotonic clock.
  Verdict Process(uint8_t* frame, size_t len, Scope scope, uint64_t now_ns);

  // The same over `n` Ethernet frames, taken kMaxBurst at a time, hiding
  // memory latency with a prefetching pipeline. Packets of one flow keep
  // their order and get the verdicts Process would give one by one; only
  // when the conntrack shard is full may the choice of which flow is evicted
  // or refused differ, since new flows are admitted after the burst's hits.
  void ProcessBurst(const PacketRef* pkts, size_t n, Scope scope, uint64_t now_ns, Verdict* out);

  const WorkerStats& stats() const { return stats_; }

 private:
  Verdict Drop(DropReason reason) {
    ++stats_.drops[static_cast<size_t>(reason)];
    return {Action::kDrop, reason};
  }
  Verdict TrackOrBalance(uint8_t* frame, const ParsedPacket& p, uint32_t hash, Scope scope,
                         uint64_t now_ns);
  // conntrack: true when the packet belongs to a live flow and *out is its
  // verdict; false when it starts a new flow.
  bool Track(uint8_t* frame, const ParsedPacket& p, uint32_t hash, uint64_t now_ns, Verdict* out);
  Verdict NewFlow(uint8_t* frame, const ParsedPacket& p, uint32_t hash, Scope scope,
                  uint64_t now_ns);
  // service_lb for a new flow of `svc`: picks the backend (`maglev_hash` is
  // FlowHash's with Maglev's seed; `hash` conntrack's), records the flow, DNATs.
  Verdict Balance(uint8_t* frame, const ParsedPacket& p, uint32_t hash, uint32_t maglev_hash,
                  const Service& svc, uint64_t now_ns);
  Verdict IcmpError(uint8_t* frame, const ParsedPacket& p, uint64_t now_ns);
  Verdict StatelessReply(uint8_t* frame, const ParsedPacket& p, uint64_t now_ns);
  void ProcessChunk(const PacketRef* pkts, size_t n, Scope scope, uint64_t now_ns, Verdict* out);

  const ServiceTable* services_;
  ConntrackShard* conntrack_;
  AffinityTable* affinity_;
  WorkerStats stats_;
  uint64_t last_stateless_ns_ = 0;
  // Scratch for ProcessBurst, kept here so a burst does not construct them anew.
  ParsedPacket parsed_[kMaxBurst];
  uint32_t hash_[kMaxBurst];  // conntrack's
  const Service* service_[kMaxBurst];
};

}  // namespace atl::lb
