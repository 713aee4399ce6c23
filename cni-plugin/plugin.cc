#include "cni-plugin/plugin.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace atl::cni {
namespace {

namespace api = ::atl::api::v1;

// Debian's Abseil has its own string_view type.
absl::string_view Av(std::string_view text) { return absl::string_view(text.data(), text.size()); }

// One call on a local socket, without retries (the runtime retries on code
// 11) and with the minimal filter stack, which saves about a millisecond of
// every run. That stack has no client-side deadline filter, so Call()
// enforces the deadline itself.
grpc::ChannelArguments ChannelArgs() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
  return args;
}

class GrpcAgentClient final : public AgentClient {
 public:
  GrpcAgentClient(const std::string& socket, uint32_t timeout_ms)
      : timeout_(timeout_ms),
        stub_(api::Cni::NewStub(grpc::CreateCustomChannel(
            "unix:" + socket, grpc::InsecureChannelCredentials(), ChannelArgs()))) {}

  grpc::Status Add(const api::CniAddRequest& req, api::CniAddResponse& resp) override {
    return Call([&](grpc::ClientContext* ctx, Done done) {
      stub_->async()->Add(ctx, &req, &resp, std::move(done));
    });
  }
  grpc::Status Del(const api::CniDelRequest& req, api::CniDelResponse& resp) override {
    return Call([&](grpc::ClientContext* ctx, Done done) {
      stub_->async()->Del(ctx, &req, &resp, std::move(done));
    });
  }
  grpc::Status Check(const api::CniCheckRequest& req) override {
    api::CniCheckResponse resp;
    return Call([&](grpc::ClientContext* ctx, Done done) {
      stub_->async()->Check(ctx, &req, &resp, std::move(done));
    });
  }
  grpc::Status Gc(const api::CniGcRequest& req, api::CniGcResponse& resp) override {
    return Call([&](grpc::ClientContext* ctx, Done done) {
      stub_->async()->Gc(ctx, &req, &resp, std::move(done));
    });
  }
  grpc::Status Status() override {
    const api::CniStatusRequest req;
    api::CniStatusResponse resp;
    return Call([&](grpc::ClientContext* ctx, Done done) {
      stub_->async()->Status(ctx, &req, &resp, std::move(done));
    });
  }

 private:
  using Done = std::function<void(grpc::Status)>;

  // Starts one call with `start` and waits for it at most the timeout; then
  // cancels it and reports DEADLINE_EXCEEDED. The deadline also goes to the
  // agent. wait_for_ready stays false: an agent that is down fails the call
  // at once (UNAVAILABLE, so "try again later") instead of holding the
  // runtime until the deadline.
  grpc::Status Call(const std::function<void(grpc::ClientContext*, Done)>& start) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
    std::mutex mu;
    std::condition_variable cv;
    std::optional<grpc::Status> status;
    start(&ctx, [&](grpc::Status s) {
      std::lock_guard lock(mu);
      status = std::move(s);
      cv.notify_one();
    });
    std::unique_lock lock(mu);
    if (cv.wait_for(lock, timeout_, [&] { return status.has_value(); })) return *status;
    ctx.TryCancel();
    cv.wait(lock, [&] { return status.has_value(); });  // the callback still runs
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        absl::StrCat("no answer within ", timeout_.count(), " ms"));
  }

  const std::chrono::milliseconds timeout_;
  std::unique_ptr<api::Cni::Stub> stub_;
};

Outcome Fail(const CniError& error, std::string_view version) {
  return Outcome{1, ErrorJson(error, version)};
}

Outcome AgentFailure(const grpc::Status& status, Command command, const NetConf& conf) {
  CniError error;
  error.code = ErrorCodeFor(status, command);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // gRPC's own words for a socket nobody listens on say little to an operator.
    error.msg = absl::StrCat(Av(CommandName(command)), ": atoll-agent at unix:", conf.socket,
                             " cannot serve it now");
    error.details = status.error_message();
  } else {
    error.msg = absl::StrCat(Av(CommandName(command)), ": ", status.error_message());
  }
  return Fail(error, conf.cni_version);
}

