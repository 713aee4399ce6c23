// netbench: the traffic of the dataplane benchmark (perf/dataplane_bench.cc),
// run inside the pods of the test bed. One process per role, single-threaded,
// pinned with --cpu so that the load generator and the server keep to their
// own cores; every client prints one JSON line when it ends.
//
//   netbench serve --tcp_port=8080 --udp_port=9090
//   netbench crr  --to=IP:PORT --seconds=S --concurrency=C
//   netbench rr   --to=IP:PORT --seconds=S --concurrency=C
//   netbench bulk --to=IP:PORT --seconds=S
//   netbench udp  --to=IP:PORT --seconds=S --flows=F --dst_mac=MAC [--dev=eth0]
//
// TCP messages are 64 bytes and their first byte says what the client wants:
// 'C' one answer, then the server closes (crr: a new connection per request,
// the server closing first as HTTP/1.0 servers do, so that TIME_WAIT stays on
// the server and costs the client no ports); 'R' an answer and the connection
// stays (rr); 'B' no answers, the rest of the stream is discarded (bulk).
//
// crr binds each connection to the next port of --first_port..--last_port and
// never uses a port twice in a run: a reused source port would meet the
// conntrack entry (and NAT binding) of its predecessor and skip the very
// lookup the benchmark measures. A run ends after --seconds or when the ports
// run out, whichever is first, and says which.
//
// udp writes 64-byte frames (60 bytes and the FCS the wire would add) with
// AF_PACKET, bypassing the qdisc, cycling over --flows source ports; the
// receiving side counts them at the backends' interfaces.
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <netinet/ether.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

ABSL_FLAG(int, cpu, -1, "the CPU to run on; -1: any");
ABSL_FLAG(int, tcp_port, 8080, "serve: the TCP port");
ABSL_FLAG(int, udp_port, 9090, "serve: the UDP port (drained, so that no ICMP errors go back)");
ABSL_FLAG(std::string, to, "", "clients: the service, IP:PORT");
ABSL_FLAG(double, seconds, 3, "clients: how long to run");
ABSL_FLAG(int, concurrency, 32, "crr, rr: connections in flight");
ABSL_FLAG(int, first_port, 1024, "crr: the first source port");
ABSL_FLAG(int, last_port, 65535, "crr: the last source port");
ABSL_FLAG(int, flows, 1024, "udp: source ports to cycle over");
ABSL_FLAG(std::string, dev, "eth0", "udp: the interface to write frames on");
ABSL_FLAG(std::string, dst_mac, "", "udp: the gateway's MAC");

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMessage = 64;

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "netbench: %s: %s\n", what.c_str(), strerror(errno));
  exit(1);
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

sockaddr_in ParseTarget(const std::string& to) {
  std::vector<std::string> parts = absl::StrSplit(to, ':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  int port = 0;
  if (parts.size() != 2 || inet_pton(AF_INET, parts[0].c_str(), &addr.sin_addr) != 1 ||
      !absl::SimpleAtoi(parts[1], &port) || port <= 0 || port > 65535) {
    fprintf(stderr, "netbench: --to: want IPv4:PORT, got \"%s\"\n", to.c_str());
    exit(2);
  }
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// Latencies in microseconds; percentiles by sorting at the end.
struct Latencies {
  std::vector<uint32_t> us;
  void Add(Clock::time_point start) {
    us.push_back(static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count()));
  }
  uint32_t Percentile(double p) {
    if (us.empty()) return 0;
    const size_t k = std::min(us.size() - 1, static_cast<size_t>(p * us.size()));
    std::nth_element(us.begin(), us.begin() + k, us.end());
    return us[k];
  }
};

void PrintResult(const char* mode, uint64_t count, double seconds, Latencies* lat,
                 const std::string& extra = "") {
  std::string line = absl::StrFormat(R"({"mode":"%s","count":%d,"seconds":%.4f,"rate":%.1f)", mode,
                                     count, seconds, seconds > 0 ? count / seconds : 0);
  if (lat != nullptr) {
    absl::StrAppendFormat(&line, R"(,"p50_us":%d,"p99_us":%d)", lat->Percentile(0.5),
                          lat->Percentile(0.99));
  }
  absl::StrAppend(&line, extra, "}\n");
  fputs(line.c_str(), stdout);
  fflush(stdout);
}

void SetNonBlocking(int fd) {
  const int one = 1;
  if (ioctl(fd, FIONBIO, &one) != 0) Die("FIONBIO");
}

void EpollSet(int ep, int op, int fd, uint32_t events, uint64_t data) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  if (epoll_ctl(ep, op, fd, &ev) != 0) Die("epoll_ctl");
}

