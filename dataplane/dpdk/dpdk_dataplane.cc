#include "dataplane/dpdk/dpdk_dataplane.h"

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dataplane/dpdk/host_link.h"
#include "lb/status_macros.h"

namespace atl::dataplane::dpdk {
namespace {

constexpr uint16_t kBurst = 32;
// Conntrack records a worker examines per round while it removes the flows
// of pods that left: 256 KiB of records, some tens of microseconds.
constexpr uint32_t kForgetRecordsPerRound = 2048;
constexpr uint16_t kRxDescriptors = 1024;
constexpr uint16_t kTxDescriptors = 1024;
constexpr unsigned kPoolMbufs = 16383;  // 2^n - 1: the mempool's ring is sized 2^n
constexpr unsigned kPoolCache = 256;
constexpr uint32_t kIdleRoundsBeforeSleep = 1000;
constexpr unsigned kInboxFrames = 4096;

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

// Whether the kernel has hugepages free for the EAL (/proc/meminfo).
bool HugepagesFree() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t value;
  while (meminfo >> key >> value) {
    if (key == "HugePages_Free:") return value > 0;
    meminfo.ignore(256, '\n');
  }
  return false;
}

std::string ErrnoText(int err) { return rte_strerror(err < 0 ? -err : err); }

}  // namespace

std::vector<std::string> DefaultEalArgs(std::string_view lcores, unsigned memory_mb,
                                        std::string_view file_prefix) {
  std::vector<std::string> args = {"atoll",
                                   "--lcores",
                                   std::string(lcores),
                                   "--file-prefix",
                                   std::string(file_prefix),
                                   "--no-pci",
                                   "--no-shconf",
                                   "--no-telemetry",
                                   "--log-level=lib.eal:error"};
  if (!HugepagesFree()) {
    // Without hugepages the EAL runs on ordinary pages, with virtual
    // addresses as IOVAs (only vdevs and kernel interfaces are used).
    args.insert(args.end(), {"--no-huge", "-m", std::to_string(memory_mb), "--iova-mode=va"});
  } else {
    args.insert(args.end(), {"--in-memory", "-m", std::to_string(memory_mb)});
  }
  return args;
}

absl::Status InitEal(const std::vector<std::string>& args) {
  static const absl::Status result = [&]() -> absl::Status {
    std::vector<char*> argv;
    std::vector<std::string> copy = args;  // rte_eal_init may permute argv
    for (std::string& a : copy) argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
      return absl::InternalError(absl::StrCat("DPDK EAL init with \"", absl::StrJoin(args, " "),
                                              "\": ", ErrnoText(rte_errno)));
    }
    // The EAL makes its run directory (/var/run/dpdk/PREFIX) even when told to
    // share nothing (--no-shconf: no config file, no IPC socket), and leaves
    // it behind; empty, it goes now (rmdir removes nothing that is in use).
    rmdir(rte_eal_get_runtime_dir());
    return absl::OkStatus();
  }();
  return result;
}

absl::StatusOr<rte_mempool*> PacketPool(unsigned mbufs) {
  static rte_mempool* pool = nullptr;
  if (pool == nullptr) {
    const unsigned n = std::max(mbufs, kPoolMbufs);
    pool = rte_pktmbuf_pool_create("atoll_packets", n, kPoolCache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   static_cast<int>(rte_socket_id()));
    if (pool == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("mbuf pool of ", n, " packets: ", ErrnoText(rte_errno)));
    }
  }
  return pool;
}

absl::Status StartPort(uint16_t port, rte_mempool* pool, uint16_t queues) {
  if (pool == nullptr) {
    ATL_ASSIGN_OR_RETURN(pool, PacketPool());
  }
  rte_eth_conf conf{};
  int rc = rte_eth_dev_configure(port, queues, queues, &conf);
  if (rc < 0)
    return absl::InternalError(absl::StrCat("configure port ", port, ": ", ErrnoText(rc)));
  uint16_t rx = kRxDescriptors;
  uint16_t tx = kTxDescriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx, &tx);
  const int socket = rte_eth_dev_socket_id(port);
  const unsigned socket_id = socket < 0 ? 0 : static_cast<unsigned>(socket);
  for (uint16_t q = 0; q < queues && rc >= 0; ++q) {
    if ((rc = rte_eth_rx_queue_setup(port, q, rx, socket_id, nullptr, pool)) >= 0) {
      rc = rte_eth_tx_queue_setup(port, q, tx, socket_id, nullptr);
    }
  }
  if (rc < 0 || (rc = rte_eth_dev_start(port)) < 0) {
    return absl::InternalError(absl::StrCat("start port ", port, ": ", ErrnoText(rc)));
  }
  rte_eth_promiscuous_enable(port);  // frames to the router MAC and other hosts' pods
  return absl::OkStatus();
}

namespace {

// The mbufs an AF_XDP port receives into. DPDK 22.11's AF_XDP driver keeps
// the mbufs of its fill queue when the port closes, about 2,048 each time:
// a pool shared by every port would run dry after a few pods came and went.
// So each attached interface has a pool of its own, freed with the port.
rte_mempool* port_pools[RTE_MAX_ETHPORTS] = {};
constexpr unsigned kPortPoolMbufs = 4095;

}  // namespace

