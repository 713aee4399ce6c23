// atoll-perf: the DPDK pipeline's throughput per core, beside its peers, in
// one invocation, on the same DPDK vdevs and cores (perf/dpdk_peers.h):
//   testpmd   io-forward: the framework's ceiling;
//   ovs       OVS with its DPDK datapath, ct + select-group load balancing;
//   atoll     DpdkDataplane's worker running the pipeline.
// Workloads (perf/dpdk_peers.h LbWorkload): "hit", a fixed set of live TCP
// flows replayed from memory (conntrack hits after the first pass), and
// "new", distinct SYNs each sent once by a generator process on the main
// core over a memif link (every packet a new flow; the figure is the
// forwarding core's busy time per packet). With --feed=ring the SYNs come
// instead over a ring port from a thread in the Atoll child (RingFeed), with
// no copy on the forwarding core, beside an io-forward loop on the same feed
// as the ceiling; testpmd and OVS cannot be fed so. Atoll gets the
// traffic as an external frontend's (externalIPs, externalTrafficPolicy
// Local) on its uplink: conntrack, DNAT to the backend and VXLAN to the
// backend's host; OVS DNATs and outputs, testpmd only forwards.
//
// Each Atoll point runs in a child process of its own (the EAL is set up
// once per process), `atoll-perf --child ...`, which prints one JSON line.
// Root: the peers and the EAL need it. Writes --out (JSON) and prints a table.
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "dataplane/dpdk/dpdk_dataplane.h"
#include "lb/service_table.h"
#include "lb/status_macros.h"
#include "perf/dpdk_peers.h"

ABSL_FLAG(std::string, peers, "testpmd,ovs,atoll", "what to run: testpmd, ovs, atoll");
ABSL_FLAG(std::string, workloads, "hit,new", "hit (live flows, conntrack hits), new (SYNs)");
ABSL_FLAG(std::string, services, "1,1000,100000", "numbers of services (the hit workload)");
ABSL_FLAG(std::string, new_services, "1,1000,100000", "numbers of services (the new workload)");
ABSL_FLAG(std::string, frames, "64,512,1500",
          "frame sizes with FCS (hit workload, --frame_services)");
ABSL_FLAG(int, frame_services, 1000, "the number of services the frame sizes are run at");
ABSL_FLAG(int, backends, 4, "backends per service");
ABSL_FLAG(int, flows, 10000, "live flows of the hit workload");
ABSL_FLAG(int64_t, new_packets, 2000000, "SYNs of the new workload");
ABSL_FLAG(double, new_share, 0, "for --workloads=mix: the share of new flows among the packets");
ABSL_FLAG(double, seconds, 5, "measured window");
ABSL_FLAG(double, warmup, 2, "warm-up before the window");
ABSL_FLAG(int, reps, 3, "runs per point (medians reported)");
ABSL_FLAG(int, hugepages, 0, "2 MiB hugepages per run (0: --no-huge)");
ABSL_FLAG(int, workers, 1,
          "Atoll's workers, each on a CPU of its own (CPUs 1, 0, 2, ...); with more than one, "
          "worker 0 receives the traffic and hands each flow to its worker");
ABSL_FLAG(std::string, out, "atoll-perf.json", "the JSON results");
ABSL_FLAG(std::string, pcap_dir, "",
          "where the workloads' pcaps go, and stay (default: a temporary directory)");
ABSL_FLAG(bool, progress, true, "a progress line on stderr while a point runs");
ABSL_FLAG(std::string, external_policy, "local",
          "Atoll's services' externalTrafficPolicy: local (clients keep their address, as with "
          "OVS's flows) or cluster (SNAT to the node, Kubernetes' default: a backend then holds "
          "one flow per node port, so the new workload wants 1,000 services or more)");
ABSL_FLAG(std::string, feed, "memif",
          "how the new workload's frames reach the forwarding core: memif (a generator process "
          "on CPU 0 over a memif link, for every peer) or ring (a thread on CPU 0 in the Atoll "
          "child's own process, over a ring port: no copy in or out, as from a NIC; Atoll and "
          "an io-forward loop of atoll-perf's own as the ceiling, no testpmd or OVS)");
