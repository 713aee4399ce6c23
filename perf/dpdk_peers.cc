// The DPDK peers of atoll-perf: see dpdk_peers.h.
#include "perf/dpdk_peers.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "dataplane/dpdk/dpdk_dataplane.h"
#include "lb/status_macros.h"

namespace atl::perf {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The benchmark ranges (RFC 2544's 198.18.0.0/15).
constexpr uint32_t kVipBase = 0xC6124000;      // 198.18.64.0/18
constexpr uint32_t kVipHosts = 16382;          // .64.1 .. .127.254
constexpr uint32_t kClientBase = 0xC6121000;   // 198.18.16.0/20
constexpr uint32_t kClientHosts = 4094;        // .16.1 .. .31.254
constexpr uint32_t kBackendBase = 0xC6130000;  // 198.19.0.0/16
constexpr uint32_t kBackendHosts = 65534;      // .0.1 .. .255.254
constexpr uint16_t kServicePortBase = 80;
constexpr uint16_t kBackendPortBase = 8080;
constexpr uint32_t kClientPortBase = 1024;
constexpr uint32_t kClientPorts = 65536 - kClientPortBase;

std::string Ip(uint32_t ip) {
  return absl::StrFormat("%d.%d.%d.%d", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

// ---------------------------------------------------------------- pcap ----

void Put16(std::string& b, size_t off, uint16_t v) {
  b[off] = static_cast<char>(v >> 8);
  b[off + 1] = static_cast<char>(v & 0xff);
}
void Put32(std::string& b, size_t off, uint32_t v) {
  Put16(b, off, static_cast<uint16_t>(v >> 16));
  Put16(b, off + 2, static_cast<uint16_t>(v & 0xffff));
}
uint32_t Sum16(const std::string& b, size_t off, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) {
    sum += (static_cast<uint8_t>(b[off + i]) << 8) | static_cast<uint8_t>(b[off + i + 1]);
  }
  if (len % 2) sum += static_cast<uint8_t>(b[off + len - 1]) << 8;
  return sum;
}
uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpAck = 0x10;

// An Ethernet/IPv4/TCP frame of `len` bytes (no FCS), checksums filled in.
std::string TcpFrame(size_t len, uint32_t src, uint16_t sport, const L4Address& dst,
                     uint8_t flags) {
  std::string f(len, '\0');
  const uint8_t kSrc[] = {2, 0, 0, 0, 0, 1};
  std::memcpy(f.data(), kWorkloadDstMac.data(), 6);
  std::memcpy(f.data() + 6, kSrc, 6);
  Put16(f, 12, 0x0800);
  const size_t ip = 14, tcp = 34, ip_len = len - 14;
  f[ip] = 0x45;
  Put16(f, ip + 2, static_cast<uint16_t>(ip_len));
  Put16(f, ip + 6, 0x4000);  // DF
  f[ip + 8] = 64;
  f[ip + 9] = 6;
  Put32(f, ip + 12, src);
  Put32(f, ip + 16, dst.ip);
  Put16(f, ip + 10, Fold(Sum16(f, ip, 20)));
  Put16(f, tcp, sport);
  Put16(f, tcp + 2, dst.port);
  Put32(f, tcp + 4, flags & kTcpSyn ? 1000 : 1001);  // seq
  Put32(f, tcp + 8, flags & kTcpAck ? 5001 : 0);     // ack
  f[tcp + 12] = 5 << 4;
  f[tcp + 13] = static_cast<char>(flags);
  Put16(f, tcp + 14, 65535);
  const size_t tcp_len = ip_len - 20;
  uint32_t pseudo = (src >> 16) + (src & 0xffff) + (dst.ip >> 16) + (dst.ip & 0xffff) + 6 +
                    static_cast<uint32_t>(tcp_len);
  Put16(f, tcp + 16, Fold(Sum16(f, tcp, tcp_len, pseudo)));
  return f;
}

void PutLe32(std::ostream& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 24)};
  out.write(b, 4);
}

// The client end of flow `id`: a distinct (address, port) for every id below
// kClientHosts * kClientPorts.
std::pair<uint32_t, uint16_t> Client(int64_t id) {
  return {kClientBase + 1 + static_cast<uint32_t>(id % kClientHosts),
          static_cast<uint16_t>(kClientPortBase + (id / kClientHosts) % kClientPorts)};
}

// ------------------------------------------------------------ processes ----

// A temporary directory removed with everything in it.
class TempDir {
 public:
  static absl::StatusOr<std::unique_ptr<TempDir>> Create(const std::string& prefix) {
    std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp \"", tmpl, "\": ", std::strerror(errno)));
    }
    return std::unique_ptr<TempDir>(new TempDir(tmpl));
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  explicit TempDir(fs::path p) : path_(std::move(p)) {}
  fs::path path_;
};

// EAL's runtime directory for a file prefix (created even with --no-shconf),
// removed when the peer is done.
class EalRuntimeDir {
 public:
  explicit EalRuntimeDir(std::string prefix) : prefix_(std::move(prefix)) {}
  ~EalRuntimeDir() {
    std::error_code ec;
    fs::remove_all(fs::path("/var/run/dpdk") / prefix_, ec);
  }
  EalRuntimeDir(const EalRuntimeDir&) = delete;
  EalRuntimeDir& operator=(const EalRuntimeDir&) = delete;
  const std::string& prefix() const { return prefix_; }

 private:
  std::string prefix_;
};