api::PodAttachment AttachmentOf(const Environment& env, const NetConf& conf) {
  const PodRef pod = PodFromArgs(env, conf);
  api::PodAttachment a;
  a.set_container_id(env.container_id);
  a.set_ifname(env.ifname);
  a.set_netns(env.netns);
  a.set_pod_namespace(pod.pod_namespace);
  a.set_pod_name(pod.name);
  a.set_network(conf.name);
  return a;
}

// Compares dotted versions numerically ("0.4.0" < "1.0.0"); every version we
// accept has three parts.
bool AtLeast(std::string_view version, std::string_view minimum) {
  auto parts = [](std::string_view v) {
    std::array<int, 3> out{};
    size_t i = 0;
    for (char c : v) {
      if (c == '.') {
        if (++i == out.size()) break;
      } else {
        out[i] = out[i] * 10 + (c - '0');
      }
    }
    return out;
  };
  return parts(version) >= parts(minimum);
}

Outcome DoAdd(const Environment& env, const NetConf& conf, std::optional<Result> previous,
              AgentClient& agent) {
  api::CniAddRequest req;
  *req.mutable_attachment() = AttachmentOf(env, conf);
  api::CniAddResponse resp;
  if (grpc::Status s = agent.Add(req, resp); !s.ok()) return AgentFailure(s, Command::kAdd, conf);

  Result ours;
  ours.interfaces = {{resp.host_ifname(), resp.host_mac(), ""},
                     {env.ifname, resp.pod_mac(), env.netns}};
  ours.ips = {{resp.address(), resp.gateway(), 1}};
  ours.routes = {
      {resp.address().find(':') == std::string::npos ? "0.0.0.0/0" : "::/0", resp.gateway()}};
  const Result result = previous ? AppendResult(*std::move(previous), ours) : ours;
  return Outcome{0, ResultJson(result, conf.cni_version)};
}

Outcome DoCheck(const Environment& env, const NetConf& conf, const Result& previous,
                AgentClient& agent) {
  api::CniCheckRequest req;
  *req.mutable_attachment() = AttachmentOf(env, conf);
  // The addresses the result gives our interface: the one in the pod's netns
  // with CNI_IFNAME (a chain may hold other plugins' interfaces too).
  for (const Result::Ip& ip : previous.ips) {
    if (!ip.interface.has_value()) continue;
    const Result::Interface& interface = previous.interfaces[static_cast<size_t>(*ip.interface)];
    if (interface.name == env.ifname && !interface.sandbox.empty()) req.add_addresses(ip.address);
  }
  if (req.addresses().empty()) {
    return Fail({CniError::kInvalidNetworkConfig,
                 absl::StrCat("CHECK: prevResult gives interface ", env.ifname, " no address"), ""},
                conf.cni_version);
  }
  if (grpc::Status s = agent.Check(req); !s.ok()) return AgentFailure(s, Command::kCheck, conf);
  return Outcome{0, ""};
}

}  // namespace

std::unique_ptr<AgentClient> ConnectToAgent(const std::string& socket, uint32_t timeout_ms) {
  return std::make_unique<GrpcAgentClient>(socket, timeout_ms);
}

int ErrorCodeFor(const grpc::Status& status, Command command) {
  if (command == Command::kStatus) return CniError::kNotAvailable;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      // The agent is down or busy, or does not know the namespace yet.
      return CniError::kTryAgainLater;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return CniError::kPoolExhausted;
    case grpc::StatusCode::NOT_FOUND:
      return command == Command::kCheck ? CniError::kUnknownContainer : CniError::kAgentRefused;
    default:
      return CniError::kAgentRefused;
  }
}

