// Traffic for end-to-end tests: a server that answers every TCP request and
// UDP datagram with its name and the client address it saw, and clients that
// ask it from inside any network namespace (a pod, a host, `ext`), each with
// a deadline so that a dataplane that drops packets fails a test instead of
// hanging it.
//
// The wire format is one line each way: the client sends "?\n", the server
// answers "NAME PEER_IP PEER_PORT\n". A TCP connection may carry any number
// of such exchanges.
//
// Servers are processes (fork, setns into the namespace, a poll loop), ended
// by their PID; clients run on a thread that entered the namespace. The
// errors clients return:
//   DEADLINE_EXCEEDED  no connection, or no answer, within the timeout;
//   UNAVAILABLE        refused (a TCP reset, or an ICMP port unreachable on
//                      the connected UDP socket: IsRefused()), or another
//                      socket error, named in the message.
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/netns.h"

namespace atl::testing {

// What a server answered.
struct Answer {
  std::string server;   // its name
  std::string peer_ip;  // the client address it saw
  uint16_t peer_port = 0;
  std::string ToString() const {
    return absl::StrCat(server, " (saw ", peer_ip, ":", peer_port, ")");
  }
};

struct RequestOptions {
  std::chrono::milliseconds timeout{2000};
  std::string source;  // an address to bind to first; the kernel's choice when empty
};

// Whether `s` says the peer refused: a TCP reset, or ICMP port unreachable.
inline bool IsRefused(const absl::Status& s) {
  return absl::IsUnavailable(s) && s.message().find("ECONNREFUSED") != absl::string_view::npos;
}

namespace traffic_internal {

using Clock = std::chrono::steady_clock;

inline int MillisLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

inline std::string Where(const std::string& proto, const std::string& addr, uint16_t port,
                         const RequestOptions& o) {
  return absl::StrCat(proto, " to ", addr, ":", port, o.source.empty() ? "" : " from ", o.source);
}

inline absl::Status SocketError(int err, const std::string& where, const std::string& step) {
  return absl::UnavailableError(absl::StrCat(
      where, ": ", step, ": ", err == ECONNREFUSED ? "ECONNREFUSED, " : "", std::strerror(err)));
}

inline absl::StatusOr<sockaddr_in> Address(const std::string& addr, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("\"", addr, "\" is not an IPv4 address"));
  }
  return sa;
}

// A non-blocking socket, bound to `source` when one is given.
inline absl::StatusOr<int> Socket(int type, const RequestOptions& o, const std::string& where) {
  const int fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return SocketError(errno, where, "socket");
  if (!o.source.empty()) {
    absl::StatusOr<sockaddr_in> src = Address(o.source, 0);
    if (!src.ok()) {
      close(fd);
      return src.status();
    }
    if (bind(fd, reinterpret_cast<const sockaddr*>(&*src), sizeof(*src)) != 0) {
      const int err = errno;
      close(fd);
      return SocketError(err, where, "bind");
    }
  }
  return fd;
}

inline absl::StatusOr<Answer> ParseAnswer(const std::string& line, const std::string& where) {
  std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
  uint32_t port = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[2], &port) || port > 65535) {
    return absl::DataLossError(absl::StrCat(where, ": not an answer: \"", line, "\""));
  }
  return Answer{parts[0], parts[1], static_cast<uint16_t>(port)};
}

// Reads one answer line from a connected stream socket.
inline absl::StatusOr<Answer> ReadAnswer(int fd, Clock::time_point deadline,
                                         const std::string& where) {
  std::string line;
  char c;
  while (true) {
    const ssize_t n = read(fd, &c, 1);
    if (n == 1) {
      if (c == '\n') return ParseAnswer(line, where);
      line.push_back(c);
      continue;
    }
    if (n == 0) {
      return absl::UnavailableError(
          absl::StrCat(where, ": the connection closed before an answer (got \"", line, "\")"));
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return SocketError(errno, where, "read");
    pollfd p{fd, POLLIN, 0};
    const int left = MillisLeft(deadline);
    if (left == 0 || poll(&p, 1, left) == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat(where, ": connected, but no answer in time (got \"", line, "\")"));
    }
  }
}

