#include "tests/testbed.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/pod_network.h"
#include "dataplane.grpc.pb.h"
#include "grpc_status.h"
#include "lb/net.h"
#include "lb/status_macros.h"
#include "tests/processes.h"

extern char** environ;

namespace atl::testing {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

absl::Status Errno(int err, const std::string& what) { return absl::ErrnoToStatus(err, what); }

std::string FindProgram(const std::vector<std::string>& candidates) {
  for (const std::string& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) return c;
  }
  return candidates.front();
}

std::string IpProgram() {
  return FindProgram({"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"});
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& text, size_t lines) {
  std::vector<absl::string_view> all = absl::StrSplit(text, '\n', absl::SkipEmpty());
  const size_t from = all.size() > lines ? all.size() - lines : 0;
  return absl::StrJoin(all.begin() + static_cast<long>(from), all.end(), "\n");
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

// --- fork and exec ---------------------------------------------------------

// What a child failed at, sent to the parent through a pipe before it exits.
enum ChildStage : int {
  kStageSetns = 1,
  kStageUnshareMounts,
  kStageSlaveMounts,
  kStageSysfs,
  kStageBpffs,
  kStageStdio,
  kStageExec,
};

const char* StageName(int stage) {
  switch (stage) {
    case kStageSetns:
      return "enter its network namespace";
    case kStageUnshareMounts:
      return "unshare its mount namespace";
    case kStageSlaveMounts:
      return "make its mounts slaves";
    case kStageSysfs:
      return "mount sysfs on /sys";
    case kStageBpffs:
      return "bind the bpffs on /sys/fs/bpf";
    case kStageStdio:
      return "set up stdin, stdout and stderr";
    case kStageExec:
      return "exec";
  }
  return "start";
}

// Everything a child needs, made before fork: the test process has threads,
// and after fork a child may call only async-signal-safe functions, so it
// calls nothing but system calls.
struct ChildPlan {
  std::vector<std::string> argv_strings;
  std::vector<std::string> env_strings;
  std::vector<char*> argv;
  std::vector<char*> envp;
  int netns_fd = -1;
  bool host_view = false;
  int stdio[3] = {-1, -1, -1};
};

// "/proc/self/fd/N" without snprintf (not async-signal-safe).
void FdPath(int fd, char (&out)[32]) {
  static constexpr char kPrefix[] = "/proc/self/fd/";
  std::memcpy(out, kPrefix, sizeof(kPrefix) - 1);
  char digits[12];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd > 0 && n < 11);
  size_t at = sizeof(kPrefix) - 1;
  while (n > 0) out[at++] = digits[--n];
  out[at] = '\0';
}

[[noreturn]] void RunChild(const ChildPlan& plan, pid_t parent, int report_fd) {
  auto fail = [&](int stage) {
    const int msg[2] = {stage, errno};
    (void)!write(report_fd, msg, sizeof(msg));
    _exit(127);
  };
  // Dies with the test process, whatever kills it: nothing outlives the bed.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  setpgid(0, 0);  // its own group, so a timed-out command goes with its children
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);

  if (plan.netns_fd >= 0 && setns(plan.netns_fd, CLONE_NEWNET) != 0) fail(kStageSetns);
  if (plan.host_view) {
    if (unshare(CLONE_NEWNS) != 0) fail(kStageUnshareMounts);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) fail(kStageSlaveMounts);
    // The test's bpffs, reached through a descriptor once a new sysfs hides it.
    const int bpffs = open("/sys/fs/bpf", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
      fail(kStageSysfs);
    }
    if (bpffs >= 0) {
      char path[32];
      FdPath(bpffs, path);
      if (mount(path, "/sys/fs/bpf", nullptr, MS_BIND, nullptr) != 0) fail(kStageBpffs);
      close(bpffs);
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (plan.stdio[i] < 0) continue;
    if (plan.stdio[i] == i) {
      if (fcntl(i, F_SETFD, 0) != 0) fail(kStageStdio);
    } else if (dup2(plan.stdio[i], i) < 0) {
      fail(kStageStdio);
    }
  }
  execve(plan.argv[0], plan.argv.data(), plan.envp.empty() ? environ : plan.envp.data());
  fail(kStageExec);
  _exit(127);
}

// Forks and execs argv with stdin, stdout and stderr on the given descriptors;
// the PID once exec succeeded.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options,
                            int in, int out, int err) {
  if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("no program to run");
  ChildPlan plan;
  plan.argv_strings = argv;
  plan.env_strings = options.env;
  for (std::string& a : plan.argv_strings) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  if (!plan.env_strings.empty()) {
    for (std::string& e : plan.env_strings) plan.envp.push_back(e.data());
    plan.envp.push_back(nullptr);
  }
  plan.host_view = options.host_view;
  plan.stdio[0] = in;
  plan.stdio[1] = out;
  plan.stdio[2] = err;
  if (options.netns != nullptr) {
    plan.netns_fd = open(options.netns->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (plan.netns_fd < 0) return Errno(errno, absl::StrCat("open ", options.netns->path()));
  }
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    const int e = errno;
    if (plan.netns_fd >= 0) close(plan.netns_fd);
    return Errno(e, "pipe2");
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    close(report[0]);
    RunChild(plan, parent, report[1]);
  }
  const int fork_errno = errno;
  close(report[1]);
  if (plan.netns_fd >= 0) close(plan.netns_fd);
  if (pid < 0) {
    close(report[0]);
    return Errno(fork_errno, "fork");
  }
  int msg[2];
  ssize_t n;
  do {
    n = read(report[0], msg, sizeof(msg));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof(msg))) {
    waitpid(pid, nullptr, 0);
    return Errno(msg[1], absl::StrCat(argv[0], ": cannot ", StageName(msg[0])));
  }
  return pid;
}

}  // namespace

