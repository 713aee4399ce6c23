// The peers that atoll-perf runs beside Atoll's DPDK pipeline, in the same
// invocation, on the same DPDK vdevs and cores:
//   testpmd   dpdk-testpmd in io-forward mode: the framework's ceiling;
//   ovs-dpdk  Open vSwitch's userspace (netdev) datapath with DPDK ports,
//             programmed with the load-balancing flows of Antrea and OVN:
//             ct(zone, nat, table) looks a packet up in conntrack,
//             established traffic follows its NAT, a new connection to a
//             service VIP:port goes to a select group whose buckets each do
//             ct(commit, nat(dst=backend)) and go on in the output table.
//
// The traffic: a pcap file, replayed from memory by DPDK's pcap PMD
// (`net_pcap0,rx_pcap=FILE,infinite_rx=1`; its TX drops) into the RX port,
// or sent once by FrameGenerator over a memif link, and `net_null1,no-rx=1`
// as the TX port (frees what it is given, receives nothing). Every peer sees
// the same frames at the rate it can take them.
// WriteWorkloadPcap writes the load-balancing workload; addresses come only
// from the benchmark ranges: service VIPs in 198.18.64.0/18, clients in
// 198.18.16.0/20, backends in 198.19.0.0/16.
//
// Everything runs without hugepages by default (EAL --no-huge): OVS 3.1 takes
// it when dpdk-extra also names --legacy-mem (otherwise it appends
// --in-memory, which EAL refuses with --no-huge). Each peer gets a DPDK file
// prefix of its own; OVS runs with a private database, run and log directory
// in a temporary directory and ovs-vswitchd in a network namespace of its own
// (the netdev datapath creates a tap device for the bridge). Every process is
// ended by its PID, and directories and hugepage reservations are undone, on
// success and on failure.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct rte_mempool;
struct rte_ring;