inline absl::Status Send(int fd, const std::string& where) {
  if (send(fd, "?\n", 2, MSG_NOSIGNAL) != 2) return SocketError(errno, where, "send");
  return absl::OkStatus();
}

// Connects a TCP socket in the calling thread's namespace.
inline absl::StatusOr<int> Connect(const std::string& addr, uint16_t port, const RequestOptions& o,
                                   Clock::time_point deadline, const std::string& where) {
  absl::StatusOr<sockaddr_in> dst = Address(addr, port);
  if (!dst.ok()) return dst.status();
  absl::StatusOr<int> fd = Socket(SOCK_STREAM, o, where);
  if (!fd.ok()) return fd.status();
  if (connect(*fd, reinterpret_cast<const sockaddr*>(&*dst), sizeof(*dst)) != 0 &&
      errno != EINPROGRESS) {
    const int err = errno;
    close(*fd);
    return SocketError(err, where, "connect");
  }
  pollfd p{*fd, POLLOUT, 0};
  if (poll(&p, 1, MillisLeft(deadline)) == 0) {
    close(*fd);
    return absl::DeadlineExceededError(
        absl::StrCat(where, ": no connection within ", o.timeout.count(), " ms"));
  }
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(*fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    close(*fd);
    return SocketError(err, where, "connect");
  }
  return *fd;
}

inline absl::StatusOr<Answer> TcpRequestHere(const std::string& addr, uint16_t port,
                                             const RequestOptions& o) {
  const std::string where = Where("TCP", addr, port, o);
  const Clock::time_point deadline = Clock::now() + o.timeout;
  absl::StatusOr<int> fd = Connect(addr, port, o, deadline, where);
  if (!fd.ok()) return fd.status();
  absl::Status sent = Send(*fd, where);
  absl::StatusOr<Answer> answer = sent.ok() ? ReadAnswer(*fd, deadline, where) : sent;
  close(*fd);
  return answer;
}

inline absl::StatusOr<Answer> UdpRequestHere(const std::string& addr, uint16_t port,
                                             const RequestOptions& o) {
  const std::string where = Where("UDP", addr, port, o);
  absl::StatusOr<sockaddr_in> dst = Address(addr, port);
  if (!dst.ok()) return dst.status();
  absl::StatusOr<int> fd = Socket(SOCK_DGRAM, o, where);
  if (!fd.ok()) return fd.status();
  // Connected: an ICMP error about the flow comes back as the socket's error.
  if (connect(*fd, reinterpret_cast<const sockaddr*>(&*dst), sizeof(*dst)) != 0) {
    const int err = errno;
    close(*fd);
    return SocketError(err, where, "connect");
  }
  const Clock::time_point deadline = Clock::now() + o.timeout;
  // Once more halfway, in case the first datagram was lost.
  const Clock::time_point resend = Clock::now() + o.timeout / 2;
  bool resent = false;
  absl::StatusOr<Answer> answer = absl::DeadlineExceededError(
      absl::StrCat(where, ": no answer within ", o.timeout.count(), " ms"));
  if (absl::Status s = Send(*fd, where); !s.ok()) {
    answer = s;
  } else {
    while (MillisLeft(deadline) > 0) {
      pollfd p{*fd, POLLIN, 0};
      const int wait = resent ? MillisLeft(deadline) : MillisLeft(resend);
      if (poll(&p, 1, wait) == 0) {
        if (!resent) {
          resent = true;
          if (absl::Status s = Send(*fd, where); !s.ok()) {
            answer = s;
            break;
          }
        }
        continue;
      }
      char buf[512];
      const ssize_t n = recv(*fd, buf, sizeof(buf) - 1, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        answer = SocketError(errno, where, "recv");
        break;
      }
      std::string line(buf, static_cast<size_t>(n));
      if (!line.empty() && line.back() == '\n') line.pop_back();
      answer = ParseAnswer(line, where);
      break;
    }
  }
  close(*fd);
  return answer;
}

