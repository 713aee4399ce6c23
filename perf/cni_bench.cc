// cni-bench: ADD and DEL latency of one CNI plugin, driven as a container
// runtime drives it. For each of --pods pods it makes a network namespace
// (untimed), then runs the plugin binary with CNI_COMMAND=ADD, the pod's
// CNI_NETNS and the network configuration on stdin, --parallel at a time; then
// DEL for every pod in the same way, with the ADD result as "prevResult" from
// cniVersion 0.4.0 on (CNI spec, "Section 3: Execution of Network
// Configurations"), as libcni does.
//
// A call is timed from posix_spawn to the plugin's exit (steady clock). Every
// call must exit 0, and every ADD must print a result with an address, no
// address twice; the interface must hold that address after ADD and be gone
// after DEL. Anything else stops the benchmark with the plugin's output: a
// benchmark that measures errors measures nothing. What was added is deleted
// and the namespaces removed on every way out, Ctrl-C included.
//
// The driver waits (poll, waitpid) and never spins, so its threads take no CPU
// from the plugins it times.
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
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
#include "nlohmann/json.hpp"
#include "tests/netns.h"

ABSL_FLAG(std::string, plugin, "", "the CNI plugin binary to run");
ABSL_FLAG(std::string, cni_path, "",
          "CNI_PATH: where the plugin finds its IPAM plugin (DIR[:DIR])");
ABSL_FLAG(std::string, conf, "", "network configuration file, given to the plugin on stdin as is");
ABSL_FLAG(int, pods, 200, "pods to add, then delete");
ABSL_FLAG(int, parallel, 1, "plugin calls in flight at once (1: one after another)");
ABSL_FLAG(std::string, label, "", "name of this run in the output (default: the plugin's name)");
ABSL_FLAG(bool, json, false, "print the results as one JSON line instead of a table");
ABSL_FLAG(std::string, pod_namespace, "bench", "K8S_POD_NAMESPACE in CNI_ARGS");
ABSL_FLAG(std::string, ifname, "eth0", "CNI_IFNAME");
ABSL_FLAG(int, timeout, 60,
          "seconds a plugin call may take before it is killed and counted a failure");

namespace atl::perf {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Set by the signal thread on SIGINT/SIGTERM/SIGHUP: no new plugin call starts.
std::atomic<bool> g_interrupted{false};

// What one plugin call did.
struct PluginRun {
  int status = 0;  // as waitpid returns it
  std::string out;
  std::string err;
  double ms = 0;
};

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

// Runs `path` with `env` and `input` on stdin, collects stdout and stderr, and
// times it from spawn to exit. An error means it could not be run or did not
// end within `timeout`; its exit status is for the caller to judge.
absl::StatusOr<PluginRun> RunPlugin(const std::string& path, const std::vector<std::string>& env,
                                    const std::string& input, std::chrono::seconds timeout) {
  // O_CLOEXEC: a child spawned by another thread must not inherit this child's
  // pipes, or our reads would wait for that other child's exit too.
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  if (pipe2(out, O_CLOEXEC) != 0) {
    const int e = errno;
    close(in[0]);
    close(in[1]);
    return absl::ErrnoToStatus(e, "pipe2");
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    const int e = errno;
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    return absl::ErrnoToStatus(e, "pipe2");
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The driver blocks the stop signals and ignores SIGPIPE; the plugin gets
  // neither. Its own process group keeps a terminal's Ctrl-C from killing it
  // halfway through a call: the driver lets calls in flight finish.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv = {const_cast<char*>(path.c_str()), nullptr};
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = 0;
  const Clock::time_point start = Clock::now();
  const int spawned = posix_spawn(&pid, path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (spawned != 0) {
    for (int fd : {in[1], out[0], err[0]}) close(fd);
    return absl::ErrnoToStatus(spawned, absl::StrCat("posix_spawn ", path));
  }

  PluginRun run;
  size_t written = 0;
  int in_fd = in[1];
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  int out_fd = out[0], err_fd = err[0];
  const Clock::time_point deadline = start + timeout;
  bool timed_out = false;
  while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
    pollfd fds[3];
    nfds_t n = 0;
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    const int ready = poll(fds, n, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        const ssize_t w = write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        // EPIPE: the plugin stopped reading; what it says about that is in its output.
        if (w < 0 && errno != EAGAIN && errno != EINTR) written = input.size();
        if (written == input.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[16384];
      const ssize_t r = read(fds[i].fd, buf, sizeof(buf));
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      std::string& sink = fds[i].fd == out_fd ? run.out : run.err;
      if (r > 0) {
        sink.append(buf, static_cast<size_t>(r));
        continue;
      }
      close(fds[i].fd);
      (fds[i].fd == out_fd ? out_fd : err_fd) = -1;
    }
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) close(fd);
  }
  // Our own child, by its PID.
  if (timed_out) kill(pid, SIGKILL);
  while (waitpid(pid, &run.status, 0) < 0 && errno == EINTR) {
  }
  run.ms = Ms(Clock::now() - start);
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(path, " did not end within ", timeout.count(),
                                                    " s; stdout: ", run.out,
                                                    "\nstderr: ", run.err));
  }
  return run;
}