absl::StatusOr<rte_mempool*> InterfacePool(const std::string& name, unsigned mbufs) {
  const auto fail = [&](const char* what, int err) {
    return absl::ResourceExhaustedError(absl::StrCat("mbuf pool \"", name, "\" of ", mbufs,
                                                     " mbufs: ", what, ": ", ErrnoText(err)));
  };
  constexpr uint16_t kDataRoom = RTE_MBUF_DEFAULT_BUF_SIZE;
  rte_mempool* pool =
      rte_mempool_create_empty(name.c_str(), mbufs, sizeof(rte_mbuf) + kDataRoom, kPoolCache,
                               sizeof(rte_pktmbuf_pool_private), static_cast<int>(rte_socket_id()),
                               RTE_MEMPOOL_F_NO_IOVA_CONTIG);
  if (pool == nullptr) return fail("create", rte_errno);
  rte_pktmbuf_pool_private priv{};
  priv.mbuf_data_room_size = kDataRoom;
  int rc = rte_mempool_set_ops_byname(pool, rte_mbuf_best_mempool_ops(), nullptr);
  if (rc == 0) {
    rte_pktmbuf_pool_init(pool, &priv);
    rc = rte_mempool_populate_default(pool);
  }
  if (rc < 0) {
    rte_mempool_free(pool);
    return fail("populate", rc);
  }
  // The driver's UMEM starts at the first chunk and ends where `populated`
  // objects back to back do.
  if (const unsigned pieces = pool->nb_mem_chunks; pieces != 1) {
    rte_mempool_free(pool);
    return absl::ResourceExhaustedError(absl::StrCat(
        "mbuf pool \"", name, "\": in ", pieces,
        " pieces of memory, where an AF_XDP socket needs one; give the EAL more memory (-m)"));
  }
  rte_mempool_obj_iter(pool, rte_pktmbuf_init, nullptr);
  return pool;
}

// The RX queues an AF_XDP port must bind to get all of `ifname`'s frames
// (ETHTOOL_GCHANNELS): a NIC spreads them over its channels, and a queue no
// socket is bound to passes its frames to the kernel, lost to the dataplane
// and counted nowhere. DPDK 22.11's driver binds combined channels only.
absl::StatusOr<uint16_t> RxQueuesOf(const std::string& ifname) {
  const absl::StatusOr<ethtool_channels> channels = InterfaceChannels(ifname);
  if (!channels.ok()) return 1;  // no channels to tell of: one queue
  if (channels->combined_count > 0) return static_cast<uint16_t>(channels->combined_count);
  if (channels->rx_count > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("attach interface \"", ifname, "\": it has ", channels->rx_count,
                     " RX queues and no combined channels, which AF_XDP cannot all bind; give "
                     "it one queue"));
  }
  return 1;
}

absl::StatusOr<uint16_t> AttachInterface(const std::string& ifname) {
  ATL_ASSIGN_OR_RETURN(const uint16_t queues, RxQueuesOf(ifname));
  // Each queue's fill ring holds about 1,024 of them.
  ATL_ASSIGN_OR_RETURN(rte_mempool * pool,
                       InterfacePool("atl_" + ifname, (kPortPoolMbufs + 1) * queues - 1));
  // AF_XDP takes the interface's frames away from the kernel; AF_PACKET, the
  // fallback where no XDP program attaches, only copies them.
  const std::string tries[] = {
      absl::StrCat("net_af_xdp_", ifname, ",iface=", ifname, ",start_queue=0,queue_count=", queues),
      absl::StrCat("net_af_packet_", ifname, ",iface=", ifname, ",qpairs=1")};
  std::string errors;
  for (const std::string& devargs : tries) {
    const std::string name = devargs.substr(0, devargs.find(','));
    int rc = rte_dev_probe(devargs.c_str());
    uint16_t port;
    if (rc == 0 && rte_eth_dev_get_port_by_name(name.c_str(), &port) == 0) {
      // AF_PACKET sees every queue's frames through one socket.
      const bool af_xdp = name.starts_with("net_af_xdp");
      absl::Status started = StartPort(port, pool, af_xdp ? queues : 1);
      if (started.ok()) {
        port_pools[port] = pool;
        return port;
      }
      errors += absl::StrCat(" ", name, ": ", started.message(), ";");
      DetachPort(port);
      continue;
    }
    errors += absl::StrCat(" ", name, ": ", ErrnoText(rc), ";");
  }
  rte_mempool_free(pool);
  return absl::UnavailableError(absl::StrCat("attach interface \"", ifname, "\":", errors));
}

void DetachPort(uint16_t port) {
  rte_eth_dev_info info{};
  const bool has_device = rte_eth_dev_info_get(port, &info) == 0 && info.device != nullptr;
  rte_eth_dev_stop(port);
  rte_eth_dev_close(port);
  if (has_device) rte_dev_remove(info.device);
  if (port < RTE_MAX_ETHPORTS && port_pools[port] != nullptr) {
    rte_mempool_free(port_pools[port]);
    port_pools[port] = nullptr;
  }
}

// The uplink and the exception path belong to worker 0, pods' ports to all
// by port number. The host's own traffic crosses from one of the first two
// to the other; split between two workers, the e2e bed's agents lost their
// connections to the controller (not yet understood: the TAP driver wakes
// its reader with SIGIO, which may be a part of it), on one it does not.
uint16_t DpdkDataplane::WorkerOf(uint16_t port) const {
  return WorkerOf(port, uplink_.load(std::memory_order_relaxed).port);
}

uint16_t DpdkDataplane::WorkerOf(uint16_t port, uint16_t uplink_port) const {
  if (port == options_.host_port || port == uplink_port) return 0;
  return static_cast<uint16_t>(port % workers_.size());
}

DpdkDataplane::Uplink DpdkDataplane::UplinkOf(uint16_t port) {
  rte_eth_dev_info info{};
  if (port == kNoPort || rte_eth_dev_info_get(port, &info) != 0 || info.nb_rx_queues == 0) {
    return {port, 1};
  }
  return {port, info.nb_rx_queues};
}