// Runs `fn` in `ns` and returns what it returned, or why it could not run.
template <typename T, typename Fn>
absl::StatusOr<T> In(const TestNetns& ns, Fn fn) {
  absl::StatusOr<T> result = absl::InternalError("not run");
  if (absl::Status s = ns.Run([&] { result = fn(); }); !s.ok()) return s;
  return result;
}

// The server's loop, in the child: system calls and fixed buffers only (the
// test process has threads, and the child of a fork may call no more).
class AnswerBuilder {
 public:
  AnswerBuilder(const char* name, const sockaddr_in& peer) {
    Append(name);
    Append(" ");
    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
    Append(ip);
    Append(" ");
    char digits[8];
    int n = 0;
    unsigned port = ntohs(peer.sin_port);
    do {
      digits[n++] = static_cast<char>('0' + port % 10);
      port /= 10;
    } while (port > 0);
    while (n > 0 && len_ < sizeof(buf_) - 1) buf_[len_++] = digits[--n];
    Append("\n");
  }
  const char* data() const { return buf_; }
  size_t size() const { return len_; }

 private:
  void Append(const char* s) {
    while (*s != '\0' && len_ < sizeof(buf_) - 1) buf_[len_++] = *s++;
  }
  char buf_[160];
  size_t len_ = 0;
};

// Tells the parent about each client ("tcp ANSWER" / "udp ANSWER" lines);
// dropped when the parent does not read.
inline void Report(int fd, const char* proto, const AnswerBuilder& a) {
  char line[200];
  size_t len = 0;
  for (const char* p = proto; *p != '\0'; ++p) line[len++] = *p;
  line[len++] = ' ';
  std::memcpy(line + len, a.data(), a.size());
  (void)!write(fd, line, len + a.size());
}

// Closes every descriptor above stderr but `keep`, in a child after fork.
inline void CloseAllBut(std::initializer_list<int> keep) {
  int sorted[8];
  int n = 0;
  for (int fd : keep) {
    int i = n++;
    for (; i > 0 && sorted[i - 1] > fd; --i) sorted[i] = sorted[i - 1];
    sorted[i] = fd;
  }
  unsigned from = 3;
  for (int i = 0; i < n; ++i) {
    const unsigned fd = static_cast<unsigned>(sorted[i]);
    if (fd > from) close_range(from, fd - 1, 0);
    if (fd + 1 > from) from = fd + 1;
  }
  close_range(from, ~0U, 0);
}