// A CNI version "a.b.c" as a number that orders like it.
int VersionNumber(const std::string& v) {
  int parts[3] = {0, 0, 0};
  int i = 0;
  for (absl::string_view p : absl::StrSplit(v, '.')) {
    if (i < 3 && !absl::SimpleAtoi(p, &parts[i])) return -1;
    ++i;
  }
  return parts[0] * 1000000 + parts[1] * 1000 + parts[2];
}

// The first IPv4 or IPv6 address of an ADD result, without its prefix length:
// "ips" from 0.3.0 on, "ip4"/"ip6" before.
std::optional<std::string> ResultAddress(const Json& result) {
  auto strip = [](const std::string& cidr) { return cidr.substr(0, cidr.find('/')); };
  if (const auto ips = result.find("ips"); ips != result.end() && ips->is_array()) {
    for (const Json& ip : *ips) {
      if (ip.is_object() && ip.contains("address") && ip["address"].is_string())
        return strip(ip["address"].get<std::string>());
    }
  }
  for (const char* family : {"ip4", "ip6"}) {
    if (const auto ip = result.find(family); ip != result.end() && ip->is_object()) {
      if (ip->contains("ip") && (*ip)["ip"].is_string())
        return strip((*ip)["ip"].get<std::string>());
    }
  }
  return std::nullopt;
}

// The addresses on interface `ifname` of the calling thread's network namespace.
std::vector<std::string> InterfaceAddresses(const std::string& ifname, bool* exists) {
  *exists = if_nametoindex(ifname.c_str()) != 0;
  std::vector<std::string> addresses;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return addresses;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || ifname != a->ifa_name) continue;
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text,
                sizeof(text));
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, text,
                sizeof(text));
    } else {
      continue;
    }
    addresses.push_back(text);
  }
  freeifaddrs(list);
  return addresses;
}

struct Pod {
  std::string name;
  std::string container_id;
  std::unique_ptr<atl::testing::TestNetns> netns;
  std::string result;  // the ADD result, as printed
  std::string address;
  bool added = false;
};

struct Summary {
  size_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
  double wall_ms = 0;  // from the first call's start to the last call's end
};

// Nearest-rank percentile of sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

Summary Summarize(std::vector<double> ms, double wall_ms) {
  Summary s;
  std::sort(ms.begin(), ms.end());
  s.count = ms.size();
  s.wall_ms = wall_ms;
  if (ms.empty()) return s;
  s.p50 = Percentile(ms, 50);
  s.p90 = Percentile(ms, 90);
  s.p99 = Percentile(ms, 99);
  s.max = ms.back();
  double sum = 0;
  for (double v : ms) sum += v;
  s.mean = sum / static_cast<double>(ms.size());
  return s;
}

