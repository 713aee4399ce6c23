// The packet fixtures (dataplane/packet_fixtures.h) through the eBPF
// programs with BPF_PROG_TEST_RUN, and Maglev choices checked against lb's.
//
// Runs as root in a network and mount namespace of its own (see main): the
// interfaces it makes and the BPF file system it pins to vanish with it.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mount.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "dataplane/ebpf/ebpf_dataplane.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
#include "dataplane/ebpf/atoll.skel.h"
#pragma GCC diagnostic pop
#include "dataplane/fixture_checks.h"
#include "dataplane/packet_fixtures.h"
#include "lb/flow_hash.h"
#include "lb/packet_builder.h"
#include "lb/service_table.h"

namespace atl::dataplane {
namespace {

using fixtures::ExpectVxlan;
using fixtures::Hex;
using fixtures::kVxlanHeaders;
using fixtures::Port;
using fixtures::Step;
using fixtures::Verdict;

// The hosts' programs run a day ahead of the kernel's clock
// (EbpfDataplane::Options::clock_offset_ns), so that a test can date an
// entry hours back on a machine booted minutes ago.
constexpr uint64_t kClockOffsetNs = uint64_t{24} * 3600 * 1000000000;

// An interface per pod (and the uplink), one end of a veth pair: the kernel
// runs a test program on a real device's ifindex, and takes a frame as for
// it or another host (skb->pkt_type) by that device's MAC. Tables that name
// the same pod share its interface.
uint32_t MakeInterface(const std::string& name, const std::string& mac = "") {
  std::string cmd;
  if (if_nametoindex(name.c_str()) == 0) {
    cmd = "ip link add " + name + " type veth peer name " + name + "-p && ";
  }
  if (!mac.empty()) cmd += "ip link set " + name + " address " + mac + " && ";
  cmd += "ip link set " + name + " up";
  if (std::system(cmd.c_str()) != 0) return 0;
  return if_nametoindex(name.c_str());
}

struct Ran {
  int action = -1;
  uint32_t cb[3] = {};
  std::vector<uint8_t> out;
};

Ran RunProgram(int prog_fd, const std::vector<uint8_t>& packet, uint32_t ifindex, uint32_t cb0,
               uint32_t cb1) {
  __sk_buff ctx{};
  ctx.ifindex = ifindex;
  ctx.cb[0] = cb0;
  ctx.cb[1] = cb1;
  __sk_buff ctx_out{};
  Ran ran;
  ran.out.resize(packet.size() + 256);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = packet.data();
  opts.data_size_in = static_cast<uint32_t>(packet.size());
  opts.data_out = ran.out.data();
  opts.data_size_out = static_cast<uint32_t>(ran.out.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  opts.ctx_out = &ctx_out;
  opts.ctx_size_out = sizeof(ctx_out);
  opts.repeat = 1;
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
    ADD_FAILURE() << "BPF_PROG_TEST_RUN: " << std::strerror(errno);
    return ran;
  }
  ran.action = static_cast<int>(opts.retval);
  ran.out.resize(opts.data_size_out);
  std::memcpy(ran.cb, ctx_out.cb, sizeof(ran.cb));
  return ran;
}

class Host {
 public:
  // Programs `state` into a fresh set of pinned maps.
  static std::unique_ptr<Host> Make(const std::string& name, Update state) {
    auto host = std::make_unique<Host>();
    host->name_ = name;
    host->uplink_ = MakeInterface(name + "-up", lb::FormatMac(fixtures::kUplinkMac));
    if (!host->Restart(std::move(state))) return nullptr;
    return host;
  }