namespace atl::perf {

// A load-balancing workload: N services (VIP:port), each with a few backends,
// a fixed set of live TCP flows spread over the services, and a share of
// packets that open new connections.
struct LbWorkload {
  int services = 1;
  int backends_per_service = 4;
  // Distinct established client flows; flow k goes to service k % services.
  int live_flows = 10000;
  // Of every packet, the share that is the SYN of a connection seen nowhere
  // else in the file. In a replayed pcap such a SYN is new only on the first
  // pass (after that it is a retransmission of a known connection); use
  // RunOvsDpdk with PeerRun::single_pass to measure it as new.
  double new_flow_share = 0;
  // Ethernet frame size on the wire including the 4-byte FCS (64, 512,
  // 1500): the frame in the pcap is 4 bytes shorter. At most 1518.
  int frame_size = 64;
  // Packets in the file (live-flow packets round-robin over the flows, SYNs
  // interleaved by new_flow_share). 0 = one packet per live flow, or with
  // new_flow_share = 1, nothing: give a number.
  int64_t packets = 0;
  uint16_t conntrack_zone = 5;
};

// One service's address and one of its backends'; index checks in the calls.
struct L4Address {
  uint32_t ip = 0;  // host byte order
  uint16_t port = 0;
  std::string ToString() const;  // "198.18.64.1:80"
};
// Service s: VIP 198.18.64.0/18 + (s % 16382 + 1), port 80 + s / 16382.
absl::StatusOr<L4Address> ServiceAddress(const LbWorkload& w, int service);
// Backend b of service s: index s * backends + b; IP 198.19.0.0/16 +
// (index % 65534 + 1), port 8080 + index / 65534.
absl::StatusOr<L4Address> BackendAddress(const LbWorkload& w, int service, int backend);

// Where the workload's frames are addressed: the MAC Atoll's measured
// uplink is given (it leaves frames for other MACs to the host). They come
// from 02:00:00:00:00:01.
inline constexpr std::array<uint8_t, 6> kWorkloadDstMac = {0x02, 0, 0, 0, 0, 0x11};

// Writes the workload as a pcap (microsecond, Ethernet) to `path`; the
// number of packets written.
absl::StatusOr<int64_t> WriteWorkloadPcap(const LbWorkload& w, const std::string& path);

// The OpenFlow groups and flows (ovs-ofctl -O OpenFlow15 add-groups /
// add-flows file syntax) of the workload's services, on a bridge whose RX
// port is `rx_ofport` and TX port `tx_ofport`:
//   table 0  ip from rx: ct(zone=Z, nat, table=1)
//   table 1  +inv: drop; +est: output tx; +new to VIP:port s: group s+1;
//            other +new: output tx (no service, no NAT)
//   group    select, dp_hash (as OVN), one bucket per backend:
//            ct(commit, zone=Z, nat(dst=backend), table=2)
//   table 2  output tx
// (A group bucket is an OpenFlow action set: ct and output there are both
// "final" actions and only one survives, so the bucket's ct recirculates
// into table 2, as OVN's ct_lb does.)
struct OvsProgram {
  std::string groups;
  std::string flows;
};
absl::StatusOr<OvsProgram> OvsLbProgram(const LbWorkload& w, int rx_ofport = 1, int tx_ofport = 2);

// The shared traffic ports: the pcap replayed from memory as RX port 0 and a
// null sink as TX port 1.
std::vector<std::string> PcapTrafficVdevs(const std::string& pcap_path);
// net_null0 -> net_null1,no-rx=1 (contentless frames, one direction): the framework's
// ceiling only; OVS cannot classify these.
std::vector<std::string> NullVdevs();

// 2 MiB hugepages reserved in /proc/sys/vm/nr_hugepages for one run, with a
// hugetlbfs mount of them at `mount_at` (EAL --huge-dir), a directory made
// if missing; the old count is restored, and the mount and a directory made
// for it removed, when this goes, whatever happened.
class Hugepages {
 public:
  static absl::StatusOr<std::unique_ptr<Hugepages>> Reserve(int pages, const std::string& mount_at);
  ~Hugepages();
  Hugepages(const Hugepages&) = delete;
  Hugepages& operator=(const Hugepages&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  static constexpr char kNr[] = "/proc/sys/vm/nr_hugepages";
  Hugepages(int64_t old, std::string dir) : old_(old), dir_(std::move(dir)) {}
  static absl::Status Write(int64_t n);
  int64_t old_;
  std::string dir_;
  bool mounted_ = false;
  bool made_dir_ = false;
};

struct PeerRun {
  // DPDK devargs; the first is the RX port, the second the TX port.
  std::vector<std::string> vdevs;
  int core = 1;       // the one forwarding core (testpmd fwd lcore, OVS PMD)
  int main_core = 0;  // EAL main lcore / OVS non-PMD threads
  double seconds = 5;
  double warmup_seconds = 2;
  // Hugepages: 0 runs EAL with --no-huge. Otherwise that many 2 MiB pages are
  // reserved in /proc/sys/vm/nr_hugepages for the run (hugetlbfs mounted in
  // a temporary directory), and the old count restored afterwards.
  int hugepages = 0;
  int memory_mb = 1024;  // EAL -m with --no-huge
  // testpmd: mbufs in the pool; must hold the whole pcap (infinite_rx keeps
  // every frame of the file in an mbuf) plus the rings. 0 = 262144.
  int mbufs = 0;
  // OVS: the flows to program (an empty program forwards rx -> tx).
  OvsProgram ovs;
  // Each frame comes once (FrameGenerator's vdevs): the figure is the
  // forwarding core's busy cycles per packet and the rate that gives, not
  // wall-clock time. OVS: the run ends when the RX port stops delivering;
  // testpmd: the pass must end within warmup + seconds.
  bool single_pass = false;
  // Where logs go; empty = a temporary directory removed afterwards.
  std::string log_dir;
  // Binaries.
  std::string testpmd = "/usr/bin/dpdk-testpmd";
  std::string ovs_vswitchd = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";
  std::string ovs_bin_dir = "/usr/bin";    // ovs-vsctl, ovs-ofctl, ovs-appctl
  std::string ovs_sbin_dir = "/usr/sbin";  // ovsdb-server
  std::string ovs_schema = "/usr/share/openvswitch/vswitch.ovsschema";
};

struct PeerResult {
  double mpps = 0;  // forwarded (TX-port) packets per second, in millions
  // The peer's own figure of forwarding-core time per packet: testpmd's
  // "CPU cycles/packet" (--record-core-cycles), OVS's pmd-perf-show busy
  // cycles/pkt, divided by the TSC clock.
  std::optional<double> ns_per_packet;
  int64_t packets = 0;  // forwarded in the measured window
  int64_t rx_packets = 0;
  double seconds = 0;  // the measured window
  std::string detail;  // the peer's raw figures, for the record
};

absl::StatusOr<PeerResult> RunTestpmd(const PeerRun& run);
absl::StatusOr<PeerResult> RunOvsDpdk(const PeerRun& run);

// The traffic of a single-pass run (every frame of the file once, the new
// workload): a process of its own on the main core sends the pcap's frames
// over a memif link (shared memory rings) to the peer's RX port, so that the
// forwarding core spends nothing on making its traffic. The pcap PMD reading
// the file once did that on the forwarding core: about 35 ns of Atoll's 290
// per new flow (perf/RESULTS.md), charged to every peer alike.
class FrameGenerator {
 public:
  // Runs `self` (atoll-perf, whose --generate calls RunFrameGenerator) on
  // `run.main_core`, and waits until it listens for the peer.
  static absl::StatusOr<std::unique_ptr<FrameGenerator>> Start(const std::string& self,
                                                               const std::string& pcap,
                                                               const PeerRun& run);
  ~FrameGenerator();
  FrameGenerator(const FrameGenerator&) = delete;
  FrameGenerator& operator=(const FrameGenerator&) = delete;