// A child process with stdout and stderr in a log file, ended by its PID.
class Child {
 public:
  struct Options {
    std::vector<std::string> env;  // NAME=value, added to ours
    bool new_netns = false;        // a network namespace of its own
    bool stdin_pipe = false;
  };
  static absl::StatusOr<std::unique_ptr<Child>> Start(const std::vector<std::string>& argv,
                                                      const fs::path& log, const Options& o) {
    if (argv.empty() || access(argv[0].c_str(), X_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat("no executable \"", argv.empty() ? "" : argv[0], "\""));
    }
    int fds[2] = {-1, -1};
    if (o.stdin_pipe && pipe2(fds, O_CLOEXEC) != 0) {
      return absl::InternalError(
          absl::StrCat("pipe for \"", argv[0], "\": ", std::strerror(errno)));
    }
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    if (pid == 0) {
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (out >= 0) {
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
      }
      const int in = o.stdin_pipe ? fds[0] : open("/dev/null", O_RDONLY);
      dup2(in, STDIN_FILENO);
      if (o.new_netns && unshare(CLONE_NEWNET) != 0) {
        std::fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", std::strerror(errno));
        _exit(126);
      }
      for (const std::string& e : o.env) putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    if (o.stdin_pipe) close(fds[0]);
    return std::unique_ptr<Child>(new Child(pid, argv[0], o.stdin_pipe ? fds[1] : -1));
  }
  ~Child() { Stop(SIGTERM); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Whether it has exited (reaping it); its wait status in `status`.
  bool Exited(int* status = nullptr) {
    if (pid_ <= 0) return true;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      status_ = st;
    }
    if (status) *status = status_;
    return pid_ <= 0;
  }
  // Sends `sig`, waits up to `grace`, then SIGKILL; the wait status.
  int Stop(int sig, std::chrono::milliseconds grace = std::chrono::seconds(10)) {
    if (stdin_ >= 0) {
      close(stdin_);
      stdin_ = -1;
    }
    if (Exited()) return status_;
    kill(pid_, sig);
    const auto deadline = Clock::now() + grace;
    while (Clock::now() < deadline) {
      if (Exited()) return status_;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
    pid_ = -1;
    return status_;
  }

 private:
  Child(pid_t pid, std::string name, int stdin_fd)
      : pid_(pid), name_(std::move(name)), stdin_(stdin_fd) {}
  pid_t pid_;
  std::string name_;
  int stdin_ = -1;
  int status_ = 0;
};

// Runs `argv` to completion (killed after `timeout`); its stdout and stderr,
// or an error that names the command, its exit and its output.
absl::StatusOr<std::string> Run(const std::vector<std::string>& argv,
                                const std::vector<std::string>& env = {},
                                std::chrono::seconds timeout = std::chrono::seconds(120)) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    const int in = open("/dev/null", O_RDONLY);
    dup2(in, STDIN_FILENO);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000))) <= 0) continue;
    char buf[65536];
    const ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string cmd = absl::StrJoin(argv, " ");
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("\"", cmd.substr(0, 300), "\" took over ", timeout.count(), " s"));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("\"", cmd.substr(0, 300), "\" exited with status ",
                                            WIFEXITED(status) ? WEXITSTATUS(status) : -1, ": ",
                                            out.substr(0, 2000)));
  }
  return out;
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

void Sleep(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ----------------------------------------------------------- hugepages ----

}  // namespace

absl::StatusOr<std::unique_ptr<Hugepages>> Hugepages::Reserve(int pages,
                                                              const std::string& mount_at) {
  int64_t old = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(kNr)), &old)) {
    return absl::InternalError(absl::StrCat("cannot read ", kNr));
  }
  auto h = std::unique_ptr<Hugepages>(new Hugepages(old, mount_at));
  ATL_RETURN_IF_ERROR(Write(old + pages));
  int64_t now = 0;
  (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(kNr)), &now);
  if (now < old + pages) {
    return absl::ResourceExhaustedError(
        absl::StrCat("asked for ", old + pages, " hugepages in ", kNr, ", got ", now));
  }
  std::error_code ec;
  h->made_dir_ = fs::create_directories(mount_at, ec);
  if (mount("nodev", mount_at.c_str(), "hugetlbfs", 0, "pagesize=2M") != 0) {
    return absl::InternalError(
        absl::StrCat("mount hugetlbfs at \"", mount_at, "\": ", std::strerror(errno)));
  }
  h->mounted_ = true;
  return h;
}

Hugepages::~Hugepages() {
  if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  if (made_dir_) rmdir(dir_.c_str());
  (void)Write(old_);
}

absl::Status Hugepages::Write(int64_t n) {
  std::ofstream out(kNr);
  out << n << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", n, " to ", kNr));
  return absl::OkStatus();
}

namespace {

// EAL memory arguments: --no-huge or a hugetlbfs directory.
std::vector<std::string> EalMemoryArgs(const PeerRun& run, const Hugepages* huge) {
  if (huge == nullptr) {
    return {"--no-huge", "-m", absl::StrCat(run.memory_mb), "--no-shconf"};
  }
  return {absl::StrCat("--huge-dir=", huge->dir()), "--in-memory"};
}

absl::Status CheckRun(const PeerRun& run) {
  if (run.vdevs.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("PeerRun needs 2 vdevs (RX, TX), got ",
                                                   run.vdevs.size(), ": ",
                                                   absl::StrJoin(run.vdevs, " ")));
  }
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  if (run.core < 0 || run.core >= cores || run.main_core < 0 || run.main_core >= cores ||
      run.core == run.main_core) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cores: forwarding %d and main %d must differ and be below %d", run.core,
                        run.main_core, cores));
  }
  if (run.seconds <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("seconds must be > 0, got ", run.seconds));
  }
  return absl::OkStatus();
}

// The number after `key` in `text` from `from` on, and where it ended.
std::optional<double> NumberAfter(absl::string_view text, absl::string_view key,
                                  size_t* from = nullptr) {
  const size_t start = from ? *from : 0;
  const size_t k = text.find(key, start);
  if (k == absl::string_view::npos) return std::nullopt;
  size_t i = k + key.size();
  while (i < text.size() && (text[i] == ' ' || text[i] == ':' || text[i] == '=')) ++i;
  size_t j = i;
  while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.')) {
    ++j;
  }
  double v = 0;
  if (!absl::SimpleAtod(text.substr(i, j - i), &v)) return std::nullopt;
  if (from) *from = j;
  return v;
}

std::string PrefixFor(absl::string_view peer) {
  return absl::StrCat("atoll-perf-", peer, "-", getpid());
}

}  // namespace

// ------------------------------------------------------------ workload ----

std::string L4Address::ToString() const { return absl::StrCat(Ip(ip), ":", port); }

absl::StatusOr<L4Address> ServiceAddress(const LbWorkload& w, int service) {
  if (service < 0 || service >= w.services) {
    return absl::OutOfRangeError(
        absl::StrCat("service ", service, " out of [0, ", w.services, ")"));
  }
  const uint32_t s = static_cast<uint32_t>(service);
  if (s / kVipHosts > 65535 - kServicePortBase) {
    return absl::OutOfRangeError(absl::StrCat("service ", service, " has no VIP:port left"));
  }
  return L4Address{kVipBase + 1 + s % kVipHosts,
                   static_cast<uint16_t>(kServicePortBase + s / kVipHosts)};
}