  // A new dataplane on the same pinned maps (an agent that restarted), then
  // `state`; pod ports get interfaces of their own names, made if new.
  bool Restart(Update state) {
    dp_.reset();
    for (PodPort& p : state.upsert_pod_ports) {
      p.host_ifindex = MakeInterface(p.host_ifname);
      ifindex_[p.host_ifname] = p.host_ifindex;
    }
    EbpfDataplane::Options options;
    options.pin_dir = "/sys/fs/bpf/" + name_;
    options.overlay_device = "";
    options.uplink = name_ + "-up";
    options.attach_pod_ports = false;
    options.clock_offset_ns = kClockOffsetNs;
    auto dp = EbpfDataplane::Create(options);
    if (!dp.ok()) {
      ADD_FAILURE() << dp.status();
      return false;
    }
    dp_ = *std::move(dp);
    if (absl::Status s = dp_->Apply(state); !s.ok()) {
      ADD_FAILURE() << s;
      return false;
    }
    return true;
  }

  // The step's updates, then its packet.
  Ran Run(const Step& step) const {
    for (Update u : step.before) {
      for (PodPort& p : u.upsert_pod_ports) p.host_ifindex = ifindex_.at(p.host_ifname);
      if (absl::Status s = dp_->Apply(u); !s.ok()) ADD_FAILURE() << s;
    }
    switch (step.port) {
      case Port::kPod:
        return RunProgram(dp_->bpf().prog_fd(ebpf::Program::kFromPod), step.packet,
                          ifindex_.at(step.pod), 0, 0);
      case Port::kOverlay: {
        uint32_t underlay;
        std::memcpy(&underlay, step.underlay.v4_bytes(), 4);
        return RunProgram(dp_->bpf().prog_fd(ebpf::Program::kFromOverlayTest), step.packet,
                          uplink_, step.vni, underlay);
      }
      case Port::kUplink:
        return RunProgram(dp_->bpf().prog_fd(ebpf::Program::kFromUplink), step.packet, uplink_,
                          0, 0);
    }
    return {};
  }

  uint64_t Drops(const std::string& reason) const {
    for (const auto& [name, n] : dp_->Drops()) {
      if (name == reason) return n;
    }
    ADD_FAILURE() << "no drop reason \"" << reason << "\"";
    return 0;
  }
  uint32_t ifindex(const std::string& pod) const { return ifindex_.at(pod); }
  EbpfDataplane& dataplane() { return *dp_; }

