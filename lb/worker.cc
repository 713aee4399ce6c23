#include "lb/worker.h"

#include <algorithm>

#include "lb/nat.h"
#include "lb/prefetch.h"

namespace atl::lb {

Verdict Worker::Process(uint8_t* frame, size_t len, Scope scope, uint64_t now_ns) {
  ++stats_.packets;
  ParsedPacket p;
  const DropReason r = ParseEthernet(frame, len, &p);
  if (r != DropReason::kNone) return Drop(r);
  if (!p.is_ip()) return {};
  if (p.icmp_error) return IcmpError(frame, p, now_ns);
  if (!p.ip.has_l4) return {};  // no ports: nothing to balance or track
  return TrackOrBalance(frame, p, conntrack_->Hash(p.ip.key), scope, now_ns);
}

void Worker::ProcessBurst(const PacketRef* pkts, size_t n, Scope scope, uint64_t now_ns,
                          Verdict* out) {
  for (size_t done = 0; done < n; done += kMaxBurst) {
    ProcessChunk(pkts + done, std::min(n - done, kMaxBurst), scope, now_ns, out + done);
  }
}

void Worker::ProcessChunk(const PacketRef* pkts, size_t n, Scope scope, uint64_t now_ns,
                          Verdict* out) {
  ParsedPacket* parsed = parsed_;
  uint32_t* hash = hash_;
  uint8_t fresh[kMaxBurst];  // packets that start a new flow, and any that must follow them
  size_t n_fresh = 0;
  // A rolling software pipeline (as DPDK's l3fwd and rte_hash bulk lookups
  // do): packet i is parsed and its index slot prefetched, packet i - kSlotAhead
  // has its flow record prefetched from the slot that has arrived by then, and
  // packet i - kFlowAhead is finished. Issuing the misses steadily rather than
  // all at once keeps the core's miss buffers from overflowing.
  constexpr size_t kSlotAhead = 8;  // tuned on the lb_bench hit path
  constexpr size_t kFlowAhead = 2 * kSlotAhead;
  auto tracked = [&](size_t i) {
    return out[i].action == Action::kPass && parsed[i].is_ip() && !parsed[i].icmp_error &&
           parsed[i].ip.has_l4;
  };
  for (size_t i = 0; i < n + kFlowAhead; ++i) {
    if (i < n) {
      ++stats_.packets;
      const DropReason r = ParseEthernet(pkts[i].data, pkts[i].len, &parsed[i]);
      if (r != DropReason::kNone) {
        out[i] = Drop(r);
      } else {
        out[i] = {};
        if (tracked(i)) {
          hash[i] = conntrack_->Hash(parsed[i].ip.key);
          conntrack_->Prefetch(hash[i]);
        }
      }
    }
    if (i >= kSlotAhead && i - kSlotAhead < n && tracked(i - kSlotAhead)) {
      conntrack_->PrefetchFlow(hash[i - kSlotAhead]);
    }
    if (i >= kFlowAhead && i - kFlowAhead < n) {
      const size_t k = i - kFlowAhead;
      if (out[k].action == Action::kDrop || !parsed[k].is_ip()) continue;
      if (parsed[k].icmp_error) {
        // An error about a flow deferred below must wait for that flow.
        if (n_fresh == 0) {
          out[k] = IcmpError(pkts[k].data, parsed[k], now_ns);
        } else {
          fresh[n_fresh++] = static_cast<uint8_t>(k);
        }
      } else if (parsed[k].ip.has_l4 && !Track(pkts[k].data, parsed[k], hash[k], now_ns, &out[k])) {
        const FlowKey& key = parsed[k].ip.key;
        services_->Prefetch(key.dst, key.dst_port, key.proto, scope);
        fresh[n_fresh++] = static_cast<uint8_t>(k);
      }
    }
  }
  // New flows: the service's frontend entry, the Service, its Maglev slot and
  // backend are each a likely cache miss that depends on the one before, so
  // they are walked in passes over all new flows of the burst, letting the
  // misses of different flows overlap.
  for (size_t j = 0; j < n_fresh; ++j) {
    const ParsedPacket& p = parsed[fresh[j]];
    service_[j] = p.icmp_error
                      ? nullptr
                      : services_->Lookup(p.ip.key.dst, p.ip.key.dst_port, p.ip.key.proto, scope);
    if (service_[j] != nullptr) Prefetch(service_[j]);
  }
  // Maglev's hash, not conntrack's: the slot every backend picks for the flow.
  uint32_t maglev_hash[kMaxBurst];
  for (size_t j = 0; j < n_fresh; ++j) {
    if (service_[j] == nullptr) continue;
    maglev_hash[j] = FlowHash(parsed[fresh[j]].ip.key, kMaglevSeed);
    service_[j]->PrefetchPick(maglev_hash[j]);
  }
  // What the conntrack entry of each will need, for Maglev's choice (affinity
  // may choose otherwise; then this was only a wasted prefetch).
  uint32_t creations = 0;
  for (size_t j = 0; j < n_fresh; ++j) {
    if (service_[j] == nullptr || !service_[j]->has_backend()) continue;
    const ParsedPacket& p = parsed[fresh[j]];
    FlowKey reply = p.ip.key.Reversed();
    const Endpoint& backend =
        service_[j]->eligible[service_[j]->MaglevPick(maglev_hash[j])].endpoint;
    reply.src = backend.addr;
    reply.src_port = backend.port;
    conntrack_->PrefetchInsert(reply, creations++);
  }
  for (size_t j = 0; j < n_fresh; ++j) {
    const size_t k = fresh[j];
    if (parsed[k].icmp_error) {
      out[k] = IcmpError(pkts[k].data, parsed[k], now_ns);
      continue;
    }
    // An earlier packet of this burst may have just created the flow (a UDP
    // flow's first packets often arrive together): packets of one flow must
    // see each other in order, so conntrack is asked again.
    if (Track(pkts[k].data, parsed[k], hash[k], now_ns, &out[k])) continue;
    out[k] = service_[j] == nullptr
                 ? StatelessReply(pkts[k].data, parsed[k], now_ns)
                 : Balance(pkts[k].data, parsed[k], hash[k], maglev_hash[j], *service_[j], now_ns);
  }
}

Verdict Worker::TrackOrBalance(uint8_t* frame, const ParsedPacket& p, uint32_t hash, Scope scope,
                               uint64_t now_ns) {
  Verdict v;
  if (Track(frame, p, hash, now_ns, &v)) return v;
  return NewFlow(frame, p, hash, scope, now_ns);
}

bool Worker::Track(uint8_t* frame, const ParsedPacket& p, uint32_t hash, uint64_t now_ns,
                   Verdict* out) {
  // conntrack: an established flow follows its entry, never a table change.
  const ConntrackShard::Hit hit = conntrack_->Lookup(p.ip.key, hash, now_ns);
  if (!hit.found()) return false;
  if (Reopens(conntrack_->flow(hit.flow), hit.dir, p.tcp_flags)) {
    conntrack_->Remove(hit.flow);
    return false;
  }
  conntrack_->Update(hit.flow, hit.dir, p.tcp_flags, now_ns);
  const Flow& flow = conntrack_->flow(hit.flow);
  // Translated(dir) is the other direction's tuple, reversed: read in place.
  if (!flow.translated) {
    *out = {};
  } else if (!RewriteFlowToReverseOf(frame, p, flow.tuple[static_cast<size_t>(hit.dir) ^ 1],
                                     flow.rewrite[static_cast<size_t>(hit.dir)])) {
    *out = Drop(DropReason::kNatUnsupported);
  } else {
    ++stats_.translated;
    *out = {Action::kTranslated, DropReason::kNone};
  }
  return true;
}

Verdict Worker::NewFlow(uint8_t* frame, const ParsedPacket& p, uint32_t hash, Scope scope,
                        uint64_t now_ns) {
  const FlowKey& key = p.ip.key;
  const Service* svc = services_->Lookup(key.dst, key.dst_port, key.proto, scope);
  if (svc == nullptr) return StatelessReply(frame, p, now_ns);
  return Balance(frame, p, hash, FlowHash(key, kMaglevSeed), *svc, now_ns);
}

Verdict Worker::Balance(uint8_t* frame, const ParsedPacket& p, uint32_t hash, uint32_t maglev_hash,
                        const Service& svc, uint64_t now_ns) {
  // service_lb: the affinity binding if any, else the Maglev slot of the flow hash.
  if (!svc.has_backend()) return Drop(DropReason::kNoBackend);
  const FlowKey& key = p.ip.key;
  uint16_t index;
  std::optional<uint16_t> bound;
  if (svc.affinity_timeout_s > 0 && (bound = affinity_->Lookup(svc, key.src, now_ns))) {
    index = *bound;
  } else {
    index = svc.MaglevPick(maglev_hash);
    if (svc.affinity_timeout_s > 0) affinity_->Record(svc, key.src, index, now_ns);
  }
  // Two flows must never share a reply tuple, or their replies could not be
  // told apart: a client using one source port towards two services that
  // share a backend would collide. Insert refuses a taken one, and the next
  // eligible backend is tried instead (Linux would remap the source port).
  FlowKey to = key;
  for (size_t tried = 1;; ++tried) {
    to.dst = svc.eligible[index].endpoint.addr;
    to.dst_port = svc.eligible[index].endpoint.port;
    const FlowKey reply = to.Reversed();
    if (conntrack_->Insert(key, hash, reply, p.tcp_flags, now_ns, svc.id, index) !=
        ConntrackShard::kNoFlow) {
      break;
    }
    if (!conntrack_->Contains(reply)) {  // refused for room: balance statelessly
      ++stats_.stateless;
      last_stateless_ns_ = now_ns;
      break;
    }
    if (tried == svc.eligible.size()) return Drop(DropReason::kNatTupleClash);
    index = static_cast<uint16_t>((index + 1) % svc.eligible.size());
  }
  ++stats_.new_flows;
  if (!RewriteFlow(frame, p, to)) return Drop(DropReason::kNatUnsupported);
  ++stats_.translated;
  return {Action::kTranslated, DropReason::kNone};
}

Verdict Worker::StatelessReply(uint8_t* frame, const ParsedPacket& p, uint64_t now_ns) {
  // Only while flows are being balanced without an entry can a backend's
  // reply lack one; otherwise this costs nothing and touches nothing.
  if (stats_.stateless == 0 || now_ns - last_stateless_ns_ > kStatelessReplyWindowNs) return {};
  const FlowKey& key = p.ip.key;
  const std::optional<Endpoint> frontend =
      services_->ReverseLookup(key.src, key.src_port, key.proto);
  if (!frontend) return {};
  FlowKey to = key;
  to.src = frontend->addr;
  to.src_port = frontend->port;
  if (!RewriteFlow(frame, p, to)) return Drop(DropReason::kNatUnsupported);
  ++stats_.stateless_replies;
  ++stats_.translated;
  return {Action::kTranslated, DropReason::kNone};
}

Verdict Worker::IcmpError(uint8_t* frame, const ParsedPacket& p, uint64_t now_ns) {
  // An error travels against the packet it quotes, so its flow is found by
  // the quote's reverse (RFC 5508 section 6).
  if (!p.inner.has_l4) return {};
  const FlowKey back = p.inner.key.Reversed();
  const ConntrackShard::Hit hit = conntrack_->Lookup(back, conntrack_->Hash(back), now_ns);
  if (!hit.found()) return {};
  const Flow& f = conntrack_->flow(hit.flow);
  // The quote was translated in the other direction; restore it as it was sent.
  const FlowKey& quoted_to = f.tuple[hit.dir == CtDir::kOriginal ? 1 : 0];
  if (quoted_to == p.inner.key) return {};
  // The outer source is the far endpoint itself or a router on the way; only
  // the endpoint's address is translated.
  const IpAddr outer_src = p.ip.key.src == p.inner.key.dst ? quoted_to.dst : p.ip.key.src;
  if (!RewriteIcmpError(frame, p, quoted_to, outer_src, quoted_to.src)) {
    return Drop(DropReason::kNatUnsupported);
  }
  ++stats_.translated;
  return {Action::kTranslated, DropReason::kNone};
}

}  // namespace atl::lb