// --- serve -----------------------------------------------------------------

struct ServerConn {
  char kind = 0;    // of the stream: 'C', 'R' or 'B' once the first byte came
  size_t fill = 0;  // bytes of the current message received
};

int Serve() {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(absl::GetFlag(FLAGS_tcp_port)));
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("bind tcp");
  if (listen(listener, 4096) != 0) Die("listen");
  const int udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  addr.sin_port = htons(static_cast<uint16_t>(absl::GetFlag(FLAGS_udp_port)));
  if (bind(udp, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("bind udp");
  // Data 0 and 1 are the listener and the UDP socket; connections are fd + 2.
  EpollSet(ep, EPOLL_CTL_ADD, listener, EPOLLIN, 0);
  EpollSet(ep, EPOLL_CTL_ADD, udp, EPOLLIN, 1);
  std::vector<ServerConn> conns;
  char answer[kMessage];
  memset(answer, 'a', sizeof(answer));
  std::vector<char> buf(256 * 1024);
  std::vector<mmsghdr> msgs(64);
  std::vector<iovec> iovs(64);
  for (size_t i = 0; i < msgs.size(); ++i) {
    iovs[i] = {buf.data() + i * 2048, 2048};
    msgs[i].msg_hdr = {};
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  puts("ready");
  fflush(stdout);
  epoll_event events[256];
  for (;;) {
    const int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      if (data == 0) {
        for (;;) {
          const int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          if (static_cast<size_t>(fd) >= conns.size()) conns.resize(fd + 1024);
          conns[fd] = {};
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          EpollSet(ep, EPOLL_CTL_ADD, fd, EPOLLIN, fd + 2);
        }
        continue;
      }
      if (data == 1) {
        while (recvmmsg(udp, msgs.data(), msgs.size(), MSG_DONTWAIT, nullptr) > 0) {
        }
        continue;
      }
      const int fd = static_cast<int>(data - 2);
      ServerConn& c = conns[fd];
      bool close_it = false;
      for (;;) {
        const ssize_t got = read(fd, buf.data(), buf.size());
        if (got < 0 && errno == EAGAIN) break;
        if (got <= 0) {
          close_it = true;
          break;
        }
        if (c.kind == 0) c.kind = buf[0];
        if (c.kind == 'B') continue;
        c.fill += static_cast<size_t>(got);
        for (; c.fill >= kMessage; c.fill -= kMessage) {
          if (write(fd, answer, sizeof(answer)) != sizeof(answer)) close_it = true;
          if (c.kind == 'C') close_it = true;
        }
        if (close_it) break;
      }
      if (close_it) close(fd);  // closing removes it from the epoll set
    }
  }
}

// --- crr: a new connection per request --------------------------------------

struct ClientConn {
  int fd = -1;
  bool connected = false;
  size_t got = 0;
  Clock::time_point start;
};

int ConnectRequestResponse() {
  const sockaddr_in to = ParseTarget(absl::GetFlag(FLAGS_to));
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  int next_port = absl::GetFlag(FLAGS_first_port);
  const int last_port = absl::GetFlag(FLAGS_last_port);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<ClientConn> slots(concurrency);
  char request[kMessage];
  memset(request, 'C', sizeof(request));
  char buf[4096];
  uint64_t done = 0, errors = 0;
  Latencies lat;
  const int one = 1;

  // Opens the slot's next connection; false when the ports ran out.
  auto open_next = [&](size_t slot) {
    ClientConn& c = slots[slot];
    for (;;) {
      if (next_port > last_port) return false;
      c = {};
      c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) Die("socket");
      setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      sockaddr_in local{};
      local.sin_family = AF_INET;
      local.sin_port = htons(static_cast<uint16_t>(next_port++));
      if (bind(c.fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
        close(c.fd);  // the port is taken: the next one
        ++errors;
        continue;
      }
      c.start = Clock::now();
      if (connect(c.fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0 &&
          errno != EINPROGRESS) {
        Die("connect");
      }
      EpollSet(ep, EPOLL_CTL_ADD, c.fd, EPOLLOUT, slot);
      return true;
    }
  };

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  int open = 0;
  for (size_t s = 0; s < slots.size(); ++s) open += open_next(s) ? 1 : 0;
  bool ports_ran_out = false;
  epoll_event events[256];
  // Connections still in flight at the end are abandoned, uncounted.
  while (open > 0 && Clock::now() < end) {
    const int n = epoll_wait(ep, events, 256, 100);
    if (n < 0 && errno != EINTR) Die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      const size_t slot = events[i].data.u64;
      ClientConn& c = slots[slot];
      bool finished = false;
      if (!c.connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (events[i].events & (EPOLLERR | EPOLLHUP))) {
          ++errors;
          finished = true;
        } else {
          c.connected = true;
          if (write(c.fd, request, sizeof(request)) != sizeof(request)) Die("write request");
          EpollSet(ep, EPOLL_CTL_MOD, c.fd, EPOLLIN, slot);
        }
      } else {
        for (;;) {
          const ssize_t got = read(c.fd, buf, sizeof(buf));
          if (got > 0) {
            c.got += static_cast<size_t>(got);
            continue;
          }
          if (got < 0 && errno == EAGAIN) break;
          // EOF after the answer: the server closed first, as it should.
          if (got == 0 && c.got == kMessage) {
            ++done;
            lat.Add(c.start);
          } else {
            ++errors;
          }
          finished = true;
          break;
        }
      }
      if (finished) {
        close(c.fd);
        --open;
        if (open_next(slot)) {
          ++open;
        } else {
          ports_ran_out = true;
        }
      }
    }
  }
  PrintResult("crr", done, SecondsSince(start), &lat,
               absl::StrFormat(R"(,"errors":%d,"ports_ran_out":%s)", errors,
                               ports_ran_out ? "true" : "false"));
  return 0;
}