 private:
  std::string name_;
  std::unique_ptr<EbpfDataplane> dp_;
  std::map<std::string, uint32_t> ifindex_;
  uint32_t uplink_ = 0;
};

TEST(BpfFixturesTest, EveryTableGivesItsVerdictsAndBytes) {
  for (const fixtures::Table& table : fixtures::AllTables()) {
    std::unique_ptr<Host> host = Host::Make("fx" + table.name.substr(0, 4), table.state);
    ASSERT_NE(host, nullptr);
    for (const Step& step : table.steps) {
      SCOPED_TRACE(table.name + ": " + step.name);
      const uint64_t drops_before = step.verdict == Verdict::kDrop && !step.drop_reason.empty()
                                        ? host->Drops(step.drop_reason)
                                        : 0;
      const Ran ran = host->Run(step);
      switch (step.verdict) {
        case Verdict::kDrop:
          EXPECT_EQ(ran.action, TC_ACT_SHOT);
          EXPECT_EQ(ran.cb[0], ATL_VERDICT_DROP);
          if (!step.drop_reason.empty()) {
            EXPECT_EQ(host->Drops(step.drop_reason), drops_before + 1)
                << "counted under " << step.drop_reason;
          }
          break;
        case Verdict::kPass:
          EXPECT_EQ(ran.action, TC_ACT_OK);
          EXPECT_EQ(ran.cb[0], ATL_VERDICT_PASS);
          break;
        case Verdict::kDeliver:
          EXPECT_EQ(ran.action, TC_ACT_REDIRECT);
          EXPECT_EQ(ran.cb[0], ATL_VERDICT_DELIVER);
          EXPECT_EQ(ran.cb[1], host->ifindex(step.to_pod)) << "to " << step.to_pod;
          break;
        case Verdict::kEncap: {
          EXPECT_EQ(ran.action, TC_ACT_REDIRECT);
          EXPECT_EQ(ran.cb[0], ATL_VERDICT_ENCAP);
          EXPECT_EQ(ran.cb[1], step.to_vni);
          uint32_t underlay;
          std::memcpy(&underlay, step.to_underlay.v4_bytes(), 4);
          EXPECT_EQ(ran.cb[2], underlay);
          ExpectVxlan(ran.out, step.to_vni, step.to_underlay);
          break;
        }
        case Verdict::kOut:
          EXPECT_EQ(ran.action, TC_ACT_REDIRECT);
          EXPECT_EQ(ran.cb[0], ATL_VERDICT_OUT);
          break;
        case Verdict::kReply:
          EXPECT_EQ(ran.action, TC_ACT_REDIRECT);
          EXPECT_EQ(ran.cb[0], ATL_VERDICT_REPLY);
          break;
      }
      if (!step.out.empty()) {
        // The fixtures say what the frame is; the VXLAN headers in front of
        // an encapsulated one are checked above.
        const std::vector<uint8_t> frame = step.verdict == Verdict::kEncap && ran.out.size() > kVxlanHeaders
                                               ? std::vector<uint8_t>(ran.out.begin() + kVxlanHeaders, ran.out.end())
                                               : ran.out;
        EXPECT_EQ(Hex(frame), Hex(step.out));
        if (step.port != Port::kPod || step.verdict != Verdict::kReply) {
          EXPECT_TRUE(lb::ChecksumsValid(frame)) << "checksums of" << Hex(frame);
        }
      }
    }
  }
}

// Segment "a" (VNI 1, 198.19.0.0/24) with a client pod 198.19.0.2 on port
// `ifname`, and its addresses from 198.19.0.16/28 on h2 (198.18.0.12).
Update ClientAndRemoteBlock(const std::string& ifname) {
  Update state;
  Segment seg;
  seg.name = "a";
  seg.vni = 1;
  seg.cidrs = {*lb::IpPrefix::Parse("198.19.0.0/24")};
  seg.gateway = *lb::IpAddr::Parse("198.19.0.1");
  state.upsert_segments = {seg};
  PodPort client;
  client.host_ifname = ifname;
  client.address = *lb::IpAddr::Parse("198.19.0.2");
  client.mac = {0x0a, 0x58, 198, 19, 0, 2};
  client.segment = "a";
  state.upsert_pod_ports = {client};
  state.upsert_routes = {
      Route{*lb::IpPrefix::Parse("198.19.0.16/28"), 1, "h2", *lb::IpAddr::Parse("198.18.0.12")}};
  return state;
}

// Service a/web: `vip`:80/TCP to one backend on port 8080.
Frontend WebService(const lb::IpAddr& vip, const lb::IpAddr& backend) {
  Frontend f;
  f.key = {vip, 80, lb::IpProto::kTcp, lb::Scope::kInternal};
  f.name = "a/web";
  f.config.backends = {{.endpoint = {backend, 8080}}};
  f.config.maglev_size = 251;
  return f;
}

// A frame from the client of ClientAndRemoteBlock, on its port.
Step FromClient(const PodPort& client, std::vector<uint8_t> frame) {
  Step s;
  s.port = Port::kPod;
  s.pod = client.host_ifname;
  s.packet = std::move(frame);
  return s;
}

// A SYN from the client of ClientAndRemoteBlock to `vip`:80.
Step ClientSyn(const PodPort& client, const lb::IpAddr& vip, uint16_t sport) {
  return FromClient(client, lb::PacketBuilder()
                                .Ethernet(client.mac, kRouterMac)
                                .Ip(client.address, vip)
                                .Tcp(sport, 80, lb::kTcpSyn)
                                .Build());
}

// Both backends choose a new flow's backend with lb's flow hash and Maglev
// table (lb/flow_hash.h): the kernel's choice must be lb's, flow for flow.
TEST(BpfFixturesTest, MaglevChoicesAreLbs) {
  Update state = ClientAndRemoteBlock("mgc");
  const PodPort client = state.upsert_pod_ports[0];
  Frontend f;
  f.key = {*lb::IpAddr::Parse("198.18.64.20"), 80, lb::IpProto::kTcp, lb::Scope::kInternal};
  f.name = "a/many";
  for (int i = 0; i < 5; ++i) {
    f.config.backends.push_back(
        {.endpoint = {lb::IpAddr::V4(0xc6130011 + i), 8080}, .weight = uint32_t(1 + i % 2)});
  }
  f.config.maglev_size = 1021;
  state.upsert_frontends = {f};
  std::unique_ptr<Host> host = Host::Make("fxm", state);
  ASSERT_NE(host, nullptr);

  lb::ServiceTable table(/*maglev_seed=*/0);
  ASSERT_TRUE(table.Upsert(f.key, f.config).ok());
  const lb::Service* svc = table.Lookup(f.key.addr, 80, lb::IpProto::kTcp, lb::Scope::kInternal);
  ASSERT_NE(svc, nullptr);
  std::map<lb::IpAddr, int> chosen;
  for (uint16_t sport = 20000; sport < 20200; ++sport) {
    Step step;
    step.port = Port::kPod;
    step.pod = "mgc";
    step.packet = lb::PacketBuilder()
                      .Ethernet(client.mac, kRouterMac)
                      .Ip(client.address, f.key.addr)
                      .Tcp(sport, 80, lb::kTcpSyn)
                      .Build();
    const Ran ran = host->Run(step);
    ASSERT_EQ(ran.cb[0], ATL_VERDICT_ENCAP) << "sport " << sport;
    const lb::IpAddr got = lb::IpAddr::FromV4Bytes(&ran.out[kVxlanHeaders + 14 + 16]);
    lb::FlowKey key;
    key.src = client.address;
    key.dst = f.key.addr;
    key.src_port = sport;
    key.dst_port = 80;
    key.proto = lb::IpProto::kTcp;
    const lb::Backend& want = svc->eligible[svc->MaglevPick(lb::FlowHash(key, lb::kMaglevSeed))];
    ASSERT_EQ(got, want.endpoint.addr) << "sport " << sport;
    ++chosen[got];
  }
  EXPECT_EQ(chosen.size(), 5u) << "200 flows reach every backend";
}

// Calls `visit` with every conntrack entry; one it returns true for is
// written back as it left it. How many were written.
template <typename Visit>
int EditEntries(Host& host, Visit visit) {
  const int ct = bpf_map__fd(host.dataplane().bpf().skel().maps.atl_ct);
  atl_ct_key key, next;
  int written = 0;
  for (int err = bpf_map_get_next_key(ct, nullptr, &key); err == 0;
       err = bpf_map_get_next_key(ct, &key, &next), key = next) {
    atl_ct value;
    if (bpf_map_lookup_elem(ct, &key, &value) != 0) continue;
    if (visit(value) && bpf_map_update_elem(ct, &key, &value, BPF_EXIST) == 0) ++written;
  }
  return written;
}

// The programs' clock, `offset_s` seconds from now: CLOCK_MONOTONIC, as
// bpf_ktime_get_ns() reads it, plus the hosts' kClockOffsetNs.
uint64_t MonotonicNs(int64_t offset_s) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec + offset_s) * 1000000000ull + uint64_t(now.tv_nsec) + kClockOffsetNs;
}

