// The packet path allocates nothing: every operator new in this binary is
// counted, and a mix of packets through Process and ProcessBurst must leave
// the count where it was once the tables are set up.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "lb/packet_builder.h"
#include "lb/worker.h"

namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace atl::lb {
namespace {

constexpr uint64_t kSec = 1'000'000'000;

TEST(WorkerAllocationTest, PacketPathAllocatesNothing) {
  ServiceTable services;
  const IpAddr vip = *IpAddr::Parse("198.18.64.10");
  const IpAddr sticky_vip = *IpAddr::Parse("198.18.64.11");
  ServiceConfig cfg;
  for (uint32_t i = 1; i <= 3; ++i) cfg.backends.push_back({Endpoint{IpAddr::V4(0xc6130100 + i), 8080}});
  ASSERT_TRUE(services.Upsert({vip, 80, IpProto::kTcp, Scope::kInternal}, cfg).ok());
  ASSERT_TRUE(services.Upsert({vip, 53, IpProto::kUdp, Scope::kInternal}, cfg).ok());
  cfg.affinity_timeout_s = 10800;
  ASSERT_TRUE(services.Upsert({sticky_vip, 443, IpProto::kTcp, Scope::kInternal}, cfg).ok());
  ConntrackConfig ct_cfg;
  ct_cfg.max_flows = 64;  // small, so that the full-table paths run too
  auto conntrack = ConntrackShard::Create(ct_cfg);
  ASSERT_TRUE(conntrack.ok());
  AffinityTable affinity(16);
  Worker worker(&services, conntrack->get(), &affinity);

  // Every kind of packet the path handles, built before counting starts.
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t port = 40000; port < 40200; ++port) {
    const IpAddr client = IpAddr::V4(0xc6130000 + port % 50);
    frames.push_back(PacketBuilder().Ip(client, vip).Tcp(port, 80, kTcpSyn).Build());
    frames.push_back(PacketBuilder().Ip(client, vip).Tcp(port, 80, kTcpAck).Build());
    frames.push_back(PacketBuilder().Ip(IpAddr::V4(0xc6130101), client).Tcp(8080, port, kTcpSyn | kTcpAck).Build());
    frames.push_back(PacketBuilder().Ip(client, vip).Udp(port, 53).Payload(30).Build());
    frames.push_back(PacketBuilder().Ip(client, sticky_vip).Tcp(port, 443, kTcpSyn).Build());
    frames.push_back(PacketBuilder().Ip(client, vip).Tcp(port, 80, kTcpFin | kTcpAck).Build());
  }
  const auto quoted = PacketBuilder().NoEthernet().Ip("198.19.0.7", "198.19.1.2").Udp(40001, 8080).Build();
  frames.push_back(PacketBuilder().Ip("198.19.1.2", "198.19.0.7").IcmpError(3, 3, quoted).Build());
  frames.push_back(PacketBuilder().Ip("198.19.0.7", "198.19.9.9").Tcp(1, 2).Build());  // not a service
  frames.push_back({0x02, 0, 0, 0, 0, 1});                                              // truncated
  std::vector<std::vector<uint8_t>> copies = frames;
  std::vector<PacketRef> refs;
  for (auto& f : copies) refs.push_back({f.data(), static_cast<uint16_t>(f.size())});
  std::vector<Verdict> verdicts(Worker::kMaxBurst);

  const uint64_t before = g_allocations.load();
  uint64_t now = kSec;
  for (int round = 0; round < 3; ++round, now += 40 * kSec) {
    for (size_t i = 0; i < frames.size(); ++i) {
      std::copy(frames[i].begin(), frames[i].end(), copies[i].begin());
    }
    for (size_t i = 0; i < refs.size(); i += Worker::kMaxBurst) {
      const size_t n = std::min(refs.size() - i, Worker::kMaxBurst);
      if (i % (2 * Worker::kMaxBurst) == 0) {
        worker.ProcessBurst(&refs[i], n, Scope::kInternal, now, verdicts.data());
      } else {
        for (size_t k = 0; k < n; ++k) worker.Process(refs[i + k].data, refs[i + k].len, Scope::kInternal, now);
      }
    }
    conntrack->get()->ExpireSome(now, 64);
  }
  EXPECT_EQ(g_allocations.load() - before, 0u);
  // The mix really went through the paths it means to: flows were made,
  // the shard filled up and fell back, and the malformed frame was dropped.
  EXPECT_GT(worker.stats().new_flows, 0u);
  EXPECT_GT(worker.stats().stateless, 0u);
  EXPECT_GT(conntrack->get()->stats().full + conntrack->get()->stats().evicted, 0u);
  EXPECT_GT(worker.stats().drops[static_cast<size_t>(DropReason::kEthTruncated)], 0u);
}

}  // namespace
}  // namespace atl::lb