uint16_t* DpdkDataplane::TxPortOf(rte_mbuf* m) const {
  return RTE_MBUF_DYNFIELD(m, tx_port_offset_, uint16_t*);
}

// A worker: its pipeline, frames waiting to leave on each port, and frames
// waiting to go to the workers that own their flows.
struct alignas(64) DpdkDataplane::Worker {
  DpdkDataplane* dataplane = nullptr;
  uint16_t id = 0;
  unsigned lcore = 0;
  std::unique_ptr<Pipeline> pipeline;
  rte_ring* inbox = nullptr;  // frames other workers hand to this one
  struct Pending {
    uint16_t n = 0;
    rte_mbuf* pkts[kBurst];
  };
  Pending tx[RTE_MAX_ETHPORTS];
  Pending handoff[kMaxWorkers];
  // Bits of ports: those with frames in `tx`, so that Flush visits only them;
  // and those this worker polls and sends on (WorkerOf), for the uplink port
  // they were worked out for, so that sending a frame costs no division.
  static_assert(RTE_MAX_ETHPORTS <= 64, "a port is a bit of a 64-bit mask");
  uint64_t tx_waiting = 0;
  uint64_t own_ports = 0;
  bool own_ports_known = false;
  uint16_t own_ports_uplink = kNoPort;
  // Frames between workers, by the port each came in on (m->port) and by
  // the port it is to leave on when it is handed over only to be sent: those
  // this worker put into inboxes (counted before they go in) and those it
  // took out of its own (counted as they come out). A pod's port and its
  // pool of mbufs go only once none is left on the way (AwaitHandoffs).
  static constexpr size_t kPortSlots = RTE_MAX_ETHPORTS + 1;  // the last: any other
  struct HandoffCounts {
    std::array<std::atomic<uint64_t>, kPortSlots> from{};
    std::array<std::atomic<uint64_t>, kPortSlots> to{};
  };
  HandoffCounts handed;
  HandoffCounts taken;
  // Single writer: a relaxed load and a releasing store, no locked
  // instruction; the store orders a frame's count before the enqueue that
  // hands it over, and the dequeue that takes it before its `taken` count.
  static void Count(HandoffCounts& counts, const rte_mbuf* m, uint16_t tx_port) {
    const auto bump = [](std::atomic<uint64_t>& c) {
      c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    };
    bump(counts.from[std::min<size_t>(m->port, kPortSlots - 1)]);
    if (tx_port != kNoPort) bump(counts.to[std::min<size_t>(tx_port, kPortSlots - 1)]);
  }

  // Load, read by the control thread.
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> busy_cycles{0};
  std::atomic<uint64_t> busy_rounds{0};

  // Addresses whose flows go (pods that left, addresses new pods take): the
  // control thread adds them to `to_forget` and numbers its request in
  // `forget_asked`; the worker takes them into a walk over its conntrack
  // shard, a few records a round so that its ports are still served, and
  // stores the request it took in `forget_done` once the walk has gone round
  // the whole shard.
  std::mutex forget_lock;
  std::vector<lb::IpAddr> to_forget;  // guarded by forget_lock
  std::atomic<uint64_t> forget_asked{0};
  std::atomic<uint64_t> forget_done{0};
  std::vector<lb::IpAddr> forgetting;  // the walk's, the worker's alone
  uint64_t forgetting_asked = 0;
  uint32_t walk_left = 0;  // records before the walk is complete

  // One round's part of the walk; returns whether one is under way.
  bool ForgetSome() {
    if (forget_asked.load(std::memory_order_acquire) != forgetting_asked) {
      std::lock_guard<std::mutex> lock(forget_lock);
      forgetting.insert(forgetting.end(), to_forget.begin(), to_forget.end());
      to_forget.clear();
      forgetting_asked = forget_asked.load(std::memory_order_relaxed);
      walk_left = pipeline->conntrack().capacity();  // from here, round to here
    }
    if (walk_left == 0) return false;
    const uint32_t n = std::min(walk_left, kForgetRecordsPerRound);
    pipeline->RemoveFlowsOf(forgetting, n);
    walk_left -= n;
    if (walk_left == 0) {
      forgetting.clear();
      forget_done.store(forgetting_asked, std::memory_order_release);
    }
    return true;
  }