absl::StatusOr<L4Address> BackendAddress(const LbWorkload& w, int service, int backend) {
  if (backend < 0 || backend >= w.backends_per_service) {
    return absl::OutOfRangeError(
        absl::StrCat("backend ", backend, " out of [0, ", w.backends_per_service, ")"));
  }
  ATL_RETURN_IF_ERROR(ServiceAddress(w, service).status());
  const uint64_t i = static_cast<uint64_t>(service) * w.backends_per_service + backend;
  if (i / kBackendHosts > 65535 - kBackendPortBase) {
    return absl::OutOfRangeError(absl::StrCat("backend ", i, " has no address:port left"));
  }
  return L4Address{kBackendBase + 1 + static_cast<uint32_t>(i % kBackendHosts),
                   static_cast<uint16_t>(kBackendPortBase + i / kBackendHosts)};
}

absl::StatusOr<int64_t> WriteWorkloadPcap(const LbWorkload& w, const std::string& path) {
  if (w.services < 1 || w.backends_per_service < 1) {
    return absl::InvalidArgumentError(absl::StrCat("services ", w.services, " and backends ",
                                                   w.backends_per_service, " must be >= 1"));
  }
  if (w.frame_size < 64 || w.frame_size > 1518) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame size ", w.frame_size, " out of [64, 1518]"));
  }
  if (w.new_flow_share < 0 || w.new_flow_share > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("new flow share ", w.new_flow_share, " out of [0, 1]"));
  }
  if (w.new_flow_share < 1 && w.live_flows < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("live flows ", w.live_flows, " must be >= 1 unless every packet is new"));
  }
  const int64_t packets = w.packets > 0 ? w.packets : (w.new_flow_share < 1 ? w.live_flows : 0);
  if (packets <= 0) {
    return absl::InvalidArgumentError("a workload of new flows only needs packets > 0");
  }
  const int64_t tuples = int64_t{kClientHosts} * kClientPorts;
  if (w.live_flows + packets > tuples) {
    return absl::InvalidArgumentError(absl::StrCat(w.live_flows, " live flows and ", packets,
                                                   " packets exceed the ", tuples,
                                                   " client address:ports of 198.18.16.0/20"));
  }
  std::vector<L4Address> vips(static_cast<size_t>(w.services));
  for (int s = 0; s < w.services; ++s) {
    ATL_ASSIGN_OR_RETURN(vips[static_cast<size_t>(s)], ServiceAddress(w, s));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot open pcap \"", path, "\""));
  PutLe32(out, 0xa1b2c3d4);
  PutLe32(out, 2 | (4 << 16));  // version 2.4
  PutLe32(out, 0);              // thiszone
  PutLe32(out, 0);              // sigfigs
  PutLe32(out, 65535);          // snaplen
  PutLe32(out, 1);              // Ethernet
  const size_t len = static_cast<size_t>(w.frame_size - 4);
  int64_t live = 0, fresh = 0;
  double credit = 0;
  for (int64_t i = 0; i < packets; ++i) {
    credit += w.new_flow_share;
    int64_t id;
    uint8_t flags;
    if (credit >= 1 - 1e-9) {
      credit -= 1;
      id = w.live_flows + fresh++;
      flags = kTcpSyn;
    } else {
      id = live++ % w.live_flows;
      flags = kTcpAck;
    }
    const auto [src, sport] = Client(id);
    const std::string f =
        TcpFrame(len, src, sport, vips[static_cast<size_t>(id % w.services)], flags);
    PutLe32(out, static_cast<uint32_t>(i / 1000000));
    PutLe32(out, static_cast<uint32_t>(i % 1000000));
    PutLe32(out, static_cast<uint32_t>(len));
    PutLe32(out, static_cast<uint32_t>(len));
    out.write(f.data(), static_cast<std::streamsize>(len));
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write pcap \"", path, "\""));
  return packets;
}

absl::StatusOr<OvsProgram> OvsLbProgram(const LbWorkload& w, int rx_ofport, int tx_ofport) {
  if (w.services < 1 || w.backends_per_service < 1) {
    return absl::InvalidArgumentError(absl::StrCat("services ", w.services, " and backends ",
                                                   w.backends_per_service, " must be >= 1"));
  }
  OvsProgram p;
  const int z = w.conntrack_zone;
  std::string& f = p.flows;
  absl::StrAppendFormat(&f, "table=0,priority=100,ip,in_port=%d,actions=ct(zone=%d,nat,table=1)\n",
                        rx_ofport, z);
  absl::StrAppend(&f, "table=0,priority=0,actions=drop\n");
  absl::StrAppend(&f, "table=1,priority=300,ct_state=+trk+inv,actions=drop\n");
  absl::StrAppendFormat(&f, "table=1,priority=200,ct_state=+trk+est,actions=output:%d\n",
                        tx_ofport);
  absl::StrAppendFormat(&f, "table=1,priority=0,actions=output:%d\n", tx_ofport);
  absl::StrAppendFormat(&f, "table=2,priority=0,actions=output:%d\n", tx_ofport);
  for (int s = 0; s < w.services; ++s) {
    ATL_ASSIGN_OR_RETURN(L4Address vip, ServiceAddress(w, s));
    absl::StrAppendFormat(&f,
                          "table=1,priority=100,ct_state=+trk+new,tcp,nw_dst=%s,tp_dst=%d,"
                          "actions=group:%d\n",
                          Ip(vip.ip), vip.port, s + 1);
    absl::StrAppendFormat(&p.groups, "group_id=%d,type=select,selection_method=dp_hash", s + 1);
    for (int b = 0; b < w.backends_per_service; ++b) {
      ATL_ASSIGN_OR_RETURN(L4Address be, BackendAddress(w, s, b));
      absl::StrAppendFormat(&p.groups,
                            ",bucket=bucket_id:%d,weight:100,actions=ct(commit,zone=%d,"
                            "nat(dst=%s),table=2)",
                            b, z, be.ToString());
    }
    p.groups += "\n";
  }
  return p;
}

std::vector<std::string> PcapTrafficVdevs(const std::string& pcap_path) {
  return {absl::StrCat("net_pcap0,rx_pcap=", pcap_path, ",infinite_rx=1"), "net_null1,no-rx=1"};
}

std::vector<std::string> NullVdevs() { return {"net_null0", "net_null1,no-rx=1"}; }

// ----------------------------------------------------- frame generator ----

