// The DPDK backend: poll-mode workers running the Pipeline over the pods'
// ports, the underlay uplink and the host's exception port.
//
// Tables: the control thread (Apply) keeps two HostTables. Workers read the
// published one; Apply changes the other, publishes it, waits until every
// worker has passed a quiescent state (DPDK's RCU QSBR) so that none still
// reads the old one, and applies the same Update to that one too. Workers
// never stop or take a lock, and a failed Update leaves both tables as they
// were.
//
// Workers: one per EAL worker lcore (or Options::workers). A port belongs to
// one worker (WorkerOf), which alone receives and sends on it: a port's
// queues are not shared between threads, and what a PMD keeps per port (an
// AF_XDP socket's rings, a TAP's queue) is touched by one thread only. Each
// flow belongs to one worker too, which alone keeps its conntrack state. A
// frame is handed through rings from the worker that received it to its
// flow's worker (Pipeline, "Several workers"), and from there to the worker
// of the port it leaves by.
// Debian's DPDK is built for at most RTE_MAX_ETHPORTS (32) ports.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/dataplane.h"
#include "dataplane/dpdk/host_link.h"
#include "dataplane/dpdk/host_tables.h"
#include "dataplane/dpdk/pipeline.h"

struct rte_mempool;
struct rte_rcu_qsbr;
struct rte_ring;

namespace atl::dataplane::dpdk {

// The EAL's arguments for this machine: hugepages when the kernel has free
// ones, else `--no-huge` with `memory_mb` of ordinary memory; `lcores` the
// EAL's --lcores ("0-1", or "0@(0-1),1@(0-1)" to float over CPUs 0 and 1);
// run files under `file_prefix`; no PCI scan (ports are vdevs or hot-plugged).
std::vector<std::string> DefaultEalArgs(std::string_view lcores, unsigned memory_mb = 512,
                                        std::string_view file_prefix = "atoll");
// Initialises the EAL once per process; later calls return the first result.
absl::Status InitEal(const std::vector<std::string>& args);
// The mempool ports receive into unless they have their own, created on
// first use with at least `mbufs` (a pcap port replaying a file from memory
// holds all of it in mbufs of this pool).
absl::StatusOr<rte_mempool*> PacketPool(unsigned mbufs = 0);
// Configures and starts `port` with `queues` RX and TX queues, receiving
// into `pool` (PacketPool() when null).
absl::Status StartPort(uint16_t port, rte_mempool* pool = nullptr, uint16_t queues = 1);
// An mbuf pool for a port over a kernel interface, named `name`. DPDK
// 22.11's AF_XDP driver registers a pool's memory as the socket's UMEM and
// sizes it as if the mbufs lay back to back in one piece of memory, each
// rte_mempool_calc_obj_size() long. A pool made the usual way keeps each mbuf
// within one page for IOVA contiguity: on 4 KiB pages (no hugepages) one
// 2,368-byte mbuf per page, so that the last 42% of the pool lies past the
// UMEM's end, and the kernel drops every frame sent from one of those mbufs
// as an invalid descriptor, counted nowhere DPDK reports. These ports need
// no IOVA contiguity (the kernel copies, or maps the UMEM's pages itself), so
// this pool packs its mbufs, and is one piece or an error.
absl::StatusOr<rte_mempool*> InterfacePool(const std::string& name, unsigned mbufs);
// Hot-plugs a kernel interface as a port: AF_XDP, bound to every one of its
// RX queues, or AF_PACKET where AF_XDP cannot attach; configured and started,
// with an mbuf pool of its own.
absl::StatusOr<uint16_t> AttachInterface(const std::string& ifname);
// Stops, closes and unplugs a port, and frees its pool if it has one.
void DetachPort(uint16_t port);

class DpdkDataplane final : public Dataplane {
 public:
  struct Options {
    uint16_t uplink_port = kNoPort;  // the underlay (SetUplinkPort changes it)
    uint16_t host_port = kNoPort;    // the exception path to the host stack (a TAP)
    // Gives a pod's host-side interface its port; AttachInterface by default.
    std::function<absl::StatusOr<uint16_t>(const PodPort&)> attach_pod;
    std::function<void(uint16_t)> detach_pod;  // DetachPort by default
    PipelineConfig pipeline;                   // the workers' own fields are filled in here
    // How many workers; 0: one on every EAL worker lcore.
    unsigned workers = 0;
    // A worker that found nothing to do for a while sleeps this long between
    // polls; 0: it never sleeps (a core of its own, a benchmark).
    uint32_t idle_sleep_us = 0;
    // The exception path's kernel interface: the workers' outer MACs come
    // from its neighbour table (empty: none; SetNeighbour by hand).
    std::string host_ifname;
  };