  // Every frame of a burst comes here: the common case (a port this worker
  // polls, a burst not yet full) inline, the rest out of line.
  void Send(uint16_t port, rte_mbuf* m) {
    if (!Polls(port)) return SendElsewhere(port, m);
    Pending& q = tx[port];
    q.pkts[q.n++] = m;
    tx_waiting |= uint64_t{1} << port;
    if (q.n == kBurst) FlushPort(port);
  }
  // The exception path and the uplink can be absent (in a test's or a
  // benchmark's dataplane): a frame for one is dropped, counted as what it
  // lacked. Every other port a frame is sent to exists.
  void SendIfPresent(uint16_t port, rte_mbuf* m, DropReason absent) {
    if (port == kNoPort) [[unlikely]] {
      rte_pktmbuf_free(m);
      pipeline->CountDrop(absent);
      return;
    }
    Send(port, m);
  }
  [[gnu::noinline]] void SendElsewhere(uint16_t port, rte_mbuf* m) {
    // No port at all would be a bug (SendIfPresent catches the two that may
    // be absent): the frame is lost, not handed to a worker that would run
    // it through the pipeline again.
    if (port >= RTE_MAX_ETHPORTS) [[unlikely]] {
      rte_pktmbuf_free(m);
      pipeline->CountDrop(DropReason::kTxFull);
      return;
    }
    // Another worker's port: that worker alone sends on it.
    *dataplane->TxPortOf(m) = port;
    HandOff(dataplane->WorkerOf(port), m);
  }
  [[gnu::noinline]] void FlushPort(uint16_t port) {
    Pending& q = tx[port];
    const uint16_t sent = rte_eth_tx_burst(port, 0, q.pkts, q.n);
    for (uint16_t i = sent; i < q.n; ++i) {
      rte_pktmbuf_free(q.pkts[i]);
      pipeline->CountDrop(DropReason::kTxFull);
    }
    q.n = 0;
    tx_waiting &= ~(uint64_t{1} << port);
  }
  void HandOff(uint16_t worker, rte_mbuf* m) {
    Pending& q = handoff[worker];
    q.pkts[q.n++] = m;
    if (q.n == kBurst) FlushHandoff(worker);
  }
  void FlushHandoff(uint16_t worker) {
    Pending& q = handoff[worker];
    for (uint16_t i = 0; i < q.n; ++i) Count(handed, q.pkts[i], *dataplane->TxPortOf(q.pkts[i]));
    const unsigned queued = rte_ring_enqueue_burst(dataplane->workers_[worker]->inbox,
                                                   reinterpret_cast<void**>(q.pkts), q.n, nullptr);
    for (unsigned i = queued; i < q.n; ++i) {
      Count(taken, q.pkts[i], *dataplane->TxPortOf(q.pkts[i]));  // never on the way
      rte_pktmbuf_free(q.pkts[i]);
      pipeline->CountDrop(DropReason::kHandoffFull);
    }
    q.n = 0;
  }
  void Flush() {
    for (uint16_t w = 0; w < dataplane->workers_.size(); ++w) {
      if (handoff[w].n > 0) FlushHandoff(w);
    }
    while (tx_waiting != 0) FlushPort(static_cast<uint16_t>(__builtin_ctzll(tx_waiting)));
  }
  // Sends each frame where its verdict says; `in_port` is where they came in.
  void Deliver(rte_mbuf** pkts, const Verdict* verdicts, uint16_t n, uint16_t in_port) {
    const Options& o = dataplane->options_;
    const uint16_t uplink = dataplane->uplink_.load(std::memory_order_relaxed).port;
    for (uint16_t i = 0; i < n; ++i) {
      rte_mbuf* m = pkts[i];
      const Verdict& v = verdicts[i];
      switch (v.next) {
        case Next::kDrop:
          rte_pktmbuf_free(m);
          break;
        case Next::kHost:
          SendIfPresent(o.host_port, m, DropReason::kNoHostPath);
          break;
        case Next::kPod:
          Send(v.port, m);
          break;
        case Next::kUplink:
          SendIfPresent(uplink, m, DropReason::kNoUplink);
          break;
        case Next::kBack:
          Send(in_port, m);
          break;
        case Next::kHandoff:
          *dataplane->TxPortOf(m) = kNoPort;  // to be processed, not just sent
          HandOff(v.port, m);
          break;
      }
    }
  }
  // RX one burst from `port` and take each frame through the pipeline;
  // returns how many frames came.
  uint16_t Poll(uint16_t port, uint16_t queue, Next kind, const HostTables& t, uint64_t now) {
    rte_mbuf* pkts[kBurst];
    const uint16_t n = rte_eth_rx_burst(port, queue, pkts, kBurst);
    if (n == 0) return 0;
    if (kind == Next::kHost) {  // the host's own frames go out unchanged
      const uint16_t uplink = dataplane->uplink_.load(std::memory_order_relaxed).port;
      for (uint16_t i = 0; i < n; ++i) SendIfPresent(uplink, pkts[i], DropReason::kNoUplink);
      return n;
    }
    Verdict verdicts[kBurst];
    pipeline->Run(kind, port, pkts, n, t, now, verdicts);
    Deliver(pkts, verdicts, n, port);
    return n;
  }
  // The frames other workers handed over, to send on this worker's ports or
  // to process as their flow's owner; returns how many came.
  uint16_t PollInbox(const HostTables& t, uint64_t now) {
    rte_mbuf* pkts[kBurst];
    const unsigned n =
        rte_ring_dequeue_burst(inbox, reinterpret_cast<void**>(pkts), kBurst, nullptr);
    uint16_t owned = 0;
    for (unsigned i = 0; i < n; ++i) {
      const uint16_t port = *dataplane->TxPortOf(pkts[i]);
      Count(taken, pkts[i], port);
      if (port != kNoPort) {
        Send(port, pkts[i]);
      } else {
        pkts[owned++] = pkts[i];
      }
    }
    if (owned > 0) {
      Verdict verdicts[kBurst];
      pipeline->RunHandedOff(pkts, owned, t, now, verdicts);
      Deliver(pkts, verdicts, owned, kNoPort);
    }
    return static_cast<uint16_t>(n);
  }
  // Every port has one RX queue, polled by one worker.
  bool Polls(uint16_t port) const { return port < 64 && (own_ports >> port & 1) != 0; }
  // Works own_ports out again if the uplink moved (SetUplinkPort).
  void SeeUplink(uint16_t uplink_port) {
    if (own_ports_known && uplink_port == own_ports_uplink) return;
    own_ports = 0;
    for (uint16_t port = 0; port < RTE_MAX_ETHPORTS; ++port) {
      // With the uplink given, not read again: the mask must be the one
      // own_ports_uplink names, or a move and a move back could keep a wrong one.
      if (dataplane->WorkerOf(port, uplink_port) == id) own_ports |= uint64_t{1} << port;
    }
    own_ports_uplink = uplink_port;
    own_ports_known = true;
  }
};