namespace {

// The frames of a pcap (microsecond, little-endian: WriteWorkloadPcap's),
// back to back, and where each starts.
struct PcapFrames {
  std::string bytes;
  std::vector<uint32_t> start;  // plus bytes.size() at the end
  size_t size() const { return start.size() - 1; }
  const char* data(size_t i) const { return bytes.data() + start[i]; }
  uint16_t length(size_t i) const { return static_cast<uint16_t>(start[i + 1] - start[i]); }
};

absl::StatusOr<PcapFrames> ReadPcap(const std::string& path) {
  const std::string text = ReadFile(path);
  auto le32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, text.data() + at, 4);
    return v;
  };
  if (text.size() < 24 || le32(0) != 0xa1b2c3d4) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", path, "\" is no little-endian microsecond pcap"));
  }
  PcapFrames f;
  f.bytes.reserve(text.size());
  for (size_t at = 24; at < text.size();) {
    if (at + 16 > text.size() || at + 16 + le32(at + 8) > text.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", path, "\": a record cut short at byte ", at));
    }
    const uint32_t len = le32(at + 8);
    f.start.push_back(static_cast<uint32_t>(f.bytes.size()));
    f.bytes.append(text, at + 16, len);
    at += 16 + len;
  }
  f.start.push_back(static_cast<uint32_t>(f.bytes.size()));
  return f;
}

volatile sig_atomic_t generator_stop = 0;

// A memif port on a socket file: an abstract socket (the default) would not
// reach OVS, which runs in a network namespace of its own.
std::string MemifVdev(const std::string& role, const std::string& socket) {
  return absl::StrCat("net_memif0,role=", role, ",socket=", socket, ",socket-abstract=no");
}

}  // namespace

int RunFrameGenerator(const std::string& pcap, const std::string& socket, int core) {
  signal(SIGTERM, [](int) { generator_stop = 1; });
  absl::StatusOr<PcapFrames> frames = ReadPcap(pcap);
  if (!frames.ok()) {
    std::fprintf(stderr, "generator: %s\n", frames.status().ToString().c_str());
    return 1;
  }
  const std::vector<std::string> eal = {
      "atoll-perf-generator",
      "-l",
      absl::StrCat(core),
      "--no-huge",
      "-m",
      "512",
      "--no-shconf",
      "--no-pci",
      "--iova-mode=va",
      "--no-telemetry",
      "--log-level=lib.eal:error",
      absl::StrCat("--file-prefix=atoll-perf-generator-", getpid()),
      absl::StrCat("--vdev=", MemifVdev("server", socket))};
  absl::Status up = dataplane::dpdk::InitEal(eal);
  absl::StatusOr<rte_mempool*> pool = dataplane::dpdk::PacketPool(8191);
  if (up.ok()) up = pool.status();
  // As many queues as a peer may send on: OVS gives a port one TX queue
  // per thread that sends (2 here), and the link wants a queue here for each.
  constexpr uint16_t kQueues = 4;
  if (up.ok()) up = dataplane::dpdk::StartPort(0, *pool, kQueues);
  if (!up.ok()) {
    std::fprintf(stderr, "generator: %s\n", up.ToString().c_str());
    return 1;
  }
  std::printf("listening on %s\n", socket.c_str());
  std::fflush(stdout);
  // Frames go as the peer makes room in the ring: the peer sets the pace.
  const size_t n = frames->size();
  size_t next = 0;
  rte_mbuf* burst[32];
  rte_mbuf* back[32];
  auto drain = [&] {
    unsigned got = 0;
    for (uint16_t q = 0; q < kQueues; ++q) {
      const uint16_t on_queue = rte_eth_rx_burst(0, q, back, 32);
      rte_pktmbuf_free_bulk(back, on_queue);
      got += on_queue;
    }
    return got;
  };
  while (next < n && !generator_stop) {
    const unsigned want = static_cast<unsigned>(std::min<size_t>(32, n - next));
    if (rte_pktmbuf_alloc_bulk(*pool, burst, want) != 0) {
      drain();
      continue;
    }
    for (unsigned i = 0; i < want; ++i) {
      const uint16_t len = frames->length(next + i);
      std::memcpy(rte_pktmbuf_append(burst[i], len), frames->data(next + i), len);
    }
    unsigned sent = 0;
    // What comes back is taken between tries: a full ring back to here
    // would make the peer drop.
    while (sent < want && !generator_stop) {
      drain();
      sent += rte_eth_tx_burst(0, 0, burst + sent, want - sent);
    }
    if (sent < want) rte_pktmbuf_free_bulk(burst + sent, want - sent);
    next += sent;
  }
  std::printf("sent %zu of %zu\n", next, n);
  std::fflush(stdout);
  // The peer may still be reading the ring, which goes with this process.
  // What comes back (Atoll sends on the port it receives on) is dropped.
  while (!generator_stop) {
    if (drain() == 0) usleep(100);
  }
  rte_eth_dev_stop(0);
  rte_eth_dev_close(0);
  return 0;
}

struct FrameGenerator::Parts {
  std::unique_ptr<TempDir> dir;  // the socket and the log
  std::unique_ptr<Child> process;
  std::unique_ptr<EalRuntimeDir> eal;
  fs::path socket() const { return dir->path() / "memif.sock"; }
  fs::path log() const { return dir->path() / "generator.log"; }
};