// --- EnterTestNamespaces -------------------------------------------------------

absl::Status EnterTestNamespaces() {
  if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
    return Errno(errno, "unshare(CLONE_NEWNET | CLONE_NEWNS) (the e2e tests need root)");
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return Errno(errno, "make / private");
  }
  // Pinned BPF objects of this run only, gone with the mount namespace.
  if (mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0) {
    return Errno(errno, "mount a bpffs on /sys/fs/bpf");
  }
  // Every file the bed makes (netns mounts, sockets, databases, logs) lives
  // here and vanishes with the process. Shared, so that the agents' own mount
  // namespaces (slaves of this one) see pod namespaces mounted later.
  if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0) {
    return Errno(errno, "mount a tmpfs on /tmp");
  }
  if (mount(nullptr, "/tmp", nullptr, MS_SHARED, nullptr) != 0) {
    return Errno(errno, "make /tmp shared");
  }
  // libcni caches results under /var/lib/cni, a path it does not let a
  // client change.
  std::error_code ec;
  std::filesystem::create_directories("/var/lib/cni", ec);
  if (mount("tmpfs", "/var/lib/cni", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") != 0) {
    return Errno(errno, "mount a tmpfs on /var/lib/cni");
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno(errno, "socket");
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
  int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP;
    rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  const int err = errno;
  close(fd);
  if (rc != 0) return Errno(err, "bring lo up");
  return absl::OkStatus();
}

// --- ChildProcess ----------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const SpawnOptions& options,
    const std::filesystem::path& log) {
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Errno(errno, absl::StrCat("open ", log.string()));
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  absl::StatusOr<pid_t> pid = Spawn(argv, options, null_fd, log_fd, log_fd);
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  if (!pid.ok()) return pid.status();
  return std::unique_ptr<ChildProcess>(new ChildProcess(*pid, log));
}

bool ChildProcess::Running() {
  if (status_.has_value()) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = status;
    return false;
  }
  return true;
}

std::string ChildProcess::Describe() {
  if (Running()) return "running";
  return DescribeWaitStatus(*status_);
}

int ChildProcess::Stop(int sig) {
  if (!Running()) return *status_;
  kill(pid_, sig);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  if (Running()) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    status_ = status;
  }
  return *status_;
}

std::string ChildProcess::LogTail(size_t lines) const { return Tail(ReadFile(log_), lines); }