class Bench {
 public:
  absl::Status Init() {
    plugin_ = absl::GetFlag(FLAGS_plugin);
    if (plugin_.empty() || access(plugin_.c_str(), X_OK) != 0)
      return absl::InvalidArgumentError(
          absl::StrCat("--plugin: \"", plugin_, "\" is not an executable file"));
    const std::string conf_path = absl::GetFlag(FLAGS_conf);
    std::ifstream in(conf_path);
    if (!in)
      return absl::InvalidArgumentError(absl::StrCat("--conf: cannot read \"", conf_path, "\""));
    std::stringstream ss;
    ss << in.rdbuf();
    conf_text_ = ss.str();
    conf_ = Json::parse(conf_text_, nullptr, /*allow_exceptions=*/false);
    if (!conf_.is_object() || !conf_.contains("cniVersion") || !conf_["cniVersion"].is_string())
      return absl::InvalidArgumentError(absl::StrCat(
          "--conf: \"", conf_path, "\" is not a network configuration with a cniVersion"));
    const int version = VersionNumber(conf_["cniVersion"].get<std::string>());
    if (version < 0)
      return absl::InvalidArgumentError(absl::StrCat(
          "--conf: cniVersion \"", conf_["cniVersion"].get<std::string>(), "\" is not a.b.c"));
    prev_result_ = version >= VersionNumber("0.4.0");
    pods_ = absl::GetFlag(FLAGS_pods);
    parallel_ = absl::GetFlag(FLAGS_parallel);
    if (pods_ < 1) return absl::InvalidArgumentError(absl::StrCat("--pods: ", pods_, " < 1"));
    if (parallel_ < 1)
      return absl::InvalidArgumentError(absl::StrCat("--parallel: ", parallel_, " < 1"));
    label_ = absl::GetFlag(FLAGS_label);
    if (label_.empty()) label_ = std::filesystem::path(plugin_).filename().string();
    ifname_ = absl::GetFlag(FLAGS_ifname);
    timeout_ = std::chrono::seconds(absl::GetFlag(FLAGS_timeout));

    // The runtime's own environment without CNI variables, as libcni passes it.
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "CNI_", 4) != 0) base_env_.push_back(*e);
    }
    std::random_device rd;
    const uint64_t run = (uint64_t{rd()} << 32) ^ rd() ^
                         static_cast<uint64_t>(Clock::now().time_since_epoch().count());
    const uint64_t salt = (uint64_t{rd()} << 32) ^ rd();
    for (int i = 0; i < pods_; ++i) {
      Pod pod;
      pod.name = absl::StrCat("pod-", i);
      pod.container_id = absl::StrFormat("%016x%016x%016x%016x", run, salt, uint64_t(getpid()),
                                         static_cast<uint64_t>(i));
      pods_list_.push_back(std::move(pod));
    }
    return absl::OkStatus();
  }

  // Makes every pod's namespace, untimed.
  absl::Status MakeNamespaces() {
    for (Pod& pod : pods_list_) {
      if (g_interrupted) return absl::CancelledError("interrupted");
      absl::StatusOr<std::unique_ptr<atl::testing::TestNetns>> netns =
          atl::testing::TestNetns::Create();
      if (!netns.ok()) return netns.status();
      pod.netns = *std::move(netns);
    }
    return absl::OkStatus();
  }

  absl::Status Add() {
    return Phase("ADD", &add_ms_, &add_wall_ms_, [&](Pod& pod) -> absl::StatusOr<double> {
      // From here on the pod needs a DEL, whatever the ADD does.
      pod.added = true;
      absl::StatusOr<PluginRun> run = Call("ADD", pod, conf_text_);
      if (!run.ok()) return run.status();
      Json result = Json::parse(run->out, nullptr, /*allow_exceptions=*/false);
      std::optional<std::string> address =
          result.is_object() ? ResultAddress(result) : std::nullopt;
      if (!address)
        return Failure("ADD", pod, *run, "exited 0 but printed no result with an address");
      pod.result = run->out;
      pod.address = *address;
      return run->ms;
    });
  }

  // Every address once, and on the pod's interface.
  absl::Status CheckAdded() {
    std::vector<std::string> seen;
    for (const Pod& pod : pods_list_) seen.push_back(pod.address);
    std::sort(seen.begin(), seen.end());
    if (auto dup = std::adjacent_find(seen.begin(), seen.end()); dup != seen.end())
      return absl::InternalError(absl::StrCat("address ", *dup, " was given to two pods"));
    for (const Pod& pod : pods_list_) {
      bool exists = false;
      std::vector<std::string> addresses;
      absl::Status entered =
          pod.netns->Run([&] { addresses = InterfaceAddresses(ifname_, &exists); });
      if (!entered.ok()) return entered;
      if (!exists)
        return absl::InternalError(
            absl::StrCat(pod.name, ": no interface ", ifname_, " in its namespace after ADD"));
      if (std::find(addresses.begin(), addresses.end(), pod.address) == addresses.end())
        return absl::InternalError(absl::StrCat(pod.name, ": ", ifname_, " lacks ", pod.address,
                                                " after ADD; it has [",
                                                absl::StrJoin(addresses, ", "), "]"));
    }
    return absl::OkStatus();
  }

  absl::Status Del() {
    return Phase("DEL", &del_ms_, &del_wall_ms_, [&](Pod& pod) -> absl::StatusOr<double> {
      absl::StatusOr<PluginRun> run = Call("DEL", pod, DelConf(pod));
      if (!run.ok()) return run.status();
      pod.added = false;
      return run->ms;
    });
  }

  absl::Status CheckDeleted() {
    for (const Pod& pod : pods_list_) {
      bool exists = false;
      absl::Status entered = pod.netns->Run([&] { InterfaceAddresses(ifname_, &exists); });
      if (!entered.ok()) return entered;
      if (exists)
        return absl::InternalError(
            absl::StrCat(pod.name, ": interface ", ifname_, " is still there after DEL"));
    }
    return absl::OkStatus();
  }

  // After a failure or Ctrl-C: DEL, untimed and in turn, what was added, so
  // that nothing stays in the plugin's state; then the namespaces go.
  void Cleanup() {
    size_t left = 0;
    for (Pod& pod : pods_list_) {
      if (!pod.added) continue;
      absl::StatusOr<PluginRun> run = RunPlugin(plugin_, Env("DEL", pod), DelConf(pod), timeout_);
      if (!run.ok() || !WIFEXITED(run->status) || WEXITSTATUS(run->status) != 0) ++left;
    }
    if (left > 0)
      std::fprintf(stderr, "cni-bench: %s: DEL failed for %zu pods while cleaning up\n",
                   label_.c_str(), left);
  }

  void RemoveNamespaces() {
    for (Pod& pod : pods_list_) pod.netns.reset();
  }

  void Report() const {
    const Summary add = Summarize(add_ms_, add_wall_ms_);
    const Summary del = Summarize(del_ms_, del_wall_ms_);
    if (absl::GetFlag(FLAGS_json)) {
      auto obj = [](const Summary& s) {
        return Json{{"count", s.count},    {"p50_ms", s.p50}, {"p90_ms", s.p90},
                    {"p99_ms", s.p99},     {"max_ms", s.max}, {"mean_ms", s.mean},
                    {"wall_ms", s.wall_ms}};
      };
      Json j = {{"label", label_},       {"plugin", plugin_}, {"pods", pods_},
                {"parallel", parallel_}, {"add", obj(add)},   {"del", obj(del)}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("cni-bench %s: %d pods, %d in flight, %s\n", label_.c_str(), pods_, parallel_,
                  plugin_.c_str());
      for (const auto& [op, s] : {std::pair{"ADD", add}, std::pair{"DEL", del}}) {
        std::printf(
            "  %s  count %zu  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  mean %.2f ms  "
            "(all in %.0f ms, %.0f pods/s)\n",
            op, s.count, s.p50, s.p90, s.p99, s.max, s.mean, s.wall_ms,
            s.wall_ms > 0 ? 1000.0 * static_cast<double>(s.count) / s.wall_ms : 0.0);
      }
    }
    std::fflush(stdout);
  }

 private:
  // Runs `op` for every pod on --parallel threads that start together and
  // take the next pod as they finish one; `ms` gets the time of each call that
  // succeeded. The first error stops new calls.
  absl::Status Phase(const char* name, std::vector<double>* ms, double* wall_ms,
                     const std::function<absl::StatusOr<double>(Pod&)>& op) {
    std::mutex mu;
    absl::Status first_error;
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    const int threads = std::min<int>(parallel_, static_cast<int>(pods_list_.size()));
    std::latch ready(threads + 1);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&] {
        ready.arrive_and_wait();
        while (!failed && !g_interrupted) {
          const size_t i = next++;
          if (i >= pods_list_.size()) break;
          absl::StatusOr<double> call_ms = op(pods_list_[i]);
          std::lock_guard<std::mutex> lock(mu);
          if (call_ms.ok()) {
            ms->push_back(*call_ms);
          } else {
            if (first_error.ok()) first_error = call_ms.status();
            failed = true;
          }
        }
      });
    }
    const Clock::time_point start = Clock::now();
    ready.arrive_and_wait();
    for (std::thread& w : workers) w.join();
    *wall_ms = Ms(Clock::now() - start);
    if (!first_error.ok()) return first_error;
    if (g_interrupted) return absl::CancelledError(absl::StrCat("interrupted during ", name));
    return absl::OkStatus();
  }

  std::vector<std::string> Env(const std::string& command, const Pod& pod) const {
    std::vector<std::string> env = base_env_;
    env.push_back("CNI_COMMAND=" + command);
    env.push_back("CNI_CONTAINERID=" + pod.container_id);
    env.push_back("CNI_NETNS=" + pod.netns->path());
    env.push_back("CNI_IFNAME=" + ifname_);
    env.push_back("CNI_PATH=" + absl::GetFlag(FLAGS_cni_path));
    env.push_back(absl::StrCat("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=",
                               absl::GetFlag(FLAGS_pod_namespace), ";K8S_POD_NAME=", pod.name));
    return env;
  }

  std::string DelConf(const Pod& pod) const {
    if (!prev_result_ || pod.result.empty()) return conf_text_;
    Json conf = conf_;
    conf["prevResult"] = Json::parse(pod.result);
    return conf.dump();
  }

  absl::StatusOr<PluginRun> Call(const std::string& command, const Pod& pod,
                                 const std::string& input) {
    absl::StatusOr<PluginRun> run = RunPlugin(plugin_, Env(command, pod), input, timeout_);
    if (!run.ok())
      return absl::Status(run.status().code(),
                          absl::StrCat(command, " ", pod.name, ": ", run.status().message()));
    if (!WIFEXITED(run->status) || WEXITSTATUS(run->status) != 0)
      return Failure(command, pod, *run, DescribeStatus(run->status));
    return run;
  }

  absl::Status Failure(const std::string& command, const Pod& pod, const PluginRun& run,
                       const std::string& what) const {
    return absl::InternalError(absl::StrCat(
        command, " ", pod.name, " (", pod.container_id, ", netns ", pod.netns->path(),
        "): ", plugin_, " ", what, "\n--- stdout\n", run.out, "\n--- stderr\n", run.err));
  }

  std::string plugin_;
  std::string conf_text_;
  Json conf_;
  bool prev_result_ = false;
  int pods_ = 0;
  int parallel_ = 1;
  std::string label_;
  std::string ifname_;
  std::chrono::seconds timeout_{60};
  std::vector<std::string> base_env_;
  std::vector<Pod> pods_list_;
  std::vector<double> add_ms_, del_ms_;
  double add_wall_ms_ = 0, del_wall_ms_ = 0;
};