FrameGenerator::FrameGenerator(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
FrameGenerator::~FrameGenerator() {
  if (parts_->process) parts_->process->Stop(SIGTERM);
}

absl::StatusOr<std::unique_ptr<FrameGenerator>> FrameGenerator::Start(const std::string& self,
                                                                      const std::string& pcap,
                                                                      const PeerRun& run) {
  auto parts = std::make_unique<Parts>();
  ATL_ASSIGN_OR_RETURN(parts->dir, TempDir::Create("atoll-perf-generator"));
  ATL_ASSIGN_OR_RETURN(parts->process,
                       Child::Start({self, "--generate", "--pcap=" + pcap,
                                     "--memif_socket=" + parts->socket().string(),
                                     absl::StrCat("--generator_core=", run.main_core)},
                                    parts->log(), {}));
  parts->eal =
      std::make_unique<EalRuntimeDir>(absl::StrCat("atoll-perf-generator-", parts->process->pid()));
  auto generator = std::unique_ptr<FrameGenerator>(new FrameGenerator(std::move(parts)));
  Parts& p = *generator->parts_;
  if (!WaitFor(
          [&] { return absl::StrContains(ReadFile(p.log()), "listening") || p.process->Exited(); },
          std::chrono::seconds(60)) ||
      p.process->Exited()) {
    return absl::InternalError(
        absl::StrCat("the frame generator did not start: ", ReadFile(p.log())));
  }
  return generator;
}

std::vector<std::string> FrameGenerator::vdevs() const {
  return {MemifVdev("client", parts_->socket().string()), "net_null1,no-rx=1"};
}

absl::StatusOr<int64_t> FrameGenerator::Finish() {
  parts_->process->Stop(SIGTERM);
  const std::string log = ReadFile(parts_->log());
  size_t at = 0;
  const std::optional<double> sent = NumberAfter(log, "sent ", &at);
  const std::optional<double> total = NumberAfter(log, " of ", &at);
  if (!sent || !total) {
    return absl::InternalError(absl::StrCat("the frame generator did not finish: ", log));
  }
  // A figure over part of the file would measure something else.
  if (*sent != *total) {
    return absl::InternalError(
        absl::StrCat("the frame generator sent ", *sent, " of ", *total, " frames"));
  }
  return static_cast<int64_t>(*sent);
}

// ----------------------------------------------------------- ring feed ----

struct RingFeed::Frames : PcapFrames {};

RingFeed::RingFeed(std::unique_ptr<Frames> frames, rte_mempool* pool, int core)
    : frames_(std::move(frames)), pool_(pool), core_(core) {}

absl::StatusOr<std::unique_ptr<RingFeed>> RingFeed::Create(const std::string& pcap,
                                                           rte_mempool* pool, int core) {
  ATL_ASSIGN_OR_RETURN(PcapFrames read, ReadPcap(pcap));
  auto frames = std::make_unique<Frames>();
  static_cast<PcapFrames&>(*frames) = std::move(read);
  auto feed = std::unique_ptr<RingFeed>(new RingFeed(std::move(frames), pool, core));
  const int socket = static_cast<int>(rte_socket_id());
  // One writer and one reader on each.
  feed->in_ = rte_ring_create("atoll_feed_in", kInRing, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  feed->out_ =
      rte_ring_create("atoll_feed_out", 2 * kInRing, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (feed->in_ == nullptr || feed->out_ == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("ring feed: rings of ", kInRing, ": ", rte_strerror(rte_errno)));
  }
  const int port = rte_eth_from_rings("net_ring_feed", &feed->in_, 1, &feed->out_, 1,
                                      static_cast<unsigned>(socket));
  if (port < 0) {
    return absl::InternalError(absl::StrCat("ring feed: port: ", rte_strerror(rte_errno)));
  }
  feed->port_ = static_cast<uint16_t>(port);
  return feed;
}

RingFeed::~RingFeed() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (rte_eth_dev_is_valid_port(port_)) {
    rte_eth_dev_stop(port_);
    rte_eth_dev_close(port_);
  }
  for (rte_ring* r : {in_, out_}) {
    rte_mbuf* m;
    while (r != nullptr && rte_ring_dequeue(r, reinterpret_cast<void**>(&m)) == 0) {
      rte_pktmbuf_free(m);
    }
    rte_ring_free(r);
  }
}

void RingFeed::Start() {
  thread_ = std::thread([this] { Send(); });
}

unsigned RingFeed::Drain() {
  rte_mbuf* back[32];
  const unsigned got = rte_ring_sc_dequeue_burst(out_, reinterpret_cast<void**>(back), 32, nullptr);
  rte_pktmbuf_free_bulk(back, got);
  return got;
}

void RingFeed::Send() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(core_, &cpus);
  pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
  // An lcore id of its own, for the pool's per-lcore cache.
  const bool registered = rte_thread_register() == 0;
  const size_t n = frames_->size();
  size_t next = 0;
  rte_mbuf* burst[32];
  while (next < n && !stop_.load(std::memory_order_relaxed)) {
    // What comes back is taken first: a full ring back would make the peer drop.
    Drain();
    const unsigned want = static_cast<unsigned>(std::min<size_t>(32, n - next));
    // Room for the frames in the ring back too, should this thread stall
    // while the peer empties the ring in.
    if (rte_ring_free_count(in_) < want || rte_ring_free_count(out_) < kInRing + 2 * 32 ||
        rte_pktmbuf_alloc_bulk(pool_, burst, want) != 0) {
      continue;
    }
    for (unsigned i = 0; i < want; ++i) {
      const uint16_t len = frames_->length(next + i);
      std::memcpy(rte_pktmbuf_append(burst[i], len), frames_->data(next + i), len);
    }
    // The only writer, and there was room: all of them go.
    rte_ring_sp_enqueue_bulk(in_, reinterpret_cast<void**>(burst), want, nullptr);
    next += want;
  }
  sent_.store(static_cast<int64_t>(next));
  while (!stop_.load(std::memory_order_relaxed)) {
    if (Drain() == 0) usleep(100);
  }
  if (registered) rte_thread_unregister();
}

absl::StatusOr<int64_t> RingFeed::Finish() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  const int64_t sent = sent_.load();
  if (sent != static_cast<int64_t>(frames_->size())) {
    return absl::InternalError(absl::StrCat("the ring feed sent ", std::max<int64_t>(sent, 0),
                                            " of ", frames_->size(), " frames"));
  }
  return sent;
}

// ------------------------------------------------------------- testpmd ----