// --- RunCommand ------------------------------------------------------------------

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const SpawnOptions& options, const std::string& input,
                                         std::chrono::milliseconds timeout) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return Errno(errno, "pipe2");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return Errno(errno, "pipe2");
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    return Errno(errno, "pipe2");
  }
  absl::StatusOr<pid_t> pid = Spawn(argv, options, in[0], out[1], err[1]);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (!pid.ok()) {
    for (int fd : {in[1], out[0], err[0]}) close(fd);
    return pid.status();
  }
  for (int fd : {in[1], out[0], err[0]}) fcntl(fd, F_SETFL, O_NONBLOCK);

  CommandResult result;
  size_t written = 0;
  int in_fd = in[1];
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  int out_fd = out[0];
  int err_fd = err[0];
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  while (out_fd >= 0 || err_fd >= 0) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[3] = {{in_fd, POLLOUT, 0}, {out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    if (poll(fds, 3, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    if (in_fd >= 0 && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = write(in_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN) written = input.size();
      if (written == input.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
    char buf[4096];
    for (int i : {1, 2}) {
      int& fd = i == 1 ? out_fd : err_fd;
      if (fd < 0 || !(fds[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 1 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EAGAIN) {
        close(fd);
        fd = -1;
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) close(fd);
  }
  if (timed_out) {
    kill(-*pid, SIGKILL);
    kill(*pid, SIGKILL);
  }
  int status = 0;
  waitpid(*pid, &status, 0);
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(absl::StrJoin(argv, " "), ": still running after ", timeout.count(),
                     " ms; stdout: ", result.out, " stderr: ", result.err));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

absl::Status Ip(const TestNetns* netns, const std::vector<std::string>& commands) {
  absl::StatusOr<CommandResult> r = RunCommand({IpProgram(), "-batch", "-"}, {.netns = netns},
                                               absl::StrJoin(commands, "\n") + "\n");
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(absl::StrCat("ip -batch in ", netns ? netns->path() : "the underlay",
                                            " failed (", r->exit_code, "): ", r->err,
                                            " commands: ", absl::StrJoin(commands, "; ")));
  }
  return absl::OkStatus();
}

// --- Controller ------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Controller>> Controller::Start(const std::filesystem::path& dir,
                                                              const std::filesystem::path& log,
                                                              const std::string& host) {
  const std::filesystem::path port_file = dir / "controller.port";
  std::filesystem::remove(port_file);
  auto c = std::make_unique<Controller>();
  absl::StatusOr<std::unique_ptr<ChildProcess>> p = ChildProcess::Start(
      {BinaryPath("ATOLL_CONTROLLER"), "--listen=" + host + ":0",
       "--port_file=" + port_file.string(), "--db=" + (dir / "controller.db").string()},
      {}, log);
  if (!p.ok()) return p.status();
  c->process_ = *std::move(p);
  int port = 0;
  WaitFor([&] {
    if (!c->process_->Running()) return true;
    std::ifstream(port_file) >> port;
    return port != 0;
  });
  if (port == 0) {
    return absl::UnavailableError(absl::StrCat("atoll-controller did not listen on ", host,
                                               " within 20 s (", c->process_->Describe(),
                                               "); its log:\n", c->process_->LogTail()));
  }
  c->address_ = absl::StrCat(host, ":", port);
  c->admin_ =
      api::Admin::NewStub(grpc::CreateChannel(c->address_, grpc::InsecureChannelCredentials()));
  return c;
}

api::StatusResponse Controller::Status() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  api::StatusResponse resp;
  admin_->Status(&ctx, api::StatusRequest(), &resp);
  return resp;
}

bool Controller::AllAcked(const std::vector<std::string>& nodes) {
  const api::StatusResponse s = Status();
  size_t acked = 0;
  for (const std::string& n : nodes) {
    for (const api::AgentStatus& a : s.agents()) {
      if (a.node() == n && a.connected() && a.acked_version() == s.version()) {
        ++acked;
        break;
      }
    }
  }
  return s.version() != 0 && acked == nodes.size();
}

absl::StatusOr<api::Resource> Controller::Get(api::Kind kind, const std::string& ns,
                                              const std::string& name) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  api::ResourceKey key;
  key.set_kind(kind);
  key.set_namespace_(ns);
  key.set_name(name);
  api::Resource r;
  ATL_RETURN_IF_ERROR(
      api::FromGrpcStatus(admin_->Get(&ctx, key, &r), absl::StrCat("Get ", ns, "/", name, ": ")));
  return r;
}

// --- Agent -----------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(const TestNetns& netns,
                                                    std::vector<std::string> argv,
                                                    const std::filesystem::path& socket,
                                                    const std::filesystem::path& log) {
  auto agent = std::make_unique<Agent>();
  absl::StatusOr<std::unique_ptr<ChildProcess>> p =
      ChildProcess::Start(argv, {.netns = &netns, .host_view = true}, log);
  if (!p.ok()) return p.status();
  agent->process_ = *std::move(p);
  // Reconnecting within milliseconds, as tests/processes.h's AgentProcess.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2000);
  agent->debug_ = api::AgentDebug::NewStub(grpc::CreateCustomChannel(
      "unix:" + socket.string(), grpc::InsecureChannelCredentials(), args));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!agent->process_->Running()) break;
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(250));
    api::AgentStateResponse resp;
    if (agent->debug_->State(&ctx, api::AgentStateRequest(), &resp).ok()) return agent;
  }
  return absl::UnavailableError(absl::StrCat(
      "atoll-agent (", absl::StrJoin(argv, " "), ") does not serve on ", socket.string(), ": ",
      agent->process_->Describe(), "; its log:\n", agent->process_->LogTail()));
}

absl::StatusOr<api::AgentStateResponse> Agent::State() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  api::AgentStateResponse resp;
  ATL_RETURN_IF_ERROR(
      api::FromGrpcStatus(debug_->State(&ctx, api::AgentStateRequest(), &resp), "agent State: "));
  return resp;
}

std::string Pod::Describe() const {
  return absl::StrCat("pod ", ns, "/", name, " (", ip.empty() ? "no address" : ip, " on ",
                      host ? host->name : "?", ")");
}

// --- Manifests -------------------------------------------------------------------

namespace {

std::string Bool(bool b) { return b ? "true" : "false"; }

std::string PortsYaml(const std::vector<PortSpec>& ports, bool service) {
  std::string out = service ? "  ports:\n" : "ports:\n";
  const std::string indent = service ? "  " : "";
  for (const PortSpec& p : ports) {
    absl::StrAppend(&out, indent, "- name: ", p.name, "\n", indent, "  protocol: ", p.protocol,
                    "\n", indent, "  port: ", p.port, "\n");
    if (service && p.target_port != 0)
      absl::StrAppend(&out, indent, "  targetPort: ", p.target_port, "\n");
    if (service && p.node_port != 0)
      absl::StrAppend(&out, indent, "  nodePort: ", p.node_port, "\n");
  }
  return out;
}

}  // namespace

std::string Manifest(const NamespaceSpec& spec) {
  std::string out =
      absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ", spec.name, "\n");
  if (!spec.isolation.empty() || !spec.admitted.empty() || !spec.egress_ip.empty()) {
    absl::StrAppend(&out, "  annotations:\n");
    if (!spec.isolation.empty()) {
      absl::StrAppend(&out, "    atoll.io/isolation: ", spec.isolation, "\n");
    }
    if (!spec.admitted.empty()) {
      absl::StrAppend(&out, "    atoll.io/admitted-namespaces: \"",
                      absl::StrJoin(spec.admitted, ","), "\"\n");
    }
    if (!spec.egress_ip.empty()) {
      absl::StrAppend(&out, "    atoll.io/egress-ip: \"", spec.egress_ip, "\"\n");
    }
  }
  return out;
}

