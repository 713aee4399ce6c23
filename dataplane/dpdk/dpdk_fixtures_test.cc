// The packet fixtures (dataplane/packet_fixtures.h) through DpdkDataplane's
// running workers, over ring ports: every pod, the uplink and the host's
// exception path is a port whose RX ring the test fills and whose TX ring it
// reads. A fixture's verdict is the port its frame came out of (or the drop
// counter that moved), and the frame must be the bytes the eBPF programs give,
// with one worker and with two (where a flow's frames cross between workers).
#include <gtest/gtest.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "dataplane/dpdk/dpdk_dataplane.h"
#include "dataplane/fixture_checks.h"
#include "dataplane/packet_fixtures.h"
#include "lb/flow_hash.h"
#include "lb/packet_builder.h"

namespace atl::dataplane::dpdk {
namespace {

using fixtures::ExpectVxlan;
using fixtures::Hex;
using fixtures::kUplinkMac;
using fixtures::kVxlanHeaders;
using fixtures::Port;
using fixtures::Step;
using fixtures::Verdict;

// A port over two rings: the test enqueues what the port receives into `rx`
// and finds what the dataplane sent in `tx`.
struct RingPort {
  uint16_t id = kNoPort;
  rte_ring* rx = nullptr;
  rte_ring* tx = nullptr;
};

RingPort MakeRingPort(const std::string& name) {
  static int serial = 0;
  const std::string tag = name + "_" + std::to_string(serial++);
  RingPort p;
  p.rx = rte_ring_create((tag + "_rx").c_str(), 256, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  p.tx = rte_ring_create((tag + "_tx").c_str(), 256, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (p.rx == nullptr || p.tx == nullptr) return p;
  const int id = rte_eth_from_rings(tag.c_str(), &p.rx, 1, &p.tx, 1, 0);
  if (id < 0 || !StartPort(static_cast<uint16_t>(id)).ok()) return p;
  p.id = static_cast<uint16_t>(id);
  return p;
}

std::vector<uint8_t> Bytes(rte_mbuf* m) {
  const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
  return std::vector<uint8_t>(d, d + rte_pktmbuf_data_len(m));
}

// A fixture's frame from the overlay, as the other host put it on the
// underlay: VXLAN from `underlay` to this node, with `vni`.
std::vector<uint8_t> FromUnderlay(const Step& step) {
  std::vector<uint8_t> vxlan = {0x08,
                                0,
                                0,
                                0,
                                static_cast<uint8_t>(step.vni >> 16),
                                static_cast<uint8_t>(step.vni >> 8),
                                static_cast<uint8_t>(step.vni),
                                0};
  vxlan.insert(vxlan.end(), step.packet.begin(), step.packet.end());
  return lb::PacketBuilder()
      .Ethernet({0x02, 0, 0, 0, 0, 0x12}, kUplinkMac)
      .Ip(step.underlay, fixtures::kNodeAddr)
      .Udp(49999, 4789)
      .Payload(vxlan)
      .Build();
}

// One host: a DpdkDataplane over ring ports, one per pod of the state.
class Host {
 public:
  static std::unique_ptr<Host> Make(Update state, unsigned workers = 1,
                                    uint32_t conntrack_flows = 4096) {
    auto host = std::unique_ptr<Host>(new Host);
    host->uplink_ = MakeRingPort("up");
    host->host_ = MakeRingPort("host");
    if (host->uplink_.id == kNoPort || host->host_.id == kNoPort) return nullptr;
    for (PodPort& p : state.upsert_pod_ports) {
      host->pods_[p.host_ifname] = MakeRingPort(p.host_ifname);
      if (host->pods_[p.host_ifname].id == kNoPort) return nullptr;
      // The model wants a kernel interface's index; ring ports have none.
      p.host_ifindex = 1000u + host->pods_[p.host_ifname].id;
    }
    DpdkDataplane::Options options;
    options.uplink_port = host->uplink_.id;
    options.host_port = host->host_.id;
    options.pipeline.uplink_mac = kUplinkMac;
    options.pipeline.conntrack_flows = conntrack_flows;
    options.workers = workers;
    options.idle_sleep_us = 20;  // three threads on two CPUs: the test's, and two polling
    Host* self = host.get();
    options.attach_pod = [self](const PodPort& p) -> absl::StatusOr<uint16_t> {
      auto it = self->pods_.find(p.host_ifname);
      if (it == self->pods_.end()) return absl::NotFoundError(p.host_ifname);
      return it->second.id;
    };
    options.detach_pod = [self](uint16_t port) {
      if (self->on_detach_) self->on_detach_(port);
    };
    absl::StatusOr<std::unique_ptr<DpdkDataplane>> dp = DpdkDataplane::Create(std::move(options));
    if (!dp.ok()) {
      ADD_FAILURE() << dp.status();
      return nullptr;
    }
    host->dataplane_ = std::move(*dp);
    if (absl::Status s = host->dataplane_->Apply(state); !s.ok()) {
      ADD_FAILURE() << s;
      return nullptr;
    }
    return host;
  }

  DpdkDataplane& dataplane() { return *dataplane_; }
  const RingPort& pod(const std::string& ifname) { return pods_.at(ifname); }
  // Called where a real port would be closed and its mbuf pool freed.
  void OnDetach(std::function<void(uint16_t port)> f) { on_detach_ = std::move(f); }
  // Takes every frame the ports sent: `f` sees each before it is freed.
  void TakeSent(const std::function<void(rte_mbuf*)>& f) {
    std::vector<const RingPort*> ports = {&uplink_, &host_};
    for (const auto& [name, p] : pods_) ports.push_back(&p);
    for (const RingPort* p : ports) {
      void* sent;
      while (rte_ring_dequeue(p->tx, &sent) == 0) {
        f(static_cast<rte_mbuf*>(sent));
        rte_pktmbuf_free(static_cast<rte_mbuf*>(sent));
      }
    }
  }

  uint64_t Drops(const std::string& reason) const {
    for (const auto& [name, n] : dataplane_->Drops()) {
      if (name == reason) return n;
    }
    return 0;
  }
  uint64_t AllDrops() const {
    uint64_t sum = 0;
    for (const auto& [name, n] : dataplane_->Drops()) sum += n;
    return sum;
  }

  struct Out {
    std::string port;  // "uplink", "host", a pod's ifname; empty: dropped
    std::vector<uint8_t> frame;
  };
  // Puts `frame` on `in`'s RX ring and waits for it to leave a port or be
  // counted as dropped (an empty Out).
  Out Send(const RingPort& in, const std::vector<uint8_t>& frame) {
    std::vector<Out> outs = SendBurst(in, {frame});
    return outs.empty() ? Out{} : outs[0];
  }

  // Puts `frames` on `in`'s RX ring at once, so that the worker polling it
  // takes them as one burst, and collects what leaves the ports until each
  // frame left one or was counted as dropped.
  std::vector<Out> SendBurst(const RingPort& in, const std::vector<std::vector<uint8_t>>& frames) {
    std::vector<rte_mbuf*> burst;
    for (const std::vector<uint8_t>& frame : frames) {
      rte_mbuf* m = rte_pktmbuf_alloc(*PacketPool());
      EXPECT_NE(m, nullptr);
      std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                  frame.size());
      burst.push_back(m);
    }
    const uint64_t drops = AllDrops();
    EXPECT_EQ(rte_ring_enqueue_bulk(in.rx, reinterpret_cast<void**>(burst.data()),
                                    static_cast<unsigned>(burst.size()), nullptr),
              burst.size());
    std::vector<Out> outs;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (outs.size() + (AllDrops() - drops) < frames.size() &&
           std::chrono::steady_clock::now() < deadline) {
      std::map<std::string, const RingPort*> ports = {{"uplink", &uplink_}, {"host", &host_}};
      for (const auto& [name, p] : pods_) ports[name] = &p;
      for (const auto& [name, p] : ports) {
        void* sent;
        while (rte_ring_dequeue(p->tx, &sent) == 0) {
          auto* out = static_cast<rte_mbuf*>(sent);
          outs.push_back({name, Bytes(out)});
          rte_pktmbuf_free(out);
        }
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    EXPECT_EQ(outs.size() + (AllDrops() - drops), frames.size())
        << "frames neither left a port nor were counted as dropped";
    return outs;
  }

  // The step's updates, then its packet.
  Out Run(const Step& step) {
    for (Update u : step.before) {
      for (PodPort& p : u.upsert_pod_ports) p.host_ifindex = 1000u + pods_.at(p.host_ifname).id;
      if (absl::Status s = dataplane_->Apply(u); !s.ok()) ADD_FAILURE() << s;
    }
    switch (step.port) {
      case Port::kPod:
        return Send(pods_.at(step.pod), step.packet);
      case Port::kOverlay:
        return Send(uplink_, FromUnderlay(step));
      case Port::kUplink:
        return Send(uplink_, step.packet);
    }
    return {};
  }

  // The workers stop first; then the ports and their rings go (DPDK has
  // room for 32 ports in all).
  ~Host() {
    dataplane_.reset();
    std::vector<RingPort> ports = {uplink_, host_};
    for (const auto& [name, p] : pods_) ports.push_back(p);
    for (const RingPort& p : ports) {
      if (p.id != kNoPort) {
        rte_eth_dev_stop(p.id);
        rte_eth_dev_close(p.id);
      }
      for (rte_ring* r : {p.rx, p.tx}) {
        void* m;
        while (r != nullptr && rte_ring_dequeue(r, &m) == 0)
          rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        rte_ring_free(r);
      }
    }
  }

 private:
  Host() = default;
  RingPort uplink_;
  RingPort host_;
  std::map<std::string, RingPort> pods_;
  std::function<void(uint16_t)> on_detach_;
  std::unique_ptr<DpdkDataplane> dataplane_;
};

class DpdkFixturesTest : public ::testing::TestWithParam<unsigned> {};

TEST_P(DpdkFixturesTest, EveryTableGivesItsVerdictsAndBytes) {
  for (const fixtures::Table& table : fixtures::AllTables()) {
    std::unique_ptr<Host> host = Host::Make(table.state, GetParam());
    ASSERT_NE(host, nullptr);
    for (const Step& step : table.steps) {
      SCOPED_TRACE(table.name + ": " + step.name);
      const uint64_t drops_before = host->Drops(step.drop_reason);
      const Host::Out out = host->Run(step);
      switch (step.verdict) {
        case Verdict::kDrop:
          EXPECT_EQ(out.port, "") << Hex(out.frame);
          if (!step.drop_reason.empty()) {
            EXPECT_EQ(host->Drops(step.drop_reason), drops_before + 1)
                << "counted under " << step.drop_reason;
          }
          break;
        case Verdict::kPass:
          EXPECT_EQ(out.port, "host");
          break;
        case Verdict::kDeliver:
          EXPECT_EQ(out.port, step.to_pod);
          break;
        case Verdict::kEncap:
          EXPECT_EQ(out.port, "uplink");
          ExpectVxlan(out.frame, step.to_vni, step.to_underlay);
          break;
        case Verdict::kOut:
          EXPECT_EQ(out.port, "uplink");
          break;
        case Verdict::kReply:
          EXPECT_EQ(out.port, step.pod);
          break;
      }
      if (!step.out.empty()) {
        const std::vector<uint8_t> frame =
            step.verdict == Verdict::kEncap && out.frame.size() > kVxlanHeaders
                ? std::vector<uint8_t>(out.frame.begin() + kVxlanHeaders, out.frame.end())
                : out.frame;
        EXPECT_EQ(Hex(frame), Hex(step.out));
        if (step.verdict != Verdict::kReply) {
          EXPECT_TRUE(lb::ChecksumsValid(frame)) << "checksums of" << Hex(frame);
        }
      }
    }
  }
}

// Segment "a" with a client pod and a backend pod on this host, and service
// a/web on `vip`:80 to the backends given.
Update WebState(const std::vector<std::string>& backends) {
  Update u;
  Segment seg;
  seg.name = "a";
  seg.vni = 1;
  seg.cidrs = {*lb::IpPrefix::Parse("198.19.0.0/24")};
  seg.gateway = *lb::IpAddr::Parse("198.19.0.1");
  u.upsert_segments = {seg};
  for (const char* ip : {"198.19.0.2", "198.19.0.3", "198.19.0.4"}) {
    PodPort p;
    const lb::IpAddr a = *lb::IpAddr::Parse(ip);
    p.host_ifname = std::string("p") + ip[9];
    p.address = a;
    p.mac = {0x0a, 0x58, a.v4_bytes()[0], a.v4_bytes()[1], a.v4_bytes()[2], a.v4_bytes()[3]};
    p.segment = "a";
    u.upsert_pod_ports.push_back(p);
  }
  u.set_node_addresses = true;
  u.node_addresses = {fixtures::kNodeAddr};
  Frontend f;
  f.key = {*lb::IpAddr::Parse("198.18.64.10"), 80, lb::IpProto::kTcp, lb::Scope::kInternal};
  f.name = "a/web";
  for (const std::string& b : backends) {
    f.config.backends.push_back({.endpoint = {*lb::IpAddr::Parse(b), 8080}});
  }
  f.config.maglev_size = 251;
  u.upsert_frontends = {f};
  return u;
}

std::vector<uint8_t> ClientSyn(uint16_t sport) {
  return lb::PacketBuilder()
      .Ethernet({0x0a, 0x58, 198, 19, 0, 2}, kRouterMac)
      .Ip("198.19.0.2", "198.18.64.10")
      .Tcp(sport, 80, lb::kTcpSyn)
      .Build();
}

// The control thread changes the tables under running workers: a new flow
// takes the new backend, an established one keeps its own (conntrack, not
// the table), and a removed pod's port is no longer polled.
TEST_P(DpdkFixturesTest, TablesChangeUnderRunningWorkers) {
  std::unique_ptr<Host> host = Host::Make(WebState({"198.19.0.3"}), GetParam());
  ASSERT_NE(host, nullptr);
  const RingPort& client = host->pod("p2");
  EXPECT_EQ(host->Send(client, ClientSyn(41000)).port, "p3");

  Update moved = WebState({"198.19.0.4"});
  moved.upsert_segments.clear();
  moved.upsert_pod_ports.clear();
  ASSERT_TRUE(host->dataplane().Apply(moved).ok());
  EXPECT_EQ(host->Send(client, ClientSyn(41001)).port, "p4") << "a new flow takes the new backend";
  const std::vector<uint8_t> ack = lb::PacketBuilder()
                                       .Ethernet({0x0a, 0x58, 198, 19, 0, 2}, kRouterMac)
                                       .Ip("198.19.0.2", "198.18.64.10")
                                       .Tcp(41000, 80, lb::kTcpAck)
                                       .Build();
  EXPECT_EQ(host->Send(client, ack).port, "p3") << "an established flow keeps its backend";

  Update bad;
  Frontend f;
  f.key = {*lb::IpAddr::Parse("198.18.64.11"), 80, lb::IpProto::kTcp, lb::Scope::kInternal};
  f.config.maglev_size = 7;  // not one of lb's table sizes
  f.config.backends = {{.endpoint = {*lb::IpAddr::Parse("198.19.0.3"), 8080}}};
  bad.upsert_frontends = {f};
  bad.remove_pod_ports = {"p4"};
  EXPECT_FALSE(host->dataplane().Apply(bad).ok());
  EXPECT_EQ(host->dataplane().Dump().pod_ports.size(), 3u) << "a refused Update changes nothing";

  Update gone;
  gone.remove_pod_ports = {"p4"};
  ASSERT_TRUE(host->dataplane().Apply(gone).ok());
  EXPECT_EQ(host->dataplane().Dump().pod_ports.size(), 2u);
  EXPECT_EQ(host->Send(client, ClientSyn(41002)).port, "") << "the backend's pod is gone";
  EXPECT_EQ(host->Drops("no-route"), 1u) << "198.19.0.4 is in segment a but on no host";
}

std::vector<uint8_t> TcpFrame(const lb::MacAddr& src_mac, const char* src, uint16_t sport,
                              const char* dst, uint16_t dport, uint8_t flags) {
  return lb::PacketBuilder()
      .Ethernet(src_mac, kRouterMac)
      .Ip(src, dst)
      .Tcp(sport, dport, flags)
      .Build();
}

// A flow keeps where its packets went (lb::Flow::route) only while the
// tables stay as they were: a new MAC for the next hop, or a pod gone, is
// seen by the flow's next packet.
TEST_P(DpdkFixturesTest, AFlowsKeptRouteFollowsTheTables) {
  const lb::IpAddr h2 = *lb::IpAddr::Parse("198.18.0.12");
  Update state = WebState({"198.19.8.5"});  // a backend on another host
  state.upsert_segments[0].cidrs = {*lb::IpPrefix::Parse("198.19.0.0/16")};
  state.upsert_routes = {{*lb::IpPrefix::Parse("198.19.8.0/24"), 1, "h2", h2}};
  std::unique_ptr<Host> host = Host::Make(state, GetParam());
  ASSERT_NE(host, nullptr);
  const RingPort& client = host->pod("p2");
  const lb::MacAddr client_mac = {0x0a, 0x58, 198, 19, 0, 2};
  auto next_hop_of = [](const Host::Out& out) {
    lb::MacAddr mac{};
    if (out.frame.size() >= 6) std::memcpy(mac.data(), out.frame.data(), 6);
    return mac;
  };
  const lb::MacAddr kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const lb::MacAddr first = {0x02, 0, 0, 0, 0, 0x21};
  const lb::MacAddr second = {0x02, 0, 0, 0, 0, 0x22};

  Host::Out out = host->Send(client, ClientSyn(42000));
  ASSERT_EQ(out.port, "uplink");
  EXPECT_EQ(next_hop_of(out), kBroadcast) << "h2's MAC is not known yet";
  const std::vector<uint8_t> ack =
      TcpFrame(client_mac, "198.19.0.2", 42000, "198.18.64.10", 80, lb::kTcpAck);
  host->dataplane().SetNeighbours({{h2, first}});
  out = host->Send(client, ack);
  ASSERT_EQ(out.port, "uplink");
  EXPECT_EQ(next_hop_of(out), first);
  out = host->Send(client, ack);
  EXPECT_EQ(next_hop_of(out), first) << "the route the flow kept";
  host->dataplane().SetNeighbours({{h2, second}});
  out = host->Send(client, ack);
  EXPECT_EQ(next_hop_of(out), second) << "h2 has a new MAC";
  ExpectVxlan(out.frame, 1, h2);

  // A flow to a pod of this host, whose pod then goes: its next packet is
  // not sent to the port the pod had.
  Update local = WebState({"198.19.0.3"});
  local.upsert_segments.clear();
  local.upsert_pod_ports.clear();
  ASSERT_TRUE(host->dataplane().Apply(local).ok());
  EXPECT_EQ(host->Send(client, ClientSyn(42001)).port, "p3");
  const std::vector<uint8_t> ack3 =
      TcpFrame(client_mac, "198.19.0.2", 42001, "198.18.64.10", 80, lb::kTcpAck);
  EXPECT_EQ(host->Send(client, ack3).port, "p3");
  Update gone;
  gone.remove_pod_ports = {"p3"};
  ASSERT_TRUE(host->dataplane().Apply(gone).ok());
  EXPECT_EQ(host->Send(client, ack3).port, "") << "p3's pod is gone";
  EXPECT_EQ(host->Drops("no-route"), 1u);
}

// A dataplane without an uplink (as atoll-perf's, before its traffic port is
// given) drops what is for the underlay, and says that was what it lacked.
TEST_P(DpdkFixturesTest, AFrameForAMissingUplinkIsCountedAsSuch) {
  Update state = WebState({"198.19.8.5"});  // a backend on another host
  state.upsert_segments[0].cidrs = {*lb::IpPrefix::Parse("198.19.0.0/16")};
  state.upsert_routes = {
      {*lb::IpPrefix::Parse("198.19.8.0/24"), 1, "h2", *lb::IpAddr::Parse("198.18.0.12")}};
  std::unique_ptr<Host> host = Host::Make(state, GetParam());
  ASSERT_NE(host, nullptr);
  host->dataplane().SetUplinkPort(kNoPort);
  EXPECT_EQ(host->Send(host->pod("p2"), ClientSyn(43000)).port, "");
  EXPECT_EQ(host->Drops("no-uplink"), 1u);
  EXPECT_EQ(host->Drops("tx-full"), 0u);
}

lb::FlowKey KeyOf(const std::vector<uint8_t>& frame) {
  lb::ParsedPacket p;
  EXPECT_EQ(lb::ParseEthernet(frame.data(), frame.size(), &p), lb::DropReason::kNone);
  return p.ip.key;
}

// Many flows through a service whose replies come back on other ports, so
// that with two workers most of them are received by the worker that does
// not own them: every reply still finds its flow and is translated back.
TEST_P(DpdkFixturesTest, RepliesFindTheirFlowsOnWhicheverWorkerReceivesThem) {
  std::unique_ptr<Host> host = Host::Make(WebState({"198.19.0.3", "198.19.0.4"}), GetParam());
  ASSERT_NE(host, nullptr);
  const lb::MacAddr client_mac = {0x0a, 0x58, 198, 19, 0, 2};
  const lb::IpAddr vip = *lb::IpAddr::Parse("198.18.64.10");
  std::map<uint16_t, std::string> backend_of;  // client port -> backend pod
  for (uint16_t sport = 43000; sport < 43064; ++sport) {
    SCOPED_TRACE(sport);
    const Host::Out syn = host->Send(host->pod("p2"), TcpFrame(client_mac, "198.19.0.2", sport,
                                                               "198.18.64.10", 80, lb::kTcpSyn));
    ASSERT_TRUE(syn.port == "p3" || syn.port == "p4") << syn.port;
    backend_of[sport] = syn.port;
    const lb::FlowKey to = KeyOf(syn.frame);
    EXPECT_EQ(to.dst_port, 8080);
    // The backend answers from its own address; the client sees the VIP.
    const std::string backend = to.dst.ToString();
    const lb::MacAddr backend_mac = {0x0a, 0x58, 198,
                                     19,   0,    syn.port == "p3" ? uint8_t{3} : uint8_t{4}};
    const Host::Out reply =
        host->Send(host->pod(syn.port), TcpFrame(backend_mac, backend.c_str(), 8080, "198.19.0.2",
                                                 sport, lb::kTcpSyn | lb::kTcpAck));
    ASSERT_EQ(reply.port, "p2");
    const lb::FlowKey back = KeyOf(reply.frame);
    EXPECT_EQ(back.src, vip);
    EXPECT_EQ(back.src_port, 80);
    EXPECT_EQ(back.dst_port, sport);
  }
  // The service loses a backend: the client's next packets still reach the
  // backend of their flow, wherever it was recorded, not the table's choice.
  Update one_left = WebState({"198.19.0.3"});
  one_left.upsert_segments.clear();
  one_left.upsert_pod_ports.clear();
  ASSERT_TRUE(host->dataplane().Apply(one_left).ok());
  for (const auto& [sport, backend] : backend_of) {
    SCOPED_TRACE(sport);
    EXPECT_EQ(host->Send(host->pod("p2"),
                         TcpFrame(client_mac, "198.19.0.2", sport, "198.18.64.10", 80, lb::kTcpAck))
                  .port,
              backend);
  }
  // Hairpin, a SNAT: the backend is the client itself, which sees the
  // gateway as the source; the reply tuple is the gateway's.
  Update self_only = WebState({"198.19.0.2"});
  self_only.upsert_segments.clear();
  self_only.upsert_pod_ports.clear();
  ASSERT_TRUE(host->dataplane().Apply(self_only).ok());
  for (uint16_t sport = 44000; sport < 44032; ++sport) {
    SCOPED_TRACE(sport);
    const Host::Out in = host->Send(host->pod("p2"), TcpFrame(client_mac, "198.19.0.2", sport,
                                                              "198.18.64.10", 80, lb::kTcpSyn));
    ASSERT_EQ(in.port, "p2");
    const lb::FlowKey to = KeyOf(in.frame);
    ASSERT_EQ(to.src.ToString(), "198.19.0.1");
    const Host::Out reply =
        host->Send(host->pod("p2"), TcpFrame(client_mac, "198.19.0.2", 8080, "198.19.0.1",
                                             to.src_port, lb::kTcpSyn | lb::kTcpAck));
    ASSERT_EQ(reply.port, "p2");
    const lb::FlowKey back = KeyOf(reply.frame);
    EXPECT_EQ(back.src, vip);
    EXPECT_EQ(back.dst.ToString(), "198.19.0.2");
    EXPECT_EQ(back.dst_port, sport);
  }
  EXPECT_EQ(host->AllDrops(), 0u);
  if (GetParam() > 1) {
    EXPECT_GT(host->dataplane().Stats().handed_off, 0u) << "no frame crossed between workers";
  }
}

// Frames taken in one burst are hashed eight at a time (Pipeline's first
// pass): a burst of 21, 2 of them dropped on the way, crosses three groups
// of eight and ends inside one. Every SYN reaches a backend, every reply in
// a burst of its own finds its flow, and so does every next packet.
TEST_P(DpdkFixturesTest, FramesOfOneBurstEachFindTheirFlow) {
  std::unique_ptr<Host> host = Host::Make(WebState({"198.19.0.3", "198.19.0.4"}), GetParam());
  ASSERT_NE(host, nullptr);
  const lb::MacAddr client_mac = {0x0a, 0x58, 198, 19, 0, 2};
  const lb::MacAddr not_its_mac = {0x0a, 0x58, 198, 19, 0, 9};
  constexpr uint16_t kFirstPort = 47000;
  std::vector<std::vector<uint8_t>> syns;
  for (uint16_t i = 0; i < 21; ++i) {
    // The 6th and the 17th come from a MAC not the pod's: spoofed, dropped.
    const bool spoofed = i == 5 || i == 16;
    syns.push_back(TcpFrame(spoofed ? not_its_mac : client_mac, "198.19.0.2", kFirstPort + i,
                            "198.18.64.10", 80, lb::kTcpSyn));
  }
  const std::vector<Host::Out> in = host->SendBurst(host->pod("p2"), syns);
  EXPECT_EQ(host->Drops("spoofed"), 2u);
  ASSERT_EQ(in.size(), 19u);
  std::map<uint16_t, std::string> backend_of;                        // client port -> backend pod
  std::map<std::string, std::vector<std::vector<uint8_t>>> replies;  // by backend pod
  for (const Host::Out& o : in) {
    ASSERT_TRUE(o.port == "p3" || o.port == "p4") << o.port;
    const lb::FlowKey to = KeyOf(o.frame);
    EXPECT_EQ(to.dst.ToString(), o.port == "p3" ? "198.19.0.3" : "198.19.0.4");
    EXPECT_EQ(to.dst_port, 8080);
    backend_of[to.src_port] = o.port;
    const lb::MacAddr backend_mac = {0x0a, 0x58, 198,
                                     19,   0,    o.port == "p3" ? uint8_t{3} : uint8_t{4}};
    replies[o.port].push_back(TcpFrame(backend_mac, to.dst.ToString().c_str(), 8080, "198.19.0.2",
                                       to.src_port, lb::kTcpSyn | lb::kTcpAck));
  }
  EXPECT_EQ(backend_of.size(), 19u) << "a client port came out twice";
  for (const auto& [pod, frames] : replies) {
    for (const Host::Out& o : host->SendBurst(host->pod(pod), frames)) {
      ASSERT_EQ(o.port, "p2");
      const lb::FlowKey back = KeyOf(o.frame);
      EXPECT_EQ(back.src.ToString(), "198.18.64.10");
      EXPECT_EQ(back.src_port, 80);
      EXPECT_TRUE(backend_of.count(back.dst_port)) << back.dst_port;
    }
  }
  std::vector<std::vector<uint8_t>> acks;
  for (const auto& [sport, backend] : backend_of) {
    acks.push_back(TcpFrame(client_mac, "198.19.0.2", sport, "198.18.64.10", 80, lb::kTcpAck));
  }
  for (const Host::Out& o : host->SendBurst(host->pod("p2"), acks)) {
    EXPECT_EQ(o.port, backend_of[KeyOf(o.frame).src_port]);
  }
  EXPECT_EQ(host->AllDrops(), 2u);
}

// Two flows never share a reply tuple, whichever workers they start on. A
// client port holding a flow to a backend, through a service whose only
// backend it is or directly, reaches a second service, which has that
// backend too, through the second service's other backend; and the first
// flow's replies still come to it as they did.
TEST_P(DpdkFixturesTest, TwoFlowsNeverShareAReplyTuple) {
  Update state = WebState({"198.19.0.3"});
  Frontend other = state.upsert_frontends[0];
  other.key.addr = *lb::IpAddr::Parse("198.18.64.11");
  other.name = "a/other";
  other.config.backends = {{.endpoint = {*lb::IpAddr::Parse("198.19.0.3"), 8080}},
                           {.endpoint = {*lb::IpAddr::Parse("198.19.0.4"), 8080}}};
  state.upsert_frontends.push_back(other);
  std::unique_ptr<Host> host = Host::Make(state, GetParam());
  ASSERT_NE(host, nullptr);
  const lb::MacAddr client_mac = {0x0a, 0x58, 198, 19, 0, 2};
  const lb::MacAddr backend_mac = {0x0a, 0x58, 198, 19, 0, 3};
  for (uint16_t sport = 46000; sport < 46128; ++sport) {
    SCOPED_TRACE(sport);
    const bool direct = sport >= 46064;
    const char* first = direct ? "198.19.0.3" : "198.18.64.10";
    ASSERT_EQ(host->Send(host->pod("p2"), TcpFrame(client_mac, "198.19.0.2", sport, first,
                                                   direct ? 8080 : 80, lb::kTcpSyn))
                  .port,
              "p3");
    EXPECT_EQ(host->Send(host->pod("p2"),
                         TcpFrame(client_mac, "198.19.0.2", sport, "198.18.64.11", 80, lb::kTcpSyn))
                  .port,
              "p4")
        << "the second flow took the first one's reply tuple";
    const Host::Out reply = host->Send(
        host->pod("p3"),
        TcpFrame(backend_mac, "198.19.0.3", 8080, "198.19.0.2", sport, lb::kTcpSyn | lb::kTcpAck));
    ASSERT_EQ(reply.port, "p2");
    EXPECT_EQ(KeyOf(reply.frame).src.ToString(), first);
  }
  EXPECT_EQ(host->AllDrops(), 0u);
}

// Session affinity holds across workers: a client's flows to a sticky
// service are spread over them and all reach the one backend. The test picks
// a second flow that another worker owns (with two) and that Maglev alone
// would send to the other backend.
TEST_P(DpdkFixturesTest, SessionAffinityHoldsAcrossWorkers) {
  const lb::MacAddr client_mac = {0x0a, 0x58, 198, 19, 0, 2};
  const auto syn = [&](uint16_t sport) {
    return TcpFrame(client_mac, "198.19.0.2", sport, "198.18.64.10", 80, lb::kTcpSyn);
  };
  // Where each flow goes without affinity.
  std::map<uint16_t, std::string> maglev;
  {
    std::unique_ptr<Host> plain = Host::Make(WebState({"198.19.0.3", "198.19.0.4"}), GetParam());
    ASSERT_NE(plain, nullptr);
    for (uint16_t sport = 45000; sport < 45064; ++sport) {
      maglev[sport] = plain->Send(plain->pod("p2"), syn(sport)).port;
    }
  }
  const uint16_t first = 45000;
  uint16_t second = 0;
  for (const auto& [sport, backend] : maglev) {
    if (backend != maglev[first] &&
        Pipeline::OwnerOf(KeyOf(syn(sport)), 2) != Pipeline::OwnerOf(KeyOf(syn(first)), 2)) {
      second = sport;
      break;
    }
  }
  ASSERT_NE(second, 0) << "no flow of another worker that Maglev sends elsewhere";

  Update state = WebState({"198.19.0.3", "198.19.0.4"});
  state.upsert_frontends[0].config.affinity_timeout_s = 600;
  std::unique_ptr<Host> host = Host::Make(state, GetParam());
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(host->Send(host->pod("p2"), syn(first)).port, maglev[first]);
  EXPECT_EQ(host->Send(host->pod("p2"), syn(second)).port, maglev[first])
      << "the client's second flow keeps its first backend";
}

// A pod's port goes, with the pool its frames were received into, only
// once none of them is left anywhere in the dataplane: with two workers,
// most of them cross from one to the other (to the flow's owner, or to the
// worker that sends on the destination's port), and a frame still in a
// worker's inbox when its pool is freed would be written after the free.
TEST_P(DpdkFixturesTest, APodsPortGoesOnlyWhenNoneOfItsFramesIsLeft) {
  std::unique_ptr<Host> host = Host::Make(WebState({"198.19.0.3"}), GetParam());
  ASSERT_NE(host, nullptr);
  const RingPort& p2 = host->pod("p2");
  // The pool of p2's frames alone, as an AF_XDP port has; no per-lcore cache,
  // so that every mbuf freed is counted as free at once.
  rte_mempool* pool = rte_pktmbuf_pool_create(("p2_pool_" + std::to_string(p2.id)).c_str(), 1023, 0,
                                              0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  ASSERT_NE(pool, nullptr) << rte_strerror(rte_errno);
  // p2 sends UDP to p3 from many ports, so that with two workers the flows
  // are owned by both and frames cross, until its port goes.
  std::atomic<bool> stop{false};
  std::thread feeder([&] {
    const lb::MacAddr p2_mac = {0x0a, 0x58, 198, 19, 0, 2};
    for (uint32_t i = 0; !stop.load(); ++i) {
      const std::vector<uint8_t> frame = lb::PacketBuilder()
                                             .Ethernet(p2_mac, kRouterMac)
                                             .Ip("198.19.0.2", "198.19.0.3")
                                             .Udp(static_cast<uint16_t>(30000 + i % 256), 53)
                                             .Build();
      rte_mbuf* m = rte_pktmbuf_alloc(pool);
      if (m == nullptr) {
        std::this_thread::yield();
        continue;
      }
      std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                  frame.size());
      m->port = p2.id;  // as a NIC's or AF_XDP's driver says where it was received
      if (rte_ring_enqueue(p2.rx, m) != 0) {
        rte_pktmbuf_free(m);
        std::this_thread::yield();
      }
    }
  });
  int checked = 0;
  host->OnDetach([&](uint16_t port) {
    if (port != p2.id) return;
    ++checked;
    stop = true;
    feeder.join();
    host->TakeSent([](rte_mbuf*) {});
    // What p2 had not received yet stays on its RX ring; nothing else of
    // its pool may be in use.
    EXPECT_EQ(rte_mempool_in_use_count(pool), rte_ring_count(p2.rx))
        << "frames of a removed port are still on their way";
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (host->dataplane().Stats().packets < 2000 && std::chrono::steady_clock::now() < deadline) {
    host->TakeSent([](rte_mbuf*) {});
  }
  if (GetParam() > 1) {
    EXPECT_GT(host->dataplane().Stats().handed_off, 0u) << "no frame crossed between workers";
  }
  // Gone while its frames go through.
  Update remove;
  remove.remove_pod_ports = {"p2"};
  const absl::Status removed = host->dataplane().Apply(remove);
  if (feeder.joinable()) {
    stop = true;
    feeder.join();
  }
  ASSERT_TRUE(removed.ok()) << removed;
  EXPECT_EQ(checked, 1);
  host->TakeSent([](rte_mbuf*) {});
  void* left;
  while (rte_ring_dequeue(p2.rx, &left) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(left));
  EXPECT_EQ(rte_mempool_in_use_count(pool), 0u);
  rte_mempool_free(pool);
}

// A full conntrack shard degrades to balancing without entries (DESIGN.md
// "Conntrack and NAT"): a new flow to a ClusterIP still reaches Maglev's
// backend, and the backend's reply still comes from the ClusterIP.
TEST_P(DpdkFixturesTest, AFullConntrackShardBalancesWithoutEntriesBothWays) {
  std::unique_ptr<Host> host = Host::Make(WebState({"198.19.0.3"}), GetParam(), 16);
  ASSERT_NE(host, nullptr);
  const lb::MacAddr p2_mac = {0x0a, 0x58, 198, 19, 0, 2};
  const lb::MacAddr p3_mac = {0x0a, 0x58, 198, 19, 0, 3};
  // Fill every shard with flows seen both ways, which are never evicted.
  for (uint16_t sport = 20000; sport < 20000 + 64 * GetParam(); ++sport) {
    ASSERT_EQ(host->Send(host->pod("p2"),
                         TcpFrame(p2_mac, "198.19.0.2", sport, "198.19.0.3", 9000, lb::kTcpSyn))
                  .port,
              "p3");
    ASSERT_EQ(host->Send(host->pod("p3"), TcpFrame(p3_mac, "198.19.0.3", 9000, "198.19.0.2", sport,
                                                   lb::kTcpSyn | lb::kTcpAck))
                  .port,
              "p2");
  }
  const uint64_t stateless = host->dataplane().Stats().stateless;
  ASSERT_GT(stateless, 0u) << "the shards never filled";

  const Host::Out syn = host->Send(
      host->pod("p2"), TcpFrame(p2_mac, "198.19.0.2", 41000, "198.18.64.10", 80, lb::kTcpSyn));
  ASSERT_EQ(syn.port, "p3");
  EXPECT_EQ(KeyOf(syn.frame).dst.ToString(), "198.19.0.3");
  EXPECT_EQ(KeyOf(syn.frame).dst_port, 8080);
  EXPECT_EQ(host->dataplane().Stats().stateless, stateless + 1) << "it had an entry";
  const Host::Out reply = host->Send(
      host->pod("p3"),
      TcpFrame(p3_mac, "198.19.0.3", 8080, "198.19.0.2", 41000, lb::kTcpSyn | lb::kTcpAck));
  ASSERT_EQ(reply.port, "p2");
  EXPECT_EQ(KeyOf(reply.frame).src.ToString(), "198.18.64.10") << "the reply is not translated";
  EXPECT_EQ(KeyOf(reply.frame).src_port, 80);
  EXPECT_EQ(host->dataplane().Stats().stateless_replies, 1u);
  EXPECT_EQ(host->AllDrops(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, DpdkFixturesTest, ::testing::Values(1u, 2u),
                         [](const ::testing::TestParamInfo<unsigned>& info) {
                           return absl::StrCat(info.param, info.param == 1 ? "Worker" : "Workers");
                         });

}  // namespace
}  // namespace atl::dataplane::dpdk

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Three lcores floating over two CPUs (the test's thread and up to two
  // workers), no hugepages, no PCI.
  const absl::Status eal = atl::dataplane::dpdk::InitEal(
      atl::dataplane::dpdk::DefaultEalArgs("0@(0-1),1@(0-1),2@(0-1)", 256));
  if (!eal.ok()) {
    std::fprintf(stderr, "dpdk_fixtures_test: %s\n", eal.ToString().c_str());
    return 1;
  }
  return RUN_ALL_TESTS();
}