DpdkDataplane::DpdkDataplane(Options options)
    : options_(std::move(options)), uplink_(UplinkOf(options_.uplink_port)) {
  if (!options_.attach_pod) {
    options_.attach_pod = [](const PodPort& p) { return AttachInterface(p.host_ifname); };
  }
  if (!options_.detach_pod) options_.detach_pod = DetachPort;
}

absl::StatusOr<std::unique_ptr<DpdkDataplane>> DpdkDataplane::Create(Options options) {
  if (rte_eal_process_type() == RTE_PROC_AUTO || rte_lcore_count() == 0) {
    return absl::FailedPreconditionError("DPDK dataplane: the EAL is not initialised");
  }
  auto dp = std::unique_ptr<DpdkDataplane>(new DpdkDataplane(std::move(options)));
  ATL_RETURN_IF_ERROR(dp->Start());
  return dp;
}

absl::Status DpdkDataplane::Start() {
  for (auto& t : tables_) {
    ATL_ASSIGN_OR_RETURN(t, HostTables::Create());
  }
  published_.store(tables_[0].get(), std::memory_order_release);

  std::vector<unsigned> lcores;
  for (unsigned l = rte_get_next_lcore(-1, 1, 0); l < RTE_MAX_LCORE;
       l = rte_get_next_lcore(l, 1, 0)) {
    lcores.push_back(l);
  }
  const size_t workers = options_.workers == 0 ? lcores.size() : options_.workers;
  if (workers == 0 || workers > lcores.size() || workers > kMaxWorkers) {
    return absl::FailedPreconditionError(
        absl::StrCat("DPDK dataplane: ", workers, " workers asked for, on ", lcores.size(),
                     " EAL worker lcores (at most ", kMaxWorkers,
                     "): give the EAL a main lcore and one per worker, e.g. --lcores 0-2 for two"));
  }
  const size_t qsbr_size = rte_rcu_qsbr_get_memsize(static_cast<uint32_t>(workers));
  qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("atoll_qsbr", qsbr_size, RTE_CACHE_LINE_SIZE));
  if (qsbr_ == nullptr || rte_rcu_qsbr_init(qsbr_, static_cast<uint32_t>(workers)) != 0) {
    return absl::ResourceExhaustedError("DPDK dataplane: RCU QSBR variable");
  }
  resolve_ = rte_ring_create("atoll_resolve", 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
  if (resolve_ == nullptr) return absl::ResourceExhaustedError("DPDK dataplane: resolve ring");
  PipelineConfig pipeline = options_.pipeline;
  pipeline.resolve = options_.host_ifname.empty() ? nullptr : resolve_;
  pipeline.workers = static_cast<uint16_t>(workers);
  if (workers > 1) {
    // Flows whose original tuple is steered to another worker: at most every
    // NAT'd flow of every worker but one's worth.
    ATL_ASSIGN_OR_RETURN(
        owners_, FlowOwners::Create(
                     static_cast<uint32_t>(std::min<uint64_t>(
                         uint64_t{pipeline.conntrack_flows} * (workers - 1), uint64_t{1} << 30)),
                     qsbr_));
    affinity_ = std::make_unique<SharedAffinity>(pipeline.affinity_entries);
    pipeline.owners = owners_.get();
    pipeline.affinity = affinity_.get();
    static const rte_mbuf_dynfield kTxPortField = {
        .name = "atoll_tx_port", .size = sizeof(uint16_t), .align = alignof(uint16_t), .flags = 0};
    tx_port_offset_ = rte_mbuf_dynfield_register(&kTxPortField);
    if (tx_port_offset_ < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("DPDK dataplane: mbuf field for handoffs: ", ErrnoText(rte_errno)));
    }
  }
  // The inboxes' names: unique in the process, and short. A ring's name
  // has at most RTE_RING_NAMESIZE - 1 (28) characters; this object's
  // address in decimal, the name's part until now, takes 15 under ASan.
  static std::atomic<unsigned> serial{0};
  const unsigned dataplane_serial = serial++;
  for (size_t i = 0; i < workers; ++i) {
    auto w = std::make_unique<Worker>();
    w->dataplane = this;
    w->id = static_cast<uint16_t>(i);
    w->lcore = lcores[i];
    pipeline.worker = w->id;
    ATL_ASSIGN_OR_RETURN(w->pipeline, Pipeline::Create(pipeline));
    const std::string name = absl::StrCat("atoll_inbox_", dataplane_serial, "_", i);
    w->inbox = rte_ring_create(name.c_str(), kInboxFrames, SOCKET_ID_ANY, RING_F_SC_DEQ);
    if (w->inbox == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("DPDK dataplane: handoff ring \"", name, "\": ", ErrnoText(rte_errno)));
    }
    rte_rcu_qsbr_thread_register(qsbr_, w->id);
    workers_.push_back(std::move(w));
  }
  for (auto& worker : workers_) {
    const int rc = rte_eal_remote_launch(WorkerMain, worker.get(), worker->lcore);
    if (rc != 0) {
      return absl::InternalError(
          absl::StrCat("DPDK dataplane: launch on lcore ", worker->lcore, ": ", ErrnoText(rc)));
    }
  }
  if (!options_.host_ifname.empty()) neighbours_ = std::thread([this] { FollowNeighbours(); });
  return absl::OkStatus();
}

