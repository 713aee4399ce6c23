#include "dataplane/packet_fixtures.h"

#include <cstring>

#include "lb/packet.h"
#include "lb/packet_builder.h"

namespace atl::dataplane::fixtures {
namespace {

using lb::IpAddr;
using lb::PacketBuilder;

IpAddr Ip(const char* text) { return *IpAddr::Parse(text); }
lb::MacAddr PodMac(const char* ip) { return dataplane::PodMac(Ip(ip)); }

// The host: segments a (isolated), b (isolated), open; pods on this host;
// a block of segment a on h2; the services below.
constexpr const char* kPa1 = "198.19.0.2";
constexpr const char* kPa2 = "198.19.0.3";
constexpr const char* kPa3 = "198.19.0.4";
constexpr const char* kPa4 = "198.19.0.5";  // the reply tuples table's spare port
constexpr const char* kPb1 = "198.19.1.2";
constexpr const char* kPo1 = "198.19.2.2";
constexpr const char* kRemoteA = "198.19.0.17";  // a pod of segment a on h2
const IpAddr kH2 = Ip("198.18.0.12");
const IpAddr kExt = Ip("198.18.16.2");

Segment MakeSegment(const char* name, uint32_t vni, const char* cidr, const char* gw,
                    bool isolated) {
  Segment s;
  s.name = name;
  s.vni = vni;
  s.cidrs = {*lb::IpPrefix::Parse(cidr)};
  s.gateway = Ip(gw);
  s.isolated = isolated;
  return s;
}

PodPort MakePod(const char* ifname, const char* ip, const char* segment) {
  PodPort p;
  p.host_ifname = ifname;
  p.mac = PodMac(ip);
  p.address = Ip(ip);
  p.segment = segment;
  p.pod = std::string(segment) + "/" + ifname;
  return p;
}

Frontend MakeFrontend(const char* vip, uint16_t port, lb::IpProto proto, lb::Scope scope,
                      std::vector<lb::Endpoint> backends) {
  Frontend f;
  f.key = {vip ? Ip(vip) : IpAddr::V4(0), port, proto, scope};
  f.name = "fixtures/svc";
  for (const lb::Endpoint& e : backends) f.config.backends.push_back({.endpoint = e});
  f.config.maglev_size = 251;
  return f;
}

Update HostState() {
  Update u;
  u.upsert_segments = {MakeSegment("a", 1, "198.19.0.0/24", "198.19.0.1", true),
                       MakeSegment("b", 2, "198.19.1.0/24", "198.19.1.1", true),
                       MakeSegment("open", 3, "198.19.2.0/24", "198.19.2.1", false)};
  u.upsert_pod_ports = {MakePod("pa1", kPa1, "a"), MakePod("pa2", kPa2, "a"),
                        MakePod("pb1", kPb1, "b"), MakePod("po1", kPo1, "open")};
  u.upsert_routes = {Route{*lb::IpPrefix::Parse("198.19.0.16/28"), 1, "h2", kH2}};
  u.set_node_addresses = true;
  u.node_addresses = {kNodeAddr};
  u.upsert_frontends = {
      MakeFrontend("198.18.64.10", 80, lb::IpProto::kTcp, lb::Scope::kInternal, {{Ip(kPa2), 8080}}),
      MakeFrontend("198.18.64.11", 53, lb::IpProto::kUdp, lb::Scope::kInternal,
                   {{Ip(kRemoteA), 5353}}),
      MakeFrontend("198.18.64.12", 80, lb::IpProto::kTcp, lb::Scope::kInternal, {}),
      MakeFrontend(nullptr, 30080, lb::IpProto::kTcp, lb::Scope::kExternal, {{Ip(kPa2), 8080}}),
  };
  return u;
}

// A pod's frame: from its MAC to the router's.
PacketBuilder FromPod(const char* src, const char* dst) {
  PacketBuilder b;
  b.Ethernet(PodMac(src), kRouterMac).Ip(src, dst);
  return b;
}
// A routed frame to a pod (or through the overlay to one).
PacketBuilder ToPod(const char* src, const char* dst) {
  PacketBuilder b;
  b.Ethernet(kRouterMac, PodMac(dst)).Ip(src, dst);
  return b;
}

std::vector<uint8_t> Arp(uint16_t op, const lb::MacAddr& eth_dst, const lb::MacAddr& sha,
                         const IpAddr& spa, const lb::MacAddr& tha, const IpAddr& tpa) {
  std::vector<uint8_t> f(eth_dst.begin(), eth_dst.end());
  f.insert(f.end(), sha.begin(), sha.end());
  const uint8_t head[] = {0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, static_cast<uint8_t>(op)};
  f.insert(f.end(), std::begin(head), std::end(head));
  f.insert(f.end(), sha.begin(), sha.end());
  f.insert(f.end(), spa.v4_bytes(), spa.v4_bytes() + 4);
  f.insert(f.end(), tha.begin(), tha.end());
  f.insert(f.end(), tpa.v4_bytes(), tpa.v4_bytes() + 4);
  return f;
}

Step PodStep(std::string name, const char* pod, std::vector<uint8_t> packet) {
  Step s;
  s.name = std::move(name);
  s.port = Port::kPod;
  s.pod = pod;
  s.packet = std::move(packet);
  return s;
}
Step Delivered(Step s, const char* to_pod, std::vector<uint8_t> out) {
  s.verdict = Verdict::kDeliver;
  s.to_pod = to_pod;
  s.out = std::move(out);
  return s;
}
// To the host stack, as it came.
Step PassedUntouched(Step s) {
  s.verdict = Verdict::kPass;
  s.out = s.packet;
  return s;
}
Step Dropped(Step s, const char* reason) {
  s.verdict = Verdict::kDrop;
  s.drop_reason = reason;
  return s;
}

std::vector<Step> HostSteps() {
  using lb::kTcpAck;
  using lb::kTcpSyn;
  std::vector<Step> steps;
  const lb::MacAddr pa1_mac = PodMac(kPa1);

  Step arp = PodStep(
      "ARP for the gateway is answered with the router MAC", "pa1",
      Arp(1, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, pa1_mac, Ip(kPa1), {}, Ip("198.19.0.1")));
  arp.verdict = Verdict::kReply;
  arp.out = Arp(2, pa1_mac, kRouterMac, Ip("198.19.0.1"), pa1_mac, Ip(kPa1));
  steps.push_back(arp);

  PacketBuilder spoof_mac;
  spoof_mac.Ethernet({0x02, 0, 0, 0, 0, 9}, kRouterMac).Ip(kPa1, kPa2).Tcp(1, 2);
  steps.push_back(
      Dropped(PodStep("another source MAC is spoofing", "pa1", spoof_mac.Build()), "spoofed"));
  steps.push_back(Dropped(
      PodStep(
          "another source address is spoofing", "pa1",
          PacketBuilder().Ethernet(pa1_mac, kRouterMac).Ip("198.19.0.9", kPa2).Tcp(1, 2).Build()),
      "spoofed"));

  steps.push_back(Delivered(PodStep("a peer in the segment on this host", "pa1",
                                    FromPod(kPa1, kPa2).Tcp(40000, 80, kTcpSyn).Build()),
                            "pa2", ToPod(kPa1, kPa2).Tcp(40000, 80, kTcpSyn).Build()));

  Step remote = PodStep("a peer in the segment on another host goes into the overlay", "pa1",
                        FromPod(kPa1, kRemoteA).Udp(40000, 7000).Payload(8).Build());
  remote.verdict = Verdict::kEncap;
  remote.to_vni = 1;
  remote.to_underlay = kH2;
  remote.out = ToPod(kPa1, kRemoteA).Udp(40000, 7000).Payload(8).Build();
  steps.push_back(remote);

  steps.push_back(Dropped(PodStep("an isolated segment refuses another", "pb1",
                                  FromPod(kPb1, kPa1).Tcp(40000, 80, kTcpSyn).Build()),
                          "isolated"));
  steps.push_back(Delivered(PodStep("an open segment accepts another", "pa1",
                                    FromPod(kPa1, kPo1).Tcp(40001, 80, kTcpSyn).Build()),
                            "po1", ToPod(kPa1, kPo1).Tcp(40001, 80, kTcpSyn).Build()));
  steps.push_back(Delivered(PodStep("the reply to a flow an isolated pod opened reaches it", "po1",
                                    FromPod(kPo1, kPa1).Tcp(80, 40001, kTcpSyn | kTcpAck).Build()),
                            "pa1", ToPod(kPo1, kPa1).Tcp(80, 40001, kTcpSyn | kTcpAck).Build()));

  // DESIGN.md "Isolation": pods accept the host they run on, which reaches
  // them through their veths; their side of it (an answer, or a connection
  // of their own to the host) goes to the host stack untranslated. The
  // Ethernet header it arrives with is each backend's (the veth's stack
  // told to take it, the exception path's MAC), so `out` is not compared.
  const auto to_host = [](std::string name, const char* ifname, const char* pod) {
    Step s = PodStep(std::move(name), ifname,
                     FromPod(pod, "198.18.0.11").Tcp(10250, 45000, kTcpSyn | kTcpAck).Build());
    s.verdict = Verdict::kPass;
    return s;
  };
  steps.push_back(to_host("an isolated pod answers its own host", "pb1", kPb1));
  steps.push_back(to_host("so does one of another isolated segment", "pa1", kPa1));

  steps.push_back(Delivered(PodStep("a ClusterIP is translated to its backend", "pa1",
                                    FromPod(kPa1, "198.18.64.10").Tcp(40002, 80, kTcpSyn).Build()),
                            "pa2", ToPod(kPa1, kPa2).Tcp(40002, 8080, kTcpSyn).Build()));
  steps.push_back(
      Delivered(PodStep("the backend's reply comes from the ClusterIP", "pa2",
                        FromPod(kPa2, kPa1).Tcp(8080, 40002, kTcpSyn | kTcpAck).Build()),
                "pa1", ToPod("198.18.64.10", kPa1).Tcp(80, 40002, kTcpSyn | kTcpAck).Build()));
  {
    const std::vector<uint8_t> quoted =
        PacketBuilder().NoEthernet().Ip(kPa1, kPa2).Tcp(40002, 8080, kTcpAck).Build();
    const std::vector<uint8_t> quoted_as_sent =
        PacketBuilder().NoEthernet().Ip(kPa1, "198.18.64.10").Tcp(40002, 80, kTcpAck).Build();
    steps.push_back(Delivered(PodStep("an ICMP error from the backend reads as from the ClusterIP",
                                      "pa2", FromPod(kPa2, kPa1).IcmpError(3, 3, quoted).Build()),
                              "pa1",
                              PacketBuilder()
                                  .Ethernet(kRouterMac, pa1_mac)
                                  .Ip("198.18.64.10", kPa1)
                                  .IcmpError(3, 3, quoted_as_sent)
                                  .Build()));
  }
  steps.push_back(Dropped(PodStep("a service without backends drops", "pa1",
                                  FromPod(kPa1, "198.18.64.12").Tcp(40003, 80, kTcpSyn).Build()),
                          "no-backend"));
  steps.push_back(Delivered(PodStep("hairpin: a backend reaching itself sees the gateway", "pa2",
                                    FromPod(kPa2, "198.18.64.10").Tcp(40004, 80, kTcpSyn).Build()),
                            "pa2", ToPod("198.19.0.1", kPa2).Tcp(40004, 8080, kTcpSyn).Build()));

  Step udp_svc = PodStep("a UDP ClusterIP with a backend on another host", "pa1",
                         FromPod(kPa1, "198.18.64.11").Udp(40005, 53).Payload(16).Build());
  udp_svc.verdict = Verdict::kEncap;
  udp_svc.to_vni = 1;
  udp_svc.to_underlay = kH2;
  udp_svc.out = ToPod(kPa1, kRemoteA).Udp(40005, 5353).Payload(16).Build();
  steps.push_back(udp_svc);

  auto overlay = [&](std::string name, uint32_t vni, std::vector<uint8_t> packet) {
    Step s;
    s.name = std::move(name);
    s.port = Port::kOverlay;
    s.vni = vni;
    s.underlay = kH2;
    s.packet = std::move(packet);
    return s;
  };
  steps.push_back(Delivered(overlay("from the overlay to a pod of the VNI's segment", 1,
                                    ToPod(kRemoteA, kPa1).Udp(5000, 7000).Build()),
                            "pa1", ToPod(kRemoteA, kPa1).Udp(5000, 7000).Build()));
  steps.push_back(Dropped(overlay("from the overlay with another segment's VNI", 2,
                                  ToPod(kRemoteA, kPa1).Udp(5001, 7000).Build()),
                          "vni-mismatch"));
  steps.push_back(Dropped(overlay("from the overlay, another isolated segment", 1,
                                  ToPod("198.19.1.20", kPa1).Udp(5002, 7000).Build()),
                          "isolated"));

  auto uplink = [&](std::string name, std::vector<uint8_t> packet) {
    Step s;
    s.name = std::move(name);
    s.port = Port::kUplink;
    s.packet = std::move(packet);
    return s;
  };
  const lb::MacAddr ext_mac = {0x02, 0, 0, 0, 0, 0x16};
  steps.push_back(
      Delivered(uplink("a NodePort (policy Cluster) is translated, its source becomes the node",
                       PacketBuilder()
                           .Ethernet(ext_mac, kUplinkMac)
                           .Ip(kExt, kNodeAddr)
                           .Tcp(50000, 30080, kTcpSyn)
                           .Build()),
                "pa2",
                PacketBuilder()
                    .Ethernet(kRouterMac, PodMac(kPa2))
                    .Ip(kNodeAddr, Ip(kPa2))
                    .Tcp(50000, 8080, kTcpSyn)
                    .Build()));
  steps.push_back(
      PassedUntouched(uplink("the host's own traffic passes", PacketBuilder()
                                                                  .Ethernet(ext_mac, kUplinkMac)
                                                                  .Ip(kExt, kNodeAddr)
                                                                  .Tcp(50001, 22, kTcpSyn)
                                                                  .Build())));
  // The underlay floods a frame to a MAC it has not learnt, and a promiscuous
  // uplink takes it in: balanced here as well as by the host it was for, the
  // flow would have two backends. It is left to the host, which drops it (or
  // gives it to whatever on it has that MAC).
  steps.push_back(
      PassedUntouched(uplink("a NodePort frame for another host's MAC is left to the host",
                             PacketBuilder()
                                 .Ethernet(ext_mac, {0x02, 0, 0, 0, 0, 0x12})
                                 .Ip(kExt, kNodeAddr)
                                 .Tcp(50002, 30080, kTcpSyn)
                                 .Build())));
  return steps;
}

// Two flows never share a reply tuple, or their replies could not be told
// apart. A client port holding a flow to pa2, through a service or directly,
// reaches a service that has pa2 too: its flow takes the service's next
// backend, which isolation judges as it would the first. Eight client ports,
// so that Maglev picks pa2 first for some of them and the next for others.
Update ReplyTupleState() {
  Update u;
  u.upsert_segments = {MakeSegment("a", 1, "198.19.0.0/24", "198.19.0.1", true),
                       MakeSegment("b", 2, "198.19.1.0/24", "198.19.1.1", true)};
  u.upsert_pod_ports = {MakePod("pa1", kPa1, "a"), MakePod("pa2", kPa2, "a"),
                        MakePod("pa3", kPa3, "a"), MakePod("pb1", kPb1, "b"),
                        MakePod("pa4", kPa4, "a")};
  u.set_node_addresses = true;
  u.node_addresses = {kNodeAddr};
  const auto tcp = [](const char* vip, std::vector<lb::Endpoint> backends) {
    return MakeFrontend(vip, 80, lb::IpProto::kTcp, lb::Scope::kInternal, std::move(backends));
  };
  u.upsert_frontends = {tcp("198.18.64.20", {{Ip(kPa2), 8080}}),
                        tcp("198.18.64.21", {{Ip(kPa2), 8080}, {Ip(kPa3), 8080}}),
                        tcp("198.18.64.22", {{Ip(kPa2), 8080}, {Ip(kPb1), 8080}}),
                        tcp("198.18.64.23", {{Ip(kPa2), 8080}}),
                        tcp("198.18.64.24", {{Ip(kPa2), 8080}})};
  return u;
}

std::vector<Step> ReplyTupleSteps() {
  using lb::kTcpAck;
  using lb::kTcpSyn;
  std::vector<Step> steps;
  for (uint16_t sport = 41000; sport < 41008; ++sport) {
    const std::string port = std::to_string(sport);
    const bool direct = sport % 2 == 1;
    const char* first = direct ? kPa2 : "198.18.64.20";
    const uint16_t first_port = direct ? 8080 : 80;
    steps.push_back(Delivered(
        PodStep(port + ": a flow to pa2" + (direct ? ", directly" : ", through a service"), "pa1",
                FromPod(kPa1, first).Tcp(sport, first_port, kTcpSyn).Build()),
        "pa2", ToPod(kPa1, kPa2).Tcp(sport, 8080, kTcpSyn).Build()));
    steps.push_back(
        Delivered(PodStep(port + ": a service of pa2 and pa3 sends the client's port to pa3", "pa1",
                          FromPod(kPa1, "198.18.64.21").Tcp(sport, 80, kTcpSyn).Build()),
                  "pa3", ToPod(kPa1, kPa3).Tcp(sport, 8080, kTcpSyn).Build()));
    steps.push_back(
        Delivered(PodStep(port + ": pa2's replies are still the first flow's", "pa2",
                          FromPod(kPa2, kPa1).Tcp(8080, sport, kTcpSyn | kTcpAck).Build()),
                  "pa1", ToPod(first, kPa1).Tcp(first_port, sport, kTcpSyn | kTcpAck).Build()));
    steps.push_back(
        Dropped(PodStep(port + ": a service of pa2 and an isolated pb1 has none for it", "pa1",
                        FromPod(kPa1, "198.18.64.22").Tcp(sport, 80, kTcpSyn).Build()),
                "isolated"));
  }
  // A client's segment of a connection through service `vip` to pa2, and
  // pa2's answer, which comes from `vip`.
  const auto to_pa2 = [](std::string name, const char* vip, uint16_t sport, uint8_t flags) {
    return Delivered(
        PodStep(std::move(name), "pa1", FromPod(kPa1, vip).Tcp(sport, 80, flags).Build()), "pa2",
        ToPod(kPa1, kPa2).Tcp(sport, 8080, flags).Build());
  };
  const auto from_pa2 = [](std::string name, const char* vip, uint16_t sport, uint8_t flags) {
    return Delivered(
        PodStep(std::move(name), "pa2", FromPod(kPa2, kPa1).Tcp(8080, sport, flags).Build()), "pa1",
        ToPod(vip, kPa1).Tcp(80, sport, flags).Build());
  };
  using lb::kTcpFin;
  using lb::kTcpRst;
  // A reset connection gives its reply tuple up to a new connection's SYN,
  // as Linux lets a SYN reuse a tuple in TIME_WAIT: a client recycling its
  // port reaches pa2 again through a service that has no other backend.
  steps.push_back(to_pa2("41100: a flow to pa2 through a service", "198.18.64.20", 41100, kTcpSyn));
  steps.push_back(to_pa2("41100: the client resets it", "198.18.64.20", 41100, kTcpRst | kTcpAck));
  steps.push_back(to_pa2("41100: its port's SYN to another service of pa2 takes the tuple over",
                         "198.18.64.23", 41100, kTcpSyn));
  steps.push_back(from_pa2("41100: pa2's replies are the new flow's", "198.18.64.23", 41100,
                           kTcpSyn | kTcpAck));
  // A connection closed one way only keeps its tuple; once both sides sent
  // their FIN it is over, as a reset one is.
  steps.push_back(to_pa2("41101: a flow to pa2 through a service", "198.18.64.20", 41101, kTcpSyn));
  steps.push_back(
      to_pa2("41101: the client closes its side", "198.18.64.20", 41101, kTcpFin | kTcpAck));
  steps.push_back(
      Dropped(PodStep("41101: while pa2 has not, its port's SYN to another service of pa2 finds no "
                      "backend with a free tuple",
                      "pa1", FromPod(kPa1, "198.18.64.23").Tcp(41101, 80, kTcpSyn).Build()),
              "nat-exhausted"));
  steps.push_back(from_pa2("41101: pa2 closes its side", "198.18.64.20", 41101, kTcpFin | kTcpAck));
  steps.push_back(
      to_pa2("41101: now the SYN takes the tuple over", "198.18.64.23", 41101, kTcpSyn));
  steps.push_back(from_pa2("41101: pa2's replies are the new flow's", "198.18.64.23", 41101,
                           kTcpSyn | kTcpAck));
  // A client recycling the port of a finished connection (a RST, or a FIN
  // each way) opens a new one, balanced afresh: after its backend left the
  // service, the old flow would send it there for as long as the client
  // retried (kubernetes/kubernetes#81775). A SYN on a flow that is not over
  // still follows the flow.
  const auto to_pod = [](std::string name, uint16_t sport, uint8_t flags, const char* pod,
                         const char* addr) {
    return Delivered(PodStep(std::move(name), "pa1",
                             FromPod(kPa1, "198.18.64.24").Tcp(sport, 80, flags).Build()),
                     pod, ToPod(kPa1, addr).Tcp(sport, 8080, flags).Build());
  };
  const auto from_pod = [](std::string name, uint16_t sport, uint8_t flags, const char* pod,
                           const char* addr) {
    return Delivered(
        PodStep(std::move(name), pod, FromPod(addr, kPa1).Tcp(8080, sport, flags).Build()), "pa1",
        ToPod("198.18.64.24", kPa1).Tcp(80, sport, flags).Build());
  };
  const auto backends_now = [](const char* addr) {
    Update u;
    u.upsert_frontends = {MakeFrontend("198.18.64.24", 80, lb::IpProto::kTcp, lb::Scope::kInternal,
                                       {{Ip(addr), 8080}})};
    return u;
  };
  steps.push_back(to_pod("41104: a connection to pa2", 41104, kTcpSyn, "pa2", kPa2));
  steps.push_back(from_pod("41104: pa2 answers", 41104, kTcpSyn | kTcpAck, "pa2", kPa2));
  steps.push_back(to_pod("41104: established", 41104, kTcpAck, "pa2", kPa2));
  steps.push_back(to_pod("41104: the client resets it", 41104, kTcpRst | kTcpAck, "pa2", kPa2));
  Step reset_reopened = to_pod("41104: pa3 replaced pa2; the port's next SYN goes to pa3", 41104,
                               kTcpSyn, "pa3", kPa3);
  reset_reopened.before = {backends_now(kPa3)};
  steps.push_back(reset_reopened);
  steps.push_back(
      from_pod("41104: pa3's replies are the new flow's", 41104, kTcpSyn | kTcpAck, "pa3", kPa3));
  steps.push_back(to_pod("41105: a connection to pa3", 41105, kTcpSyn, "pa3", kPa3));
  steps.push_back(from_pod("41105: pa3 answers", 41105, kTcpSyn | kTcpAck, "pa3", kPa3));
  steps.push_back(
      to_pod("41105: the client closes its side", 41105, kTcpFin | kTcpAck, "pa3", kPa3));
  steps.push_back(from_pod("41105: pa3 closes its side", 41105, kTcpFin | kTcpAck, "pa3", kPa3));
  Step fin_reopened = to_pod("41105: pa2 replaced pa3; the port's next SYN goes to pa2", 41105,
                             kTcpSyn, "pa2", kPa2);
  fin_reopened.before = {backends_now(kPa2)};
  steps.push_back(fin_reopened);
  steps.push_back(to_pod("41106: a connection to pa2", 41106, kTcpSyn, "pa2", kPa2));
  Step retried = to_pod("41106: pa3 replaced pa2; the SYN sent again still goes to pa2", 41106,
                        kTcpSyn, "pa2", kPa2);
  retried.before = {backends_now(kPa3)};
  steps.push_back(retried);
  // Picked up as it closes (conntrack had lost it): its first packet a FIN.
  steps.push_back(to_pod("41107: a connection first seen closing, to pa3", 41107, kTcpFin | kTcpAck,
                         "pa3", kPa3));
  steps.push_back(from_pod("41107: pa3 closes its side", 41107, kTcpFin | kTcpAck, "pa3", kPa3));
  Step picked_up_reopened = to_pod("41107: pa2 replaced pa3; the port's next SYN goes to pa2",
                                   41107, kTcpSyn, "pa2", kPa2);
  picked_up_reopened.before = {backends_now(kPa2)};
  steps.push_back(picked_up_reopened);
  // A pod that leaves takes its flows with it (as Cilium flushes a deleted
  // endpoint's). Otherwise a connection it never closed would hold its reply
  // tuple for the established timeout, and a new pod given the same address
  // could not reach pa2 from that port through another service.
  steps.push_back(to_pa2("41102: a flow to pa2 through a service", "198.18.64.20", 41102, kTcpSyn));
  steps.push_back(from_pa2("41102: pa2 answers", "198.18.64.20", 41102, kTcpSyn | kTcpAck));
  steps.push_back(to_pa2("41102: established", "198.18.64.20", 41102, kTcpAck));
  Step reborn = to_pa2("41102: pa1 left without closing, and a new pod at its address reaches pa2",
                       "198.18.64.23", 41102, kTcpSyn);
  Update left;
  left.remove_pod_ports = {"pa1"};
  Update came;
  came.upsert_pod_ports = {MakePod("pa1", kPa1, "a")};
  reborn.before = {left, came};
  steps.push_back(reborn);
  steps.push_back(from_pa2("41102: pa2's replies are the new pod's flow's", "198.18.64.23", 41102,
                           kTcpSyn | kTcpAck));
  // A new pod may take an address before the old pod's removal comes: the
  // new pod's port (pa4's, given pa1's address) clears the address's flows
  // as it takes it, and the old port's removal then leaves the new pod's alone.
  steps.push_back(to_pa2("41103: a flow to pa2 through a service", "198.18.64.20", 41103, kTcpSyn));
  steps.push_back(from_pa2("41103: pa2 answers", "198.18.64.20", 41103, kTcpSyn | kTcpAck));
  Step taken =
      Delivered(PodStep("41103: another port takes pa1's address and reaches pa2 from that port",
                        "pa4", FromPod(kPa1, "198.18.64.23").Tcp(41103, 80, kTcpSyn).Build()),
                "pa2", ToPod(kPa1, kPa2).Tcp(41103, 8080, kTcpSyn).Build());
  Update moved;
  moved.upsert_pod_ports = {MakePod("pa4", kPa1, "a")};
  taken.before = {moved};
  steps.push_back(taken);
  Step stays = Delivered(PodStep("41103: the old port's removal leaves the new pod's flow", "pa4",
                                 FromPod(kPa1, "198.18.64.23").Tcp(41103, 80, kTcpAck).Build()),
                         "pa2", ToPod(kPa1, kPa2).Tcp(41103, 8080, kTcpAck).Build());
  Update left_late;
  left_late.remove_pod_ports = {"pa1"};
  stays.before = {left_late};
  steps.push_back(stays);
  return steps;
}

}  // namespace

std::vector<Table> AllTables() {
  return {Table{"host", HostState(), HostSteps()},
          Table{"reply tuples", ReplyTupleState(), ReplyTupleSteps()}};
}

}  // namespace atl::dataplane::fixtures