int Main() {
  // Stop signals go to one thread that waits for them; the others, and so
  // every namespace thread and plugin call, never see them.
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, sig);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  // A shell starts background jobs with SIGINT ignored; sigwait needs them caught.
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  std::thread([stop] {
    int sig = 0;
    sigwait(&stop, &sig);
    g_interrupted = true;
    std::fprintf(stderr, "cni-bench: signal %d: letting calls in flight end, then cleaning up\n",
                 sig);
  }).detach();

  Bench bench;
  if (absl::Status s = bench.Init(); !s.ok()) {
    std::fprintf(stderr, "cni-bench: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::Status s = bench.MakeNamespaces();
  if (s.ok()) s = bench.Add();
  if (s.ok()) s = bench.CheckAdded();
  if (s.ok()) s = bench.Del();
  if (s.ok()) s = bench.CheckDeleted();
  if (!s.ok()) bench.Cleanup();
  bench.RemoveNamespaces();
  if (!s.ok()) {
    std::fprintf(stderr, "cni-bench: %s\n", std::string(s.message()).c_str());
    return g_interrupted ? 130 : 1;
  }
  bench.Report();
  return 0;
}

}  // namespace
}  // namespace atl::perf

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "cni-bench --plugin PATH --cni_path DIR --conf FILE [--pods N] [--parallel P] [--json]: "
      "ADD and DEL latency of one CNI plugin");
  absl::ParseCommandLine(argc, argv);
  return atl::perf::Main();
}
