// Benchmarks of the lb core (suite bench): Maglev build time, balance and
// disruption, the per-packet cost of the packet path with 1, 10k and 100k
// services and 1M live flows, and what a random read of memory costs.
// Figures go to perf/RESULTS.md; nothing here passes or fails on time.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "lb/maglev.h"
#include "lb/nat.h"
#include "lb/packet_builder.h"
#include "lb/table_memory.h"
#include "lb/worker.h"

namespace atl::lb {
namespace {

std::vector<uint8_t> ClientSynFor(uint32_t i) {
  return PacketBuilder()
      .Ip(IpAddr::V4(0xc6130000 + (i & 0xffff)), IpAddr::V4(0xc6124000 + i % 97))
      .Tcp(static_cast<uint16_t>(1024 + i), 80, kTcpSyn)
      .Build();
}

std::vector<MaglevBackend> Backends(uint32_t n, uint32_t first = 0) {
  std::vector<MaglevBackend> v;
  for (uint32_t i = first; i < first + n; ++i) {
    v.push_back({Endpoint{IpAddr::V4(0xc6130000 + i), 8080}, 1});  // 198.19.0.0/16
  }
  return v;
}

void BM_MaglevBuild(benchmark::State& state) {
  const auto m = static_cast<uint32_t>(state.range(0));
  const auto backends = Backends(static_cast<uint32_t>(state.range(1)));
  for (auto _ : state) {
    auto t = BuildMaglev(backends, m, 0);
    benchmark::DoNotOptimize(t->slots.data());
  }
}
BENCHMARK(BM_MaglevBuild)->Args({65537, 1000})->Args({16381, 100})->Unit(benchmark::kMicrosecond);

// Balance: the largest backend share over the mean share (1.0 is perfect).
// Disruption: of the slots owned by the 999 backends that remain when one of
// 1000 is removed, the share that changes owner (0 is perfect).
void BM_MaglevQuality(benchmark::State& state) {
  const uint32_t m = 65537;
  const uint32_t n = 1000;
  const auto all = Backends(n);
  double balance = 0;
  double disruption = 0;
  for (auto _ : state) {
    const auto before = BuildMaglev(all, m, 0)->slots;
    std::vector<uint32_t> count(n);
    for (auto s : before) ++count[s];
    balance = *std::max_element(count.begin(), count.end()) / (static_cast<double>(m) / n);
    const uint32_t removed = n / 2;
    std::vector<MaglevBackend> fewer = all;
    fewer.erase(fewer.begin() + removed);
    const auto after = BuildMaglev(fewer, m, 0)->slots;
    uint32_t kept = 0;
    uint32_t moved = 0;
    for (uint32_t i = 0; i < m; ++i) {
      if (before[i] == removed) continue;
      ++kept;
      // Indices above the removed one shift down by one in `fewer`.
      const uint32_t same = before[i] < removed ? before[i] : before[i] - 1;
      if (after[i] != same) ++moved;
    }
    disruption = static_cast<double>(moved) / kept;
  }
  state.counters["max_over_mean"] = balance;
  state.counters["disruption_pct"] = 100 * disruption;
}
BENCHMARK(BM_MaglevQuality)->Iterations(1)->Unit(benchmark::kMillisecond);

// Reports the time per packet of `packets` packets handled over the run.
void CountPackets(benchmark::State& state, double packets) {
  state.counters["ns_per_pkt"] =
      benchmark::Counter(packets, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// The pieces of the packet path on their own, over 1024 different frames in
// cache: what a packet costs before any table lookup misses.
std::vector<std::vector<uint8_t>> SmallFrameSet() {
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < 1024; ++i) {
    frames.push_back(ClientSynFor(i));
  }
  return frames;
}

void BM_Parse(benchmark::State& state) {
  const auto frames = SmallFrameSet();
  ParsedPacket p;
  size_t i = 0;
  for (auto _ : state) {
    const auto& f = frames[i++ & 1023];
    benchmark::DoNotOptimize(ParseEthernet(f.data(), f.size(), &p));
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_Parse);

void BM_FlowHash(benchmark::State& state) {
  const auto frames = SmallFrameSet();
  std::vector<FlowKey> keys;
  for (const auto& f : frames) {
    ParsedPacket p;
    ParseEthernet(f.data(), f.size(), &p);
    keys.push_back(p.ip.key);
  }
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(FlowHash(keys[i++ & 1023], 1));
}
BENCHMARK(BM_FlowHash);

void BM_RewriteFlow(benchmark::State& state) {
  auto frames = SmallFrameSet();
  // Each frame's parse as it is and as rewritten: a rewrite takes the parse
  // for the packet's current fields.
  std::vector<ParsedPacket> parsed(frames.size());
  std::vector<ParsedPacket> rewritten(frames.size());
  std::vector<FlowKey> targets(frames.size());
  for (size_t k = 0; k < frames.size(); ++k) {
    ParseEthernet(frames[k].data(), frames[k].size(), &parsed[k]);
    targets[k] = parsed[k].ip.key;
    targets[k].dst = IpAddr::V4(0xc6130101);
    targets[k].dst_port = 8080;
    std::vector<uint8_t> copy = frames[k];
    RewriteFlow(copy.data(), parsed[k], targets[k]);
    ParseEthernet(copy.data(), copy.size(), &rewritten[k]);
  }
  size_t i = 0;
  for (auto _ : state) {
    // Swapping the destination back and forth keeps each parse true in turn.
    const size_t k = i++ & 1023;
    RewriteFlow(frames[k].data(), parsed[k], targets[k]);
    RewriteFlow(frames[k].data(), rewritten[k], parsed[k].ip.key);
    benchmark::DoNotOptimize(frames[k].data());
  }
  state.counters["ns_per_rewrite"] =
      benchmark::Counter(static_cast<double>(state.iterations() * 2),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RewriteFlow);

// The packet path. Frames are kept as templates and copied into a work buffer
// before each burst, as a NIC would deliver them: NAT rewrites in place.
// BM_FrameCopy measures that copy alone so it can be subtracted.
constexpr uint32_t kLiveFlows = 1 << 20;
constexpr uint32_t kNewFlows = 1 << 20;
constexpr uint32_t kBackendsPerService = 4;
// 100k services with the default 16381-slot tables would take 3 GiB; 1021
// slots keep 100 slots per backend for these 4-backend services.
constexpr uint32_t kBenchMaglevSize = 1021;
constexpr size_t kStride = 64;
constexpr size_t kBurst = 32;
constexpr uint64_t kNow = 1'000'000'000;

struct Bench {
  uint32_t services = 0;
  std::unique_ptr<ServiceTable> table;
  std::unique_ptr<ConntrackShard> conntrack;
  std::unique_ptr<AffinityTable> affinity;
  std::unique_ptr<Worker> worker;
  std::vector<uint8_t> live;   // kLiveFlows frames of established flows, in random flow order
  std::vector<uint8_t> fresh;  // kNewFlows frames of flows not seen yet
  std::vector<uint16_t> live_len;
  std::vector<uint16_t> fresh_len;
};

Endpoint Vip(uint32_t s) {
  // 198.18.64.0/18 holds 16384 addresses; more services share them by port.
  return {IpAddr::V4(0xc6124000 + s % 16384), static_cast<uint16_t>(80 + s / 16384)};
}

// Client i: a pod address in 198.19.0.0/16 and a port; `salt` keeps the new
// flows apart from the live ones.
std::vector<uint8_t> ClientSyn(uint32_t i, uint32_t salt, const Endpoint& vip, uint8_t flags) {
  const IpAddr src = IpAddr::V4(0xc6130000 + (i & 0xffff));
  const auto port = static_cast<uint16_t>(1024 + (i >> 16) + salt);
  return PacketBuilder().Ip(src, vip.addr).Tcp(port, vip.port, flags).Build();
}

Bench& GetBench(uint32_t services) {
  static std::unique_ptr<Bench> b;
  if (b && b->services == services) return *b;
  b.reset();  // free the previous one first: each holds a few hundred MiB
  b = std::make_unique<Bench>();
  b->services = services;
  b->table = std::make_unique<ServiceTable>();
  std::mt19937 rng(42);
  for (uint32_t s = 0; s < services; ++s) {
    ServiceConfig cfg;
    cfg.maglev_size = kBenchMaglevSize;
    for (uint32_t k = 0; k < kBackendsPerService; ++k) {
      const auto port = static_cast<uint16_t>(8080 + k);  // distinct even if addresses repeat
      cfg.backends.push_back({Endpoint{IpAddr::V4(0xc6130000 + (rng() & 0xffff)), port}});
    }
    const Endpoint vip = Vip(s);
    auto id = b->table->Upsert({vip.addr, vip.port, IpProto::kTcp, Scope::kInternal}, cfg);
    if (!id.ok()) {
      std::fprintf(stderr, "%s\n", id.status().ToString().c_str());
      std::abort();
    }
  }
  ConntrackConfig ct;
  ct.max_flows = kLiveFlows + kNewFlows + (1 << 16);
  b->conntrack = *ConntrackShard::Create(ct);
  b->affinity = std::make_unique<AffinityTable>(1024);
  b->worker = std::make_unique<Worker>(b->table.get(), b->conntrack.get(), b->affinity.get());

  b->live.resize(size_t{kLiveFlows} * kStride);
  b->live_len.resize(kLiveFlows);
  b->fresh.resize(size_t{kNewFlows} * kStride);
  b->fresh_len.resize(kNewFlows);
  // Live flows are visited in a random order, but their frames are stored in
  // that order: a NIC hands over packets in fresh buffers, and reading the
  // templates at random would add a cache miss that no real packet has.
  std::vector<uint32_t> order(kLiveFlows);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  for (uint32_t i = 0; i < kLiveFlows; ++i) {
    const Endpoint vip = Vip(rng() % services);
    // Establish the flow with a SYN, keep an ACK of it as the template.
    auto syn = ClientSyn(i, 0, vip, kTcpSyn);
    b->worker->Process(syn.data(), syn.size(), Scope::kInternal, kNow);
    auto ack = ClientSyn(i, 0, vip, kTcpAck);
    std::memcpy(&b->live[size_t{order[i]} * kStride], ack.data(), ack.size());
    b->live_len[order[i]] = static_cast<uint16_t>(ack.size());
    auto fresh = ClientSyn(i, 32, vip, kTcpSyn);
    std::memcpy(&b->fresh[size_t{i} * kStride], fresh.data(), fresh.size());
    b->fresh_len[i] = static_cast<uint16_t>(fresh.size());
  }
  return *b;
}

void BM_FrameCopy(benchmark::State& state) {
  Bench& b = GetBench(1);
  alignas(64) uint8_t work[kBurst][kStride];
  size_t next = 0;
  for (auto _ : state) {
    for (size_t k = 0; k < kBurst; ++k) {
      const uint32_t i = next++ & (kLiveFlows - 1);
      std::memcpy(work[k], &b.live[size_t{i} * kStride], kStride);
    }
    benchmark::DoNotOptimize(work);
  }
  CountPackets(state, static_cast<double>(state.iterations() * kBurst));
}
BENCHMARK(BM_FrameCopy);

// parse + conntrack hit + NAT rewrite, bursts of 32 over 1M live flows in
// random order (every lookup a cache miss but for the prefetching).
void BM_ConntrackHit(benchmark::State& state) {
  Bench& b = GetBench(static_cast<uint32_t>(state.range(0)));
  alignas(64) uint8_t work[kBurst][kStride];
  PacketRef refs[kBurst];
  Verdict verdicts[kBurst];
  size_t next = 0;
  const uint64_t translated = b.worker->stats().translated;
  for (auto _ : state) {
    for (size_t k = 0; k < kBurst; ++k) {
      const uint32_t i = next++ & (kLiveFlows - 1);
      std::memcpy(work[k], &b.live[size_t{i} * kStride], kStride);
      refs[k] = {work[k], b.live_len[i]};
    }
    b.worker->ProcessBurst(refs, kBurst, Scope::kInternal, kNow, verdicts);
    benchmark::DoNotOptimize(verdicts);
  }
  const double pkts = static_cast<double>(state.iterations() * kBurst);
  if (b.worker->stats().translated - translated != state.iterations() * kBurst) {
    state.SkipWithError("a packet missed its flow");
  }
  CountPackets(state, pkts);
}
BENCHMARK(BM_ConntrackHit)->Arg(1)->Arg(10000)->Arg(100000);

// parse + service lookup + Maglev + conntrack insert + NAT for flows never
// seen, while 1M others stay live. When the pool of new flows runs out, the
// ones created are removed with the clock stopped and the pool starts over.
void BM_NewFlow(benchmark::State& state) {
  Bench& b = GetBench(static_cast<uint32_t>(state.range(0)));
  alignas(64) uint8_t work[kBurst][kStride];
  PacketRef refs[kBurst];
  Verdict verdicts[kBurst];
  size_t next = 0;
  const uint64_t new_before = b.worker->stats().new_flows;
  uint64_t expected = 0;
  auto forget = [&] {
    for (uint32_t i = 0; i < next; ++i) {
      ParsedPacket p;
      ParseEthernet(&b.fresh[size_t{i} * kStride], b.fresh_len[i], &p);
      const auto hit = b.conntrack->Lookup(p.ip.key, b.conntrack->Hash(p.ip.key), kNow);
      if (hit.found()) b.conntrack->Remove(hit.flow);
    }
    next = 0;
  };
  for (auto _ : state) {
    if (next + kBurst > kNewFlows) {
      state.PauseTiming();
      forget();
      state.ResumeTiming();
    }
    for (size_t k = 0; k < kBurst; ++k, ++next) {
      std::memcpy(work[k], &b.fresh[next * kStride], kStride);
      refs[k] = {work[k], b.fresh_len[next]};
    }
    b.worker->ProcessBurst(refs, kBurst, Scope::kInternal, kNow, verdicts);
    benchmark::DoNotOptimize(verdicts);
    expected += kBurst;
  }
  forget();
  if (b.worker->stats().new_flows - new_before != expected)
    state.SkipWithError("a new flow was not new");
  CountPackets(state, static_cast<double>(state.iterations() * kBurst));
}
BENCHMARK(BM_NewFlow)->Arg(1)->Arg(10000)->Arg(100000);

// Memory as this machine sees it, the yardstick for what a table costs once
// it outgrows a cache: reads of random cache lines over `MiB` of memory in
// transparent huge pages, in `chains` independent pointer chases (1: each
// read waits for the one before, a miss's latency; 8: as many as a core
// keeps in flight, its throughput). Time per line read.
void BM_RandomLineRead(benchmark::State& state) {
  const size_t lines = static_cast<size_t>(state.range(0)) << 20 >> 6;
  const auto chains = static_cast<size_t>(state.range(1));
  struct alignas(64) Line {
    uint64_t next;
  };
  TableArray<Line> memory(lines);
  // One random cycle through every line, so that no read repeats before all have been.
  std::vector<uint32_t> order(lines);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
  for (size_t i = 0; i < lines; ++i) memory[order[i]].next = order[(i + 1) % lines];
  std::vector<uint64_t> at(chains);
  for (size_t c = 0; c < chains; ++c) at[c] = order[c * (lines / chains)];
  constexpr size_t kReads = 4096;
  for (auto _ : state) {
    for (size_t r = 0; r < kReads / chains; ++r) {
      for (size_t c = 0; c < chains; ++c) at[c] = memory[at[c]].next;
    }
    benchmark::DoNotOptimize(at.data());
  }
  state.counters["ns_per_line"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kReads),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RandomLineRead)
    ->ArgsProduct({{1, 4, 8, 16, 24, 32, 64, 256}, {1, 8}})
    ->ArgNames({"MiB", "chains"})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace atl::lb

BENCHMARK_MAIN();