// --- rr: requests on established connections --------------------------------

int RequestResponse() {
  const sockaddr_in to = ParseTarget(absl::GetFlag(FLAGS_to));
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<ClientConn> conns(concurrency);
  char request[kMessage];
  memset(request, 'R', sizeof(request));
  char buf[4096];
  const int one = 1;
  for (size_t i = 0; i < conns.size(); ++i) {
    ClientConn& c = conns[i];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0) Die("connect");
    SetNonBlocking(c.fd);
    EpollSet(ep, EPOLL_CTL_ADD, c.fd, EPOLLIN, i);
  }
  uint64_t done = 0;
  Latencies lat;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  for (ClientConn& c : conns) {
    c.start = Clock::now();
    if (write(c.fd, request, sizeof(request)) != sizeof(request)) Die("write request");
  }
  epoll_event events[256];
  while (Clock::now() < end) {
    const int n = epoll_wait(ep, events, 256, 100);
    if (n < 0 && errno != EINTR) Die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      ClientConn& c = conns[events[i].data.u64];
      const ssize_t got = read(c.fd, buf, sizeof(buf));
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) continue;
        Die("read answer (the connection broke)");
      }
      for (c.got += static_cast<size_t>(got); c.got >= kMessage; c.got -= kMessage) {
        ++done;
        lat.Add(c.start);
        c.start = Clock::now();
        if (write(c.fd, request, sizeof(request)) != sizeof(request)) Die("write request");
      }
    }
  }
  const double seconds = SecondsSince(start);
  for (ClientConn& c : conns) close(c.fd);
  PrintResult("rr", done, seconds, &lat);
  return 0;
}

// --- bulk: one stream, as fast as it goes -----------------------------------

int Bulk() {
  const sockaddr_in to = ParseTarget(absl::GetFlag(FLAGS_to));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0) Die("connect");
  std::vector<char> buf(128 * 1024, 'B');
  uint64_t sent = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  while (Clock::now() < end) {
    const ssize_t n = write(fd, buf.data(), buf.size());
    if (n < 0) Die("write");
    sent += static_cast<uint64_t>(n);
  }
  // Timed until the server has read it all: it closes when it sees our FIN.
  shutdown(fd, SHUT_WR);
  char c;
  while (read(fd, &c, 1) > 0) {
  }
  const double seconds = SecondsSince(start);
  close(fd);
  PrintResult("bulk", sent, seconds, nullptr,
              absl::StrFormat(R"(,"gbit_per_s":%.3f)", sent * 8 / seconds / 1e9));
  return 0;
}

// --- udp: 64-byte frames from AF_PACKET ---------------------------------------