  // The peer's ports: the memif client as RX, a null sink as TX.
  std::vector<std::string> vdevs() const;
  // Once the peer is done: ends the generator; the frames it sent, or an
  // error unless it sent every frame of the file.
  absl::StatusOr<int64_t> Finish();

 private:
  struct Parts;
  explicit FrameGenerator(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

// A single pass fed inside the peer's own process, for the Atoll child
// (`--feed=ring`): a ring port (DPDK's net_ring, rte_eth_from_rings) whose
// RX ring a thread on another core fills with the pcap's frames, once each,
// as the port's reader makes room, and whose TX ring the same thread empties
// and frees. Frames reach the forwarding core by pointer, as a NIC's writes
// into its mbufs do, and it copies nothing in or out: the memif link's
// copies and descriptors (about 400 instructions a frame) are not charged to
// it. Only a peer in this process can be fed so: the ceiling on it is an
// io-forward loop of atoll-perf's own, not testpmd, and OVS cannot run on it.
class RingFeed {
 public:
  // The port, and the frames of `pcap` in memory; nothing is sent before Start.
  static absl::StatusOr<std::unique_ptr<RingFeed>> Create(const std::string& pcap,
                                                          rte_mempool* pool, int core);
  ~RingFeed();
  RingFeed(const RingFeed&) = delete;
  RingFeed& operator=(const RingFeed&) = delete;

  uint16_t port() const { return port_; }
  // Starts sending, on a thread pinned to the core given to Create.
  void Start();
  // Once the peer is done: stops the thread; the frames sent, or an error
  // unless every frame of the file was sent.
  absl::StatusOr<int64_t> Finish();

 private:
  struct Frames;
  RingFeed(std::unique_ptr<Frames> frames, rte_mempool* pool, int core);
  void Send();
  unsigned Drain();

  // As deep as memif's rings (1024 by default): deeper, the frames in flight
  // would take more of the caches than the peer's own tables do. The ring
  // back is twice as deep.
  static constexpr unsigned kInRing = 1024;

  std::unique_ptr<Frames> frames_;
  rte_mempool* pool_;
  int core_;
  rte_ring* in_ = nullptr;      // the port's RX
  rte_ring* out_ = nullptr;     // the port's TX
  uint16_t port_ = UINT16_MAX;  // none yet
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> sent_{-1};  // set once the file is sent or the feed stopped
};

// The generator process's body: sends every frame of `pcap` once on a memif
// server at `socket` as fast as the peer takes them, prints "sent N of M", and
// waits for SIGTERM. The process exit code.
int RunFrameGenerator(const std::string& pcap, const std::string& socket, int core);

}  // namespace atl::perf