// The child's own flags.
ABSL_FLAG(bool, child, false, "internal: measure Atoll on --rx_vdev and print one JSON line");
ABSL_FLAG(std::string, rx_vdev, "", "internal: the traffic's port (DPDK devargs)");
ABSL_FLAG(std::string, feed_pcap, "",
          "internal: instead of --rx_vdev, this pcap's frames sent once over a ring port "
          "(RingFeed)");
ABSL_FLAG(bool, forward_only, false,
          "internal: measure an io-forward loop on the traffic port instead of Atoll");
ABSL_FLAG(bool, single_pass, false, "internal: --rx_vdev delivers every frame once");
ABSL_FLAG(int, child_services, 1, "internal: the workload's services");
ABSL_FLAG(std::string, huge_dir, "", "internal: the hugetlbfs mount of --hugepages pages");
// The frame generator's (FrameGenerator).
ABSL_FLAG(bool, generate, false, "internal: send --pcap's frames once on a memif server");
ABSL_FLAG(std::string, pcap, "", "internal: the generator's frames");
ABSL_FLAG(std::string, memif_socket, "", "internal: the generator's memif socket");
ABSL_FLAG(int, generator_core, 0, "internal: the generator's CPU");

namespace atl::perf {
namespace {

using dataplane::dpdk::DpdkDataplane;
using nlohmann::json;

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::vector<int> Ints(const std::string& list) {
  std::vector<int> out;
  for (absl::string_view s : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    int n;
    if (absl::SimpleAtoi(s, &n)) out.push_back(n);
  }
  return out;
}

LbWorkload Workload(const std::string& kind, int services, int frame) {
  LbWorkload w;
  w.services = services;
  w.backends_per_service = absl::GetFlag(FLAGS_backends);
  w.live_flows = absl::GetFlag(FLAGS_flows);
  w.frame_size = frame;
  w.packets = w.live_flows;
  if (kind == "new") {
    w.new_flow_share = 1;
    w.packets = absl::GetFlag(FLAGS_new_packets);
  } else if (kind == "mix") {
    w.new_flow_share = absl::GetFlag(FLAGS_new_share);
    w.packets = absl::GetFlag(FLAGS_new_packets);
  }
  return w;
}

lb::IpAddr Ip(uint32_t host_order) { return lb::IpAddr::V4(host_order); }

absl::StatusOr<lb::TrafficPolicy> ExternalPolicy() {
  const std::string policy = absl::GetFlag(FLAGS_external_policy);
  if (policy == "local") return lb::TrafficPolicy::kLocal;
  if (policy == "cluster") return lb::TrafficPolicy::kCluster;
  return absl::InvalidArgumentError(
      absl::StrCat("--external_policy: \"", policy, "\" is neither local nor cluster"));
}

// --- The child: Atoll on one workload ----------------------------------------

constexpr uint32_t kNode = 0xc612000b;    // 198.18.0.11, this host
constexpr uint32_t kRemote = 0xc612000c;  // 198.18.0.12, the backends' host

// The host: the workload's services as external frontends (externalIPs).
// With externalTrafficPolicy Local (the default of --external_policy), as
// with OVS's flows, a new connection is DNATed and keeps its client's
// address: SNAT to the one node address would hold at most 4 backends x 64k
// ports of the 2 million flows of the new workload. Cluster measures that
// SNAT, at enough services. Every backend is on the other host behind
// 198.19.0.0/16 (marked node-local, which only makes it eligible here), so
// every packet is also encapsulated.
dataplane::Update HostState(const LbWorkload& w, lb::TrafficPolicy external_policy) {
  dataplane::Update u;
  dataplane::Segment seg;
  seg.name = "perf";
  seg.vni = 1;
  seg.cidrs = {*lb::IpPrefix::Parse("198.19.0.0/16")};
  seg.gateway = Ip(0xc6130001);
  seg.isolated = false;
  u.upsert_segments = {seg};
  u.upsert_routes = {{*lb::IpPrefix::Parse("198.19.0.0/16"), 1, "remote", Ip(kRemote)}};
  u.set_node_addresses = true;
  u.node_addresses = {Ip(kNode)};
  for (int s = 0; s < w.services; ++s) {
    dataplane::Frontend f;
    const L4Address vip = *ServiceAddress(w, s);
    f.key = {Ip(vip.ip), vip.port, lb::IpProto::kTcp, lb::Scope::kExternal};
    f.name = absl::StrCat("perf/svc-", s);
    for (int b = 0; b < w.backends_per_service; ++b) {
      const L4Address be = *BackendAddress(w, s, b);
      f.config.backends.push_back({.endpoint = {Ip(be.ip), be.port}, .node_local = true});
    }
    f.config.external_policy = external_policy;
    f.config.maglev_size = lb::MaglevSizeFor(f.config.backends);
    u.upsert_frontends.push_back(std::move(f));
  }
  return u;
}

// The child's EAL: the main lcore on CPU 0, worker i on CPU i (one worker:
// CPU 1; more: on CPU i % CPUs, the main lcore, which only sleeps and
// samples, floating), and --rx_vdev's port unless the traffic comes over a
// ring feed.
absl::Status InitChildEal(const std::string& rx_vdev) {
  const std::string prefix = absl::StrCat("atoll-perf-", getpid());
  const int workers = absl::GetFlag(FLAGS_workers);
  std::string lcores = "0@0,1@1";
  if (workers > 1) {
    const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    lcores = absl::StrCat("0@(0-", cpus - 1, ")");
    for (int i = 1; i <= workers; ++i) absl::StrAppend(&lcores, ",", i, "@", i % cpus);
  }
  std::vector<std::string> args = {"atoll-perf",
                                   "--lcores",
                                   lcores,
                                   "--main-lcore",
                                   "0",
                                   "--no-shconf",
                                   "--no-pci",
                                   "--no-telemetry",
                                   "--file-prefix",
                                   prefix,
                                   "--log-level=lib.eal:error"};
  if (!rx_vdev.empty()) args.insert(args.end(), {"--vdev", rx_vdev});
  const int hugepages = absl::GetFlag(FLAGS_hugepages);
  if (hugepages == 0) {
    args.insert(args.end(), {"--no-huge", "-m", "3072", "--iova-mode=va"});
  } else {
    args.insert(args.end(), {"--huge-dir", absl::GetFlag(FLAGS_huge_dir), "--in-memory"});
  }
  return dataplane::dpdk::InitEal(args);
}

// The traffic's port: --rx_vdev's, or a ring port that `feed` fills with
// --feed_pcap's frames once Start is called. Port 0 either way.
struct TrafficPort {
  std::unique_ptr<RingFeed> feed;
  uint16_t port = 0;
};

absl::StatusOr<TrafficPort> OpenTrafficPort(bool single_pass) {
  // The pcap port replaying a file keeps all of it in mbufs of this pool.
  ATL_ASSIGN_OR_RETURN(rte_mempool * pool,
                       dataplane::dpdk::PacketPool(single_pass ? 65535 : 262143));
  TrafficPort t;
  if (const std::string pcap = absl::GetFlag(FLAGS_feed_pcap); !pcap.empty()) {
    ATL_ASSIGN_OR_RETURN(t.feed, RingFeed::Create(pcap, pool, /*core=*/0));
    t.port = t.feed->port();
  }
  return t;
}

// Samples `load` (cumulative counters of the forwarding core) until a single
// pass ends (no packet for half a second) or, replaying, over the window
// after the warm-up; the figures of what came between.
absl::StatusOr<json> Measure(const char* name, bool single_pass,
                             const std::function<DpdkDataplane::Load()>& load) {
  const double hz = static_cast<double>(rte_get_tsc_hz());
  const bool progress = absl::GetFlag(FLAGS_progress);
  auto show = [&](const char* phase, double t, const DpdkDataplane::Load& l) {
    if (progress) {
      std::fprintf(stderr, "\r  %s %-8s %5.1f s  %12llu packets", name, phase, t,
                   static_cast<unsigned long long>(l.received));
    }
  };
  DpdkDataplane::Load begin, end;
  double window = 0;
  if (single_pass) {
    uint64_t last = 0;
    int still = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (still < 5) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      end = load();
      still = end.received == last && last > 0 ? still + 1 : 0;
      last = end.received;
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      show("new", t, end);
      if (t > 600) return absl::DeadlineExceededError("the pcap was not read within 600 s");
    }
    window = static_cast<double>(end.busy_cycles) / hz;
  } else {
    std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup)));
    begin = load();
    const auto t0 = std::chrono::steady_clock::now();
    const double seconds = absl::GetFlag(FLAGS_seconds);
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      window = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      end = load();
      show("hit", window, end);
      if (window >= seconds) break;
    }
  }
  if (progress) std::fprintf(stderr, "\r%60s\r", "");
  const double packets = static_cast<double>(end.received) - static_cast<double>(begin.received);
  const double busy = static_cast<double>(end.busy_cycles) - static_cast<double>(begin.busy_cycles);
  const double rounds =
      static_cast<double>(end.busy_rounds) - static_cast<double>(begin.busy_rounds);
  if (packets <= 0) return absl::InternalError(absl::StrCat(name, " received no packets"));
  return json{{"mpps", packets / window / 1e6},
              {"ns_per_packet", busy / hz / packets * 1e9},
              {"mean_burst", rounds > 0 ? packets / rounds : 0.0},
              {"packets", packets},
              {"seconds", window}};
}

