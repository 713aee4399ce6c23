// dataplane-bench: Atoll's eBPF dataplane against kube-proxy's two modes, on
// the e2e test bed (tests/testbed.h), in one invocation (perf/dataplane-bench.sh).
//
// For every N of --services and every mode of --modes a fresh bed: the
// controller, hosts h1 and h2 with their agents, pods made by atoll-cni. The
// same N services (N-1 with two endpoints that do not exist, and the measured
// one, with a TCP and a UDP port and two server pods on h2) go to the
// controller with atollctl; the clients run on h1. Then the services are
// realised as
//   atoll     the agents' eBPF dataplane (VXLAN between the hosts);
//   iptables  kube-proxy's iptables-mode ruleset, measured service last in
//             KUBE-SERVICES, loaded on both hosts; agents with the in-process
//             dataplane (which moves no packets), pods routed by the kernel
//             (host routes, no encapsulation: the cheaper path);
//   nftables  the same with kube-proxy's nftables-mode ruleset.
// A fresh bed per point leaves no conntrack, TIME_WAIT or map state of one
// point to the next; each repetition of a point has a client pod of its own
// (a new source address), and netbench's crr never reuses a source port.
//
// Measured, --reps times each (medians are what the summary shows):
//   crr       new connections per second through the ClusterIP, one 64-byte
//             request and answer each, the server closing first;
//   rr        requests per second on 32 established connections;
//   udp_pps   64-byte UDP frames from AF_PACKET in the client pod, 1024 flows,
//             counted at the backends' interfaces;
//   bulk      one TCP stream, Gbit/s;
//   program   the time to install the N services and to change one endpoint:
//             EbpfDataplane::Apply in this process on maps of its own (the
//             agent's call); iptables-restore (the change: --noflush, as
//             kube-proxy's partial sync) and nft -f, in a namespace of their
//             own;
//   e2e       (atoll) atollctl apply of the N services until both agents acked.
// The load generator runs on CPU 0 and the servers on CPU 1.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "dataplane/ebpf/ebpf_dataplane.h"
#include "grpc_status.h"
#include "grpcpp/grpcpp.h"
#include "lb/status_macros.h"
#include "nlohmann/json.hpp"
#include "perf/kube_proxy_rules.h"
#include "tests/testbed.h"

ABSL_FLAG(std::string, modes, "atoll,iptables,nftables", "dataplanes to measure");
ABSL_FLAG(std::string, services, "1,1000,10000", "numbers of services");
ABSL_FLAG(int, reps, 5, "repetitions of each measurement");
ABSL_FLAG(double, seconds, 3, "length of each traffic run");
ABSL_FLAG(std::string, measure, "crr,rr,udp,bulk,program", "what to measure");
ABSL_FLAG(std::string, json, "", "where to write every sample as JSON");