DpdkDataplane::~DpdkDataplane() {
  stop_.store(true);
  if (neighbours_.joinable()) neighbours_.join();
  for (auto& w : workers_) rte_eal_wait_lcore(w->lcore);
  for (auto& w : workers_) {
    rte_mbuf* m;
    while (w->inbox != nullptr && rte_ring_dequeue(w->inbox, reinterpret_cast<void**>(&m)) == 0) {
      rte_pktmbuf_free(m);
    }
    rte_ring_free(w->inbox);
  }
  // The pipelines go before the flow owners table they use, and the table
  // (whose freed entries wait on the RCU variable) before the variable.
  workers_.clear();
  owners_.reset();
  rte_free(qsbr_);
  rte_ring_free(resolve_);
  for (const auto& [ifname, port] : port_of_) options_.detach_pod(port);
}

int DpdkDataplane::WorkerMain(void* arg) {
  auto* w = static_cast<Worker*>(arg);
  DpdkDataplane* dp = w->dataplane;
  const Options& o = dp->options_;
  rte_rcu_qsbr_thread_online(dp->qsbr_, w->id);
  uint32_t idle_rounds = 0;
  for (uint64_t round = 0; !dp->stop_.load(std::memory_order_relaxed); ++round) {
    const HostTables* t = dp->published_.load(std::memory_order_acquire);
    const uint64_t now = NowNs();
    const uint64_t started = rte_rdtsc();
    unsigned received = 0;
    const Uplink uplink = dp->uplink_.load(std::memory_order_relaxed);
    w->SeeUplink(uplink.port);
    if (w->Polls(uplink.port)) {
      for (uint16_t q = 0; q < uplink.queues; ++q) {
        received += w->Poll(uplink.port, q, Next::kUplink, *t, now);
      }
    }
    if (w->Polls(o.host_port)) received += w->Poll(o.host_port, 0, Next::kHost, *t, now);
    for (uint16_t port : t->pod_ports()) {
      if (w->Polls(port)) received += w->Poll(port, 0, Next::kPod, *t, now);
    }
    // Frames from other workers are work, but were counted where they came in.
    const unsigned handed = dp->workers_.size() > 1 ? w->PollInbox(*t, now) : 0;
    w->Flush();
    // Nothing of `t` is held past here: the control thread may reuse it.
    rte_rcu_qsbr_quiescent(dp->qsbr_, w->id);
    if (received + handed > 0) {
      // Single writer: a relaxed load and store, no locked instruction.
      w->received.store(w->received.load(std::memory_order_relaxed) + received,
                        std::memory_order_relaxed);
      w->busy_cycles.store(w->busy_cycles.load(std::memory_order_relaxed) + (rte_rdtsc() - started),
                           std::memory_order_relaxed);
      if (received > 0) {
        w->busy_rounds.store(w->busy_rounds.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
      }
    }
    if ((round & 1023) == 0) w->pipeline->ExpireSome(now, 1024);
    const bool walking = w->ForgetSome();
    // An idle worker backs off (as l3fwd-power does) so that hosts sharing
    // cores, as the test bed's do, are not starved by polling; a busy one
    // never sleeps. The first packet after a pause waits at most o.idle_sleep_us.
    idle_rounds = received + handed > 0 || walking ? 0 : idle_rounds + 1;
    if (o.idle_sleep_us > 0 && idle_rounds > kIdleRoundsBeforeSleep) {
      rte_rcu_qsbr_thread_offline(dp->qsbr_, w->id);
      usleep(o.idle_sleep_us);
      rte_rcu_qsbr_thread_online(dp->qsbr_, w->id);
    }
  }
  rte_rcu_qsbr_thread_offline(dp->qsbr_, w->id);
  return 0;
}

absl::Status DpdkDataplane::Mutate(const std::function<absl::Status(HostTables&)>& change) {
  HostTables& standby = *tables_[standby_];
  ATL_RETURN_IF_ERROR(change(standby));
  published_.store(&standby, std::memory_order_release);
  rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
  standby_ ^= 1;
  // The same change, to the same state: it cannot fail differently. If it
  // did, the copies would differ and the next change would publish the
  // wrong one: a broken invariant, not an input error.
  const absl::Status again = change(*tables_[standby_]);
  if (!again.ok()) {
    std::fprintf(stderr, "DPDK dataplane: table copies diverged: %s\n", again.ToString().c_str());
    std::abort();
  }
  return absl::OkStatus();
}

absl::Status DpdkDataplane::Apply(const Update& update) {
  std::lock_guard<std::mutex> lock(control_);
  // Attach the new pods' ports before any table names them.
  absl::flat_hash_map<std::string, uint16_t> port_of = port_of_;
  std::vector<uint16_t> attached;
  absl::flat_hash_set<std::string> removed(update.remove_pod_ports.begin(),
                                           update.remove_pod_ports.end());
  if (update.full_sync_pod_ports) {
    for (const auto& [ifname, port] : port_of_) removed.insert(ifname);
  }
  // A pod that leaves takes its flows with it, so that a new pod given its
  // address finds none of them (their reply tuples would keep it from its
  // services' backends, and its ports' flows would follow the old ones).
  // `departed`: the addresses of pods that leave, or of ports that now have
  // another one. `arriving`: addresses another port still holds (a pod whose
  // removal has not come), cleared before the new pod takes them. The tables
  // live and die with this process, so an address no port holds had its
  // flows cleared when its last pod left.
  std::vector<lb::IpAddr> departed;
  std::vector<lb::IpAddr> arriving;
  const HostTables& before = *published_.load(std::memory_order_acquire);
  for (const PodPort& p : update.upsert_pod_ports) {
    removed.erase(p.host_ifname);
    const PodEntry* holder = before.PodByAddr(Be32(p.address));
    if (auto it = port_of.find(p.host_ifname); it != port_of.end()) {
      const PodEntry* pod = before.PodByPort(it->second);
      if (pod != nullptr && FromBe32(pod->addr) != p.address) {
        departed.push_back(FromBe32(pod->addr));
      }
      if (holder != nullptr && holder->port != it->second) arriving.push_back(p.address);
      continue;
    }
    absl::StatusOr<uint16_t> port = options_.attach_pod(p);
    if (!port.ok()) {
      for (uint16_t a : attached) options_.detach_pod(a);
      return port.status();
    }
    port_of[p.host_ifname] = *port;
    attached.push_back(*port);
    if (holder != nullptr && holder->port != *port) arriving.push_back(p.address);
  }
  std::vector<uint16_t> detach;
  for (const std::string& ifname : removed) {
    auto it = port_of.find(ifname);
    if (it == port_of.end()) continue;
    detach.push_back(it->second);
    if (const PodEntry* pod = before.PodByPort(it->second)) departed.push_back(FromBe32(pod->addr));
    port_of.erase(it);
  }
  ForgetFlowsOf(arriving);
  absl::Status applied = Mutate([&](HostTables& t) { return t.Apply(update, port_of); });
  if (!applied.ok()) {
    for (uint16_t a : attached) options_.detach_pod(a);
    return applied;
  }
  port_of_ = std::move(port_of);
  // No worker polls a removed port any more, nor sends to it: both tables
  // have lost it. What it received may still be on its way between workers.
  for (uint16_t port : detach) {
    AwaitHandoffs(port);
    options_.detach_pod(port);
  }
  // Not an address another pod holds now.
  const HostTables& after = *published_.load(std::memory_order_acquire);
  std::erase_if(departed, [&](const lb::IpAddr& a) { return after.PodByAddr(Be32(a)) != nullptr; });
  ForgetFlowsOf(departed);
  return absl::OkStatus();
}

void DpdkDataplane::AwaitHandoffs(uint16_t port) {
  if (workers_.size() < 2) return;
  const size_t slot = std::min<size_t>(port, Worker::kPortSlots - 1);
  const auto sum = [&](Worker::HandoffCounts Worker::*counts) {
    uint64_t from = 0;
    uint64_t to = 0;
    for (const auto& w : workers_) {
      from += ((*w).*counts).from[slot].load(std::memory_order_acquire);
      to += ((*w).*counts).to[slot].load(std::memory_order_acquire);
    }
    return std::make_pair(from, to);
  };
  while (!stop_.load(std::memory_order_relaxed)) {
    // `taken` first: a frame is counted handed before it can be taken, so
    // equal sums mean that when `taken` was read, no frame was in an inbox
    // or about to enter one.
    const auto took = sum(&Worker::taken);
    const auto handed = sum(&Worker::handed);
    // A worker may be in the middle of a frame it took; within that round
    // it sends the frame, frees it or hands it on, which `handed` would show.
    rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
    if (took == handed && sum(&Worker::handed) == handed) return;
  }
}

void DpdkDataplane::ForgetFlowsOf(const std::vector<lb::IpAddr>& addrs) {
  if (addrs.empty()) return;
  std::vector<uint64_t> asked(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker& w = *workers_[i];
    std::lock_guard<std::mutex> lock(w.forget_lock);
    w.to_forget.insert(w.to_forget.end(), addrs.begin(), addrs.end());
    asked[i] = w.forget_asked.load(std::memory_order_relaxed) + 1;
    w.forget_asked.store(asked[i], std::memory_order_release);
  }
  // A walk takes capacity / kForgetRecordsPerRound rounds (512 for a
  // million flows), and a worker with a walk to do does not sleep.
  for (size_t i = 0; i < workers_.size(); ++i) {
    while (workers_[i]->forget_done.load(std::memory_order_acquire) < asked[i] &&
           !stop_.load(std::memory_order_relaxed)) {
      usleep(100);
    }
  }
}

Programmed DpdkDataplane::Dump() const {
  std::lock_guard<std::mutex> lock(control_);
  return published_.load(std::memory_order_acquire)->Dump();
}

void DpdkDataplane::SetNeighbours(const std::vector<Neighbour>& neighbours) {
  std::lock_guard<std::mutex> lock(control_);
  Mutate([&](HostTables& t) {
    t.SetNeighbours(neighbours);
    return absl::OkStatus();
  }).IgnoreError();
}

void DpdkDataplane::SetUplinkPort(uint16_t port) {
  uplink_.store(UplinkOf(port), std::memory_order_relaxed);
}

void DpdkDataplane::SetHostRoutes(const std::vector<HostRoute>& routes) {
  std::lock_guard<std::mutex> lock(control_);
  Mutate([&](HostTables& t) {
    t.SetHostRoutes(routes);
    return absl::OkStatus();
  }).IgnoreError();
}

DpdkDataplane::Load DpdkDataplane::WorkerLoad() const {
  Load sum;
  for (const auto& w : workers_) {
    sum.received += w->received.load(std::memory_order_relaxed);
    sum.busy_cycles += w->busy_cycles.load(std::memory_order_relaxed);
    sum.busy_rounds += w->busy_rounds.load(std::memory_order_relaxed);
  }
  return sum;
}

PipelineStats DpdkDataplane::Stats() const {
  PipelineStats sum;
  for (const auto& w : workers_) {
    const PipelineStats& s = w->pipeline->stats();
    sum.packets += s.packets;
    sum.new_flows += s.new_flows;
    sum.stateless += s.stateless;
    sum.stateless_replies += s.stateless_replies;
    sum.handed_off += s.handed_off;
    for (size_t i = 0; i < sum.drops.size(); ++i) sum.drops[i] += s.drops[i];
  }
  return sum;
}

Dataplane::Counters DpdkDataplane::Drops() const {
  const PipelineStats s = Stats();
  Counters drops;
  for (size_t i = 0; i < s.drops.size(); ++i) {
    drops.emplace_back(DropReasonName(static_cast<DropReason>(i)), s.drops[i]);
  }
  return drops;
}

Dataplane::Counters DpdkDataplane::Packets() const {
  const PipelineStats s = Stats();
  // What the ports attached now lost before a worker saw it (no room in the
  // RX ring, no mbuf to receive into) or after one sent it.
  rte_eth_stats ports{};
  {
    std::lock_guard<std::mutex> lock(control_);
    std::vector<uint16_t> attached = {uplink_.load().port, options_.host_port};
    for (const auto& [ifname, port] : port_of_) attached.push_back(port);
    for (uint16_t port : attached) {
      rte_eth_stats one;
      if (port == kNoPort || rte_eth_stats_get(port, &one) != 0) continue;
      ports.imissed += one.imissed;
      ports.rx_nombuf += one.rx_nombuf;
      ports.ierrors += one.ierrors;
      ports.oerrors += one.oerrors;
    }
  }
  return {
      {"packets", s.packets},  // received from the ports
      {"new_flows", s.new_flows},
      {"stateless", s.stateless},
      {"stateless_replies", s.stateless_replies},
      {"handed_off", s.handed_off},
      {"port_rx_missed", ports.imissed},
      {"port_rx_no_mbuf", ports.rx_nombuf},
      {"port_rx_errors", ports.ierrors},
      {"port_tx_errors", ports.oerrors},
  };
}

absl::StatusOr<std::unique_ptr<DpdkDataplane>> DpdkDataplane::ForHost(const HostOptions& host) {
  std::vector<std::string> args = DefaultEalArgs(host.lcores, 1024, host.file_prefix);
  args.insert(args.end(), host.extra_eal_args.begin(), host.extra_eal_args.end());
  ATL_RETURN_IF_ERROR(InitEal(args));
  ATL_ASSIGN_OR_RETURN(const lb::MacAddr mac, InterfaceMac(host.uplink));

  Options options;
  options.pipeline.uplink_mac = mac;
  options.idle_sleep_us = host.idle_sleep_us;
  options.host_ifname = host.tap;
  // The TAP first: once AF_XDP has the uplink, the host reaches the
  // underlay only through it.
  const std::string tap_name = "net_tap_" + host.tap;
  const std::string tap_args =
      absl::StrCat(tap_name, ",iface=", host.tap, ",mac=", lb::FormatMac(mac));
  uint16_t tap_port;
  if (int rc = rte_dev_probe(tap_args.c_str());
      rc != 0 || rte_eth_dev_get_port_by_name(tap_name.c_str(), &tap_port) != 0) {
    return absl::UnavailableError(
        absl::StrCat("exception path \"", tap_args, "\": ", ErrnoText(rc)));
  }
  ATL_RETURN_IF_ERROR(StartPort(tap_port));
  ATL_RETURN_IF_ERROR(SetUp(host.tap));
  options.host_port = tap_port;
  ATL_ASSIGN_OR_RETURN(options.uplink_port, AttachInterface(host.uplink));
  ATL_RETURN_IF_ERROR(RouteThrough(host.uplink, host.tap));

  // The host's routes and neighbours follow from the TAP (FollowNeighbours).
  return Create(std::move(options));
}

// The workers never wait for a neighbour: until the host's table has one,
// encapsulated frames are flooded on the underlay segment. Resolution is
// asked of the kernel, which the TAP gives the uplink's addresses and MAC.
void DpdkDataplane::FollowNeighbours() {
  absl::flat_hash_map<uint32_t, lb::MacAddr> known;
  absl::flat_hash_map<uint32_t, std::chrono::steady_clock::time_point> asked;
  std::vector<HostRoute> routes;
  for (unsigned tick = 0; !stop_.load(); ++tick) {
    // What the workers needed: asked of the kernel once a second at most.
    const auto now = std::chrono::steady_clock::now();
    void* wanted;
    while (rte_ring_dequeue(resolve_, &wanted) == 0) {
      const auto addr = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(wanted));
      auto [it, fresh] = asked.try_emplace(addr, now);
      if (!fresh && now - it->second < std::chrono::seconds(1)) continue;
      it->second = now;
      Resolve(options_.host_ifname, FromBe32(addr)).IgnoreError();
    }
    // The host's tables: routes once a second, neighbours every 100 ms; the
    // workers' copies change (an RCU grace period each) only when they did.
    if (tick % 50 == 0) {
      absl::StatusOr<std::vector<HostRoute>> now_routes = HostRoutes(options_.host_ifname);
      if (now_routes.ok() && *now_routes != routes) {
        routes = *std::move(now_routes);
        SetHostRoutes(routes);
      }
    }
    if (tick % 5 == 0) {
      absl::StatusOr<std::vector<Neighbour>> found = ResolvedNeighbours(options_.host_ifname);
      std::vector<Neighbour> changed;
      for (const Neighbour& n : found.ok() ? *found : std::vector<Neighbour>{}) {
        auto [it, fresh] = known.try_emplace(Be32(n.addr), n.mac);
        if (fresh || it->second != n.mac) {
          it->second = n.mac;
          changed.push_back(n);
        }
      }
      if (!changed.empty()) SetNeighbours(changed);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace atl::dataplane::dpdk
