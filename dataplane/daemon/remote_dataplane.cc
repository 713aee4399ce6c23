#include "dataplane/daemon/remote_dataplane.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dataplane/daemon/wire.h"
#include "grpc_status.h"
#include "grpcpp/create_channel.h"

namespace atl::dataplane {
namespace {

constexpr std::chrono::seconds kReadDeadline(10);

absl::Status FromGrpc(const grpc::Status& s, const std::string& socket) {
  const bool away = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                    s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  return api::v1::FromGrpcStatus(
      s, away ? absl::StrCat("the dataplane on unix:", socket, " does not answer: ") : "");
}

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteDataplane>> RemoteDataplane::Connect(
    const std::string& socket, std::chrono::milliseconds wait,
    std::chrono::milliseconds apply_deadline) {
  grpc::ChannelArguments args;
  // A full sync of 100,000 frontends, and its Dump, are tens of megabytes;
  // the socket is this host's root's alone.
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // A restarted dataplane is found again within a second.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  std::unique_ptr<RemoteDataplane> dp(
      new RemoteDataplane(socket,
                          v1::Dataplane::NewStub(grpc::CreateCustomChannel(
                              "unix:" + socket, grpc::InsecureChannelCredentials(), args)),
                          apply_deadline));
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(std::chrono::system_clock::now() + wait);
  v1::DescribeResponse described;
  const grpc::Status s = dp->stub_->Describe(&ctx, v1::DescribeRequest(), &described);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("no dataplane answers on unix:", socket,
                                               " (is atoll-dpdkd running?): ", s.error_message()));
  }
  dp->name_ = described.name();
  dp->pid_ = described.pid();
  dp->instance_ = described.instance();
  return dp;
}

RemoteDataplane::~RemoteDataplane() {
  {
    std::lock_guard lock(watch_mu_);
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

void RemoteDataplane::OnDiverged(std::function<void(const std::string& why)> diverged,
                                 std::chrono::milliseconds period) {
  if (watcher_.joinable()) {
    std::fprintf(stderr, "RemoteDataplane::OnDiverged: set already; this one is ignored\n");
    return;
  }
  diverged_ = std::move(diverged);
  watcher_ = std::thread([this, period] {
    for (;;) {
      {
        std::unique_lock lock(watch_mu_);
        if (watch_cv_.wait_for(lock, period, [this] { return stopping_; })) return;
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + period);
      v1::DescribeResponse described;
      if (!stub_->Describe(&ctx, v1::DescribeRequest(), &described).ok()) continue;
      if (described.instance() != instance_) {
        Diverged(absl::StrCat("the dataplane on unix:", socket_, " restarted (pid ",
                              described.pid(), ", was ", pid_, ") and holds nothing it was sent"));
        return;
      }
    }
  });
}

void RemoteDataplane::Diverged(const std::string& why) {
  if (diverged_ && !told_.exchange(true)) diverged_(why);
}

absl::Status RemoteDataplane::Apply(const Update& update) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + apply_deadline_);
  v1::ApplyResponse response;
  absl::Status applied = FromGrpc(stub_->Apply(&ctx, ToWire(update), &response), socket_);
  if (absl::IsDeadlineExceeded(applied)) {
    Diverged(absl::StrCat("an update to the dataplane on unix:", socket_, " took over ",
                          apply_deadline_.count(), " ms and may yet be applied"));
  }
  return applied;
}

Programmed RemoteDataplane::Dump() const {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kReadDeadline);
  v1::Programmed wire;
  absl::Status s = FromGrpc(stub_->Dump(&ctx, v1::DumpRequest(), &wire), socket_);
  absl::StatusOr<Programmed> programmed = s.ok() ? FromWire(wire) : s;
  if (!programmed.ok()) {
    std::fprintf(stderr, "dataplane dump: %s\n", programmed.status().ToString().c_str());
    return {};
  }
  return *std::move(programmed);
}

v1::CountersResponse RemoteDataplane::FetchCounters() const {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kReadDeadline);
  v1::CountersResponse response;
  if (absl::Status s = FromGrpc(stub_->Counters(&ctx, v1::CountersRequest(), &response), socket_);
      !s.ok()) {
    std::fprintf(stderr, "dataplane counters: %s\n", s.ToString().c_str());
    return {};
  }
  return response;
}

Dataplane::Counters RemoteDataplane::Drops() const { return FromWire(FetchCounters().drops()); }
Dataplane::Counters RemoteDataplane::Packets() const { return FromWire(FetchCounters().packets()); }

}  // namespace atl::dataplane