std::string Manifest(const ServiceSpec& spec) {
  std::string out = absl::StrCat("apiVersion: v1\nkind: Service\nmetadata:\n  name: ", spec.name,
                                 "\n  namespace: ", spec.ns, "\nspec:\n  type: ", spec.type, "\n");
  absl::StrAppend(&out, PortsYaml(spec.ports, /*service=*/true));
  if (!spec.session_affinity.empty()) {
    absl::StrAppend(&out, "  sessionAffinity: ", spec.session_affinity, "\n");
  }
  if (!spec.external_traffic_policy.empty()) {
    absl::StrAppend(&out, "  externalTrafficPolicy: ", spec.external_traffic_policy, "\n");
  }
  if (!spec.internal_traffic_policy.empty()) {
    absl::StrAppend(&out, "  internalTrafficPolicy: ", spec.internal_traffic_policy, "\n");
  }
  if (!spec.external_ips.empty()) {
    absl::StrAppend(&out, "  externalIPs: [", absl::StrJoin(spec.external_ips, ", "), "]\n");
  }
  return out;
}

std::string Manifest(const EndpointSliceSpec& spec) {
  std::string out = absl::StrCat(
      "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ", spec.name,
      "\n  namespace: ", spec.ns, "\n  labels:\n    kubernetes.io/service-name: ", spec.service,
      "\naddressType: IPv4\n");
  if (spec.endpoints.empty()) {
    absl::StrAppend(&out, "endpoints: []\n");
  } else {
    absl::StrAppend(&out, "endpoints:\n");
  }
  for (const EndpointSpec& e : spec.endpoints) {
    absl::StrAppend(&out, "- addresses: [\"", e.address, "\"]\n  nodeName: ", e.node, "\n");
    std::vector<std::string> conditions;
    if (e.ready) conditions.push_back("ready: " + Bool(*e.ready));
    if (e.serving) conditions.push_back("serving: " + Bool(*e.serving));
    if (e.terminating) conditions.push_back("terminating: " + Bool(*e.terminating));
    if (!conditions.empty()) {
      absl::StrAppend(&out, "  conditions: {", absl::StrJoin(conditions, ", "), "}\n");
    }
  }
  absl::StrAppend(&out, PortsYaml(spec.ports, /*service=*/false));
  return out;
}

// --- TestBed ---------------------------------------------------------------------

TestBedOptions TestBedOptions::FromEnvironment() {
  TestBedOptions o;
  if (const char* d = std::getenv("ATOLL_E2E_DATAPLANE"); d != nullptr && *d != '\0') {
    o.dataplane = d;
  }
  for (auto [env, args] : {std::pair{"ATOLL_E2E_AGENT_ARGS", &o.agent_args},
                           std::pair{"ATOLL_E2E_DPDKD_ARGS", &o.dpdkd_args}}) {
    if (const char* a = std::getenv(env); a != nullptr) {
      for (absl::string_view arg : absl::StrSplit(a, ' ', absl::SkipEmpty())) {
        args->emplace_back(arg);
      }
    }
  }
  if (const char* l = std::getenv("ATOLL_E2E_LOG_DIR"); l != nullptr && *l != '\0') {
    o.log_dir = l;
  }
  return o;
}

absl::StatusOr<std::unique_ptr<TestBed>> TestBed::Create(TestBedOptions options) {
  std::unique_ptr<TestBed> bed(new TestBed(std::move(options)));
  ATL_RETURN_IF_ERROR(bed->Build());
  return bed;
}

std::vector<std::string> TestBed::node_names() const {
  std::vector<std::string> names;
  for (const auto& h : hosts_) names.push_back(h->name);
  return names;
}

absl::Status TestBed::BuildCnidrive() {
  // Beside the repository, as tests/realclients.sh finds run.sh.
  std::string source = BinaryPath("ATOLL_CNIDRIVE_GO");
  if (source.empty() || !std::filesystem::exists(source)) {
    return absl::NotFoundError(absl::StrCat(
        "no cnidrive.go at \"", source,
        "\" (ATOLL_CNIDRIVE_GO; ../shared/realclients/cnidrive.go beside the repository)"));
  }
  cnidrive_ = dir_ / "bin" / "cnidrive";
  std::filesystem::create_directories(cnidrive_.parent_path());
  const std::string go = FindProgram({"/usr/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"});
  // Offline, in GOPATH mode against Debian's libcni, exactly as
  // ../shared/realclients/run.sh's build_cnidrive.
  absl::StatusOr<CommandResult> r = RunCommand(
      {go, "build", "-o", cnidrive_.string(), source},
      {.env = {"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + dir_.string(), "GO111MODULE=off",
               "GOPATH=/usr/share/gocode", "GOPROXY=off", "GOFLAGS=", "GOENV=off", "CGO_ENABLED=0",
               "GOCACHE=" + (dir_ / "gocache").string(), "GOTMPDIR=" + dir_.string()}},
      "", std::chrono::seconds(300));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("go build of ", source, " failed (", r->exit_code,
                     "; needs golang-go and golang-github-appc-cni-dev): ", r->out, r->err));
  }
  return absl::OkStatus();
}

