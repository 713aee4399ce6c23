#include "lb/conntrack.h"

#include <cassert>
#include <random>

#include "absl/strings/str_cat.h"
#include "lb/packet.h"

namespace atl::lb {
namespace {
constexpr uint64_t kNsPerSec = 1'000'000'000;
}  // namespace

const char* CtStateName(CtState state) {
  switch (state) {
    case CtState::kSynSent:
      return "syn_sent";
    case CtState::kSynRecv:
      return "syn_recv";
    case CtState::kEstablished:
      return "established";
    case CtState::kFinWait:
      return "fin_wait";
    case CtState::kTimeWait:
      return "time_wait";
    case CtState::kClosed:
      return "closed";
    case CtState::kUnreplied:
      return "unreplied";
    case CtState::kReplied:
      return "replied";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<ConntrackShard>> ConntrackShard::Create(
    const ConntrackConfig& config) {
  // A reference packs the flow id with one direction bit, and kNone is reserved.
  if (config.max_flows == 0 || config.max_flows >= (1u << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat("conntrack max_flows ", config.max_flows, " is outside 1 .. 2^30-1"));
  }
  if (config.eviction_scan == 0) {
    return absl::InvalidArgumentError(
        "conntrack eviction_scan 0: must examine at least one record");
  }
  ConntrackConfig seeded = config;
  if (seeded.hash_seed == 0) {
    std::random_device random;
    while (seeded.hash_seed == 0) seeded.hash_seed = random();
  }
  return std::unique_ptr<ConntrackShard>(new ConntrackShard(seeded));
}

ConntrackShard::ConntrackShard(const ConntrackConfig& config)
    : config_(config),
      tcp_established_ns_(uint64_t{config.tcp_established_s} * kNsPerSec),
      tcp_syn_ns_(uint64_t{config.tcp_syn_s} * kNsPerSec),
      udp_unreplied_ns_(uint64_t{config.udp_unreplied_s} * kNsPerSec),
      udp_replied_ns_(uint64_t{config.udp_replied_s} * kNsPerSec),
      index_(2 * config.max_flows),
      flows_(config.max_flows) {
  free_.reserve(config.max_flows);
  for (uint32_t id = config.max_flows; id > 0; --id) free_.push_back(id - 1);
}

uint64_t ConntrackShard::TimeoutNs(const Flow& f) const {
  uint32_t s;
  switch (f.tuple[0].proto) {
    case IpProto::kTcp:
      switch (f.state) {
        case CtState::kEstablished:
          // Picked up mid-stream and not answered yet: as short-lived as a SYN.
          s = f.seen == 3 ? config_.tcp_established_s : config_.tcp_syn_s;
          break;
        case CtState::kFinWait:
          s = config_.tcp_fin_wait_s;
          break;
        case CtState::kTimeWait:
        case CtState::kClosed:
          s = config_.tcp_closing_s;
          break;
        default:
          s = config_.tcp_syn_s;
          break;
      }
      break;
    case IpProto::kUdp:
      s = f.state == CtState::kReplied ? config_.udp_replied_s : config_.udp_unreplied_s;
      break;
    case IpProto::kIcmp:
    case IpProto::kIcmpV6:
      s = config_.icmp_s;
      break;
    default:
      s = config_.other_s;
      break;
  }
  return s * kNsPerSec;
}

ConntrackShard::Hit ConntrackShard::Find(const FlowKey& key, uint32_t hash, uint64_t now_ns) {
  // A live record holding `key` is its flow: keys are unique among live flows.
  const uint32_t ref = RefOf(key, hash);
  if (ref == HashIndex::kNone) return {};
  const uint32_t id = ref >> 1;
  if (flows_[id].expires_ns <= now_ns) {
    Remove(id);
    ++stats_.expired;
    return {};
  }
  return {id, static_cast<CtDir>(ref & 1)};
}

uint32_t ConntrackShard::Allocate(uint64_t now_ns) {
  if (!free_.empty()) {
    const uint32_t id = free_.back();
    free_.pop_back();
    return id;
  }
  // Full. Look at a bounded window of records: take the first expired one,
  // else the evictable one closest to expiry; flows established both ways
  // are never evicted, so a new flow is refused rather than breaking a live
  // connection.
  uint32_t victim = kNoFlow;
  for (uint32_t n = 0; n < config_.eviction_scan; ++n) {
    const uint32_t id = evict_cursor_;
    evict_cursor_ = evict_cursor_ + 1 == config_.max_flows ? 0 : evict_cursor_ + 1;
    const Flow& f = flows_[id];
    if (f.expires_ns <= now_ns) {
      victim = id;
      ++stats_.expired;
      break;
    }
    if (f.Evictable() && (victim == kNoFlow || f.expires_ns < flows_[victim].expires_ns)) {
      victim = id;
    }
  }
  if (victim == kNoFlow) return kNoFlow;
  if (flows_[victim].expires_ns > now_ns) ++stats_.evicted;
  Remove(victim);
  free_.pop_back();  // Remove pushed it
  return victim;
}

uint32_t ConntrackShard::Insert(const FlowKey& original, uint32_t original_hash,
                                const FlowKey& reply, uint8_t first_tcp_flags, uint64_t now_ns,
                                uint32_t service, uint32_t backend) {
  // A wrong hash would file the flow where Lookup and Remove never look.
  assert(original_hash == Hash(original));
  const uint32_t reply_hash = Hash(reply);
  const uint32_t holder_ref = RefOf(reply, reply_hash);
  if (holder_ref != HashIndex::kNone) {
    // A flow that is over gives its tuple up: an expired one, or a finished
    // TCP connection to a new connection's SYN. A client that recycles its
    // port reaches the same backend through another service so.
    const uint32_t holder = holder_ref >> 1;
    const Flow& h = flows_[holder];
    if (h.expires_ns <= now_ns) {
      ++stats_.expired;
    } else if (!(IsOpeningSyn(original.proto, first_tcp_flags) && IsFinished(h))) {
      ++stats_.reply_taken;
      return kNoFlow;
    }
    Remove(holder);
  }
  const uint32_t id = Allocate(now_ns);
  if (id == kNoFlow) {
    ++stats_.full;
    return kNoFlow;
  }
  Flow& f = flows_[id];
  f.tuple[0] = original;
  f.tuple[1] = reply;
  f.translated = !reply.IsReverseOf(original);
  if (f.translated && original.src.IsV4() && original.dst.IsV4() && reply.src.IsV4() &&
      reply.dst.IsV4()) {
    const std::array<Ipv4RewriteSums, 2> sums = SumIpv4FlowRewrites(original, reply);
    f.rewrite[0] = sums[0];
    f.rewrite[1] = sums[1];
  }
  f.service = service;
  f.backend = backend;
  f.route[0] = f.route[1] = 0;
  f.route_version[0] = f.route_version[1] = 0;
  f.fin_seen = 0;
  f.in_use = true;
  const bool tcp = original.proto == IpProto::kTcp;
  if (tcp) {
    // A flow first seen mid-stream (after a restart, or asymmetric routing) is
    // taken as established, like Linux's nf_conntrack_tcp_loose.
    const bool syn_only = (first_tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
    f.state = syn_only ? CtState::kSynSent : CtState::kEstablished;
  } else {
    f.state = CtState::kUnreplied;
  }
  if (tcp && (first_tcp_flags & (kTcpFin | kTcpRst)) != 0) {
    // A first packet carrying FIN or RST moves the flow on at once, as any
    // packet would, so that a stray one does not pin an entry for the
    // established timeout.
    f.seen = 0;
    UpdateState(f, CtDir::kOriginal, first_tcp_flags, now_ns);
  } else {
    // Nearly every first packet: seen one way, with the timeout of a SYN (a
    // TCP flow unanswered) or of an unreplied UDP flow.
    f.seen = 1u << static_cast<unsigned>(CtDir::kOriginal);
    f.expires_ns = now_ns + (tcp                               ? tcp_syn_ns_
                             : original.proto == IpProto::kUdp ? udp_unreplied_ns_
                                                               : TimeoutNs(f));
  }
  index_.Insert(original_hash, Ref(id, CtDir::kOriginal));
  index_.Insert(reply_hash, Ref(id, CtDir::kReply));
  ++live_;
  ++stats_.created;
  return id;
}

void ConntrackShard::UpdateState(Flow& f, CtDir dir, uint8_t tcp_flags, uint64_t now_ns) {
  CtState state = f.state;
  uint8_t fin_seen = f.fin_seen;
  const uint8_t seen = f.seen | static_cast<uint8_t>(1u << static_cast<unsigned>(dir));
  if (f.tuple[0].proto == IpProto::kTcp) {
    if (tcp_flags & kTcpRst) {
      state = CtState::kClosed;
    } else if (tcp_flags & kTcpSyn) {
      // (A new SYN on a finished flow's tuple comes here only from a caller
      // that did not remove the flow first, as Reopens says to: it stays over.)
      if ((tcp_flags & kTcpAck) && dir == CtDir::kReply && state == CtState::kSynSent) {
        state = CtState::kSynRecv;
      }
    } else {
      if (state == CtState::kSynRecv && dir == CtDir::kOriginal && (tcp_flags & kTcpAck)) {
        state = CtState::kEstablished;
      }
      if (tcp_flags & kTcpFin) fin_seen |= static_cast<uint8_t>(1u << static_cast<unsigned>(dir));
      // After a RST only a new SYN revives the tuple: a late FIN or ACK must not
      // give a reset flow the longer FIN_WAIT timeout back.
      if (fin_seen != 0 && state != CtState::kClosed) {
        state = fin_seen == 3 ? CtState::kTimeWait : CtState::kFinWait;
      }
    }
  } else if (dir == CtDir::kReply && state == CtState::kUnreplied) {
    state = CtState::kReplied;
  }
  if (state == f.state && fin_seen == f.fin_seen && seen == f.seen) {
    Refresh(f, now_ns + TimeoutNs(f));
    return;
  }
  f.state = state;
  f.fin_seen = fin_seen;
  f.seen = seen;
  f.expires_ns = now_ns + TimeoutNs(f);
}

void ConntrackShard::Remove(uint32_t id) {
  Flow& f = flows_[id];
  if (!f.in_use) return;
  if (on_remove_ != nullptr) on_remove_(on_remove_context_, f);
  // The record keeps no hash (its bytes hold the rewrite sums): computed again.
  index_.Erase(Hash(f.tuple[0]), Ref(id, CtDir::kOriginal));
  index_.Erase(Hash(f.tuple[1]), Ref(id, CtDir::kReply));
  f.in_use = false;
  free_.push_back(id);
  --live_;
}

uint32_t ConntrackShard::ExpireSome(uint64_t now_ns, uint32_t budget) {
  uint32_t removed = 0;
  for (uint32_t n = 0; n < budget && n < config_.max_flows; ++n) {
    const uint32_t id = expire_cursor_;
    expire_cursor_ = expire_cursor_ + 1 == config_.max_flows ? 0 : expire_cursor_ + 1;
    if (flows_[id].in_use && flows_[id].expires_ns <= now_ns) {
      Remove(id);
      ++stats_.expired;
      ++removed;
    }
  }
  return removed;
}

}  // namespace atl::lb