namespace atl::perf {
namespace {

using ::atl::testing::CommandResult;
using ::atl::testing::EndpointSliceSpec;
using ::atl::testing::EndpointSpec;
using ::atl::testing::Host;
using ::atl::testing::NamespaceSpec;
using ::atl::testing::Pod;
using ::atl::testing::PortSpec;
using ::atl::testing::RunCommand;
using ::atl::testing::ServiceSpec;
using ::atl::testing::SpawnOptions;
using ::atl::testing::TestBed;
using ::atl::testing::TestBedOptions;
using ::atl::testing::TestNetns;
using Clock = std::chrono::steady_clock;
namespace api = ::atl::api::v1;

constexpr int kHosts = 2;  // h1: the clients; h2: the servers
constexpr char kNamespace[] = "bench";
constexpr char kTarget[] = "target";
constexpr int kTcpPort = 80, kTcpTarget = 8080, kUdpPort = 90, kUdpTarget = 9090;
const KubeProxyConfig kKubeProxy{.cluster_cidr = "198.19.0.0/16",
                                 .service_cidr = "198.18.64.0/18"};

struct Sample {
  std::string mode;
  int services = 0;
  std::string metric;
  double value = 0;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string FillerName(int i) { return absl::StrFormat("f%05d", i); }

// The k-th endpoint of the filler services: addresses of the pod range no
// block of this bed reaches, so that they exist only in the rules.
std::string FillerEndpoint(int k) {
  return absl::StrCat("198.19.", 128 + k / 250, ".", 1 + k % 250);
}

// The N services as the controller gets them: N-1 fillers, then the target.
std::string ServicesManifest(int n, const std::vector<std::string>& servers) {
  std::vector<std::string> docs;
  for (int i = 1; i < n; ++i) {
    docs.push_back(testing::Manifest(ServiceSpec{
        .ns = kNamespace,
        .name = FillerName(i),
        .ports = {{.name = "http", .port = kTcpPort, .target_port = kTcpTarget}}}));
    docs.push_back(testing::Manifest(EndpointSliceSpec{
        .ns = kNamespace,
        .name = FillerName(i),
        .service = FillerName(i),
        .endpoints = {{.address = FillerEndpoint(2 * i), .node = "h2"},
                      {.address = FillerEndpoint(2 * i + 1), .node = "h2"}},
        .ports = {{.name = "http", .port = kTcpTarget}}}));
  }
  docs.push_back(testing::Manifest(ServiceSpec{
      .ns = kNamespace,
      .name = kTarget,
      .ports = {{.name = "http", .port = kTcpPort, .target_port = kTcpTarget},
                {.name = "udp", .protocol = "UDP", .port = kUdpPort, .target_port = kUdpTarget}}}));
  EndpointSliceSpec slice{.ns = kNamespace, .name = kTarget, .service = kTarget};
  for (const std::string& s : servers) slice.endpoints.push_back({.address = s, .node = "h2"});
  slice.ports = {{.name = "http", .port = kTcpTarget},
                 {.name = "udp", .protocol = "UDP", .port = kUdpTarget}};
  docs.push_back(testing::Manifest(slice));
  return absl::StrJoin(docs, "---\n");
}

// The services' ports with the ClusterIPs the controller gave them, in the
// order of the manifest (the target's last).
absl::StatusOr<std::vector<KubeServicePort>> ServicePorts(TestBed& bed, int n,
                                                          const std::vector<std::string>& servers) {
  auto channel = grpc::CreateChannel(bed.controller().address(), grpc::InsecureChannelCredentials());
  auto admin = api::Admin::NewStub(channel);
  grpc::ClientContext ctx;
  api::ListRequest req;
  req.set_kind(api::KIND_SERVICE);
  req.set_namespace_(kNamespace);
  api::ListResponse resp;
  ATL_RETURN_IF_ERROR(api::FromGrpcStatus(admin->List(&ctx, req, &resp), "list services: "));
  std::map<std::string, std::string> ips;
  for (const api::Resource& r : resp.resources()) {
    if (r.service().cluster_ips_size() > 0) ips[r.service().name()] = r.service().cluster_ips(0);
  }
  std::vector<KubeServicePort> ports;
  for (int i = 1; i < n; ++i) {
    ports.push_back({.ns = kNamespace,
                     .name = FillerName(i),
                     .port_name = "http",
                     .protocol = "tcp",
                     .cluster_ip = ips[FillerName(i)],
                     .port = kTcpPort,
                     .target_port = kTcpTarget,
                     .endpoints = {FillerEndpoint(2 * i), FillerEndpoint(2 * i + 1)}});
  }
  for (const auto& [name, proto, port, target] :
       {std::tuple{"http", "tcp", kTcpPort, kTcpTarget}, {"udp", "udp", kUdpPort, kUdpTarget}}) {
    ports.push_back({.ns = kNamespace,
                     .name = kTarget,
                     .port_name = name,
                     .protocol = proto,
                     .cluster_ip = ips[kTarget],
                     .port = port,
                     .target_port = target,
                     .endpoints = servers});
  }
  for (const KubeServicePort& p : ports) {
    if (p.cluster_ip.empty()) {
      return absl::InternalError(absl::StrCat("service ", p.name, " has no ClusterIP"));
    }
  }
  return ports;
}

// --- Programming time -------------------------------------------------------------

// The whole ruleset goes in with a plain iptables-restore, which replaces the
// nat and filter tables: the fastest way iptables loads it. kube-proxy always
// passes --noflush, which with this iptables (1.8.9, nf_tables backend) costs
// time quadratic in the number of chains (about 74 s for 10,000 services
// here against a few seconds without), a cost of that binary rather than of
// the ruleset's structure. Its partial sync, a change among existing chains,
// can only be written with --noflush, as kube-proxy does.
const std::vector<std::string> kIptablesLoad = {"/usr/sbin/iptables-restore"};
const std::vector<std::string> kIptablesPartialSync = {"/usr/sbin/iptables-restore", "--noflush"};
const std::vector<std::string> kNftLoad = {"/usr/sbin/nft", "-f", "-"};

absl::StatusOr<double> TimedCommand(const std::vector<std::string>& argv, const TestNetns& netns,
                                    const std::string& input) {
  const auto start = Clock::now();
  absl::StatusOr<CommandResult> r =
      RunCommand(argv, {.netns = &netns}, input, std::chrono::seconds(120));
  const double ms = Ms(Clock::now() - start);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(
        absl::StrCat(argv[0], " failed (", r->exit_code, "): ", r->err.substr(0, 2000)));
  }
  return ms;
}

// The measured TCP port's endpoints with one of them replaced.
KubeServicePort ChangedEndpoint(const KubeServicePort& before) {
  KubeServicePort after = before;
  after.endpoints.back() = "198.19.250.250";
  return after;
}

absl::Status MeasureKubeProxyProgramming(const std::string& mode,
                                         const std::vector<KubeServicePort>& ports, int reps,
                                         std::vector<Sample>& samples) {
  ATL_ASSIGN_OR_RETURN(std::unique_ptr<TestNetns> scratch, TestNetns::Create());
  const int n = static_cast<int>(ports.size()) - 1;  // the target has two ports
  const KubeServicePort& before = ports[ports.size() - 2];
  const KubeServicePort after = ChangedEndpoint(before);
  std::vector<KubeServicePort> now = ports;
  now[now.size() - 2] = after;
  const bool ipt = mode == "iptables";
  const std::string full = ipt ? IptablesRuleset(ports, kKubeProxy) : NftRuleset(ports, kKubeProxy);
  const std::string change = ipt ? IptablesEndpointChange(now, before, after, kKubeProxy)
                                 : NftEndpointChange(before, after, kKubeProxy);
  const std::vector<std::string> load = ipt ? kIptablesLoad : kNftLoad;
  const std::vector<std::string> change_load = ipt ? kIptablesPartialSync : kNftLoad;
  const std::string flush =
      ipt ? "iptables -t nat -F; iptables -t nat -X; iptables -F; iptables -X" : "nft flush ruleset";
  for (int r = 0; r < reps; ++r) {
    ATL_RETURN_IF_ERROR(RunCommand({"/bin/sh", "-c", flush}, {.netns = scratch.get()}).status());
    ATL_ASSIGN_OR_RETURN(double load_ms, TimedCommand(load, *scratch, full));
    ATL_ASSIGN_OR_RETURN(double change_ms, TimedCommand(change_load, *scratch, change));
    samples.push_back({mode, n, "program_ms", load_ms});
    samples.push_back({mode, n, "endpoint_change_ms", change_ms});
  }
  return absl::OkStatus();
}

dataplane::Frontend ToFrontend(const KubeServicePort& p) {
  dataplane::Frontend f;
  f.key = {.addr = *lb::IpAddr::Parse(p.cluster_ip),
           .port = static_cast<uint16_t>(p.port),
           .proto = p.protocol == "udp" ? lb::IpProto::kUdp : lb::IpProto::kTcp,
           .scope = lb::Scope::kInternal};
  for (const std::string& ep : p.endpoints) {
    f.config.backends.push_back(
        {.endpoint = {*lb::IpAddr::Parse(ep), static_cast<uint16_t>(p.target_port)}});
  }
  f.config.maglev_size = lb::MaglevSizeFor(f.config.backends);
  f.name = absl::StrCat(p.ns, "/", p.name, ":", p.port_name);
  return f;
}

// What the agent does with the same services: EbpfDataplane::Apply, on maps
// of this process's own (pinned in its private bpffs, not attached).
absl::Status MeasureAtollProgramming(const std::vector<KubeServicePort>& ports, int reps,
                                     std::vector<Sample>& samples) {
  const int n = static_cast<int>(ports.size()) - 1;
  dataplane::Update full;
  for (const KubeServicePort& p : ports) full.upsert_frontends.push_back(ToFrontend(p));
  dataplane::Update change;
  change.upsert_frontends.push_back(ToFrontend(ChangedEndpoint(ports[ports.size() - 2])));
  for (int r = 0; r < reps; ++r) {
    const std::filesystem::path pins = absl::StrCat("/sys/fs/bpf/atoll-bench-program-", r);
    ATL_ASSIGN_OR_RETURN(std::unique_ptr<dataplane::EbpfDataplane> dp,
                         dataplane::EbpfDataplane::Create({.pin_dir = pins,
                                                           .uplink = "",
                                                           .overlay_device = "",
                                                           .attach_pod_ports = false}));
    auto start = Clock::now();
    ATL_RETURN_IF_ERROR(dp->Apply(full));
    samples.push_back({"atoll", n, "program_ms", Ms(Clock::now() - start)});
    start = Clock::now();
    ATL_RETURN_IF_ERROR(dp->Apply(change));
    samples.push_back({"atoll", n, "endpoint_change_ms", Ms(Clock::now() - start)});
    dp.reset();
    std::filesystem::remove_all(pins);
  }
  return absl::OkStatus();
}

// --- Traffic --------------------------------------------------------------------------

absl::StatusOr<nlohmann::json> Netbench(const Pod& client, std::vector<std::string> args,
                                        double seconds) {
  args.insert(args.begin(), {Env("ATOLL_NETBENCH"), "--cpu=0"});
  absl::StatusOr<CommandResult> r =
      RunCommand(args, {.netns = client.netns.get()}, "",
                 std::chrono::milliseconds(static_cast<int>(seconds * 1000) + 30000));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(absl::StrCat("netbench ", args[2], " in ", client.Describe(),
                                            " failed (", r->exit_code, "): ", r->err));
  }
  nlohmann::json j = nlohmann::json::parse(r->out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InternalError("netbench printed no JSON: " + r->out);
  return j;
}

absl::StatusOr<uint64_t> RxPackets(const Pod& pod) {
  absl::StatusOr<CommandResult> r =
      RunCommand({"/usr/sbin/ip", "-j", "-s", "link", "show", "dev", "eth0"},
                 {.netns = pod.netns.get()});
  if (!r.ok()) return r.status();
  nlohmann::json j = nlohmann::json::parse(r->out, nullptr, false);
  if (j.is_discarded() || !j.is_array() || j.empty()) {
    return absl::InternalError("ip -j -s link: " + r->out + r->err);
  }
  return j[0]["stats64"]["rx"]["packets"].get<uint64_t>();
}

absl::StatusOr<uint64_t> ServersRx(const std::vector<Pod*>& servers) {
  uint64_t sum = 0;
  for (const Pod* s : servers) {
    ATL_ASSIGN_OR_RETURN(uint64_t rx, RxPackets(*s));
    sum += rx;
  }
  return sum;
}

// The kernel path for the peers: each pod's host routes it through its veth,
// the other host through the underlay; pods and hosts know each other's MAC,
// and the host answers ARP for the rest of the segment (a pod reaches the
// pods of its /24 on other hosts directly), as Calico's veths do.
absl::Status RouteByKernel(TestBed& bed, const std::vector<Pod*>& pods) {
  std::map<const Host*, std::vector<std::string>> host_commands;
  std::map<const Host*, std::vector<std::string>> proxy_arp;
  for (const Pod* p : pods) {
    proxy_arp[p->host].push_back(absl::StrCat("net.ipv4.conf.", p->host_ifname, ".proxy_arp=1"));
    ATL_RETURN_IF_ERROR(testing::Ip(
        p->netns.get(), {absl::StrCat("neigh replace ", p->gateway, " lladdr 0a:58:00:00:00:01 dev "
                                      "eth0 nud permanent")}));
    host_commands[p->host].push_back(
        absl::StrCat("link set ", p->host_ifname, " address 0a:58:00:00:00:01"));
    host_commands[p->host].push_back(absl::StrCat("neigh replace ", p->ip, " lladdr ", p->mac,
                                                  " dev ", p->host_ifname, " nud permanent"));
    host_commands[p->host].push_back(absl::StrCat("route replace ", p->ip, "/32 dev ",
                                                  p->host_ifname));
    for (int h = 1; h <= kHosts; ++h) {
      if (&bed.host(h) == p->host) continue;
      host_commands[&bed.host(h)].push_back(
          absl::StrCat("route replace ", p->ip, "/32 via ", p->host->address, " dev eth0"));
    }
  }
  for (const auto& [host, commands] : host_commands) {
    ATL_RETURN_IF_ERROR(testing::Ip(host->netns.get(), commands));
  }
  for (auto& [host, settings] : proxy_arp) {
    settings.insert(settings.begin(), {"/usr/sbin/sysctl", "-q", "-w"});
    absl::StatusOr<CommandResult> r = RunCommand(settings, {.netns = host->netns.get()});
    if (!r.ok()) return r.status();
    if (r->exit_code != 0) return absl::InternalError("sysctl proxy_arp: " + r->err);
  }
  return absl::OkStatus();
}

absl::Status LoadRules(const std::string& mode, const std::vector<KubeServicePort>& ports,
                       TestBed& bed) {
  for (int h = 1; h <= kHosts; ++h) {
    const TestNetns& ns = *bed.host(h).netns;
    if (mode == "iptables") {
      ATL_RETURN_IF_ERROR(
          TimedCommand(kIptablesLoad, ns, IptablesRuleset(ports, kKubeProxy)).status());
    } else {
      ATL_RETURN_IF_ERROR(TimedCommand(kNftLoad, ns, NftRuleset(ports, kKubeProxy)).status());
    }
  }
  return absl::OkStatus();
}

// What the kernel of each host and of the first client holds, for a failure report.
std::string Diagnose(TestBed& bed, const Pod& client) {
  std::string out;
  const std::string script =
      "ip -br link; ip -br addr; ip route; ip neigh; sysctl net.ipv4.ip_forward; "
      "iptables-save -c 2>/dev/null | grep -v '^#' | head -40; nft list ruleset 2>/dev/null | head -60";
  auto run = [&](const std::string& name, const TestNetns& ns) {
    absl::StatusOr<CommandResult> r = RunCommand({"/bin/sh", "-c", script}, {.netns = &ns});
    absl::StrAppend(&out, "--- ", name, "\n", r.ok() ? r->out + r->err : r.status().ToString());
  };
  run("h1", *bed.host(1).netns);
  run("h2", *bed.host(2).netns);
  run(client.Describe(), *client.netns);
  for (int h = 1; h <= kHosts; ++h) {
    const Host& host = bed.host(h);
    if (host.bpf_pin_dir.empty()) continue;
    absl::StatusOr<CommandResult> r = RunCommand(
        {"/usr/sbin/bpftool", "map", "dump", "pinned", host.bpf_pin_dir / "atl_drops"});
    absl::StrAppend(&out, "--- ", host.name, " drops by reason (per CPU)\n",
                    r.ok() ? r->out + r->err : r.status().ToString());
  }
  return out;
}

bool Wants(const std::string& what) {
  const std::vector<std::string> m = absl::StrSplit(absl::GetFlag(FLAGS_measure), ',');
  return std::find(m.begin(), m.end(), what) != m.end();
}

absl::Status MeasureTraffic(const std::string& mode, int n, const std::string& tcp,
                            const std::string& udp, const std::vector<Pod*>& servers,
                            const std::vector<Pod*>& clients, std::vector<Sample>& samples);

absl::Status RunPoint(const std::string& mode, int n, std::vector<Sample>& samples) {
  const int reps = absl::GetFlag(FLAGS_reps);
  TestBedOptions options = TestBedOptions::FromEnvironment();
  options.hosts = kHosts;
  options.dataplane = mode == "atoll" ? "ebpf" : "in-process";
  ATL_ASSIGN_OR_RETURN(std::unique_ptr<TestBed> bed, TestBed::Create(options));
  ATL_RETURN_IF_ERROR(bed->Apply(testing::Manifest(NamespaceSpec{.name = kNamespace})));
  std::vector<Pod*> servers, clients, pods;
  std::vector<std::string> server_ips;
  for (int i = 1; i <= 2; ++i) {
    ATL_ASSIGN_OR_RETURN(Pod * p, bed->AddPod(kNamespace, absl::StrCat("server-", i), bed->host(2)));
    servers.push_back(p);
    server_ips.push_back(p->ip);
  }
  for (int r = 0; r <= reps; ++r) {  // client-0 warms up
    ATL_ASSIGN_OR_RETURN(Pod * p, bed->AddPod(kNamespace, absl::StrCat("client-", r), bed->host(1)));
    clients.push_back(p);
  }
  pods = servers;
  pods.insert(pods.end(), clients.begin(), clients.end());

  const auto apply_start = Clock::now();
  ATL_RETURN_IF_ERROR(bed->Apply(ServicesManifest(n, server_ips)));
  if (mode == "atoll") samples.push_back({mode, n, "e2e_program_ms", Ms(Clock::now() - apply_start)});
  ATL_ASSIGN_OR_RETURN(std::vector<KubeServicePort> ports, ServicePorts(*bed, n, server_ips));
  const std::string vip = ports.back().cluster_ip;

  if (mode != "atoll") {
    ATL_RETURN_IF_ERROR(RouteByKernel(*bed, pods));
    ATL_RETURN_IF_ERROR(LoadRules(mode, ports, *bed));
  }

  std::vector<std::unique_ptr<testing::ChildProcess>> serving;
  for (const Pod* s : servers) {
    ATL_ASSIGN_OR_RETURN(auto p, testing::ChildProcess::Start(
                                     {Env("ATOLL_NETBENCH"), "serve", "--cpu=1"},
                                     {.netns = s->netns.get()}, bed->dir() / (s->name + ".log")));
    serving.push_back(std::move(p));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string tcp = absl::StrCat(vip, ":", kTcpPort);
  const std::string udp = absl::StrCat(vip, ":", kUdpPort);

  // Warm-up, and the check that the service answers at all.
  ATL_ASSIGN_OR_RETURN(nlohmann::json warm,
                       Netbench(*clients[0], {"crr", "--to=" + tcp, "--seconds=1"}, 1));
  if (warm["count"].get<uint64_t>() == 0) {
    return absl::InternalError(absl::StrCat("no connection through ", tcp, " from ",
                                            clients[0]->Describe(), ": ", warm.dump(), "\n",
                                            bed->Logs(), Diagnose(*bed, *clients[0])));
  }
  if (absl::Status s = MeasureTraffic(mode, n, tcp, udp, servers, clients, samples); !s.ok()) {
    if (!Env("ATOLL_BENCH_HOLD_ON_FAILURE").empty()) {
      fprintf(stderr, "%s\nholding the bed for 10 minutes:\n%s\n", s.ToString().c_str(),
              bed->Inventory().c_str());
      std::this_thread::sleep_for(std::chrono::minutes(10));
    }
    return absl::Status(s.code(), absl::StrCat(s.message(), "\n", bed->Logs(),
                                               Diagnose(*bed, *clients[0])));
  }
  for (auto& s : serving) s->Stop(SIGTERM);
  // After the traffic: a minute of iptables-restore at 100% CPU, or five map
  // sets freed behind it, must not run into the traffic's measurements.
  if (Wants("program")) {
    fprintf(stderr, "  programming %d services, %d times\n", n, reps);
    if (mode == "atoll") return MeasureAtollProgramming(ports, reps, samples);
    return MeasureKubeProxyProgramming(mode, ports, reps, samples);
  }
  return absl::OkStatus();
}

absl::Status MeasureTraffic(const std::string& mode, int n, const std::string& tcp,
                            const std::string& udp, const std::vector<Pod*>& servers,
                            const std::vector<Pod*>& clients, std::vector<Sample>& samples) {
  const int reps = absl::GetFlag(FLAGS_reps);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const std::string secs = absl::StrCat("--seconds=", seconds);
  for (int r = 1; r <= reps; ++r) {
    const Pod& client = *clients[r];
    if (Wants("crr")) {
      ATL_ASSIGN_OR_RETURN(nlohmann::json j, Netbench(client, {"crr", "--to=" + tcp, secs}, seconds));
      samples.push_back({mode, n, "crr_per_s", j["rate"].get<double>()});
      samples.push_back({mode, n, "crr_p50_us", j["p50_us"].get<double>()});
      samples.push_back({mode, n, "crr_p99_us", j["p99_us"].get<double>()});
      if (j["errors"].get<uint64_t>() > 0 || j["ports_ran_out"].get<bool>()) {
        fprintf(stderr, "  note: crr %s\n", j.dump().c_str());
      }
    }
    if (Wants("rr")) {
      ATL_ASSIGN_OR_RETURN(nlohmann::json j, Netbench(client, {"rr", "--to=" + tcp, secs}, seconds));
      samples.push_back({mode, n, "rr_per_s", j["rate"].get<double>()});
      samples.push_back({mode, n, "rr_p50_us", j["p50_us"].get<double>()});
    }
    if (Wants("udp")) {
      ATL_ASSIGN_OR_RETURN(uint64_t rx0, ServersRx(servers));
      ATL_ASSIGN_OR_RETURN(
          nlohmann::json j,
          Netbench(client, {"udp", "--to=" + udp, secs, "--dst_mac=0a:58:00:00:00:01"}, seconds));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      ATL_ASSIGN_OR_RETURN(uint64_t rx1, ServersRx(servers));
      const double s = j["seconds"].get<double>();
      samples.push_back({mode, n, "udp_sent_pps", j["rate"].get<double>()});
      samples.push_back({mode, n, "udp_pps", static_cast<double>(rx1 - rx0) / s});
    }
    if (Wants("bulk")) {
      ATL_ASSIGN_OR_RETURN(nlohmann::json j,
                           Netbench(client, {"bulk", "--to=" + tcp, secs}, seconds));
      samples.push_back({mode, n, "bulk_gbit_s", j["gbit_per_s"].get<double>()});
    }
    fprintf(stderr, "  %s N=%d rep %d/%d done\n", mode.c_str(), n, r, reps);
  }
  return absl::OkStatus();
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// mode -> N -> metric -> median
using Medians = std::map<std::string, std::map<int, std::map<std::string, double>>>;

Medians Summarise(const std::vector<Sample>& samples) {
  std::map<std::string, std::map<int, std::map<std::string, std::vector<double>>>> all;
  for (const Sample& s : samples) all[s.mode][s.services][s.metric].push_back(s.value);
  Medians m;
  for (const auto& [mode, by_n] : all) {
    for (const auto& [n, by_metric] : by_n) {
      for (const auto& [metric, values] : by_metric) m[mode][n][metric] = Median(values);
    }
  }
  return m;
}

void PrintSummary(const Medians& m, const std::vector<int>& ns) {
  const char* metrics[] = {"crr_per_s",   "crr_p50_us",   "crr_p99_us",         "rr_per_s",
                           "udp_pps",     "udp_sent_pps", "bulk_gbit_s",        "program_ms",
                           "endpoint_change_ms", "e2e_program_ms"};
  printf("\nmedians (%d repetitions)\n", absl::GetFlag(FLAGS_reps));
  printf("%-20s %-9s", "metric", "mode");
  for (int n : ns) printf(" %12s", absl::StrCat("N=", n).c_str());
  printf("\n");
  for (const char* metric : metrics) {
    for (const auto& [mode, by_n] : m) {
      bool any = false;
      for (int n : ns) any |= by_n.contains(n) && by_n.at(n).contains(metric);
      if (!any) continue;
      printf("%-20s %-9s", metric, mode.c_str());
      for (int n : ns) {
        const auto it = by_n.find(n);
        if (it == by_n.end() || !it->second.contains(metric)) {
          printf(" %12s", "-");
        } else {
          printf(" %12.3f", it->second.at(metric));
        }
      }
      printf("\n");
    }
  }
  if (!m.contains("atoll")) return;
  printf("\natoll / peer (higher is better for rates, lower for times)\n");
  for (const char* metric : metrics) {
    for (const char* peer : {"nftables", "iptables"}) {
      if (!m.contains(peer)) continue;
      std::string line = absl::StrFormat("%-20s /%-8s", metric, peer);
      bool any = false;
      for (int n : ns) {
        const auto a = m.at("atoll").find(n);
        const auto p = m.at(peer).find(n);
        if (a == m.at("atoll").end() || p == m.at(peer).end() || !a->second.contains(metric) ||
            !p->second.contains(metric) || p->second.at(metric) == 0) {
          absl::StrAppendFormat(&line, " %12s", "-");
          continue;
        }
        any = true;
        absl::StrAppendFormat(&line, " %12.2f", a->second.at(metric) / p->second.at(metric));
      }
      if (any) printf("%s\n", line.c_str());
    }
  }
}

absl::Status WriteJson(std::ofstream& out, const std::vector<Sample>& samples,
                       const Medians& m) {
  nlohmann::json j;
  char date[32];
  const time_t now = time(nullptr);
  strftime(date, sizeof(date), "%Y-%m-%d", gmtime(&now));
  j["date"] = date;
  j["reps"] = absl::GetFlag(FLAGS_reps);
  j["seconds"] = absl::GetFlag(FLAGS_seconds);
  j["samples"] = nlohmann::json::array();
  for (const Sample& s : samples) {
    j["samples"].push_back(
        {{"mode", s.mode}, {"services", s.services}, {"metric", s.metric}, {"value", s.value}});
  }
  for (const auto& [mode, by_n] : m) {
    for (const auto& [n, by_metric] : by_n) {
      for (const auto& [metric, value] : by_metric) {
        j["medians"][mode][std::to_string(n)][metric] = value;
      }
    }
  }
  out << j.dump(1) << "\n";
  out.close();
  return out ? absl::OkStatus() : absl::InternalError("write the JSON");
}

int Main() {
  const std::vector<std::string> modes = absl::StrSplit(absl::GetFlag(FLAGS_modes), ',');
  std::vector<int> ns;
  for (const absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_services), ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1 || n > 15000) {
      fprintf(stderr, "dataplane-bench: --services: want numbers from 1 to 15000, got \"%s\"\n",
              std::string(s).c_str());
      return 2;
    }
    ns.push_back(n);
  }
  for (const std::string& mode : modes) {
    if (mode != "atoll" && mode != "iptables" && mode != "nftables") {
      fprintf(stderr, "dataplane-bench: --modes: want atoll, iptables or nftables, got \"%s\"\n",
              mode.c_str());
      return 2;
    }
  }
  // Opened here: the test namespaces put a tmpfs of their own on /tmp.
  std::ofstream json;
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    json.open(path);
    if (!json) {
      fprintf(stderr, "dataplane-bench: --json: cannot write %s\n", path.c_str());
      return 2;
    }
  }
  if (absl::Status s = testing::EnterTestNamespaces(); !s.ok()) {
    fprintf(stderr, "dataplane-bench: %s (needs root)\n", s.ToString().c_str());
    return 1;
  }
  std::vector<Sample> samples;
  // Modes inside N, so that the peers of one N run close together in time.
  for (int n : ns) {
    for (const std::string& mode : modes) {
      fprintf(stderr, "%s, N=%d\n", mode.c_str(), n);
      if (absl::Status s = RunPoint(mode, n, samples); !s.ok()) {
        fprintf(stderr, "dataplane-bench: %s N=%d: %s\n", mode.c_str(), n, s.ToString().c_str());
        return 1;
      }
    }
  }
  const Medians m = Summarise(samples);
  PrintSummary(m, ns);
  if (json.is_open()) {
    if (absl::Status s = WriteJson(json, samples, m); !s.ok()) {
      fprintf(stderr, "dataplane-bench: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace atl::perf

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "dataplane-bench [--modes=atoll,iptables,nftables] [--services=1,1000,10000] [--reps=5]: "
      "see perf/dataplane_bench.cc");
  absl::ParseCommandLine(argc, argv);
  return atl::perf::Main();
}