absl::StatusOr<json> MeasureAtoll(const LbWorkload& w, bool single_pass) {
  ATL_RETURN_IF_ERROR(InitChildEal(absl::GetFlag(FLAGS_rx_vdev)));
  // Before the dataplane, so that the feed's port outlives its workers.
  ATL_ASSIGN_OR_RETURN(TrafficPort traffic, OpenTrafficPort(single_pass));

  const int workers = absl::GetFlag(FLAGS_workers);
  DpdkDataplane::Options options;
  options.uplink_port = dataplane::dpdk::kNoPort;  // the traffic's once the tables are programmed
  options.pipeline.uplink_mac = kWorkloadDstMac;
  options.workers = static_cast<unsigned>(workers);
  options.pipeline.conntrack_flows = static_cast<uint32_t>(
      std::max<int64_t>(1 << 16, 2 * std::max<int64_t>(w.live_flows, w.packets)));
  ATL_ASSIGN_OR_RETURN(std::unique_ptr<DpdkDataplane> dp, DpdkDataplane::Create(options));
  const auto programmed_at = std::chrono::steady_clock::now();
  ATL_ASSIGN_OR_RETURN(const lb::TrafficPolicy policy, ExternalPolicy());
  ATL_RETURN_IF_ERROR(dp->Apply(HostState(w, policy)));
  const double program_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - programmed_at)
          .count();
  dp->SetNeighbours({{Ip(kRemote), {0x02, 0, 0, 0, 0, 0x12}}});
  // The traffic starts once the tables hold the services: a single pass
  // would otherwise be spent before they are programmed. The uplink is the
  // traffic's port: RX the workload; TX dropped (by the pcap PMD, or by the
  // frame generator at the memif link's or the ring feed's other end).
  ATL_RETURN_IF_ERROR(dataplane::dpdk::StartPort(traffic.port));
  dp->SetUplinkPort(traffic.port);
  if (traffic.feed != nullptr) traffic.feed->Start();

  ATL_ASSIGN_OR_RETURN(json r, Measure("atoll", single_pass, [&] { return dp->WorkerLoad(); }));
  if (traffic.feed != nullptr) ATL_RETURN_IF_ERROR(traffic.feed->Finish().status());
  r["program_ms"] = program_ms;
  const dataplane::dpdk::PipelineStats stats = dp->Stats();
  r["new_flows"] = stats.new_flows;
  r["stateless"] = stats.stateless;
  r["workers"] = workers;
  r["handed_off"] = stats.handed_off;
  json drops = json::object();
  for (const auto& [name, n] : dp->Drops()) {
    if (n > 0) drops[name] = n;
  }
  r["drops"] = drops;
  return r;
}