absl::Status TestBed::Build() {
  std::vector<const char*> binaries = {"ATOLL_CONTROLLER", "ATOLL_AGENT", "ATOLL_CNI", "ATOLLCTL"};
  if (options_.dataplane == "dpdk") binaries.push_back("ATOLL_DPDKD");
  for (const char* env : binaries) {
    if (BinaryPath(env).empty() || access(BinaryPath(env).c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat("$", env, " (\"", BinaryPath(env),
                                                        "\") is not an executable; ",
                                                        "meson test sets it to the built binary"));
    }
  }
  char dir[] = "/tmp/atoll-e2e-XXXXXX";
  if (mkdtemp(dir) == nullptr) return Errno(errno, "mkdtemp /tmp/atoll-e2e-XXXXXX");
  dir_ = dir;
  if (options_.log_dir.empty()) options_.log_dir = dir_;
  std::filesystem::create_directories(options_.log_dir);
  ATL_RETURN_IF_ERROR(BuildCnidrive());

  // The underlay: a bridge in the test's own namespace.
  ATL_RETURN_IF_ERROR(
      Ip(nullptr, {"link set lo up", absl::StrCat("link add ", kUnderlayBridge, " type bridge"),
                   absl::StrCat("addr add ", kUnderlayAddress, "/20 dev ", kUnderlayBridge),
                   absl::StrCat("link set ", kUnderlayBridge, " up")}));
  // The underlay stands for a switch: where br_netfilter is loaded (container
  // runtimes load it), bridged frames would go through this namespace's
  // netfilter hooks too, a cost no real underlay adds to a packet's path.
  for (const char* family : {"iptables", "ip6tables", "arptables"}) {
    const std::string knob = absl::StrCat("/proc/sys/net/bridge/bridge-nf-call-", family);
    if (std::filesystem::exists(knob)) std::ofstream(knob) << "0\n";
  }
  // A namespace with eth0 on the bridge; MACs fixed so captures read easily.
  auto attach = [&](const std::string& name, const std::string& mac, const TestNetns& ns,
                    const std::string& cidr, const std::string& other_range) -> absl::Status {
    ATL_RETURN_IF_ERROR(
        Ip(nullptr, {absl::StrCat("link add ul-", name, " type veth peer name eth0 address ", mac,
                                  " netns ", ns.path()),
                     absl::StrCat("link set ul-", name, " master ", kUnderlayBridge, " up")}));
    return Ip(&ns, {"link set lo up", absl::StrCat("addr add ", cidr, " dev eth0"),
                    "link set eth0 up", absl::StrCat("route add ", other_range, " dev eth0")});
  };

  for (int i = 1; i <= options_.hosts; ++i) {
    auto h = std::make_unique<Host>();
    h->name = absl::StrCat("h", i);
    h->address = absl::StrCat("198.18.0.", 10 + i);
    absl::StatusOr<std::unique_ptr<TestNetns>> ns = TestNetns::Create();
    if (!ns.ok()) return ns.status();
    h->netns = *std::move(ns);
    ATL_RETURN_IF_ERROR(attach(h->name, absl::StrCat("02:a7:0e:00:00:", 10 + i), *h->netns,
                               h->address + "/20", "198.18.16.0/20"));
    absl::Status sysctl;
    ATL_RETURN_IF_ERROR(h->netns->Run([&] {
      std::ofstream f("/proc/sys/net/ipv4/ip_forward");
      f << "1\n";
      f.flush();
      if (!f) sysctl = absl::InternalError("cannot write /proc/sys/net/ipv4/ip_forward");
    }));
    ATL_RETURN_IF_ERROR(sysctl);
    hosts_.push_back(std::move(h));
  }
  {
    absl::StatusOr<std::unique_ptr<TestNetns>> ns = TestNetns::Create();
    if (!ns.ok()) return ns.status();
    ext_ = *std::move(ns);
    ATL_RETURN_IF_ERROR(attach("ext", "02:a7:0e:00:01:02", *ext_, absl::StrCat(kExtAddress, "/20"),
                               "198.18.0.0/20"));
  }
  if (options_.dataplane == "dpdk") {
    // A wire carries finished checksums; a veth carries half-done ones for
    // the receiver to finish, which AF_XDP, reading bytes, cannot. What sends
    // onto the underlay (the controller through the bridge, the external
    // client) finishes its own, as the agent has its pods do.
    ATL_RETURN_IF_ERROR(agent::TurnOffChecksumOffload(kUnderlayBridge));
    absl::Status ext;
    ATL_RETURN_IF_ERROR(ext_->Run([&] { ext = agent::TurnOffChecksumOffload("eth0"); }));
    ATL_RETURN_IF_ERROR(ext);
  }

  absl::StatusOr<std::unique_ptr<Controller>> controller =
      Controller::Start(dir_, options_.log_dir / "controller.log", kUnderlayAddress);
  if (!controller.ok()) return controller.status();
  controller_ = *std::move(controller);

  std::string nodes;
  for (const auto& h : hosts_) {
    absl::StrAppend(&nodes, "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: ", h->name,
                    "\nstatus:\n  addresses:\n  - type: InternalIP\n    address: ", h->address,
                    "\n");
  }
  ATL_RETURN_IF_ERROR(Atollctl("apply", nodes));

  for (auto& h : hosts_) {
    h->socket = dir_ / (h->name + ".sock");
    h->cni_conf_dir = dir_ / h->name / "net.d";
    std::filesystem::create_directories(h->cni_conf_dir);
    std::ofstream(h->cni_conf_dir / "10-atoll.conflist")
        << R"({"cniVersion":"1.0.0","name":"atoll","plugins":[{"type":"atoll-cni","socket":")"
        << h->socket.string() << R"("}]})"
        << "\n";
    h->agent_argv = {BinaryPath("ATOLL_AGENT"),
                     "--node=" + h->name,
                     "--controller=" + controller_->address(),
                     "--socket=" + h->socket.string(),
                     "--lease_db=" + (dir_ / (h->name + ".db")).string(),
                     "--mtu=1400",
                     "--dataplane=" + options_.dataplane};
    if (options_.dataplane == "ebpf") {
      h->bpf_pin_dir = "/sys/fs/bpf/atoll-" + h->name;
      h->agent_argv.push_back("--uplink=eth0");
      h->agent_argv.push_back("--bpf_pin_dir=" + h->bpf_pin_dir.string());
    }
    if (options_.dataplane == "dpdk") {
      h->dpdkd_socket = dir_ / (h->name + "-dpdkd.sock");
      ATL_RETURN_IF_ERROR(StartDpdkd(*h));
      h->agent_argv.push_back("--dpdk_socket=" + h->dpdkd_socket.string());
    }
    h->agent_argv.insert(h->agent_argv.end(), options_.agent_args.begin(),
                         options_.agent_args.end());
    absl::StatusOr<std::unique_ptr<Agent>> agent =
        Agent::Start(*h->netns, h->agent_argv, h->socket, options_.log_dir / (h->name + ".log"));
    if (!agent.ok()) return agent.status();
    h->agent = *std::move(agent);
  }
  return WaitAcked();
}