// The MAC of ClientAndRemoteBlock's backend pod 198.19.0.17 on h2.
constexpr lb::MacAddr kBackendMac = {0x0a, 0x58, 198, 19, 0, 17};

// A frame from a pod on h2, as this host's overlay receives it.
Step FromBackendPod(const lb::IpAddr& h2, std::vector<uint8_t> frame) {
  Step s;
  s.port = Port::kOverlay;
  s.vni = 1;
  s.underlay = h2;
  s.packet = std::move(frame);
  return s;
}

// A host (its pins under `name`) with ClientAndRemoteBlock's client on
// port `client_port`, and `service`.
struct ClientHost {
  std::unique_ptr<Host> host;
  PodPort client;
  lb::IpAddr h2;  // the backend pod's host
};
ClientHost MakeClientHost(const std::string& name, const std::string& client_port,
                          const Frontend& service) {
  Update state = ClientAndRemoteBlock(client_port);
  state.upsert_frontends = {service};
  ClientHost made;
  made.client = state.upsert_pod_ports[0];
  made.h2 = state.upsert_routes[0].underlay;
  made.host = Host::Make(name, state);
  return made;
}

// Two CPUs share a flow's entries: one may stamp an entry after a packet on
// the other read the clock. That entry is live, not 584 years old; once it
// was taken for expired and the reply went out without its reverse NAT,
// which broke a bulk TCP transfer mid-stream.
TEST(BpfFixturesTest, EntryStampedAfterThePacketReadTheClockIsLive) {
  const lb::IpAddr vip = *lb::IpAddr::Parse("198.18.64.20");
  const lb::IpAddr backend = *lb::IpAddr::Parse("198.19.0.17");
  const auto [host, client, h2] = MakeClientHost("fxc", "ctc", WebService(vip, backend));
  ASSERT_NE(host, nullptr);
  ASSERT_EQ(host->Run(ClientSyn(client, vip, 40000)).cb[0], ATL_VERDICT_ENCAP);

  // Every entry stamped 10 s ahead of the clock the next packet reads.
  const uint64_t later = MonotonicNs(10);
  ASSERT_EQ(EditEntries(*host,
                        [&](atl_ct& e) {
                          e.last_seen_ns = later;
                          return true;
                        }),
            2)
      << "the flow's two entries";

  const Step reply = FromBackendPod(h2, lb::PacketBuilder()
                                            .Ethernet(kBackendMac, kRouterMac)
                                            .Ip(backend, client.address)
                                            .Tcp(8080, 40000, lb::kTcpSyn | lb::kTcpAck)
                                            .Build());
  const Ran ran = host->Run(reply);
  ASSERT_EQ(ran.cb[0], ATL_VERDICT_DELIVER);
  EXPECT_EQ(lb::IpAddr::FromV4Bytes(&ran.out[14 + 12]), vip) << "the reply's reverse NAT";
  EXPECT_EQ(ran.out[14 + 20] * 256 + ran.out[14 + 21], 80);
}