uint16_t Checksum(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

int UdpFrames() {
  const sockaddr_in to = ParseTarget(absl::GetFlag(FLAGS_to));
  const std::string dev = absl::GetFlag(FLAGS_dev);
  ether_addr dst_mac{};
  if (ether_aton_r(absl::GetFlag(FLAGS_dst_mac).c_str(), &dst_mac) == nullptr) {
    fprintf(stderr, "netbench: --dst_mac: want aa:bb:cc:dd:ee:ff, got \"%s\"\n",
            absl::GetFlag(FLAGS_dst_mac).c_str());
    return 2;
  }
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket(AF_PACKET)");
  ifreq ifr{};
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev.c_str());
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) Die("SIOCGIFHWADDR " + dev);
  ether_addr src_mac;
  memcpy(&src_mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
  const int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (ioctl(udp, SIOCGIFADDR, &ifr) != 0) Die("SIOCGIFADDR " + dev);
  close(udp);
  const in_addr src_ip = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr)->sin_addr;
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_IP);
  ll.sll_ifindex = static_cast<int>(if_nametoindex(dev.c_str()));
  if (bind(fd, reinterpret_cast<sockaddr*>(&ll), sizeof(ll)) != 0) Die("bind " + dev);
  const int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));

  // One frame per flow, written once: Ethernet, IPv4, UDP (no checksum, as
  // IPv4 allows) and zero padding to 60 bytes.
  constexpr size_t kFrame = 60;
  const int flows = std::max(1, absl::GetFlag(FLAGS_flows));
  std::vector<uint8_t> frames(flows * kFrame, 0);
  for (int f = 0; f < flows; ++f) {
    uint8_t* p = &frames[f * kFrame];
    auto* eth = reinterpret_cast<ether_header*>(p);
    memcpy(eth->ether_dhost, &dst_mac, ETH_ALEN);
    memcpy(eth->ether_shost, &src_mac, ETH_ALEN);
    eth->ether_type = htons(ETHERTYPE_IP);
    auto* ip = reinterpret_cast<iphdr*>(p + sizeof(ether_header));
    ip->version = 4;
    ip->ihl = 5;
    ip->tot_len = htons(kFrame - sizeof(ether_header));
    ip->id = htons(static_cast<uint16_t>(f));
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->saddr = src_ip.s_addr;
    ip->daddr = to.sin_addr.s_addr;
    ip->check = Checksum(ip, sizeof(iphdr));
    auto* udph = reinterpret_cast<udphdr*>(ip + 1);
    udph->source = htons(static_cast<uint16_t>(20000 + f));
    udph->dest = to.sin_port;
    udph->len = htons(kFrame - sizeof(ether_header) - sizeof(iphdr));
  }
  constexpr int kBatch = 64;
  std::vector<mmsghdr> msgs(kBatch);
  std::vector<iovec> iovs(kBatch);
  uint64_t sent = 0, no_buffer = 0;
  int next = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  while (Clock::now() < end) {
    for (int i = 0; i < kBatch; ++i) {
      iovs[i] = {&frames[next * kFrame], kFrame};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      next = next + 1 == flows ? 0 : next + 1;
    }
    const int n = sendmmsg(fd, msgs.data(), kBatch, 0);
    if (n < 0) {
      if (errno != ENOBUFS && errno != EAGAIN) Die("sendmmsg");
      ++no_buffer;
      continue;
    }
    sent += static_cast<uint64_t>(n);
  }
  PrintResult("udp", sent, SecondsSince(start), nullptr,
              absl::StrFormat(R"(,"flows":%d,"frame_bytes":%d,"no_buffer":%d)", flows, kFrame + 4,
                              no_buffer));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("netbench serve|crr|rr|bulk|udp [flags]: see perf/netbench.cc");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    fprintf(stderr, "netbench: want one mode: serve, crr, rr, bulk or udp\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (const int cpu = absl::GetFlag(FLAGS_cpu); cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) Die(absl::StrCat("pin to CPU ", cpu));
  }
  const std::string mode = args[1];
  if (mode == "serve") return Serve();
  if (mode == "crr") return ConnectRequestResponse();
  if (mode == "rr") return RequestResponse();
  if (mode == "bulk") return Bulk();
  if (mode == "udp") return UdpFrames();
  fprintf(stderr, "netbench: unknown mode \"%s\": want serve, crr, rr, bulk or udp\n",
          mode.c_str());
  return 2;
}