TestBed::~TestBed() {
  if (absl::Status s = DeleteAllPods(); !s.ok()) {
    std::fprintf(stderr, "test bed teardown: %s\n", s.ToString().c_str());
  }
  for (auto& h : hosts_) {
    if (h->agent) h->agent->Stop(SIGTERM);
    h->agent.reset();
    if (h->dpdkd) h->dpdkd->Stop(SIGTERM);  // its workers, ports and TAP
    h->dpdkd.reset();
    std::error_code ec;
    if (!h->bpf_pin_dir.empty()) std::filesystem::remove_all(h->bpf_pin_dir, ec);
  }
  controller_.reset();  // SIGKILL by its PID
  hosts_.clear();
  ext_.reset();
  (void)Ip(nullptr, {absl::StrCat("link del ", kUnderlayBridge)});
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

absl::Status TestBed::Atollctl(const std::string& verb, const std::string& manifest) {
  const std::filesystem::path file =
      dir_ / "manifests" / absl::StrCat(++manifests_, "-", verb, ".yaml");
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << manifest;
  absl::StatusOr<CommandResult> r =
      RunCommand({BinaryPath("ATOLLCTL"), "--controller=" + controller_->address(), verb, "-f",
                  file.string()});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InvalidArgumentError(absl::StrCat("atollctl ", verb, " -f failed (", r->exit_code,
                                                   "): ", r->err, r->out, "\nthe manifest:\n",
                                                   manifest));
  }
  return absl::OkStatus();
}

absl::Status TestBed::Apply(const std::string& manifest) {
  ATL_RETURN_IF_ERROR(Atollctl("apply", manifest));
  return WaitAcked();
}

absl::Status TestBed::Delete(const std::string& manifest) {
  ATL_RETURN_IF_ERROR(Atollctl("delete", manifest));
  return WaitAcked();
}

absl::Status TestBed::WaitAcked(std::chrono::milliseconds timeout) {
  const std::vector<std::string> nodes = node_names();
  if (WaitFor([&] { return controller_->AllAcked(nodes); }, timeout)) return absl::OkStatus();
  const api::StatusResponse s = controller_->Status();
  std::string why =
      absl::StrCat("agents did not ack version ", s.version(), " within ", timeout.count(), " ms:");
  for (const auto& h : hosts_) {
    absl::StrAppend(&why, "\n  ", h->name, ": ");
    bool known = false;
    for (const api::AgentStatus& a : s.agents()) {
      if (a.node() != h->name) continue;
      known = true;
      absl::StrAppend(&why, a.connected() ? "connected" : "disconnected", ", acked ",
                      a.acked_version(), a.last_error().empty() ? "" : ", NACK: ", a.last_error());
    }
    if (!known) absl::StrAppend(&why, "never connected");
    if (h->agent && !h->agent->Running()) {
      absl::StrAppend(&why, "; the agent is not running, its log:\n", h->agent->LogTail());
    }
  }
  return absl::DeadlineExceededError(why);
}

absl::StatusOr<api::Service> TestBed::GetService(const std::string& ns, const std::string& name) {
  absl::StatusOr<api::Resource> r = controller_->Get(api::KIND_SERVICE, ns, name);
  if (!r.ok()) return r.status();
  return r->service();
}