// Stamps the conntrack entries of one direction (`reply`: the reply
// entries, else the original ones) as last seen `seconds_ago`; how many.
int AgeEntries(Host& host, bool reply, int64_t seconds_ago) {
  const uint64_t then = MonotonicNs(-seconds_ago);
  return EditEntries(host, [&](atl_ct& e) {
    if (((e.flags & ATL_CT_REPLY) != 0) != reply) return false;
    e.last_seen_ns = then;
    return true;
  });
}

// The state of the only reply entry in conntrack.
int ReplyEntryState(Host& host) {
  int state = -1;
  EditEntries(host, [&](atl_ct& e) {
    if (e.flags & ATL_CT_REPLY) {
      EXPECT_EQ(state, -1) << "one reply entry";
      state = e.tcp_state;
    }
    return false;
  });
  return state;
}

// A flow lives while either of its entries does, each entry by its own
// state's lifetime (lb/conntrack_timeouts.h), as lb::ConntrackShard keeps
// one lifetime for the flow: a UDP flow whose server streams to a silent
// client keeps its original direction.
TEST(BpfFixturesTest, AFlowLivesWhileEitherDirectionTalks) {
  const lb::IpAddr vip = *lb::IpAddr::Parse("198.18.64.24");
  const lb::IpAddr backend = *lb::IpAddr::Parse("198.19.0.17");
  Frontend dns;
  dns.key = {vip, 53, lb::IpProto::kUdp, lb::Scope::kInternal};
  dns.name = "a/dns";
  dns.config.backends = {{.endpoint = {backend, 5353}}};
  dns.config.maglev_size = 251;
  const auto [host, client, h2] = MakeClientHost("fxu", "ctu", dns);
  ASSERT_NE(host, nullptr);

  const Step request = FromClient(client, lb::PacketBuilder()
                                              .Ethernet(client.mac, kRouterMac)
                                              .Ip(client.address, vip)
                                              .Udp(40000, 53)
                                              .Build());
  const Step answer = FromBackendPod(h2, lb::PacketBuilder()
                                             .Ethernet(kBackendMac, kRouterMac)
                                             .Ip(backend, client.address)
                                             .Udp(5353, 40000)
                                             .Build());
  const auto to_backend = [&](const Ran& ran) {
    return ran.cb[0] == ATL_VERDICT_ENCAP && ran.out.size() > kVxlanHeaders + 34 &&
           lb::IpAddr::FromV4Bytes(&ran.out[kVxlanHeaders + 14 + 16]) == backend;
  };
  ASSERT_TRUE(to_backend(host->Run(request)));
  const Ran answered = host->Run(answer);
  ASSERT_EQ(answered.cb[0], ATL_VERDICT_DELIVER);
  ASSERT_EQ(lb::IpAddr::FromV4Bytes(&answered.out[14 + 12]), vip);
  ASSERT_EQ(ReplyEntryState(*host), ATL_TCP_ESTABLISHED) << "answered";

  // The client silent for a minute (unreplied UDP lives 30 s), the server
  // not: the client's next datagram is the same flow's.
  ASSERT_EQ(AgeEntries(*host, false, 60), 1);
  EXPECT_TRUE(to_backend(host->Run(request)));
  EXPECT_EQ(host->Drops("nat-exhausted"), 0u);
  EXPECT_EQ(ReplyEntryState(*host), ATL_TCP_ESTABLISHED) << "the flow as it was";
  const Ran again = host->Run(answer);
  ASSERT_EQ(again.cb[0], ATL_VERDICT_DELIVER);
  EXPECT_EQ(lb::IpAddr::FromV4Bytes(&again.out[14 + 12]), vip);

  // Both silent past their lifetimes (answered UDP lives 120 s): the flow is
  // over, and the next datagram starts a new one.
  ASSERT_EQ(AgeEntries(*host, false, 60), 1);
  ASSERT_EQ(AgeEntries(*host, true, 200), 1);
  EXPECT_TRUE(to_backend(host->Run(request)));
  EXPECT_EQ(ReplyEntryState(*host), ATL_TCP_SYN_SENT) << "a new flow, not answered yet";
}