Outcome Run(const std::function<const char*(const char*)>& getenv, std::string_view stdin_bytes,
            const AgentConnector& connect) {
  CniResult<Environment> parsed_env = ParseEnvironment(getenv);
  if (auto* error = std::get_if<CniError>(&parsed_env)) {
    // The error's cniVersion is the configuration's when it can be read.
    CniResult<NetConf> conf = ParseNetConf(stdin_bytes);
    auto* c = std::get_if<NetConf>(&conf);
    return Fail(*error, c ? c->cni_version : kLatestVersion);
  }
  const Environment& env = std::get<Environment>(parsed_env);

  if (env.command == Command::kVersion) {
    // VERSION's stdin holds only {"cniVersion": ...}, and may be empty.
    std::string requested;
    nlohmann::json json = nlohmann::json::parse(stdin_bytes, nullptr, /*allow_exceptions=*/false);
    if (json.is_object() && json.contains("cniVersion") && json["cniVersion"].is_string()) {
      requested = json["cniVersion"].get<std::string>();
    }
    return Outcome{0, VersionJson(requested)};
  }

  CniResult<NetConf> parsed_conf = ParseNetConf(stdin_bytes);
  if (auto* error = std::get_if<CniError>(&parsed_conf)) return Fail(*error, kLatestVersion);
  const NetConf& conf = std::get<NetConf>(parsed_conf);

  // Commands newer than the configuration's version (the checks libcni's
  // skel makes, with the same code).
  auto too_old = [&](std::string_view minimum) -> std::optional<Outcome> {
    if (AtLeast(conf.cni_version, minimum)) return std::nullopt;
    return Fail(CniError{CniError::kIncompatibleVersion,
                         absl::StrCat("cniVersion ", conf.cni_version, " does not allow ",
                                      Av(CommandName(env.command)), " (it needs ", Av(minimum),
                                      " or later)"),
                         ""},
                conf.cni_version);
  };
  if (env.command == Command::kCheck) {
    if (auto out = too_old("0.4.0")) return *out;
  }
  if (env.command == Command::kGc || env.command == Command::kStatus) {
    if (auto out = too_old("1.1.0")) return *out;
  }

  // A chained plugin passes on what came before it (SPEC.md, section 4), and
  // CHECK compares against the ADD's result (SPEC.md, "CHECK").
  std::optional<Result> previous;
  if (env.command == Command::kAdd || env.command == Command::kCheck) {
    if (conf.prev_result) {
      CniResult<Result> parsed = ParseResult(*conf.prev_result);
      if (auto* error = std::get_if<CniError>(&parsed)) return Fail(*error, conf.cni_version);
      previous = std::get<Result>(std::move(parsed));
    } else if (env.command == Command::kCheck) {
      return Fail(
          {CniError::kInvalidNetworkConfig, "CHECK: the configuration has no prevResult", ""},
          conf.cni_version);
    }
  }

  AgentClient& agent = connect(conf.socket, conf.timeout_ms);
  switch (env.command) {
    case Command::kAdd:
      return DoAdd(env, conf, std::move(previous), agent);
    case Command::kDel: {
      api::CniDelRequest req;
      *req.mutable_attachment() = AttachmentOf(env, conf);
      api::CniDelResponse resp;
      if (grpc::Status s = agent.Del(req, resp); !s.ok()) {
        return AgentFailure(s, Command::kDel, conf);
      }
      return Outcome{0, ""};
    }
    case Command::kCheck:
      return DoCheck(env, conf, *previous, agent);
    case Command::kGc: {
      api::CniGcRequest req;
      req.set_network(conf.name);
      for (const Attachment& a : conf.valid_attachments) {
        api::PodAttachment* valid = req.add_valid();
        valid->set_container_id(a.container_id);
        valid->set_ifname(a.ifname);
      }
      api::CniGcResponse resp;
      if (grpc::Status s = agent.Gc(req, resp); !s.ok()) {
        return AgentFailure(s, Command::kGc, conf);
      }
      return Outcome{0, ""};
    }
    case Command::kStatus:
      if (grpc::Status s = agent.Status(); !s.ok()) return AgentFailure(s, Command::kStatus, conf);
      return Outcome{0, ""};
    case Command::kVersion:
      break;
  }
  return Outcome{0, ""};
}

}  // namespace atl::cni