absl::StatusOr<std::vector<std::string>> TestBed::SegmentCidrs(const std::string& ns) {
  absl::StatusOr<api::Resource> r = controller_->Get(api::KIND_SEGMENT, "", ns);
  if (!r.ok()) return r.status();
  return std::vector<std::string>(r->segment().cidrs().begin(), r->segment().cidrs().end());
}

absl::StatusOr<CommandResult> TestBed::Cnidrive(const Pod& pod, const std::string& op) {
  const std::string cni_dir = std::filesystem::path(BinaryPath("ATOLL_CNI")).parent_path();
  return RunCommand(
      {cnidrive_.string(), "-id", pod.container_id, "-args",
       absl::StrCat("IgnoreUnknown=1;K8S_POD_NAMESPACE=", pod.ns, ";K8S_POD_NAME=", pod.name), op,
       "atoll", pod.netns->path()},
      {.netns = pod.host->netns.get(),
       .env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
               "NETCONFPATH=" + pod.host->cni_conf_dir.string(), "CNI_PATH=" + cni_dir}});
}

absl::StatusOr<Pod*> TestBed::AddPod(const std::string& ns, const std::string& name, Host& host) {
  if (pods_.count(name) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("a pod named \"", name, "\" exists already"));
  }
  auto pod = std::make_unique<Pod>();
  pod->name = name;
  pod->ns = ns;
  pod->host = &host;
  pod->container_id = "e2e-" + name;
  absl::StatusOr<std::unique_ptr<TestNetns>> netns = TestNetns::Create();
  if (!netns.ok()) return netns.status();
  pod->netns = *std::move(netns);

  // Apply waits for every agent's ack, so the agent knows the namespace.
  absl::StatusOr<CommandResult> add = Cnidrive(*pod, "add");
  if (!add.ok()) return add.status();
  if (add->exit_code != 0) {
    (void)Cnidrive(*pod, "del");  // gives back whatever the agent took
    return absl::InternalError(absl::StrCat("cnidrive add of pod ", ns, "/", name, " on ",
                                            host.name, " failed (", add->exit_code, "): ", add->err,
                                            add->out));
  }
  Pod* const added = pod.get();
  pods_[name] = std::move(pod);  // deleted with the others from here on
  Json result = Json::parse(add->out, nullptr, false);
  if (!result.is_object() || !result["ips"].is_array() || result["ips"].empty()) {
    return absl::InternalError(absl::StrCat("cnidrive add of pod ", ns, "/", name,
                                            ": no address in the result ", add->out));
  }
  const std::string cidr = result["ips"][0].value("address", "");
  added->ip = cidr.substr(0, cidr.find('/'));
  added->gateway = result["ips"][0].value("gateway", "");
  for (const Json& i : result["interfaces"]) {
    if (i.contains("sandbox")) {
      added->mac = i.value("mac", "");
    } else {
      added->host_ifname = i.value("name", "");
    }
  }

  // The address must come from the namespace's own segment.
  absl::StatusOr<std::vector<std::string>> cidrs = SegmentCidrs(ns);
  if (!cidrs.ok()) return cidrs.status();
  const std::optional<lb::IpAddr> addr = lb::IpAddr::Parse(added->ip);
  for (const std::string& c : *cidrs) {
    const std::optional<lb::IpPrefix> p = lb::IpPrefix::Parse(c);
    if (addr && p && p->Contains(*addr)) added->prefix = c;
  }
  if (added->prefix.empty()) {
    return absl::InternalError(absl::StrCat(added->Describe(),
                                            " got an address outside its namespace's segment (",
                                            absl::StrJoin(*cidrs, ", "), "): ", add->out));
  }
  return added;
}

Pod* TestBed::pod(const std::string& name) {
  auto it = pods_.find(name);
  return it == pods_.end() ? nullptr : it->second.get();
}

absl::Status TestBed::DeletePod(const std::string& name) {
  auto it = pods_.find(name);
  if (it == pods_.end()) return absl::NotFoundError(absl::StrCat("no pod \"", name, "\""));
  std::unique_ptr<Pod> pod = std::move(it->second);
  pods_.erase(it);
  absl::StatusOr<CommandResult> del = Cnidrive(*pod, "del");
  if (!del.ok()) return del.status();
  if (del->exit_code != 0) {
    return absl::InternalError(absl::StrCat("cnidrive del of ", pod->Describe(), " failed (",
                                            del->exit_code, "): ", del->err, del->out));
  }
  return absl::OkStatus();
}

absl::Status TestBed::DeleteAllPods() {
  absl::Status first;
  while (!pods_.empty()) {
    absl::Status s = DeletePod(pods_.begin()->first);
    if (first.ok()) first = s;
  }
  return first;
}