// An established TCP flow lives 6 hours after its last packet, as in lb
// (lb/conntrack_timeouts.h), not netfilter's 5 days.
TEST(BpfFixturesTest, AnIdleConnectionLivesSixHours) {
  const lb::IpAddr vip = *lb::IpAddr::Parse("198.18.64.25");
  const lb::IpAddr backend = *lb::IpAddr::Parse("198.19.0.17");
  // Named, not a structured binding: the lambda below captures its parts,
  // which clang before 16 refuses for bindings.
  const ClientHost made = MakeClientHost("fxt", "ctt", WebService(vip, backend));
  ASSERT_NE(made.host, nullptr);
  Host* const host = made.host.get();
  const PodPort& client = made.client;
  const lb::IpAddr& h2 = made.h2;
  const auto from_backend = [&](uint8_t flags) {
    return FromBackendPod(h2, lb::PacketBuilder()
                                  .Ethernet(kBackendMac, kRouterMac)
                                  .Ip(backend, client.address)
                                  .Tcp(8080, 40002, flags)
                                  .Build());
  };
  ASSERT_EQ(host->Run(ClientSyn(client, vip, 40002)).cb[0], ATL_VERDICT_ENCAP);
  ASSERT_EQ(host->Run(from_backend(lb::kTcpSyn | lb::kTcpAck)).cb[0], ATL_VERDICT_DELIVER);
  const Step ack = FromClient(client, lb::PacketBuilder()
                                          .Ethernet(client.mac, kRouterMac)
                                          .Ip(client.address, vip)
                                          .Tcp(40002, 80, lb::kTcpAck)
                                          .Build());
  ASSERT_EQ(host->Run(ack).cb[0], ATL_VERDICT_ENCAP);

  const int64_t six_hours = 6 * 3600;
  ASSERT_EQ(AgeEntries(*host, false, six_hours - 60), 1);
  ASSERT_EQ(AgeEntries(*host, true, six_hours - 60), 1);
  Ran ran = host->Run(from_backend(lb::kTcpAck));
  ASSERT_EQ(ran.cb[0], ATL_VERDICT_DELIVER);
  EXPECT_EQ(lb::IpAddr::FromV4Bytes(&ran.out[14 + 12]), vip) << "idle for 6 h less a minute";

  ASSERT_EQ(AgeEntries(*host, false, six_hours + 60), 1);
  ASSERT_EQ(AgeEntries(*host, true, six_hours + 60), 1);
  ran = host->Run(from_backend(lb::kTcpAck));
  ASSERT_EQ(ran.cb[0], ATL_VERDICT_DELIVER);
  EXPECT_EQ(lb::IpAddr::FromV4Bytes(&ran.out[14 + 12]), backend)
      << "idle for 6 h and a minute: the flow is gone, its reply not translated";
}