  // The dataplane of a host: the EAL on `lcores` (floating over the host's
  // CPUs), `uplink` as an AF_XDP port, the exception path as a TAP named
  // `tap` with the uplink's MAC, through which the host's routes then go.
  struct HostOptions {
    std::string uplink;
    std::string tap = "atl-host";
    std::string lcores = "0-1";
    std::string file_prefix = "atoll";  // the EAL's run files, one per process on a machine
    std::vector<std::string> extra_eal_args;
    uint32_t idle_sleep_us = 200;
  };
  static absl::StatusOr<std::unique_ptr<DpdkDataplane>> ForHost(const HostOptions& host);

  static constexpr unsigned kMaxWorkers = 16;

  // Starts the workers (InitEal first).
  static absl::StatusOr<std::unique_ptr<DpdkDataplane>> Create(Options options);
  ~DpdkDataplane() override;
  DpdkDataplane(const DpdkDataplane&) = delete;
  DpdkDataplane& operator=(const DpdkDataplane&) = delete;

  absl::Status Apply(const Update& update) override;
  Programmed Dump() const override;
  std::string_view name() const override { return "dpdk"; }

  // The underlay's port, from the next polling round on; kNoPort: none, or
  // not started yet (the workers poll only a started port).
  void SetUplinkPort(uint16_t port);

  // The host's view of the underlay: its routes and neighbours' MACs (what
  // FollowNeighbours keeps up to date when there is an exception path).
  void SetHostRoutes(const std::vector<HostRoute>& routes);
  void SetNeighbours(const std::vector<Neighbour>& neighbours);

  // How busy the workers are: frames received, TSC cycles spent in polling
  // rounds that had any work (rte_get_tsc_hz() per second), and how many
  // rounds received frames (received / busy_rounds: frames a round, the
  // mean burst with one port, which tells whether the frames came faster
  // than the workers took them).
  struct Load {
    uint64_t received = 0;
    uint64_t busy_cycles = 0;
    uint64_t busy_rounds = 0;
  };
  Load WorkerLoad() const;

  Counters Drops() const override;
  Counters Packets() const override;
  PipelineStats Stats() const;  // summed over the workers

 private:
  struct Worker;
  explicit DpdkDataplane(Options options);
  absl::Status Start();
  // Changes the tables the workers cannot see, publishes them, waits out the
  // readers of the other copy and changes it the same way.
  absl::Status Mutate(const std::function<absl::Status(HostTables&)>& change);
  static int WorkerMain(void* arg);
  // Has every worker remove the flows with an end at one of `addrs` (pods
  // that left, or addresses new pods take) and waits until they have.
  void ForgetFlowsOf(const std::vector<lb::IpAddr>& addrs);
  // Waits until no frame that came in on `port`, or is to leave on it, is on
  // its way from one worker to another: until then its mbufs' pool and its
  // port id must stay. Once no worker polls the port or sends to it.
  void AwaitHandoffs(uint16_t port);

  // Keeps the workers' underlay MACs in step with the host's neighbour table.
  void FollowNeighbours();

  Options options_;
  mutable std::mutex control_;
  std::unique_ptr<HostTables> tables_[2];
  std::atomic<const HostTables*> published_{nullptr};
  int standby_ = 1;                                     // the index of the copy no worker reads
  absl::flat_hash_map<std::string, uint16_t> port_of_;  // pod host ifname -> port
  rte_rcu_qsbr* qsbr_ = nullptr;
  rte_ring* resolve_ = nullptr;               // PipelineConfig::resolve
  std::unique_ptr<FlowOwners> owners_;        // with several workers
  std::unique_ptr<SharedAffinity> affinity_;  // with several workers
  // An mbuf field: the port a frame handed to another worker is to be sent
  // on; kNoPort: the frame is handed over to be processed.
  int tx_port_offset_ = -1;
  uint16_t* TxPortOf(rte_mbuf* m) const;
  // The worker that receives and sends on `port`, with the uplink on
  // `uplink_port` (the current one unless given).
  uint16_t WorkerOf(uint16_t port) const;
  uint16_t WorkerOf(uint16_t port, uint16_t uplink_port) const;
  std::vector<std::unique_ptr<Worker>> workers_;
  // The underlay port and how many RX queues it has, changed together.
  struct Uplink {
    uint16_t port;
    uint16_t queues;
  };
  static Uplink UplinkOf(uint16_t port);
  std::atomic<Uplink> uplink_;
  std::atomic<bool> stop_{false};
  std::thread neighbours_;
};

}  // namespace atl::dataplane::dpdk