[[noreturn]] inline void Serve(const char* name, int tcp, int udp, int seen) {
  constexpr int kMaxConnections = 256;
  pollfd fds[2 + kMaxConnections];
  char answers[kMaxConnections][160];
  size_t answer_len[kMaxConnections];
  int connections = 0;
  fds[0] = {tcp, POLLIN, 0};
  fds[1] = {udp, POLLIN, 0};
  while (true) {
    if (poll(fds, static_cast<nfds_t>(2 + connections), -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (fds[0].revents & POLLIN) {
      sockaddr_in peer{};
      socklen_t len = sizeof(peer);
      const int c = accept4(tcp, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      if (c >= 0 && connections == kMaxConnections) {
        close(c);
      } else if (c >= 0) {
        const AnswerBuilder a(name, peer);
        Report(seen, "tcp", a);
        std::memcpy(answers[connections], a.data(), a.size());
        answer_len[connections] = a.size();
        fds[2 + connections] = {c, POLLIN, 0};
        ++connections;
      }
    }
    if (fds[1].revents & POLLIN) {
      char buf[512];
      sockaddr_in peer{};
      socklen_t len = sizeof(peer);
      if (recvfrom(udp, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &len) >= 0) {
        const AnswerBuilder a(name, peer);
        Report(seen, "udp", a);
        sendto(udp, a.data(), a.size(), 0, reinterpret_cast<const sockaddr*>(&peer), len);
      }
    }
    for (int i = 0; i < connections; ++i) {
      pollfd& p = fds[2 + i];
      if (!(p.revents & (POLLIN | POLLERR | POLLHUP))) continue;
      char buf[512];
      const ssize_t n = read(p.fd, buf, sizeof(buf));
      if (n <= 0) {
        close(p.fd);
        --connections;
        fds[2 + i] = fds[2 + connections];
        std::memcpy(answers[i], answers[connections], answer_len[connections]);
        answer_len[i] = answer_len[connections];
        --i;
        continue;
      }
      for (ssize_t k = 0; k < n; ++k) {
        if (buf[k] == '\n') {
          (void)!send(p.fd, answers[i], answer_len[i], MSG_NOSIGNAL);
        }
      }
      p.revents = 0;
    }
  }
}

}  // namespace traffic_internal

// One TCP request on a new connection from inside `from`.
inline absl::StatusOr<Answer> TcpRequest(const TestNetns& from, const std::string& addr,
                                         uint16_t port, const RequestOptions& options = {}) {
  return traffic_internal::In<Answer>(
      from, [&] { return traffic_internal::TcpRequestHere(addr, port, options); });
}

// One UDP request from a new socket (so a new source port) inside `from`.
inline absl::StatusOr<Answer> UdpRequest(const TestNetns& from, const std::string& addr,
                                         uint16_t port, const RequestOptions& options = {}) {
  return traffic_internal::In<Answer>(
      from, [&] { return traffic_internal::UdpRequestHere(addr, port, options); });
}

// Answers TCP and UDP on one port of every address of a namespace, with its
// name and the client address it saw.
class WhoamiServer {
 public:
  static absl::StatusOr<std::unique_ptr<WhoamiServer>> Start(const TestNetns& in,
                                                             const std::string& name,
                                                             uint16_t port) {
    if (name.empty() || name.size() > 63 || name.find(' ') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad server name \"", name, "\""));
    }
    const int netns = open(in.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (netns < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", in.path()));
    int ready[2];
    int seen[2];
    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(seen, O_CLOEXEC | O_NONBLOCK) != 0) {
      close(netns);
      return absl::ErrnoToStatus(errno, "pipe2");
    }
    const std::string where = absl::StrCat("server ", name, " on port ", port);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      // The child: the namespace, the sockets, then "ready" or the errno.
      auto fail = [&](int step) {
        const int msg[2] = {step, errno};
        (void)!write(ready[1], msg, sizeof(msg));
        _exit(1);
      };
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      setpgid(0, 0);
      // Not the test's descriptors (connections, other servers' pipes):
      // only what it needs, so that nothing the test closes stays open here.
      traffic_internal::CloseAllBut({netns, ready[1], seen[1]});
      if (setns(netns, CLONE_NEWNET) != 0) fail(1);
      sockaddr_in any{};
      any.sin_family = AF_INET;
      any.sin_port = htons(port);
      const int one = 1;
      const int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (tcp < 0 || setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
          bind(tcp, reinterpret_cast<const sockaddr*>(&any), sizeof(any)) != 0 ||
          listen(tcp, 128) != 0) {
        fail(2);
      }
      const int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (udp < 0 || bind(udp, reinterpret_cast<const sockaddr*>(&any), sizeof(any)) != 0) {
        fail(3);
      }
      const int msg[2] = {0, 0};
      (void)!write(ready[1], msg, sizeof(msg));
      traffic_internal::Serve(name.c_str(), tcp, udp, seen[1]);
    }
    const int fork_errno = errno;
    close(netns);
    close(ready[1]);
    close(seen[1]);
    if (pid < 0) {
      close(ready[0]);
      close(seen[0]);
      return absl::ErrnoToStatus(fork_errno, "fork");
    }
    std::unique_ptr<WhoamiServer> server(new WhoamiServer(pid, seen[0]));
    pollfd p{ready[0], POLLIN, 0};
    int msg[2] = {-1, 0};
    const bool answered = poll(&p, 1, 5000) == 1 && read(ready[0], msg, sizeof(msg)) == sizeof(msg);
    close(ready[0]);
    if (!answered) return absl::DeadlineExceededError(absl::StrCat(where, ": did not start"));
    if (msg[0] != 0) {
      static constexpr const char* kSteps[] = {"", "enter the namespace", "listen on TCP",
                                               "bind UDP"};
      return absl::ErrnoToStatus(msg[1], absl::StrCat(where, ": cannot ", kSteps[msg[0] & 3]));
    }
    return server;
  }

  ~WhoamiServer() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    close(seen_);
  }
  WhoamiServer(const WhoamiServer&) = delete;
  WhoamiServer& operator=(const WhoamiServer&) = delete;

  pid_t pid() const { return pid_; }

  // Every client seen so far: "tcp NAME PEER_IP PEER_PORT" or "udp …".
  std::vector<std::string> Seen() {
    char buf[4096];
    ssize_t n;
    while ((n = read(seen_, buf, sizeof(buf))) > 0) pending_.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = pending_.find('\n')) != std::string::npos;) {
      seen_lines_.push_back(pending_.substr(0, nl));
      pending_.erase(0, nl + 1);
    }
    return seen_lines_;
  }

 private:
  WhoamiServer(pid_t pid, int seen) : pid_(pid), seen_(seen) {}

  pid_t pid_;
  int seen_;
  std::string pending_;
  std::vector<std::string> seen_lines_;
};