// What one host encapsulates the other decapsulates at its uplink: a frame
// encapsulated by the pod program arrives, as the uplink would receive it, and
// leaves for the backend pod exactly as the fixtures' overlay step delivers it.
TEST(BpfFixturesTest, TheUplinkDecapsulatesWhatTheOtherHostEncapsulated) {
  // h1: a client whose service has its backend on h2.
  Update h1_state = ClientAndRemoteBlock("dc1");
  h1_state.set_node_addresses = true;
  h1_state.node_addresses = {*lb::IpAddr::Parse("198.18.0.11")};
  const lb::IpAddr vip = *lb::IpAddr::Parse("198.18.64.30");
  const lb::IpAddr backend = *lb::IpAddr::Parse("198.19.0.17");
  h1_state.upsert_frontends = {WebService(vip, backend)};
  std::unique_ptr<Host> h1 = Host::Make("fxd1", h1_state);
  ASSERT_NE(h1, nullptr);
  const PodPort client = h1_state.upsert_pod_ports[0];
  const Ran sent = h1->Run(ClientSyn(client, vip, 40001));
  ASSERT_EQ(sent.cb[0], ATL_VERDICT_ENCAP);

  // h2: the backend's host, with h1's block routed back over the overlay.
  Update h2_state;
  h2_state.upsert_segments = h1_state.upsert_segments;
  h2_state.set_node_addresses = true;
  h2_state.node_addresses = {*lb::IpAddr::Parse("198.18.0.12")};
  PodPort server;
  server.host_ifname = "dc2";
  server.address = backend;
  server.mac = kBackendMac;
  server.segment = "a";
  h2_state.upsert_pod_ports = {server};
  h2_state.upsert_routes = {Route{*lb::IpPrefix::Parse("198.19.0.0/28"), 1, "h1",
                                  *lb::IpAddr::Parse("198.18.0.11")}};
  std::unique_ptr<Host> h2 = Host::Make("fxd2", h2_state);
  ASSERT_NE(h2, nullptr);
  // Addressed to h2's uplink, as h1's neighbour entry for h2 would have it:
  // the test run leaves out bpf_redirect_neigh, which fills that in.
  std::vector<uint8_t> arrived = sent.out;
  std::copy(fixtures::kUplinkMac.begin(), fixtures::kUplinkMac.end(), arrived.begin());
  Step arrival;
  arrival.port = Port::kUplink;
  arrival.packet = arrived;
  const Ran got = h2->Run(arrival);
  ASSERT_EQ(got.cb[0], ATL_VERDICT_DELIVER) << Hex(got.out);
  EXPECT_EQ(got.cb[1], h2->ifindex("dc2"));
  const std::vector<uint8_t> want = lb::PacketBuilder()
                                        .Ethernet(kRouterMac, server.mac)
                                        .Ip(client.address, backend)
                                        .Tcp(40001, 8080, lb::kTcpSyn)
                                        .Build();
  EXPECT_EQ(Hex(got.out), Hex(want));

  // A VXLAN frame without the VNI flag is malformed, and counted.
  std::vector<uint8_t> bad = arrived;
  bad[14 + 20 + 8] = 0;
  arrival.packet = bad;
  const uint64_t before = h2->Drops("malformed");
  EXPECT_EQ(h2->Run(arrival).action, TC_ACT_SHOT);
  EXPECT_EQ(h2->Drops("malformed"), before + 1);
}