// io-forward, as testpmd's: every frame received sent back out of the same
// port untouched, with the forwarding core's busy time counted as Atoll's
// worker counts its own (polling rounds that received something).
struct Forwarder {
  uint16_t port = 0;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> busy_cycles{0};
  std::atomic<uint64_t> busy_rounds{0};
  std::atomic<uint64_t> unsent{0};
};

int ForwardMain(void* arg) {
  auto* f = static_cast<Forwarder*>(arg);
  rte_mbuf* burst[32];
  while (!f->stop.load(std::memory_order_relaxed)) {
    const uint64_t started = rte_rdtsc();
    const uint16_t n = rte_eth_rx_burst(f->port, 0, burst, 32);
    if (n == 0) continue;
    const uint16_t sent = rte_eth_tx_burst(f->port, 0, burst, n);
    if (sent < n) {
      rte_pktmbuf_free_bulk(burst + sent, n - sent);
      f->unsent.store(f->unsent.load(std::memory_order_relaxed) + (n - sent),
                      std::memory_order_relaxed);
    }
    // Single writer: relaxed loads and stores, no locked instruction.
    f->received.store(f->received.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    f->busy_cycles.store(f->busy_cycles.load(std::memory_order_relaxed) + (rte_rdtsc() - started),
                         std::memory_order_relaxed);
    f->busy_rounds.store(f->busy_rounds.load(std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
  }
  return 0;
}

absl::StatusOr<json> MeasureForward(bool single_pass) {
  ATL_RETURN_IF_ERROR(InitChildEal(absl::GetFlag(FLAGS_rx_vdev)));
  ATL_ASSIGN_OR_RETURN(TrafficPort traffic, OpenTrafficPort(single_pass));
  ATL_RETURN_IF_ERROR(dataplane::dpdk::StartPort(traffic.port));
  Forwarder f;
  f.port = traffic.port;
  const unsigned lcore = rte_get_next_lcore(-1, /*skip_main=*/1, /*wrap=*/0);
  if (const int rc = rte_eal_remote_launch(ForwardMain, &f, lcore); rc != 0) {
    return absl::InternalError(absl::StrCat("io-forward: launch on lcore ", lcore, ": ", rc));
  }
  if (traffic.feed != nullptr) traffic.feed->Start();
  absl::StatusOr<json> r = Measure("io-forward", single_pass, [&] {
    return DpdkDataplane::Load{.received = f.received.load(),
                               .busy_cycles = f.busy_cycles.load(),
                               .busy_rounds = f.busy_rounds.load()};
  });
  f.stop.store(true);
  rte_eal_wait_lcore(lcore);
  if (traffic.feed != nullptr && r.ok()) ATL_RETURN_IF_ERROR(traffic.feed->Finish().status());
  if (r.ok())
    (*r)["drops"] = f.unsent.load() > 0 ? json{{"tx-full", f.unsent.load()}} : json::object();
  return r;
}

int Child() {
  // The workload as the parent wrote it: its flows size the conntrack table.
  const bool single_pass = absl::GetFlag(FLAGS_single_pass);
  LbWorkload w = Workload(single_pass ? "new" : "hit", absl::GetFlag(FLAGS_child_services), 64);
  absl::StatusOr<json> r = absl::GetFlag(FLAGS_forward_only) ? MeasureForward(single_pass)
                                                             : MeasureAtoll(w, single_pass);
  if (!r.ok()) {
    std::printf("%s\n", json{{"error", r.status().ToString()}}.dump().c_str());
    return 1;
  }
  std::printf("%s\n", r->dump().c_str());
  return 0;
}

// --- The parent ----------------------------------------------------------------

// What a child measures, and on what.
struct ChildRun {
  std::string rx_vdev;    // the traffic's port, or
  std::string feed_pcap;  // these frames once over a ring feed
  bool single_pass = false;
  bool forward_only = false;  // an io-forward loop instead of Atoll
};

// Runs the child and parses its line.
absl::StatusOr<PeerResult> RunChild(const LbWorkload& w, const ChildRun& run, json* extra) {
  namespace fs = std::filesystem;
  // Hugepages reserved for this run alone, and given back after it.
  std::string huge_dir;
  std::unique_ptr<Hugepages> huge;
  if (const int pages = absl::GetFlag(FLAGS_hugepages); pages > 0) {
    huge_dir = (fs::temp_directory_path() / absl::StrCat("atoll-perf-huge-", getpid())).string();
    ATL_ASSIGN_OR_RETURN(huge, Hugepages::Reserve(pages, huge_dir));
  }
  const std::string self = fs::read_symlink("/proc/self/exe");
  const std::string cmd = absl::StrCat(
      self, " --child --rx_vdev=", run.rx_vdev, " --feed_pcap=", run.feed_pcap,
      " --forward_only=", run.forward_only ? "true" : "false",
      " --single_pass=", run.single_pass ? "true" : "false", " --child_services=", w.services,
      " --backends=", w.backends_per_service, " --flows=", w.live_flows,
      " --new_packets=", w.packets, " --seconds=", absl::GetFlag(FLAGS_seconds),
      " --warmup=", absl::GetFlag(FLAGS_warmup), " --hugepages=", absl::GetFlag(FLAGS_hugepages),
      " --huge_dir=", huge_dir, " --workers=", absl::GetFlag(FLAGS_workers),
      " --external_policy=", absl::GetFlag(FLAGS_external_policy),
      " --progress=", absl::GetFlag(FLAGS_progress) ? "true" : "false");
  FILE* child = popen(cmd.c_str(), "r");
  if (child == nullptr) return absl::InternalError("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof(buf), child) != nullptr) out += buf;
  const int status = pclose(child);
  const size_t brace = out.rfind("\n{", out.size() - 2);
  const std::string line = out.substr(brace == std::string::npos ? 0 : brace + 1);
  json r = json::parse(line, nullptr, false);
  if (r.is_discarded() || !r.is_object()) {
    return absl::InternalError(absl::StrCat("atoll child (exit ", status, "): ", out));
  }
  if (r.contains("error")) return absl::InternalError(r["error"].get<std::string>());
  PeerResult p;
  p.mpps = r["mpps"];
  p.ns_per_packet = r["ns_per_packet"].get<double>();
  p.packets = static_cast<int64_t>(r["packets"].get<double>());
  p.seconds = r["seconds"];
  *extra = r;
  return p;
}

struct Point {
  std::string workload;
  int services = 0;
  int frame = 64;
};

int Parent() {
  namespace fs = std::filesystem;
  if (absl::Status s = ExternalPolicy().status(); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::string dir = absl::GetFlag(FLAGS_pcap_dir);
  const bool own_dir = dir.empty();
  if (own_dir) {
    dir = (fs::temp_directory_path() / "atoll-perf-XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
  }
  const std::string feed = absl::GetFlag(FLAGS_feed);
  if (feed != "memif" && feed != "ring") {
    std::fprintf(stderr, "--feed: \"%s\" is neither memif nor ring\n", feed.c_str());
    return 1;
  }
  const bool ring_feed = feed == "ring";
  const std::string self = fs::read_symlink("/proc/self/exe");
  const std::string peers = absl::GetFlag(FLAGS_peers);
  auto wants = [&](const char* p) { return absl::StrContains(peers, p); };
  std::vector<Point> points;
  const std::vector<std::string> workloads = absl::StrSplit(absl::GetFlag(FLAGS_workloads), ',');
  for (const std::string& wl : workloads) {
    if (wl == "hit") {
      for (int n : Ints(absl::GetFlag(FLAGS_services))) points.push_back({wl, n, 64});
      for (int f : Ints(absl::GetFlag(FLAGS_frames))) {
        if (f != 64) points.push_back({wl, absl::GetFlag(FLAGS_frame_services), f});
      }
    } else {
      for (int n : Ints(absl::GetFlag(FLAGS_new_services))) points.push_back({wl, n, 64});
    }
  }

  PeerRun base;
  base.seconds = absl::GetFlag(FLAGS_seconds);
  base.warmup_seconds = absl::GetFlag(FLAGS_warmup);
  base.hugepages = absl::GetFlag(FLAGS_hugepages);
  base.memory_mb = 2048;
  const int reps = absl::GetFlag(FLAGS_reps);
  json results = json::array();

  // The framework's ceiling on contentless frames (net_null to net_null).
  if (wants("testpmd")) {
    std::vector<double> mpps;
    for (int i = 0; i < reps; ++i) {
      PeerRun r = base;
      r.vdevs = NullVdevs();
      if (absl::StatusOr<PeerResult> got = RunTestpmd(r); got.ok()) mpps.push_back(got->mpps);
    }
    results.push_back(
        {{"peer", "testpmd"}, {"workload", "null"}, {"mpps", Median(mpps)}, {"runs", mpps}});
    std::printf("testpmd io-fwd, net_null -> net_null: %.2f Mpps (median of %zu)\n", Median(mpps),
                mpps.size());
  }

  int done = 0;
  for (const Point& pt : points) {
    ++done;
    const LbWorkload w = Workload(pt.workload, pt.services, pt.frame);
    const bool single_pass = pt.workload != "hit";
    const std::string pcap =
        absl::StrCat(dir, "/", pt.workload, "-", pt.services, "-", pt.frame, ".pcap");
    absl::StatusOr<int64_t> written = WriteWorkloadPcap(w, pcap);
    if (!written.ok()) {
      std::fprintf(stderr, "pcap: %s\n", written.status().ToString().c_str());
      continue;
    }
    std::map<std::string, std::vector<double>> mpps, ns;
    std::map<std::string, json> last;
    // Fed by a ring, only children of atoll-perf's can run: io-forward
    // stands for testpmd as the ceiling, and OVS sits out.
    const bool ring = single_pass && ring_feed;
    const std::string ceiling = ring ? "io-forward" : "testpmd";
    for (int i = 0; i < reps; ++i) {
      for (const char* peer : {"testpmd", "ovs", "atoll"}) {
        if (!wants(peer) || (ring && std::string(peer) == "ovs")) continue;
        const std::string name = std::string(peer) == "testpmd" ? ceiling : peer;
        std::fprintf(stderr, "[%d/%zu] %s %s N=%d %dB run %d/%d\n", done, points.size(),
                     name.c_str(), pt.workload.c_str(), pt.services, pt.frame, i + 1, reps);
        PeerRun r = base;
        r.single_pass = single_pass;
        // A single pass comes from a generator of its own on the main core.
        std::unique_ptr<FrameGenerator> generator;
        if (ring) {
          // The child's own thread on the main core.
        } else if (single_pass) {
          absl::StatusOr<std::unique_ptr<FrameGenerator>> started =
              FrameGenerator::Start(self, pcap, r);
          if (!started.ok()) {
            std::fprintf(stderr, "  %s\n", started.status().ToString().c_str());
            continue;
          }
          generator = *std::move(started);
          r.vdevs = generator->vdevs();
        } else {
          r.vdevs = PcapTrafficVdevs(pcap);
        }
        absl::StatusOr<PeerResult> got;
        json extra;
        if (ring) {
          got = RunChild(w,
                         {.rx_vdev = "",
                          .feed_pcap = pcap,
                          .single_pass = true,
                          .forward_only = std::string(peer) == "testpmd"},
                         &extra);
        } else if (std::string(peer) == "testpmd") {
          got = RunTestpmd(r);
        } else if (std::string(peer) == "ovs") {
          absl::StatusOr<OvsProgram> program = OvsLbProgram(w);
          if (!program.ok()) {
            got = program.status();
          } else {
            r.ovs = *program;
            got = RunOvsDpdk(r);
          }
        } else {
          got = RunChild(w, {.rx_vdev = r.vdevs[0], .feed_pcap = "", .single_pass = single_pass},
                         &extra);
        }
        if (generator != nullptr && got.ok()) {
          if (const absl::StatusOr<int64_t> sent = generator->Finish(); !sent.ok()) {
            got = sent.status();
          }
        }
        if (!got.ok()) {
          std::fprintf(stderr, "  %s: %s\n", name.c_str(), got.status().ToString().c_str());
          continue;
        }
        mpps[name].push_back(got->mpps);
        if (got->ns_per_packet) ns[name].push_back(*got->ns_per_packet);
        last[name] = extra;
      }
    }
    for (const auto& [peer, runs] : mpps) {
      json row = {{"peer", peer},      {"workload", pt.workload}, {"services", pt.services},
                  {"frame", pt.frame}, {"mpps", Median(runs)},    {"runs", runs}};
      if (!ns[peer].empty()) row["ns_per_packet"] = Median(ns[peer]);
      if (!last[peer].is_null()) row["last_run"] = last[peer];
      results.push_back(row);
    }
    auto m = [&](const char* p) { return mpps.count(p) ? Median(mpps[p]) : 0.0; };
    auto n = [&](const char* p) { return ns.count(p) ? Median(ns[p]) : 0.0; };
    // The peers that ran (--peers), and the ratios between them.
    std::string line = absl::StrFormat("%-4s N=%-6d %4dB", pt.workload, pt.services, pt.frame);
    if (mpps.count("atoll")) {
      absl::StrAppendFormat(&line, "  atoll %6.2f Mpps %6.1f ns/pkt", m("atoll"), n("atoll"));
      if (m(ceiling.c_str()) > 0) {
        absl::StrAppendFormat(&line, " (%3.0f%% of %s %5.2f)",
                              100 * m("atoll") / m(ceiling.c_str()), ceiling, m(ceiling.c_str()));
      }
    } else if (mpps.count(ceiling)) {
      absl::StrAppendFormat(&line, "  %s %5.2f Mpps", ceiling, m(ceiling.c_str()));
    }
    if (mpps.count("ovs")) {
      absl::StrAppendFormat(&line, "  ovs %5.2f Mpps %7.1f ns/pkt", m("ovs"), n("ovs"));
      if (mpps.count("atoll") && m("ovs") > 0) {
        absl::StrAppendFormat(&line, "  atoll/ovs x%.1f", m("atoll") / m("ovs"));
      }
    }
    std::printf("%s\n", line.c_str());
    // Atoll's own account of the last run: a figure whose packets were
    // dropped, or whose flows were not all made, measures something else.
    if (last.count("atoll") && !last["atoll"]["drops"].empty()) {
      std::printf("  atoll dropped packets in that run: %s\n",
                  last["atoll"]["drops"].dump().c_str());
    }
    std::fflush(stdout);
  }
  std::ofstream(absl::GetFlag(FLAGS_out))
      << json{{"hugepages", absl::GetFlag(FLAGS_hugepages)},
              {"feed", feed},
              {"external_policy", absl::GetFlag(FLAGS_external_policy)},
              {"results", results}}
             .dump(1)
      << "\n";
  if (own_dir) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return 0;
}

}  // namespace
}  // namespace atl::perf

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (geteuid() != 0) {
    std::fprintf(stderr, "atoll-perf: run as root (DPDK, OVS and testpmd need it)\n");
    return 1;
  }
  if (absl::GetFlag(FLAGS_generate)) {
    return atl::perf::RunFrameGenerator(absl::GetFlag(FLAGS_pcap),
                                        absl::GetFlag(FLAGS_memif_socket),
                                        absl::GetFlag(FLAGS_generator_core));
  }
  return absl::GetFlag(FLAGS_child) ? atl::perf::Child() : atl::perf::Parent();
}