// One TCP connection kept open, for requests over time; optionally a thread
// of its own that keeps asking (load) while a test changes things around it.
class TcpConnection {
 public:
  static absl::StatusOr<std::unique_ptr<TcpConnection>> Open(const TestNetns& from,
                                                             const std::string& addr, uint16_t port,
                                                             const RequestOptions& options = {}) {
    const std::string where = traffic_internal::Where("TCP", addr, port, options);
    absl::StatusOr<int> fd = traffic_internal::In<int>(from, [&] {
      return traffic_internal::Connect(addr, port, options,
                                       traffic_internal::Clock::now() + options.timeout, where);
    });
    if (!fd.ok()) return fd.status();
    return std::unique_ptr<TcpConnection>(new TcpConnection(*fd, where));
  }

  ~TcpConnection() {
    StopLoad();
    close(fd_);
  }
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  absl::StatusOr<Answer> Request(std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string where = absl::StrCat(where_, " (long-lived, request ", ++requests_, ")");
    if (absl::Status s = traffic_internal::Send(fd_, where); !s.ok()) return s;
    return traffic_internal::ReadAnswer(fd_, traffic_internal::Clock::now() + timeout, where);
  }

  struct LoadReport {
    int ok = 0;
    int failed = 0;
    std::string first_error;
    std::map<std::string, int> servers;  // answers by server name
  };

  // Requests every `interval` until StopLoad().
  void StartLoad(std::chrono::milliseconds interval = std::chrono::milliseconds(20)) {
    StopLoad();
    stop_ = false;
    load_ = std::thread([this, interval] {
      while (!stop_) {
        absl::StatusOr<Answer> a = Request();
        std::lock_guard<std::mutex> lock(report_mu_);
        if (a.ok()) {
          ++report_.ok;
          ++report_.servers[a->server];
        } else if (++report_.failed == 1) {
          report_.first_error = a.status().ToString();
        }
        if (!a.ok()) break;  // the stream is out of step after a lost answer
        std::this_thread::sleep_for(interval);
      }
    });
  }
  LoadReport StopLoad() {
    stop_ = true;
    if (load_.joinable()) load_.join();
    std::lock_guard<std::mutex> lock(report_mu_);
    LoadReport r = report_;
    report_ = {};
    return r;
  }

 private:
  TcpConnection(int fd, std::string where) : fd_(fd), where_(std::move(where)) {}

  int fd_;
  std::string where_;
  std::mutex mu_;  // one exchange at a time
  int requests_ = 0;
  std::atomic<bool> stop_{true};
  std::thread load_;
  std::mutex report_mu_;
  LoadReport report_;
};

}  // namespace atl::testing