absl::Status TestBed::StartDpdkd(Host& host) {
  const std::filesystem::path& socket = host.dpdkd_socket;
  std::vector<std::string> argv = {BinaryPath("ATOLL_DPDKD"), "--socket=" + socket.string(),
                                   "--uplink=eth0", "--file_prefix=atoll-" + host.name};
  argv.insert(argv.end(), options_.dpdkd_args.begin(), options_.dpdkd_args.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> p =
      ChildProcess::Start(argv, {.netns = host.netns.get(), .host_view = true},
                          options_.log_dir / (host.name + "-dpdkd.log"));
  if (!p.ok()) return p.status();
  host.dpdkd = *std::move(p);
  // Reconnecting within milliseconds: the socket may be a killed one's until
  // the new process replaces it.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  auto stub = dataplane::v1::Dataplane::NewStub(grpc::CreateCustomChannel(
      "unix:" + socket.string(), grpc::InsecureChannelCredentials(), args));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && host.dpdkd->Running()) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(250));
    dataplane::v1::DescribeResponse described;
    if (stub->Describe(&ctx, dataplane::v1::DescribeRequest(), &described).ok()) {
      return absl::OkStatus();
    }
  }
  return absl::UnavailableError(absl::StrCat(
      "atoll-dpdkd (", absl::StrJoin(argv, " "), ") does not serve on ", socket.string(), ": ",
      host.dpdkd->Describe(), "; its log:\n", host.dpdkd->LogTail()));
}

absl::Status TestBed::RestartDpdkd(Host& host) {
  if (!host.dpdkd) return absl::FailedPreconditionError(host.name + " has no atoll-dpdkd");
  host.dpdkd->Stop(SIGKILL);
  ATL_RETURN_IF_ERROR(StartDpdkd(host));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (host.agent && host.agent->Running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (host.agent && host.agent->Describe() != "exited with status 3") {
    return absl::FailedPreconditionError(absl::StrCat(
        "the agent of ", host.name, " on a restarted atoll-dpdkd ", host.agent->Describe(),
        " (not 3, the status it exits with then); its log:\n", host.agent->LogTail()));
  }
  return StartAgent(host);
}

absl::Status TestBed::StopAgent(Host& host, int sig) {
  if (host.agent) host.agent->Stop(sig);
  return absl::OkStatus();
}

absl::Status TestBed::StartAgent(Host& host) {
  host.agent.reset();
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(
      *host.netns, host.agent_argv, host.socket, options_.log_dir / (host.name + ".log"));
  if (!agent.ok()) return agent.status();
  host.agent = *std::move(agent);
  return WaitAcked();
}

absl::Status TestBed::RestartAgent(Host& host, int sig) {
  ATL_RETURN_IF_ERROR(StopAgent(host, sig));
  return StartAgent(host);
}

std::string TestBed::Logs(size_t lines) {
  std::string out = absl::StrCat("--- controller (", controller_->address(), ") log tail:\n",
                                 controller_->LogTail(lines), "\n");
  for (const auto& h : hosts_) {
    if (!h->agent) continue;
    absl::StrAppend(&out, "--- agent of ", h->name, " (pid ", h->agent->pid(), ", ",
                    h->agent->Running() ? "running" : "exited", ") log tail:\n",
                    h->agent->LogTail(lines), "\n");
    if (h->dpdkd) {
      absl::StrAppend(&out, "--- atoll-dpdkd of ", h->name, " (pid ", h->dpdkd->pid(), ", ",
                      h->dpdkd->Describe(), ") log tail:\n", h->dpdkd->LogTail(lines), "\n");
    }
    // Where its dataplane lost packets, if anywhere.
    if (absl::StatusOr<api::AgentStateResponse> state = h->agent->State(); state.ok()) {
      std::vector<std::string> counts;
      for (const api::Counter& c : state->packets()) {
        counts.push_back(absl::StrCat(c.name(), " ", c.value()));
      }
      for (const api::Counter& c : state->drops()) {
        if (c.value() != 0) counts.push_back(absl::StrCat("dropped ", c.name(), " ", c.value()));
      }
      absl::StrAppend(&out, "--- dataplane of ", h->name, ": ", absl::StrJoin(counts, ", "), "\n");
    }
  }
  return out;
}

std::string TestBed::Inventory() {
  // The namespace files live in the test's mount namespace (its /tmp).
  const pid_t self = getpid();
  std::string out = absl::StrCat("test bed (test pid ", self, ", files in ", dir_.string(),
                                 ", logs in ", options_.log_dir.string(), "):\n");
  absl::StrAppend(&out, "  underlay ", kUnderlayBridge, " ", kUnderlayAddress, ": nsenter -t ",
                  self, " -n\n");
  for (const auto& h : hosts_) {
    absl::StrAppend(&out, "  ", h->name, " ", h->address, ", agent pid ",
                    h->agent ? h->agent->pid() : 0,
                    h->dpdkd ? absl::StrCat(", atoll-dpdkd pid ", h->dpdkd->pid()) : "",
                    ": nsenter -t ", self, " -m nsenter --net=", h->netns->path(), "\n");
  }
  if (ext_) {
    absl::StrAppend(&out, "  ext ", kExtAddress, ": nsenter -t ", self,
                    " -m nsenter --net=", ext_->path(), "\n");
  }
  for (const auto& [name, pod] : pods_) {
    absl::StrAppend(&out, "  ", pod->Describe(), " mac ", pod->mac, " host side ", pod->host_ifname,
                    ": nsenter -t ", self, " -m nsenter --net=", pod->netns->path(), "\n");
  }
  return out;
}

}  // namespace atl::testing