absl::StatusOr<PeerResult> RunTestpmd(const PeerRun& run) {
  ATL_RETURN_IF_ERROR(CheckRun(run));
  std::unique_ptr<TempDir> tmp;
  ATL_ASSIGN_OR_RETURN(tmp, TempDir::Create("atoll-perf-testpmd"));
  std::unique_ptr<Hugepages> huge;
  if (run.hugepages > 0) {
    ATL_ASSIGN_OR_RETURN(huge, Hugepages::Reserve(run.hugepages, (tmp->path() / "huge").string()));
  }
  EalRuntimeDir eal(PrefixFor("testpmd"));
  const fs::path log =
      run.log_dir.empty() ? tmp->path() / "testpmd.log" : fs::path(run.log_dir) / "testpmd.log";
  std::vector<std::string> argv = {run.testpmd, "-l", absl::StrCat(run.main_core, ",", run.core),
                                   "--main-lcore", absl::StrCat(run.main_core)};
  for (std::string& a : EalMemoryArgs(run, huge.get())) argv.push_back(std::move(a));
  for (const char* a :
       {"--no-pci", "--iova-mode=va", "--no-telemetry", "--log-level=lib.eal:warning"}) {
    argv.push_back(a);
  }
  argv.push_back(absl::StrCat("--file-prefix=", eal.prefix()));
  for (const std::string& v : run.vdevs) argv.push_back(absl::StrCat("--vdev=", v));
  for (const char* a : {"--", "--forward-mode=io", "--nb-cores=1", "--stats-period=1",
                        "--no-lsc-interrupt", "--no-flush-rx", "--record-core-cycles"}) {
    argv.push_back(a);
  }
  argv.push_back(absl::StrCat("--total-num-mbufs=", run.mbufs > 0 ? run.mbufs : 262144));
  std::unique_ptr<Child> pmd;
  ATL_ASSIGN_OR_RETURN(pmd, Child::Start(argv, log, {}));
  // Forwarding starts after port setup; the stats blocks count seconds from there.
  const int want_blocks = static_cast<int>(std::ceil(run.warmup_seconds + run.seconds)) + 1;
  auto blocks = [&] {
    const std::string text = ReadFile(log);
    int n = 0;
    for (size_t at = text.find("Port statistics"); at != std::string::npos;
         at = text.find("Port statistics", at + 1)) {
      ++n;
    }
    return n;
  };
  const bool enough =
      WaitFor([&] { return blocks() >= want_blocks || pmd->Exited(); },
              std::chrono::milliseconds(
                  static_cast<int64_t>((run.warmup_seconds + run.seconds) * 1000) + 60000));
  pmd->Stop(SIGINT, std::chrono::seconds(15));
  const std::string text = ReadFile(log);
  if (!enough || blocks() < want_blocks) {
    return absl::InternalError(absl::StrCat(
        "testpmd (", absl::StrJoin(run.vdevs, " "), ") printed no forwarding stats; log ends: ",
        text.substr(text.size() > 2000 ? text.size() - 2000 : 0)));
  }
  // Per block: the TX port's cumulative TX-packets, RX port's RX-packets, Tx-pps.
  struct Block {
    double rx = 0, tx = 0, tx_pps = 0;
  };
  std::vector<Block> bs;
  for (size_t at = text.find("Port statistics"); at != std::string::npos;
       at = text.find("Port statistics", at + 1)) {
    const size_t end = text.find("Port statistics", at + 1);
    const absl::string_view b =
        absl::string_view(text).substr(at, end == std::string::npos ? std::string::npos : end - at);
    const size_t p1 = b.find("statistics for port 1");
    if (p1 == absl::string_view::npos) continue;
    Block blk;
    blk.rx = NumberAfter(b, "RX-packets").value_or(0);
    size_t from = p1;
    blk.tx = NumberAfter(b, "TX-packets", &from).value_or(0);
    from = p1;
    blk.tx_pps = NumberAfter(b, "Tx-pps", &from).value_or(0);
    bs.push_back(blk);
  }
  const size_t first = static_cast<size_t>(std::ceil(run.warmup_seconds));
  const size_t last = std::min(bs.size() - 1, first + static_cast<size_t>(std::ceil(run.seconds)));
  if (bs.size() < 2 || first >= last) {
    return absl::InternalError(
        absl::StrCat("testpmd printed ", bs.size(), " stats blocks, fewer than warm-up + 1"));
  }
  PeerResult r;
  double pps = 0;
  for (size_t i = first + 1; i <= last; ++i) pps += bs[i].tx_pps;
  pps /= static_cast<double>(last - first);
  r.packets = static_cast<int64_t>(bs[last].tx - bs[first].tx);
  r.rx_packets = static_cast<int64_t>(bs[last].rx - bs[first].rx);
  r.mpps = pps / 1e6;
  r.seconds = pps > 0 ? static_cast<double>(r.packets) / pps : 0;
  // "CPU cycles/packet=60.95 (...) at 2600 MHz Clock", over the whole run.
  const size_t c = text.rfind("CPU cycles/packet=");
  if (c != std::string::npos) {
    size_t from = c;
    const auto cycles = NumberAfter(text, "CPU cycles/packet", &from);
    const auto mhz = NumberAfter(text, " at ", &from);
    if (cycles && mhz && *mhz > 0) r.ns_per_packet = *cycles * 1000 / *mhz;
    r.detail = text.substr(c, text.find('\n', c) - c);
  }
  if (run.single_pass) {
    // Each frame came once: what counts is the busy time per packet.
    if (bs.back().tx != bs[bs.size() - 2].tx) {
      return absl::InternalError(absl::StrCat("testpmd had not finished the single pass over \"",
                                              run.vdevs[0], "\" in ", bs.size(), " s"));
    }
    r.packets = static_cast<int64_t>(bs.back().tx);
    r.rx_packets = static_cast<int64_t>(bs.back().rx);
    if (!r.ns_per_packet) return absl::InternalError("testpmd printed no CPU cycles/packet");
    r.mpps = 1e3 / *r.ns_per_packet;
    r.seconds = static_cast<double>(r.packets) * *r.ns_per_packet / 1e9;
  }
  if (r.packets <= 0) {
    return absl::InternalError(
        absl::StrCat("testpmd forwarded nothing on ", absl::StrJoin(run.vdevs, " ")));
  }
  return r;
}

// ------------------------------------------------------------ OVS-DPDK ----

namespace {

// One port's counters from `ovs-appctl dpctl/show -s`.
struct PortCounters {
  int64_t rx = 0, tx = 0;
};
std::map<std::string, PortCounters> ParseDpctlShow(absl::string_view text) {
  std::map<std::string, PortCounters> out;
  std::string port;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    if (absl::StartsWith(line, "port ")) {
      const size_t colon = line.find(": ");
      if (colon == absl::string_view::npos) continue;
      absl::string_view rest = line.substr(colon + 2);
      port = std::string(rest.substr(0, rest.find(' ')));
    } else if (!port.empty() && absl::StartsWith(line, "RX packets:")) {
      out[port].rx = static_cast<int64_t>(NumberAfter(line, "RX packets").value_or(0));
    } else if (!port.empty() && absl::StartsWith(line, "TX packets:")) {
      out[port].tx = static_cast<int64_t>(NumberAfter(line, "TX packets").value_or(0));
    }
  }
  return out;
}

// The OVS daemons of one run, in a private directory.
class Ovs {
 public:
  Ovs(const PeerRun& run, fs::path dir) : run_(run), dir_(std::move(dir)) {
    env_ = {"OVS_RUNDIR=" + dir_.string(), "OVS_DBDIR=" + dir_.string(),
            "OVS_LOGDIR=" + dir_.string(), "OVS_SYSCONFDIR=" + dir_.string()};
  }
  ~Ovs() {
    // vswitchd first: it closes its DPDK ports and talks to the database.
    if (vswitchd_) vswitchd_->Stop(SIGTERM, std::chrono::seconds(15));
    if (ovsdb_) ovsdb_->Stop(SIGTERM);
  }

