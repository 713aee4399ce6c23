#include "lb/worker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lb/packet_builder.h"
#include "lb/test_support.h"

namespace atl::lb {
namespace {

using ::testing::HasSubstr;
using ::testing::Contains;
using ::testing::Not;

using Frame = std::vector<uint8_t>;

constexpr uint64_t kSec = 1'000'000'000;
constexpr uint8_t kSynAck = kTcpSyn | kTcpAck;

using test_support::Addr;

Endpoint Ep(std::string_view addr, uint16_t port) { return {Addr(addr), port}; }

std::string Str(const Endpoint& e) {
  return e.addr.IsV4() ? e.addr.ToString() + ":" + std::to_string(e.port)
                       : "[" + e.addr.ToString() + "]:" + std::to_string(e.port);
}

// The address plan: services 198.18.64.0/18, pods 198.19.0.0/16 (198.19.0.x
// run on this node, 198.19.1.x on others), external clients 198.18.16.0/20,
// node addresses 198.18.0.0/20; IPv6 under fd00:a70::/48.
const IpAddr kClient = Addr("198.19.0.10");
const IpAddr kClient6 = Addr("fd00:a70:0:2::10");
const IpAddr kExternalClient = Addr("198.18.16.5");
const IpAddr kNodeAddr = Addr("198.18.0.2");
const FrontendKey kWeb{Addr("198.18.64.10"), 80, IpProto::kTcp, Scope::kInternal};
const FrontendKey kDns{Addr("198.18.64.11"), 53, IpProto::kUdp, Scope::kInternal};
const FrontendKey kWeb6{Addr("fd00:a70:0:64::10"), 80, IpProto::kTcp, Scope::kInternal};
const FrontendKey kDns6{Addr("fd00:a70:0:64::11"), 53, IpProto::kUdp, Scope::kInternal};
const FrontendKey kEmpty{Addr("198.18.64.12"), 80, IpProto::kTcp, Scope::kInternal};

Frame Tcp(const Endpoint& src, const Endpoint& dst, uint8_t flags, size_t payload = 0) {
  return PacketBuilder().Ip(src.addr, dst.addr).Tcp(src.port, dst.port, flags).Payload(payload).Build();
}
Frame Udp(const Endpoint& src, const Endpoint& dst, size_t payload = 32) {
  return PacketBuilder().Ip(src.addr, dst.addr).Udp(src.port, dst.port).Payload(payload).Build();
}

Endpoint At(const FrontendKey& fe) { return {fe.addr, fe.port}; }

Backend Ready(std::string_view addr, uint16_t port = 8080, bool local = false) {
  Backend b;
  b.endpoint = Ep(addr, port);
  b.node_local = local;
  return b;
}
Backend Terminating(const Endpoint& e, bool serving = true) {
  Backend b;
  b.endpoint = e;
  b.terminating = true;
  b.serving = serving;
  return b;
}

ServiceConfig Config(std::vector<Backend> backends) {
  ServiceConfig c;
  c.backends = std::move(backends);
  c.maglev_size = 1021;
  return c;
}

// One node's load balancer: its tables and a worker over them.
class Node {
 public:
  explicit Node(uint32_t max_flows = 4096, uint32_t max_affinity = 4096) : affinity_(max_affinity) {
    ConntrackConfig cfg;
    cfg.max_flows = max_flows;
    conntrack_ = ConntrackShard::Create(cfg).value();
    worker_ = std::make_unique<Worker>(&services_, conntrack_.get(), &affinity_);
  }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void Set(const FrontendKey& fe, const ServiceConfig& config) {
    const absl::StatusOr<ServiceId> id = services_.Upsert(fe, config);
    ASSERT_TRUE(id.ok()) << id.status();
  }
  Verdict Process(Frame& f, Scope scope = Scope::kInternal) {
    return worker_->Process(f.data(), f.size(), scope, now_);
  }
  // The backend Maglev gives a new flow carried by `f`: the expected choice.
  Endpoint MaglevChoice(const Frame& f, Scope scope = Scope::kInternal) const {
    ParsedPacket p;
    EXPECT_EQ(ParseEthernet(f.data(), f.size(), &p), DropReason::kNone);
    const Service* svc = services_.Lookup(p.ip.key.dst, p.ip.key.dst_port, p.ip.key.proto, scope);
    EXPECT_NE(svc, nullptr) << p.ip.key.ToString();
    if (svc == nullptr || !svc->has_backend()) return {};
    return svc->eligible[svc->MaglevPick(FlowHash(p.ip.key, kMaglevSeed))].endpoint;
  }
  uint64_t drops(DropReason r) const { return worker_->stats().drops[static_cast<size_t>(r)]; }
  uint64_t total_drops() const {
    uint64_t n = 0;
    for (uint64_t d : worker_->stats().drops) n += d;
    return n;
  }

  ServiceTable& services() { return services_; }
  ConntrackShard& conntrack() { return *conntrack_; }
  Worker& worker() { return *worker_; }
  const WorkerStats& stats() const { return worker_->stats(); }
  uint64_t now_ = 1000 * kSec;

