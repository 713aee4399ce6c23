// Real processes for integration tests: a controller and agents started from
// the built binaries, on loopback and in a temporary directory, each ended by
// its PID when the test ends, pass or fail.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "atoll.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace atl::testing {

namespace api = ::atl::api::v1;

// The path of a built binary, which meson passes in the environment.
inline std::string BinaryPath(const char* env) {
  const char* p = std::getenv(env);
  return p ? p : "";
}

// A child process with its output in a log file.
class Process {
 public:
  Process(std::vector<std::string> argv, const std::filesystem::path& log) : log_(log) {
    pid_ = fork();
    if (pid_ == 0) {
      FILE* out = std::freopen(log.c_str(), "a", stderr);
      if (out) dup2(fileno(stderr), STDOUT_FILENO);
      std::vector<char*> args;
      for (std::string& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Process() { Stop(SIGKILL); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // Whether the process ended by itself (it is reaped then).
  bool Exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }
  // Signals the process and reaps it; returns its wait status.
  int Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return 0;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_;
};

// Polls `pred` every 20 ms until it holds or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& pred,
                    std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// A temporary directory removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    path_ = std::filesystem::temp_directory_path() /
            (name + "-" + std::to_string(getpid()) + "-" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A controller process on a loopback port of its choosing, with its store in `dir`.
class ControllerProcess {
 public:
  ControllerProcess(const std::filesystem::path& dir, std::vector<std::string> extra = {})
      : dir_(dir), extra_(std::move(extra)) {
    Start();
  }

  void Start() {
    const std::filesystem::path port_file = dir_ / "controller.port";
    std::filesystem::remove(port_file);
    std::vector<std::string> argv = {
        BinaryPath("ATOLL_CONTROLLER"), "--listen=127.0.0.1:" + std::to_string(port_),
        "--port_file=" + port_file.string(), "--db=" + (dir_ / "controller.db").string()};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    process_ = std::make_unique<Process>(argv, dir_ / "controller.log");
    WaitFor([&] { return std::filesystem::exists(port_file); });
    std::ifstream(port_file) >> port_;
    channel_ = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
    admin_ = api::Admin::NewStub(channel_);
  }
  // SIGKILL is a crash: nothing is flushed or closed.
  void Stop(int sig = SIGTERM) { process_->Stop(sig); }
  void Restart(int sig = SIGTERM) {
    Stop(sig);
    Start();  // the same port, so agents find it again
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return process_->pid(); }
  api::Admin::Stub& admin() { return *admin_; }
  std::string Log() const { return process_->Log(); }

  grpc::Status Apply(const std::vector<api::Resource>& resources, api::ApplyResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    api::ApplyRequest req;
    for (const api::Resource& r : resources) *req.add_resources() = r;
    return admin_->Apply(&ctx, req, resp);
  }
  grpc::Status Delete(api::Kind kind, const std::string& ns, const std::string& name,
                      api::DeleteResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    api::DeleteRequest req;
    api::ResourceKey* key = req.add_keys();
    key->set_kind(kind);
    key->set_namespace_(ns);
    key->set_name(name);
    return admin_->Delete(&ctx, req, resp);
  }
  api::StatusResponse Status() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    api::StatusResponse resp;
    admin_->Status(&ctx, api::StatusRequest(), &resp);
    return resp;
  }
  // Whether every one of `nodes` is connected and has acknowledged the
  // controller's current version.
  bool AllAcked(const std::vector<std::string>& nodes) {
    api::StatusResponse s = Status();
    size_t acked = 0;
    for (const api::AgentStatus& a : s.agents()) {
      for (const std::string& n : nodes) {
        if (a.node() == n && a.connected() && a.acked_version() == s.version()) ++acked;
      }
    }
    return acked == nodes.size();
  }

 private:
  std::filesystem::path dir_;
  std::vector<std::string> extra_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<api::Admin::Stub> admin_;
};

// The cluster-scoped resources most tests start from.
inline api::Resource Namespace(const std::string& name) {
  api::Resource r;
  r.mutable_namespace_()->set_name(name);
  return r;
}

inline api::Resource Node(const std::string& name, const std::string& underlay) {
  api::Resource r;
  r.mutable_node()->set_name(name);
  r.mutable_node()->set_underlay_address(underlay);
  return r;
}

// An agent process for `node`, with its socket and lease database in `dir`:
// an agent started again with the same arguments finds its leases.
class AgentProcess {
 public:
  AgentProcess(const std::filesystem::path& dir, const std::string& node,
               const std::string& controller, std::vector<std::string> extra = {})
      : socket_(dir / (node + ".sock")) {
    std::vector<std::string> argv = {BinaryPath("ATOLL_AGENT"), "--node=" + node,
                                     "--controller=" + controller, "--socket=" + socket_.string(),
                                     "--lease_db=" + (dir / (node + ".db")).string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<Process>(argv, dir / (node + ".log"));
    // Reconnecting within milliseconds: the first attempts find no agent yet,
    // and gRPC's default backoff would then wait a second and more. (The
    // "min" backoff is also how long one attempt may take: kept long.)
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2000);
    debug_ = api::AgentDebug::NewStub(grpc::CreateCustomChannel(
        "unix:" + socket_.string(), grpc::InsecureChannelCredentials(), args));
    // Serving, not merely there: a killed agent leaves its socket file
    // behind. Calls until one is answered, as tests/testbed.cc's Agent: a
    // call in flight is what drives gRPC's connection attempts, and one
    // waiting for the channel can still fail on the stale socket before the
    // new agent replaces it (seen in CI: the test then found no agent).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline && !process_->Exited()) {
      grpc::ClientContext ctx;
      ctx.set_wait_for_ready(true);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(250));
      api::AgentStateResponse resp;
      if (debug_->State(&ctx, api::AgentStateRequest(), &resp).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // The test fails on its first call to the agent; this says why.
    std::fprintf(stderr, "atoll-agent %s does not serve on %s; its log:\n%s\n", node.c_str(),
                 socket_.c_str(), process_->Log().c_str());
  }
  void Stop(int sig = SIGTERM) { process_->Stop(sig); }
  const std::filesystem::path& socket() const { return socket_; }
  pid_t pid() const { return process_->pid(); }
  std::string Log() const { return process_->Log(); }

  api::AgentStateResponse State() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    api::AgentStateResponse resp;
    debug_->State(&ctx, api::AgentStateRequest(), &resp);
    return resp;
  }

 private:
  std::filesystem::path socket_;
  std::unique_ptr<Process> process_;
  std::unique_ptr<api::AgentDebug::Stub> debug_;
};

}  // namespace atl::testing