// The maps outlive the agent. A pod deleted while it was away, whose address
// a new pod on another interface has taken, leaves no flows when the agent
// is back: the new pod's arrival clears them, and the old port's removal
// (the full sync) does not touch the new pod's.
TEST(BpfFixturesTest, APodGoneWhileTheAgentWasAwayLeavesNoFlows) {
  const lb::IpAddr vip = *lb::IpAddr::Parse("198.18.64.20");
  const lb::IpAddr backend = *lb::IpAddr::Parse("198.19.0.17");
  const Frontend web = WebService(vip, backend);
  // Named parts: clang before 16 cannot capture structured bindings.
  ClientHost made = MakeClientHost("fxa", "cta", web);
  ASSERT_NE(made.host, nullptr);
  Host& host = *made.host;
  const PodPort client = made.client;
  ASSERT_EQ(host.Run(ClientSyn(client, vip, 40000)).cb[0], ATL_VERDICT_ENCAP);
  // Conntrack entries with the client's address in their key.
  const auto entries_of_client = [&host, &client] {
    __be32 addr;
    std::memcpy(&addr, client.address.v4_bytes(), 4);
    int n = 0;
    const int ct = bpf_map__fd(host.dataplane().bpf().skel().maps.atl_ct);
    atl_ct_key key, next;
    for (int err = bpf_map_get_next_key(ct, nullptr, &key); err == 0;
         err = bpf_map_get_next_key(ct, &key, &next), key = next) {
      if (key.saddr == addr || key.daddr == addr) ++n;
    }
    return n;
  };
  ASSERT_EQ(entries_of_client(), 2) << "the flow's two entries";

  Update back = ClientAndRemoteBlock("cta2");  // the new pod: another interface, the same address
  back.upsert_frontends = {web};
  back.full_sync_pod_ports = true;
  ASSERT_TRUE(host.Restart(back));
  EXPECT_EQ(entries_of_client(), 0) << "the old pod's flow";

  // The new pod's own flow from the same port, and a second restart that
  // keeps it: its address is its own now.
  ASSERT_EQ(host.Run(ClientSyn(back.upsert_pod_ports[0], vip, 40000)).cb[0], ATL_VERDICT_ENCAP);
  ASSERT_EQ(entries_of_client(), 2);
  ASSERT_TRUE(host.Restart(back));
  EXPECT_EQ(entries_of_client(), 2) << "a pod still there keeps its flows";
}

// A full sync (a restarted agent's first snapshot) lists every node address:
// one the maps held from before and it does not list goes, also when the
// update does not say set_node_addresses.
TEST(BpfFixturesTest, AFullSyncListsEveryNodeAddress) {
  Update state = ClientAndRemoteBlock("ctn");
  state.set_node_addresses = true;
  state.node_addresses = {*lb::IpAddr::Parse("198.18.0.11")};
  std::unique_ptr<Host> host = Host::Make("fxn", state);
  ASSERT_NE(host, nullptr);
  ASSERT_EQ(host->dataplane().Dump().node_addresses.size(), 1u);

  Update snapshot = ClientAndRemoteBlock("ctn");
  snapshot.full_sync = true;
  ASSERT_TRUE(host->Restart(snapshot));
  EXPECT_TRUE(host->dataplane().Dump().node_addresses.empty());
}

}  // namespace
}  // namespace atl::dataplane

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0 ||
      mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0) {
    std::fprintf(stderr, "bpf_fixtures_test: needs root (namespaces, bpffs): %s\n",
                 std::strerror(errno));
    return 1;
  }
  return RUN_ALL_TESTS();
}