 private:
  ServiceTable services_;
  std::unique_ptr<ConntrackShard> conntrack_;
  AffinityTable affinity_;
  std::unique_ptr<Worker> worker_;
};

// Sends `f` through the node and checks it comes out as `want`, byte for byte,
// with every checksum right.
void ExpectTranslated(Node& node, Frame f, const Frame& want, Scope scope = Scope::kInternal) {
  const Verdict v = node.Process(f, scope);
  EXPECT_EQ(v.action, Action::kTranslated) << DropReasonName(v.reason);
  EXPECT_EQ(v.reason, DropReason::kNone);
  EXPECT_EQ(f, want);
  EXPECT_TRUE(ChecksumsValid(f));
}

void ExpectPassedUnchanged(Node& node, Frame f, Scope scope = Scope::kInternal) {
  const Frame before = f;
  const Verdict v = node.Process(f, scope);
  EXPECT_EQ(v.action, Action::kPass) << DropReasonName(v.reason);
  EXPECT_EQ(f, before);
}

// Where a translated frame now goes.
Endpoint DestinationOf(const Frame& f) {
  ParsedPacket p;
  EXPECT_EQ(ParseEthernet(f.data(), f.size(), &p), DropReason::kNone);
  return {p.ip.key.dst, p.ip.key.dst_port};
}

// Sends a new flow's first packet and returns the backend it was sent to.
Endpoint SendNew(Node& node, Frame f, Scope scope = Scope::kInternal) {
  const Verdict v = node.Process(f, scope);
  EXPECT_EQ(v.action, Action::kTranslated) << DropReasonName(v.reason);
  EXPECT_TRUE(ChecksumsValid(f));
  return DestinationOf(f);
}

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_.Set(kWeb, Config({Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3")}));
    node_.Set(kDns, Config({Ready("198.19.1.1", 5353), Ready("198.19.1.2", 5353)}));
  }
  Node node_;
};

// ---------------------------------------------------------------------------
// The basic path: DNAT, reverse NAT, conntrack.

TEST_F(WorkerTest, SynToClusterIpIsDnatedToTheMaglevChoice) {
  const Endpoint client{kClient, 40000};
  const Frame syn = Tcp(client, At(kWeb), kTcpSyn);
  const Endpoint backend = node_.MaglevChoice(syn);
  ASSERT_NE(backend.port, 0);
  ExpectTranslated(node_, syn, Tcp(client, backend, kTcpSyn));
  EXPECT_EQ(node_.stats().packets, 1u);
  EXPECT_EQ(node_.stats().new_flows, 1u);
  EXPECT_EQ(node_.stats().translated, 1u);
  EXPECT_EQ(node_.stats().stateless, 0u);
  EXPECT_EQ(node_.total_drops(), 0u);
  EXPECT_EQ(node_.conntrack().size(), 1u);
}

TEST_F(WorkerTest, ReplyFromTheBackendIsReverseNatedToTheVip) {
  const Endpoint client{kClient, 40000};
  const Frame syn = Tcp(client, At(kWeb), kTcpSyn);
  const Endpoint backend = node_.MaglevChoice(syn);
  ExpectTranslated(node_, syn, Tcp(client, backend, kTcpSyn));
  ExpectTranslated(node_, Tcp(backend, client, kSynAck), Tcp(At(kWeb), client, kSynAck));
  ExpectTranslated(node_, Tcp(client, At(kWeb), kTcpAck, 200), Tcp(client, backend, kTcpAck, 200));
  ExpectTranslated(node_, Tcp(backend, client, kTcpAck | kTcpPsh, 1400),
                   Tcp(At(kWeb), client, kTcpAck | kTcpPsh, 1400));
  EXPECT_EQ(node_.stats().new_flows, 1u);
  EXPECT_EQ(node_.stats().translated, 4u);
  EXPECT_EQ(node_.conntrack().size(), 1u);
}

TEST_F(WorkerTest, EstablishedFlowKeepsItsBackendWhenTheServiceChanges) {
  const Endpoint client{kClient, 40000};
  const Frame syn = Tcp(client, At(kWeb), kTcpSyn);
  const Endpoint backend = node_.MaglevChoice(syn);
  ExpectTranslated(node_, syn, Tcp(client, backend, kTcpSyn));
  ExpectTranslated(node_, Tcp(backend, client, kSynAck), Tcp(At(kWeb), client, kSynAck));

  // Every backend is replaced; the flow's own backend leaves the service.
  node_.Set(kWeb, Config({Ready("198.19.1.9")}));
  ExpectTranslated(node_, Tcp(client, At(kWeb), kTcpAck, 100), Tcp(client, backend, kTcpAck, 100));
  ExpectTranslated(node_, Tcp(backend, client, kTcpAck, 100), Tcp(At(kWeb), client, kTcpAck, 100));

  // A new flow follows the table.
  const Endpoint other{kClient, 40001};
  ExpectTranslated(node_, Tcp(other, At(kWeb), kTcpSyn), Tcp(other, Ep("198.19.1.9", 8080), kTcpSyn));
  EXPECT_EQ(node_.stats().new_flows, 2u);
}

TEST_F(WorkerTest, NewFlowsAfterABackendLeavesAvoidIt) {
  std::set<Endpoint> before;
  for (uint16_t port = 41000; port < 41064; ++port) {
    before.insert(SendNew(node_, Tcp({kClient, port}, At(kWeb), kTcpSyn)));
  }
  ASSERT_THAT(before, Contains(Ep("198.19.1.2", 8080)));
  node_.Set(kWeb, Config({Ready("198.19.1.1"), Ready("198.19.1.3")}));
  for (uint16_t port = 42000; port < 42064; ++port) {
    const Frame syn = Tcp({kClient, port}, At(kWeb), kTcpSyn);
    const Endpoint want = node_.MaglevChoice(syn);
    EXPECT_EQ(SendNew(node_, syn), want);
    EXPECT_NE(want, Ep("198.19.1.2", 8080));
  }
}

TEST_F(WorkerTest, RecycledClientPortIsBalancedAgain) {
  // A client that reuses a closed connection's port opens a new connection:
  // it must not be sent to a backend that has left the service since.
  const Endpoint client{kClient, 40000};
  const Frame syn = Tcp(client, At(kWeb), kTcpSyn);
  const Endpoint backend = node_.MaglevChoice(syn);
  ExpectTranslated(node_, syn, Tcp(client, backend, kTcpSyn));
  ExpectTranslated(node_, Tcp(backend, client, kSynAck), Tcp(At(kWeb), client, kSynAck));
  ExpectTranslated(node_, Tcp(client, At(kWeb), kTcpAck | kTcpFin), Tcp(client, backend, kTcpAck | kTcpFin));
  ExpectTranslated(node_, Tcp(backend, client, kTcpAck | kTcpFin), Tcp(At(kWeb), client, kTcpAck | kTcpFin));
  ExpectTranslated(node_, Tcp(client, At(kWeb), kTcpAck), Tcp(client, backend, kTcpAck));

  std::vector<Backend> rest;
  for (const char* a : {"198.19.1.1", "198.19.1.2", "198.19.1.3"}) {
    if (Addr(a) != backend.addr) rest.push_back(Ready(a));
  }
  node_.Set(kWeb, Config(rest));
  const Frame again = Tcp(client, At(kWeb), kTcpSyn);
  const Endpoint now = node_.MaglevChoice(again);
  ASSERT_NE(now, backend);
  ExpectTranslated(node_, again, Tcp(client, now, kTcpSyn));
  ExpectTranslated(node_, Tcp(now, client, kSynAck), Tcp(At(kWeb), client, kSynAck));
  EXPECT_EQ(node_.conntrack().size(), 1u);
  EXPECT_EQ(node_.stats().new_flows, 2u);
}

TEST_F(WorkerTest, Ipv6FlowIsTranslatedBothWays) {
  node_.Set(kWeb6, Config({Ready("fd00:a70:0:1::1"), Ready("fd00:a70:0:1::2"), Ready("fd00:a70:0:1::3")}));
  const Endpoint client{kClient6, 50000};
  const Frame syn = Tcp(client, At(kWeb6), kTcpSyn);
  const Endpoint backend = node_.MaglevChoice(syn);
  ASSERT_FALSE(backend.addr.IsV4());
  ExpectTranslated(node_, syn, Tcp(client, backend, kTcpSyn));
  ExpectTranslated(node_, Tcp(backend, client, kSynAck, 10), Tcp(At(kWeb6), client, kSynAck, 10));
  ExpectTranslated(node_, Tcp(client, At(kWeb6), kTcpAck, 500), Tcp(client, backend, kTcpAck, 500));
  EXPECT_EQ(node_.stats().new_flows, 1u);
  EXPECT_EQ(node_.stats().translated, 3u);
}

TEST_F(WorkerTest, UdpFlowIsTranslatedBothWays) {
  const Endpoint client{kClient, 33000};
  const Frame query = Udp(client, At(kDns), 40);
  const Endpoint backend = node_.MaglevChoice(query);
  EXPECT_EQ(backend.port, 5353);
  ExpectTranslated(node_, query, Udp(client, backend, 40));
  ExpectTranslated(node_, Udp(backend, client, 300), Udp(At(kDns), client, 300));
  // The same 5-tuple later is the same flow.
  ExpectTranslated(node_, Udp(client, At(kDns), 41), Udp(client, backend, 41));
  EXPECT_EQ(node_.stats().new_flows, 1u);

  // The TCP frontend on the same address and port is another service: none here.
  ExpectPassedUnchanged(node_, Tcp(client, At(kDns), kTcpSyn));
}

TEST_F(WorkerTest, Ipv6UdpFlowIsTranslatedBothWays) {
  node_.Set(kDns6, Config({Ready("fd00:a70:0:1::1", 5353), Ready("fd00:a70:0:1::2", 5353)}));
  const Endpoint client{kClient6, 33000};
  const Frame query = Udp(client, At(kDns6), 40);
  const Endpoint backend = node_.MaglevChoice(query);
  ExpectTranslated(node_, query, Udp(client, backend, 40));
  ExpectTranslated(node_, Udp(backend, client, 300), Udp(At(kDns6), client, 300));
}

TEST_F(WorkerTest, VlanTaggedFrameIsTranslatedAndKeepsItsTag) {
  const Endpoint client{kClient, 40000};
  Frame syn = PacketBuilder().Vlan(100).Ip(client.addr, kWeb.addr).Tcp(client.port, 80, kTcpSyn).Build();
  const Endpoint backend = node_.MaglevChoice(syn);
  ExpectTranslated(node_, syn,
                   PacketBuilder().Vlan(100).Ip(client.addr, backend.addr).Tcp(client.port, backend.port, kTcpSyn).Build());
}

// ---------------------------------------------------------------------------
// What is not balanced.

TEST_F(WorkerTest, ServiceWithoutEligibleBackendDropsNewFlows) {
  Backend down = Ready("198.19.1.5");
  down.serving = false;
  node_.Set(kEmpty, Config({down, Terminating(Ep("198.19.1.6", 8080), /*serving=*/false)}));
  Frame syn = Tcp({kClient, 40000}, At(kEmpty), kTcpSyn);
  const Frame before = syn;
  const Verdict v = node_.Process(syn);
  EXPECT_EQ(v.action, Action::kDrop);
  EXPECT_EQ(v.reason, DropReason::kNoBackend);
  EXPECT_EQ(syn, before);
  Frame udp = Udp({kClient, 40000}, At(kEmpty));
  node_.Set({kEmpty.addr, 80, IpProto::kUdp, Scope::kInternal}, Config({}));
  EXPECT_EQ(node_.Process(udp).reason, DropReason::kNoBackend);
  EXPECT_EQ(node_.drops(DropReason::kNoBackend), 2u);
  EXPECT_EQ(node_.total_drops(), 2u);
  EXPECT_EQ(node_.stats().new_flows, 0u);
  EXPECT_EQ(node_.stats().translated, 0u);
  EXPECT_EQ(node_.conntrack().size(), 0u);
}

TEST_F(WorkerTest, TrafficToOtherAddressesPassesUnchanged) {
  const Endpoint client{kClient, 40000};
  ExpectPassedUnchanged(node_, Tcp(client, Ep("198.19.1.1", 8080), kTcpSyn));  // a pod directly
  ExpectPassedUnchanged(node_, Tcp(client, Ep("198.18.64.10", 81), kTcpSyn));  // the VIP, another port
  ExpectPassedUnchanged(node_, Udp(client, Ep("198.18.64.10", 80)));           // ... another protocol
  ExpectPassedUnchanged(node_, Tcp({kClient6, 40000}, Ep("fd00:a70:0:1::1", 80), kTcpSyn));
  // ICMP echo to a VIP: services balance TCP and UDP only.
  ExpectPassedUnchanged(node_, PacketBuilder().Ip(kClient, kWeb.addr).IcmpEcho(true, 7).Build());
  // A non-first fragment carries no ports to balance on.
  ExpectPassedUnchanged(node_, PacketBuilder().Ip(kClient, kWeb.addr).Fragment(10, false).Udp(1, 2).Build());
  // ARP.
  Frame arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06};
  arp.resize(arp.size() + 28, 0);
  ExpectPassedUnchanged(node_, arp);
  // A ClusterIP has no external frontend: traffic from outside is not balanced.
  ExpectPassedUnchanged(node_, Tcp({kExternalClient, 1234}, At(kWeb), kTcpSyn), Scope::kExternal);

  EXPECT_EQ(node_.stats().packets, 8u);
  EXPECT_EQ(node_.stats().new_flows, 0u);
  EXPECT_EQ(node_.stats().translated, 0u);
  EXPECT_EQ(node_.total_drops(), 0u);
  EXPECT_EQ(node_.conntrack().size(), 0u);
}

struct MalformedCase {
  std::string name;
  Frame frame;
  DropReason reason;
};

void Put16(Frame& f, size_t off, uint16_t v) {
  f[off] = static_cast<uint8_t>(v >> 8);
  f[off + 1] = static_cast<uint8_t>(v);
}

std::vector<MalformedCase> MalformedCases() {
  const Endpoint client{kClient, 40000};
  std::vector<MalformedCase> cases;
  cases.push_back({"ShortEthernet", Frame(10, 0), DropReason::kEthTruncated});
  {
    Frame f = Tcp(client, At(kWeb), kTcpSyn);
    f.resize(kEthHeaderLen + 12);
    cases.push_back({"ShortIpv4Header", f, DropReason::kIpv4Truncated});
  }
  {
    Frame f = Tcp(client, At(kWeb), kTcpSyn);
    Put16(f, kEthHeaderLen + 2, static_cast<uint16_t>(f.size()));  // longer than what follows
    cases.push_back({"Ipv4TotalLengthBeyondFrame", f, DropReason::kIpv4BadTotalLength});
  }
  {
    Frame f = Tcp(client, At(kWeb), kTcpSyn);
    f[kEthHeaderLen] = 0x44;  // IHL 4
    cases.push_back({"Ipv4HeaderLengthTooSmall", f, DropReason::kIpv4BadHeaderLength});
  }
  {
    Frame f = Tcp(client, At(kWeb), kTcpSyn);
    f.resize(kEthHeaderLen + 20 + 10);
    Put16(f, kEthHeaderLen + 2, 30);
    cases.push_back({"TcpHeaderCutShort", f, DropReason::kL4Truncated});
  }
  {
    Frame f = Tcp(client, At(kWeb), kTcpSyn);
    f[kEthHeaderLen + 20 + 12] = 3 << 4;
    cases.push_back({"TcpDataOffsetTooSmall", f, DropReason::kTcpBadDataOffset});
  }
  {
    Frame f = Udp(client, At(kDns), 20);
    Put16(f, kEthHeaderLen + 20 + 4, 200);
    cases.push_back({"UdpLengthBeyondPacket", f, DropReason::kUdpBadLength});
  }
  {
    Frame f = Tcp({kClient6, 40000}, At(kWeb6), kTcpSyn);
    Put16(f, kEthHeaderLen + 4, 1000);
    cases.push_back({"Ipv6PayloadLengthBeyondFrame", f, DropReason::kIpv6BadPayloadLength});
  }
  {
    Frame f = Tcp(client, At(kWeb), kTcpSyn);
    f[kEthHeaderLen] = 0x65;  // says IPv6 in an IPv4 frame
    cases.push_back({"IpVersionMismatch", f, DropReason::kIpVersionMismatch});
  }
  return cases;
}

class WorkerMalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(WorkerMalformedTest, IsDroppedWithItsParseReason) {
  Node node;
  node.Set(kWeb, Config({Ready("198.19.1.1")}));
  node.Set(kDns, Config({Ready("198.19.1.1", 5353)}));
  node.Set(kWeb6, Config({Ready("fd00:a70:0:1::1")}));
  Frame f = GetParam().frame;
  const Frame before = f;
  const Verdict v = node.Process(f);
  EXPECT_EQ(v.action, Action::kDrop);
  EXPECT_EQ(v.reason, GetParam().reason) << DropReasonName(v.reason);
  EXPECT_EQ(f, before);
  EXPECT_EQ(node.drops(GetParam().reason), 1u);
  EXPECT_EQ(node.total_drops(), 1u);
  EXPECT_EQ(node.stats().new_flows, 0u);
  EXPECT_EQ(node.conntrack().size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Parse, WorkerMalformedTest, ::testing::ValuesIn(MalformedCases()),
                         [](const ::testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Session affinity.

TEST_F(WorkerTest, SessionAffinityKeepsAClientOnOneBackend) {
  ServiceConfig config = Config({Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3"),
                                 Ready("198.19.1.4"), Ready("198.19.1.5")});
  config.affinity_timeout_s = 10800;
  node_.Set(kWeb, config);

  // Without affinity these flows would spread over several backends.
  std::set<Endpoint> maglev;
  std::set<Endpoint> got;
  for (uint16_t port = 40000; port < 40064; ++port) {
    const Frame syn = Tcp({kClient, port}, At(kWeb), kTcpSyn);
    maglev.insert(node_.MaglevChoice(syn));
    got.insert(SendNew(node_, syn));
    node_.now_ += kSec;
  }
  ASSERT_GT(maglev.size(), 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(*got.begin(), node_.MaglevChoice(Tcp({kClient, 40000}, At(kWeb), kTcpSyn)))
      << "the first connection's Maglev choice binds the client";
  EXPECT_EQ(node_.stats().new_flows, 64u);

  // Another client gets a binding of its own, also to a single backend.
  std::set<Endpoint> other;
  for (uint16_t port = 40000; port < 40032; ++port) {
    other.insert(SendNew(node_, Tcp({Addr("198.19.0.11"), port}, At(kWeb), kTcpSyn)));
  }
  EXPECT_EQ(other.size(), 1u);

  // Once the client is quiet for the timeout, a new connection is balanced afresh.
  const Endpoint bound = *got.begin();
  node_.now_ += 10800 * kSec;
  uint16_t port = 45000;
  while (node_.MaglevChoice(Tcp({kClient, port}, At(kWeb), kTcpSyn)) == bound) ++port;
  const Frame syn = Tcp({kClient, port}, At(kWeb), kTcpSyn);
  EXPECT_EQ(SendNew(node_, syn), node_.MaglevChoice(syn));
}

TEST_F(WorkerTest, SessionAffinityMovesOnWhenTheBoundBackendLeaves) {
  ServiceConfig config = Config({Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3")});
  config.affinity_timeout_s = 60;
  node_.Set(kWeb, config);
  const Endpoint bound = SendNew(node_, Tcp({kClient, 40000}, At(kWeb), kTcpSyn));
  std::erase_if(config.backends, [&](const Backend& b) { return b.endpoint == bound; });
  node_.Set(kWeb, config);
  std::set<Endpoint> got;
  for (uint16_t port = 40001; port < 40033; ++port) got.insert(SendNew(node_, Tcp({kClient, port}, At(kWeb), kTcpSyn)));
  EXPECT_EQ(got.size(), 1u);
  EXPECT_THAT(got, Not(Contains(bound)));
}

// ---------------------------------------------------------------------------
// Traffic policies and terminating endpoints.

TEST_F(WorkerTest, ExternalTrafficPolicyLocalReachesOnlyNodeLocalBackends) {
  const std::set<Endpoint> local = {Ep("198.19.0.21", 8080), Ep("198.19.0.22", 8080)};
  ServiceConfig config = Config({Ready("198.19.1.1"), Ready("198.19.0.21", 8080, true), Ready("198.19.1.2"),
                                 Ready("198.19.0.22", 8080, true), Ready("198.19.1.3")});
  config.external_policy = TrafficPolicy::kLocal;
  const FrontendKey cluster_ip{Addr("198.18.64.20"), 80, IpProto::kTcp, Scope::kInternal};
  const FrontendKey lb_ip{Addr("198.18.64.100"), 80, IpProto::kTcp, Scope::kExternal};
  const FrontendKey node_port{IpAddr::V4(0), 30080, IpProto::kTcp, Scope::kExternal};
  node_.Set(cluster_ip, config);
  node_.Set(lb_ip, config);
  node_.Set(node_port, config);
  node_.services().SetNodeAddresses({kNodeAddr});

  for (uint16_t port = 1024; port < 1124; ++port) {
    const Endpoint client{kExternalClient, port};
    const Endpoint to_lb = SendNew(node_, Tcp(client, At(lb_ip), kTcpSyn), Scope::kExternal);
    EXPECT_THAT(local, Contains(to_lb)) << Str(to_lb);
    // The NodePort on this node's address.
    const Endpoint to_np = SendNew(node_, Tcp(client, {kNodeAddr, 30080}, kTcpSyn), Scope::kExternal);
    EXPECT_THAT(local, Contains(to_np)) << Str(to_np);
    // The replies come back from the address the client used.
    if (port == 1024) {
      ExpectTranslated(node_, Tcp(to_lb, client, kSynAck), Tcp(At(lb_ip), client, kSynAck), Scope::kExternal);
      ExpectTranslated(node_, Tcp(to_np, client, kSynAck), Tcp({kNodeAddr, 30080}, client, kSynAck),
                       Scope::kExternal);
    }
  }
  // Pods reaching the ClusterIP use every backend (internalTrafficPolicy Cluster).
  std::set<Endpoint> internal;
  for (uint16_t port = 40000; port < 40100; ++port) {
    internal.insert(SendNew(node_, Tcp({kClient, port}, At(cluster_ip), kTcpSyn)));
  }
  EXPECT_EQ(internal.size(), 5u);
}

TEST_F(WorkerTest, ExternalTrafficPolicyLocalWithoutLocalBackendsDrops) {
  ServiceConfig config = Config({Ready("198.19.1.1"), Ready("198.19.1.2")});
  config.external_policy = TrafficPolicy::kLocal;
  node_.Set({kNodeAddr, 30081, IpProto::kTcp, Scope::kExternal}, config);
  Frame syn = Tcp({kExternalClient, 1024}, {kNodeAddr, 30081}, kTcpSyn);
  EXPECT_EQ(node_.Process(syn, Scope::kExternal).reason, DropReason::kNoBackend);
  EXPECT_EQ(node_.drops(DropReason::kNoBackend), 1u);
}

TEST_F(WorkerTest, InternalTrafficPolicyLocalReachesOnlyNodeLocalBackends) {
  ServiceConfig config = Config({Ready("198.19.1.1"), Ready("198.19.0.21", 8080, true), Ready("198.19.1.2")});
  config.internal_policy = TrafficPolicy::kLocal;
  node_.Set(kWeb, config);
  for (uint16_t port = 40000; port < 40050; ++port) {
    EXPECT_EQ(SendNew(node_, Tcp({kClient, port}, At(kWeb), kTcpSyn)), Ep("198.19.0.21", 8080));
  }
}

TEST_F(WorkerTest, TerminatingEndpointsDrain) {
  const Endpoint a = Ep("198.19.1.1", 8080);
  const Endpoint b = Ep("198.19.1.2", 8080);
  node_.Set(kWeb, Config({Ready("198.19.1.1"), Ready("198.19.1.2")}));
  // An established flow to whichever backend Maglev picks.
  const Endpoint client{kClient, 40000};
  const Frame syn = Tcp(client, At(kWeb), kTcpSyn);
  const Endpoint x = node_.MaglevChoice(syn);
  const Endpoint y = x == a ? b : a;
  ExpectTranslated(node_, syn, Tcp(client, x, kTcpSyn));
  ExpectTranslated(node_, Tcp(x, client, kSynAck), Tcp(At(kWeb), client, kSynAck));
  ExpectTranslated(node_, Tcp(client, At(kWeb), kTcpAck), Tcp(client, x, kTcpAck));

  // x starts terminating while y is ready: new flows go to y only, the
  // established one stays on x.
  Backend ready_y;
  ready_y.endpoint = y;
  node_.Set(kWeb, Config({Terminating(x), ready_y}));
  for (uint16_t port = 41000; port < 41032; ++port) {
    EXPECT_EQ(SendNew(node_, Tcp({kClient, port}, At(kWeb), kTcpSyn)), y);
  }
  ExpectTranslated(node_, Tcp(client, At(kWeb), kTcpAck, 100), Tcp(client, x, kTcpAck, 100));
  ExpectTranslated(node_, Tcp(x, client, kTcpAck, 100), Tcp(At(kWeb), client, kTcpAck, 100));

  // y goes away: the terminating but still serving x takes new flows.
  node_.Set(kWeb, Config({Terminating(x)}));
  for (uint16_t port = 42000; port < 42016; ++port) {
    EXPECT_EQ(SendNew(node_, Tcp({kClient, port}, At(kWeb), kTcpSyn)), x);
  }

  // Both terminating and serving: new flows spread over both by Maglev.
  node_.Set(kWeb, Config({Terminating(x), Terminating(y)}));
  for (uint16_t port = 43000; port < 43016; ++port) {
    const Frame f = Tcp({kClient, port}, At(kWeb), kTcpSyn);
    EXPECT_EQ(SendNew(node_, f), node_.MaglevChoice(f));
  }

  // x stops serving and nothing else is left: new flows are dropped, the
  // established flow still drains to x.
  node_.Set(kWeb, Config({Terminating(x, /*serving=*/false)}));
  Frame late = Tcp({kClient, 44000}, At(kWeb), kTcpSyn);
  EXPECT_EQ(node_.Process(late).reason, DropReason::kNoBackend);
  ExpectTranslated(node_, Tcp(client, At(kWeb), kTcpAck | kTcpFin), Tcp(client, x, kTcpAck | kTcpFin));
  ExpectTranslated(node_, Tcp(x, client, kTcpAck | kTcpFin), Tcp(At(kWeb), client, kTcpAck | kTcpFin));
}

// ---------------------------------------------------------------------------
// ICMP errors (RFC 5508 section 6).

// The packet as it left this node, without its Ethernet header: what an ICMP
// error quotes.
Frame Quote(const Endpoint& src, const Endpoint& dst, IpProto proto, size_t payload = 24) {
  PacketBuilder b;
  b.NoEthernet().Ip(src.addr, dst.addr);
  if (proto == IpProto::kTcp) {
    b.Tcp(src.port, dst.port, kTcpSyn);
  } else {
    b.Udp(src.port, dst.port);
  }
  return b.Payload(payload).Build();
}

Frame IcmpError(const IpAddr& from, const IpAddr& to, uint8_t type, uint8_t code, Frame quoted) {
  return PacketBuilder().Ip(from, to).IcmpError(type, code, std::move(quoted)).Build();
}

TEST_F(WorkerTest, PortUnreachableFromTheBackendIsReverseTranslated) {
  const Endpoint client{kClient, 33000};
  Frame query = Udp(client, At(kDns), 24);
  const Endpoint backend = node_.MaglevChoice(query);
  ExpectTranslated(node_, query, Udp(client, backend, 24));
  // RFC 792: destination unreachable (3), port unreachable (3), from the backend.
  ExpectTranslated(node_, IcmpError(backend.addr, kClient, 3, 3, Quote(client, backend, IpProto::kUdp)),
                   IcmpError(kDns.addr, kClient, 3, 3, Quote(client, At(kDns), IpProto::kUdp)));
  EXPECT_EQ(node_.stats().translated, 2u);
}

TEST_F(WorkerTest, IcmpErrorFromARouterKeepsTheRouterAsSource) {
  const Endpoint client{kClient, 40000};
  const Frame syn = Tcp(client, At(kWeb), kTcpSyn);
  const Endpoint backend = node_.MaglevChoice(syn);
  ExpectTranslated(node_, syn, Tcp(client, backend, kTcpSyn));
  // A router quotes the IP header and the first 8 bytes of the segment (RFC 792).
  const IpAddr router = Addr("198.18.0.1");
  Frame quoted = Quote(client, backend, IpProto::kTcp, 0);
  quoted.resize(kIpv4MinHeaderLen + 8);
  Frame want_quote = Quote(client, At(kWeb), IpProto::kTcp, 0);
  want_quote.resize(kIpv4MinHeaderLen + 8);
  ExpectTranslated(node_, IcmpError(router, kClient, 3, 1, quoted), IcmpError(router, kClient, 3, 1, want_quote));
  // Time exceeded (11) as well.
  ExpectTranslated(node_, IcmpError(router, kClient, 11, 0, quoted), IcmpError(router, kClient, 11, 0, want_quote));
}

TEST_F(WorkerTest, Icmpv6ErrorFromTheBackendIsReverseTranslated) {
  node_.Set(kDns6, Config({Ready("fd00:a70:0:1::1", 5353), Ready("fd00:a70:0:1::2", 5353)}));
  const Endpoint client{kClient6, 33000};
  Frame query = Udp(client, At(kDns6), 24);
  const Endpoint backend = node_.MaglevChoice(query);
  ExpectTranslated(node_, query, Udp(client, backend, 24));
  // RFC 4443: destination unreachable (1), port unreachable (4).
  ExpectTranslated(node_, IcmpError(backend.addr, kClient6, 1, 4, Quote(client, backend, IpProto::kUdp)),
                   IcmpError(kDns6.addr, kClient6, 1, 4, Quote(client, At(kDns6), IpProto::kUdp)));
}

TEST_F(WorkerTest, IcmpErrorAboutAReplyGoesBackToTheBackend) {
  const Endpoint client{kClient, 33000};
  Frame query = Udp(client, At(kDns), 24);
  const Endpoint backend = node_.MaglevChoice(query);
  ExpectTranslated(node_, query, Udp(client, backend, 24));
  // The client's host rejects the reply it saw coming from the VIP.
  ExpectTranslated(node_, IcmpError(kClient, kDns.addr, 3, 3, Quote(At(kDns), client, IpProto::kUdp)),
                   IcmpError(kClient, backend.addr, 3, 3, Quote(backend, client, IpProto::kUdp)));
}

TEST_F(WorkerTest, IcmpErrorForAnUnknownFlowPassesUnchanged) {
  const Endpoint client{kClient, 33000};
  ExpectPassedUnchanged(node_, IcmpError(Addr("198.19.1.1"), kClient, 3, 3,
                                         Quote(client, Ep("198.19.1.1", 5353), IpProto::kUdp)));
  EXPECT_EQ(node_.stats().translated, 0u);
}

// ---------------------------------------------------------------------------
// Hairpin, SCTP, full conntrack.

TEST_F(WorkerTest, PodReachingItselfThroughAServiceIsHairpinned) {
  const Endpoint pod{Addr("198.19.0.30"), 40000};
  node_.Set(kWeb, Config({Ready("198.19.0.30", 8080, true)}));
  const Endpoint self{pod.addr, 8080};
  ExpectTranslated(node_, Tcp(pod, At(kWeb), kTcpSyn), Tcp(pod, self, kTcpSyn));
  ExpectTranslated(node_, Tcp(self, pod, kSynAck), Tcp(At(kWeb), pod, kSynAck));
  ExpectTranslated(node_, Tcp(pod, At(kWeb), kTcpAck, 10), Tcp(pod, self, kTcpAck, 10));
  EXPECT_EQ(node_.conntrack().size(), 1u);
}

TEST_F(WorkerTest, SctpServiceTranslatesAddressesOnly) {
  // SCTP's CRC32c covers the ports but not the addresses (RFC 9260 section
  // 6.8): an address change is free; a port change is refused when the
  // service is installed, not packet by packet.
  const FrontendKey same{Addr("198.18.64.30"), 3868, IpProto::kSctp, Scope::kInternal};
  const FrontendKey moved{Addr("198.18.64.31"), 3868, IpProto::kSctp, Scope::kInternal};
  node_.Set(same, Config({Ready("198.19.1.1", 3868)}));
  Frame ok = PacketBuilder().Ip(kClient, same.addr).Sctp(5000, 3868).Build();
  ExpectTranslated(node_, ok, PacketBuilder().Ip(kClient, Addr("198.19.1.1")).Sctp(5000, 3868).Build());
  ServiceTable table;
  const absl::StatusOr<ServiceId> id = table.Upsert(moved, Config({Ready("198.19.1.1", 3869)}));
  ASSERT_FALSE(id.ok());
  EXPECT_THAT(id.status().message(), HasSubstr("198.19.1.1:3869"));
}

// One client source port towards two services that share a backend: the
// flows must not share a reply tuple, or the replies would carry the wrong
// service address.
TEST_F(WorkerTest, ServicesSharingABackendNeverShareAReplyTuple) {
  const FrontendKey a{Addr("198.18.64.20"), 53, IpProto::kUdp, Scope::kInternal};
  const FrontendKey b{Addr("198.18.64.21"), 53, IpProto::kUdp, Scope::kInternal};
  const FrontendKey c{Addr("198.18.64.22"), 53, IpProto::kUdp, Scope::kInternal};
  node_.Set(a, Config({Ready("198.19.1.1", 5353)}));
  node_.Set(b, Config({Ready("198.19.1.1", 5353), Ready("198.19.1.2", 5353)}));
  node_.Set(c, Config({Ready("198.19.1.1", 5353)}));
  const Endpoint client{kClient, 5000};
  ExpectTranslated(node_, Udp(client, At(a)), Udp(client, Ep("198.19.1.1", 5353)));
  ExpectTranslated(node_, Udp(client, At(b)), Udp(client, Ep("198.19.1.2", 5353)));
  ExpectTranslated(node_, Udp(Ep("198.19.1.1", 5353), client), Udp(At(a), client));
  ExpectTranslated(node_, Udp(Ep("198.19.1.2", 5353), client), Udp(At(b), client));
  // No backend of c is free for this client port.
  Frame to_c = Udp(client, At(c));
  EXPECT_EQ(node_.Process(to_c).reason, DropReason::kNatTupleClash);
  EXPECT_EQ(node_.drops(DropReason::kNatTupleClash), 1u);
}

// A sweep of stray ACKs (a scanner, or spoofed sources) is picked up
// mid-stream but never answered: it must not lock real connections out.
TEST(WorkerFullConntrackTest, UnansweredStrayAcksGiveWayToNewConnections) {
  constexpr uint32_t kFlows = 16;
  Node node(kFlows);
  node.Set(kWeb, Config({Ready("198.19.1.1"), Ready("198.19.1.2")}));
  for (uint16_t port = 40000; port < 40000 + kFlows; ++port) {
    SendNew(node, Tcp({IpAddr::V4(0xc6121000 + port), port}, At(kWeb), kTcpAck, 10), Scope::kInternal);
  }
  ASSERT_EQ(node.conntrack().size(), kFlows);
  const Endpoint client{kClient, 50000};
  const Frame syn = Tcp(client, At(kWeb), kTcpSyn);
  ExpectTranslated(node, syn, Tcp(client, node.MaglevChoice(syn), kTcpSyn));
  EXPECT_EQ(node.stats().stateless, 0u);
  EXPECT_EQ(node.conntrack().stats().evicted, 1u);
}

TEST(WorkerFullConntrackTest, NewFlowsAreBalancedStatelesslyWhenTheShardIsFull) {
  constexpr uint32_t kFlows = 16;
  Node node(kFlows);
  node.Set(kWeb, Config({Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3")}));
  // Fill the shard with established flows (picked up mid-stream and answered
  // by their backends), which are never evicted.
  std::vector<std::pair<Endpoint, Endpoint>> established;
  for (uint16_t port = 40000; port < 40000 + kFlows; ++port) {
    const Endpoint client{kClient, port};
    const Endpoint backend = SendNew(node, Tcp(client, At(kWeb), kTcpAck, 10));
    Frame answer = Tcp(backend, client, kTcpAck, 10);
    ASSERT_EQ(node.Process(answer).action, Action::kTranslated);
    established.emplace_back(client, backend);
  }
  ASSERT_EQ(node.conntrack().size(), kFlows);
  EXPECT_EQ(node.stats().stateless, 0u);

  for (uint16_t port = 50000; port < 50032; ++port) {
    const Endpoint client{kClient, port};
    const Frame syn = Tcp(client, At(kWeb), kTcpSyn);
    ExpectTranslated(node, syn, Tcp(client, node.MaglevChoice(syn), kTcpSyn));
  }
  EXPECT_EQ(node.stats().stateless, 32u);
  EXPECT_EQ(node.stats().new_flows, kFlows + 32);
  EXPECT_EQ(node.conntrack().size(), kFlows);
  EXPECT_EQ(node.conntrack().stats().full, 32u);
  // A retransmitted SYN of a stateless flow lands on the same backend.
  const Frame syn = Tcp({kClient, 50000}, At(kWeb), kTcpSyn);
  ExpectTranslated(node, syn, Tcp({kClient, 50000}, node.MaglevChoice(syn), kTcpSyn));
  EXPECT_EQ(node.stats().stateless, 33u);

  // The backend's reply finds no entry; the service table's reverse map
  // still gives it the frontend's address, so the connection works.
  const Endpoint chosen = node.MaglevChoice(syn);
  ExpectTranslated(node, Tcp(chosen, {kClient, 50000}, kSynAck), Tcp(At(kWeb), {kClient, 50000}, kSynAck));
  EXPECT_EQ(node.stats().stateless_replies, 1u);

  // The tracked flows are untouched, in both directions.
  for (const auto& [client, backend] : established) {
    ExpectTranslated(node, Tcp(client, At(kWeb), kTcpAck, 20), Tcp(client, backend, kTcpAck, 20));
    ExpectTranslated(node, Tcp(backend, client, kTcpAck, 20), Tcp(At(kWeb), client, kTcpAck, 20));
  }
  EXPECT_EQ(node.total_drops(), 0u);
}

// ---------------------------------------------------------------------------
// Bursts.

void Configure(Node& node) {
  node.Set(kWeb, Config({Ready("198.19.1.1"), Ready("198.19.1.2"), Ready("198.19.1.3")}));
  node.Set(kDns, Config({Ready("198.19.1.1", 5353), Ready("198.19.1.2", 5353)}));
  node.Set(kWeb6, Config({Ready("fd00:a70:0:1::1"), Ready("fd00:a70:0:1::2")}));
  node.Set(kEmpty, Config({}));
  ServiceConfig sticky = Config({Ready("198.19.1.4"), Ready("198.19.1.5"), Ready("198.19.1.6")});
  sticky.affinity_timeout_s = 300;
  node.Set({Addr("198.18.64.13"), 443, IpProto::kTcp, Scope::kInternal}, sticky);
}

// Runs `frames` through `one` packet by packet and through `burst` as one
// burst, and checks both give the same verdicts, bytes and counters.
void ExpectBurstMatchesSingles(Node& one, Node& burst, std::vector<Frame> frames) {
  std::vector<Frame> singles = frames;
  std::vector<Verdict> want;
  for (Frame& f : singles) want.push_back(one.Process(f));

  std::vector<PacketRef> refs;
  for (Frame& f : frames) refs.push_back({f.data(), static_cast<uint16_t>(f.size())});
  std::vector<Verdict> got(frames.size());
  burst.worker().ProcessBurst(refs.data(), refs.size(), Scope::kInternal, burst.now_, got.data());

  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got[i].action, want[i].action);
    EXPECT_EQ(got[i].reason, want[i].reason);
    EXPECT_EQ(frames[i], singles[i]);
  }
  EXPECT_EQ(burst.stats().packets, one.stats().packets);
  EXPECT_EQ(burst.stats().new_flows, one.stats().new_flows);
  EXPECT_EQ(burst.stats().translated, one.stats().translated);
  EXPECT_EQ(burst.stats().stateless, one.stats().stateless);
  EXPECT_EQ(burst.stats().drops, one.stats().drops);
  EXPECT_EQ(burst.conntrack().size(), one.conntrack().size());
}

TEST(WorkerBurstTest, BurstGivesTheSameResultsAsSinglePackets) {
  Node one;
  Node burst;
  Configure(one);
  Configure(burst);

  const Endpoint client{kClient, 40000};
  const Endpoint dns_client{kClient, 33000};
  const Frame syn = Tcp(client, At(kWeb), kTcpSyn);
  const Frame query = Udp(dns_client, At(kDns));
  const Endpoint web_backend = one.MaglevChoice(syn);
  const Endpoint dns_backend = one.MaglevChoice(query);

  Frame truncated = Tcp({kClient, 1}, At(kWeb), kTcpSyn);
  truncated.resize(20);
  Frame arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06};
  arp.resize(arp.size() + 28, 0);

  std::vector<Frame> first = {
      syn,
      syn,  // a retransmission in the same burst: the first created the flow
      query,
      Tcp(web_backend, client, kSynAck),  // the reply, right behind its SYN
      Tcp({kClient, 40001}, Ep("198.19.1.1", 8080), kTcpSyn),  // not a service
      truncated,
      arp,
      Tcp({kClient6, 40000}, At(kWeb6), kTcpSyn, 10),
      IcmpError(dns_backend.addr, kClient, 3, 3, Quote(dns_client, dns_backend, IpProto::kUdp, 32)),
      Tcp({kClient, 40002}, At(kEmpty), kTcpSyn),  // no backend
      PacketBuilder().Vlan(7).Ip(kClient, kWeb.addr).Tcp(40003, 80, kTcpSyn).Build(),
      PacketBuilder().Ip(kClient, kWeb.addr).IcmpEcho(true, 9).Build(),
      Udp(dns_backend, dns_client, 100),
  };
  // Many clients of the sticky service, several connections each.
  for (uint32_t c = 0; c < 12; ++c) {
    for (uint16_t port = 50000; port < 50004; ++port) {
      first.push_back(Tcp({IpAddr::V4(0xc6130100 + c), port}, {Addr("198.18.64.13"), 443}, kTcpSyn));
    }
  }
  ASSERT_LE(first.size(), Worker::kMaxBurst);
  ExpectBurstMatchesSingles(one, burst, first);

  // A second burst: established flows, their replies, and more new ones.
  one.now_ = burst.now_ = one.now_ + kSec;
  std::vector<Frame> second = {
      Tcp(client, At(kWeb), kTcpAck, 100),
      Tcp(web_backend, client, kTcpAck, 1000),
      Udp(dns_client, At(kDns), 64),
  };
  for (uint16_t port = 60000; port < 60040; ++port) second.push_back(Tcp({kClient, port}, At(kWeb), kTcpSyn));
  ExpectBurstMatchesSingles(one, burst, second);
  EXPECT_GT(burst.stats().translated, 40u);
}

TEST(WorkerBurstTest, BurstLongerThanKMaxBurstIsProcessedWhole) {
  Node one;
  Node burst;
  Configure(one);
  Configure(burst);
  std::vector<Frame> frames;
  for (uint16_t port = 20000; port < 20000 + 3 * Worker::kMaxBurst + 5; ++port) {
    frames.push_back(Tcp({kClient, port}, At(kWeb), kTcpSyn));
  }
  ExpectBurstMatchesSingles(one, burst, frames);
  EXPECT_EQ(burst.stats().new_flows, frames.size());
}

// The reverse map answers only while flows are being balanced statelessly:
// afterwards a pod talking to a backend directly keeps its own addresses.
TEST(WorkerFullConntrackTest, StatelessRepliesStopWhenTheFallbackDoes) {
  Node node(1);
  node.Set(kWeb, Config({Ready("198.19.1.1")}));
  // One flow answered both ways fills the shard.
  const Endpoint backend = SendNew(node, Tcp({kClient, 40000}, At(kWeb), kTcpAck, 10));
  Frame answer = Tcp(backend, {kClient, 40000}, kTcpAck, 10);
  ASSERT_EQ(node.Process(answer).action, Action::kTranslated);
  const Frame syn = Tcp({kClient, 50000}, At(kWeb), kTcpSyn);
  ExpectTranslated(node, syn, Tcp({kClient, 50000}, Ep("198.19.1.1", 8080), kTcpSyn));
  ASSERT_EQ(node.stats().stateless, 1u);
  node.now_ += Worker::kStatelessReplyWindowNs + kSec;
  Frame direct = Tcp(Ep("198.19.1.1", 8080), {kClient, 50000}, kSynAck);
  const Frame before = direct;
  EXPECT_EQ(node.Process(direct).action, Action::kPass);
  EXPECT_EQ(direct, before);
  EXPECT_EQ(node.stats().stateless_replies, 0u);
}

TEST(WorkerBurstTest, EmptyBurstDoesNothing) {
  Node node;
  Configure(node);
  node.worker().ProcessBurst(nullptr, 0, Scope::kInternal, node.now_, nullptr);
  EXPECT_EQ(node.stats().packets, 0u);
}

}  // namespace
}  // namespace atl::lb