  absl::Status Start(const std::vector<std::string>& eal_extra) {
    const std::string db = (dir_ / "conf.db").string();
    ATL_RETURN_IF_ERROR(Run({Bin("ovsdb-tool"), "create", db, run_.ovs_schema}, env_).status());
    ATL_ASSIGN_OR_RETURN(
        ovsdb_,
        Child::Start({absl::StrCat(run_.ovs_sbin_dir, "/ovsdb-server"), db,
                      "--remote=punix:" + Path("db.sock"), "--unixctl=" + Path("ovsdb-server.ctl"),
                      "--pidfile=" + Path("ovsdb-server.pid"), "--no-chdir",
                      "--log-file=" + Path("ovsdb-server.log")},
                     dir_ / "ovsdb-server.out", {.env = env_}));
    if (!WaitFor([&] { return fs::exists(Path("db.sock")) || ovsdb_->Exited(); },
                 std::chrono::seconds(20)) ||
        ovsdb_->Exited()) {
      return absl::InternalError(absl::StrCat("ovsdb-server did not serve ", Path("db.sock"), ": ",
                                              ReadFile(dir_ / "ovsdb-server.out")));
    }
    ATL_RETURN_IF_ERROR(Vsctl({"--no-wait", "init"}).status());
    ATL_RETURN_IF_ERROR(
        Vsctl({"--no-wait", "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
               "other_config:dpdk-extra=" + absl::StrJoin(eal_extra, " "),
               absl::StrFormat("other_config:dpdk-lcore-mask=0x%x", 1u << run_.main_core),
               absl::StrFormat("other_config:pmd-cpu-mask=0x%x", 1u << run_.core)})
            .status());
    ATL_ASSIGN_OR_RETURN(vswitchd_,
                         Child::Start({run_.ovs_vswitchd, "unix:" + Path("db.sock"),
                                       "--unixctl=" + Path("ovs-vswitchd.ctl"),
                                       "--pidfile=" + Path("ovs-vswitchd.pid"), "--no-chdir",
                                       "--log-file=" + Path("ovs-vswitchd.log")},
                                      dir_ / "ovs-vswitchd.out", {.env = env_, .new_netns = true}));
    bool up = WaitFor(
        [&] {
          if (vswitchd_->Exited()) return true;
          auto v = Vsctl({"--no-wait", "get", "Open_vSwitch", ".", "dpdk_initialized"});
          return v.ok() && absl::StrContains(*v, "true");
        },
        std::chrono::seconds(60));
    if (!up || vswitchd_->Exited()) {
      return absl::InternalError(absl::StrCat(
          "ovs-vswitchd did not initialise DPDK with dpdk-extra \"", absl::StrJoin(eal_extra, " "),
          "\": ", Tail(ReadFile(Path("ovs-vswitchd.log")), 3000),
          Tail(ReadFile(dir_ / "ovs-vswitchd.out"), 1000)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Vsctl(std::vector<std::string> args) {
    args.insert(args.begin(), {Bin("ovs-vsctl"), "--db=unix:" + Path("db.sock"), "--timeout=120"});
    return Run(args, env_, std::chrono::seconds(150));
  }
  absl::StatusOr<std::string> Ofctl(std::vector<std::string> args) {
    // ovs-ofctl CMD SWITCH ...: the switch is the bridge's management socket.
    args.insert(args.begin(), {Bin("ovs-ofctl"), "-O", "OpenFlow15", "--timeout=600"});
    args.insert(args.begin() + 5, "unix:" + Path("br0.mgmt"));
    return Run(args, env_, std::chrono::seconds(650));
  }
  absl::StatusOr<std::string> Appctl(std::vector<std::string> args) {
    args.insert(args.begin(), {Bin("ovs-appctl"), "-t", Path("ovs-vswitchd.ctl"), "--timeout=60"});
    return Run(args, env_, std::chrono::seconds(70));
  }
  // An error if OVS could not open interface `name` (its `error` column).
  absl::Status CheckInterface(const std::string& name, const std::string& devargs) {
    ATL_ASSIGN_OR_RETURN(std::string err, Vsctl({"get", "Interface", name, "error"}));
    err = std::string(absl::StripAsciiWhitespace(err));
    if (!err.empty() && err != "[]") {
      return absl::InternalError(
          absl::StrCat("OVS could not open ", name, " with dpdk-devargs \"", devargs, "\": ", err));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::map<std::string, PortCounters>> Ports() {
    ATL_ASSIGN_OR_RETURN(std::string s, Appctl({"dpctl/show", "-s"}));
    return ParseDpctlShow(s);
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::string Log() const { return ReadFile(Path("ovs-vswitchd.log")); }
  bool VswitchdExited() { return vswitchd_ == nullptr || vswitchd_->Exited(); }
  static std::string Tail(const std::string& s, size_t n) {
    return s.size() > n ? s.substr(s.size() - n) : s;
  }

 private:
  std::string Bin(absl::string_view name) const {
    return absl::StrCat(run_.ovs_bin_dir, "/", name);
  }
  const PeerRun& run_;
  fs::path dir_;
  std::vector<std::string> env_;
  std::unique_ptr<Child> ovsdb_;
  std::unique_ptr<Child> vswitchd_;
};

// pmd-perf-show's figures for the one PMD.
struct PmdPerf {
  double duration_s = 0, used_cycles = 0, rx_packets = 0, cycles_per_pkt = 0, busy_pct = 0;
};
PmdPerf ParsePmdPerf(absl::string_view s) {
  PmdPerf p;
  p.duration_s = NumberAfter(s, "Measurement duration").value_or(0);
  p.used_cycles = NumberAfter(s, "Used TSC cycles").value_or(0);
  size_t from = 0;
  p.rx_packets = NumberAfter(s, "Rx packets", &from).value_or(0);
  if (const size_t k = s.find("Kpps, ", from); k != absl::string_view::npos) {
    p.cycles_per_pkt = NumberAfter(s.substr(k), "Kpps,").value_or(0);
  }
  from = 0;
  if (NumberAfter(s, "busy iterations", &from)) {
    p.busy_pct = NumberAfter(s.substr(from), "(").value_or(0);
  }
  return p;
}

}  // namespace

absl::StatusOr<PeerResult> RunOvsDpdk(const PeerRun& run) {
  ATL_RETURN_IF_ERROR(CheckRun(run));
  std::unique_ptr<TempDir> tmp;
  ATL_ASSIGN_OR_RETURN(tmp, TempDir::Create("atoll-perf-ovs"));
  std::unique_ptr<Hugepages> huge;
  if (run.hugepages > 0) {
    ATL_ASSIGN_OR_RETURN(huge, Hugepages::Reserve(run.hugepages, (tmp->path() / "huge").string()));
  }
  EalRuntimeDir eal(PrefixFor("ovs"));
  // OVS appends --in-memory unless --in-memory or --legacy-mem is given, and
  // EAL refuses --in-memory with --no-huge (which implies legacy memory).
  std::vector<std::string> extra = EalMemoryArgs(run, huge.get());
  if (huge == nullptr) extra.push_back("--legacy-mem");
  for (const char* a : {"--no-pci", "--iova-mode=va", "--no-telemetry"}) extra.push_back(a);
  extra.push_back(absl::StrCat("--file-prefix=", eal.prefix()));

  const fs::path dir = run.log_dir.empty() ? tmp->path() / "ovs" : fs::path(run.log_dir) / "ovs";
  std::error_code ec;
  fs::create_directories(dir, ec);
  Ovs ovs(run, dir);
  absl::Status started = ovs.Start(extra);
  if (!started.ok()) return started;

  // The TX port, the program, then the RX port: traffic starts when it is
  // added, with every flow in place.
  ATL_RETURN_IF_ERROR(ovs.Vsctl({"add-br",
                                 "br0",
                                 "--",
                                 "set",
                                 "bridge",
                                 "br0",
                                 "datapath_type=netdev",
                                 "fail_mode=secure",
                                 "protocols=OpenFlow15",
                                 "--",
                                 "add-port",
                                 "br0",
                                 "tx0",
                                 "--",
                                 "set",
                                 "Interface",
                                 "tx0",
                                 "type=dpdk",
                                 "options:dpdk-devargs=" + run.vdevs[1],
                                 "ofport_request=2"})
                          .status());
  ATL_RETURN_IF_ERROR(ovs.CheckInterface("tx0", run.vdevs[1]));
  const OvsProgram program =
      run.ovs.flows.empty() ? OvsProgram{"", "table=0,priority=0,actions=output:2\n"} : run.ovs;
  if (!program.groups.empty()) {
    std::ofstream(dir / "groups.txt") << program.groups;
    ATL_RETURN_IF_ERROR(ovs.Ofctl({"add-groups", (dir / "groups.txt").string()}).status());
  }
  std::ofstream(dir / "flows.txt") << program.flows;
  ATL_RETURN_IF_ERROR(ovs.Ofctl({"add-flows", (dir / "flows.txt").string()}).status());
  ATL_RETURN_IF_ERROR(ovs.Appctl({"dpif-netdev/pmd-stats-clear"}).status());
  ATL_RETURN_IF_ERROR(
      ovs.Vsctl({"add-port", "br0", "rx0", "--", "set", "Interface", "rx0", "type=dpdk",
                 "options:dpdk-devargs=" + run.vdevs[0], "ofport_request=1"})
          .status());
  ATL_RETURN_IF_ERROR(ovs.CheckInterface("rx0", run.vdevs[0]));
  // "DPDK provided TSC frequency: 2600000 KHz"
  const std::string log = ovs.Log();
  const double tsc_khz = NumberAfter(log, "TSC frequency").value_or(0);
  if (tsc_khz <= 0) {
    return absl::InternalError(absl::StrCat("no TSC frequency in ", ovs.Path("ovs-vswitchd.log")));
  }

  PeerResult r;
  if (run.single_pass) {
    // Until RX stops moving (each frame comes once), then the PMD's figures.
    int64_t last = -1;
    int still = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(600);
    while (Clock::now() < deadline && still < 5) {
      Sleep(0.2);
      ATL_ASSIGN_OR_RETURN(auto ports, ovs.Ports());
      const int64_t rx = ports["rx0"].rx;
      still = (rx == last && rx > 0) ? still + 1 : 0;
      last = rx;
    }
    ATL_ASSIGN_OR_RETURN(std::string perf, ovs.Appctl({"dpif-netdev/pmd-perf-show"}));
    ATL_ASSIGN_OR_RETURN(auto ports, ovs.Ports());
    const PmdPerf p = ParsePmdPerf(perf);
    if (p.rx_packets <= 0 || p.cycles_per_pkt <= 0) {
      return absl::InternalError(
          absl::StrCat("OVS received nothing from \"", run.vdevs[0], "\": ", perf));
    }
    r.rx_packets = ports["rx0"].rx;
    r.packets = ports["tx0"].tx;
    r.ns_per_packet = p.cycles_per_pkt / (tsc_khz / 1e6);
    r.mpps = 1e3 / *r.ns_per_packet;  // the rate of the PMD's busy time
    r.seconds = p.rx_packets * p.cycles_per_pkt / (tsc_khz * 1e3);
    r.detail = perf;
  } else {
    Sleep(run.warmup_seconds);
    ATL_RETURN_IF_ERROR(ovs.Appctl({"dpif-netdev/pmd-stats-clear"}).status());
    ATL_ASSIGN_OR_RETURN(auto before, ovs.Ports());
    const auto t0 = Clock::now();
    Sleep(run.seconds);
    ATL_ASSIGN_OR_RETURN(auto after, ovs.Ports());
    const auto t1 = Clock::now();
    ATL_ASSIGN_OR_RETURN(std::string perf, ovs.Appctl({"dpif-netdev/pmd-perf-show"}));
    const PmdPerf p = ParsePmdPerf(perf);
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    r.packets = after["tx0"].tx - before["tx0"].tx;
    r.rx_packets = after["rx0"].rx - before["rx0"].rx;
    r.mpps = static_cast<double>(r.packets) / r.seconds / 1e6;
    if (p.cycles_per_pkt > 0) r.ns_per_packet = p.cycles_per_pkt / (tsc_khz / 1e6);
    r.detail = perf;
  }
  ATL_ASSIGN_OR_RETURN(std::string flows, ovs.Ofctl({"dump-flows"}));
  ATL_ASSIGN_OR_RETURN(std::string ct, ovs.Appctl({"dpctl/ct-stats-show"}));
  r.detail = absl::StrCat(r.detail, "\n", ct, "\n", flows);
  if (ovs.VswitchdExited()) {
    return absl::InternalError(
        absl::StrCat("ovs-vswitchd exited during the run: ", Ovs::Tail(ovs.Log(), 3000)));
  }
  if (r.packets <= 0) {
    return absl::InternalError(absl::StrCat("OVS forwarded nothing from \"", run.vdevs[0],
                                            "\" to \"", run.vdevs[1], "\"; flows: ", flows));
  }
  return r;
}

}  // namespace atl::perf
