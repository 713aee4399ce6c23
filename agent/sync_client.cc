#include "agent/sync_client.h"

#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace atl::agent {
namespace api = ::atl::api::v1;

namespace {

// Blocks grow from 4 KiB (a one-resource delta) to 1 MiB (a snapshot).
std::shared_ptr<google::protobuf::Arena> NewArena() {
  google::protobuf::ArenaOptions options;
  options.start_block_size = 4096;
  options.max_block_size = 1 << 20;
  return std::make_shared<google::protobuf::Arena>(options);
}

}  // namespace

std::shared_ptr<grpc::Channel> ControllerChannel(const std::string& address, bool own_connection) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);  // parts are about 1 MiB
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

SyncClient::SyncClient(std::shared_ptr<grpc::Channel> channel, Options options, ApplyFn apply)
    : stub_(api::Sync::NewStub(channel)), options_(std::move(options)), apply_(std::move(apply)) {}

SyncClient::~SyncClient() { Stop(); }

void SyncClient::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void SyncClient::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (context_) context_->TryCancel();
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t SyncClient::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

std::string SyncClient::store_id() const {
  std::lock_guard lock(mu_);
  return store_id_;
}

std::string SyncClient::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

bool SyncClient::Sleep(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return !stop_cv_.wait_for(lock, d, [this] { return stopping_; });
}

void SyncClient::Run() {
  std::mt19937 rng(std::random_device{}());
  std::chrono::milliseconds backoff = options_.initial_backoff;
  for (;;) {
    const uint64_t applied_before = versions_applied_.load();
    grpc::Status why = Stream();
    connected_ = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      last_error_ =
          absl::StrCat("stream: ", why.error_message().empty() ? std::to_string(why.error_code())
                                                               : why.error_message());
    }
    // A stream that delivered something was healthy: start backing off afresh.
    if (versions_applied_.load() != applied_before) backoff = options_.initial_backoff;
    // Full jitter (half to all of the backoff), so that agents cut off
    // together do not come back together.
    std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
    if (!Sleep(std::chrono::milliseconds(jitter(rng)))) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

grpc::Status SyncClient::Stream() {
  grpc::ClientContext context;
  // Wait for the channel to connect rather than fail at once while the
  // controller is away; Stop cancels the wait.
  context.set_wait_for_ready(true);
  api::SyncRequest hello;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return grpc::Status::CANCELLED;
    context_ = &context;
    hello.mutable_hello()->set_node(options_.node);
    hello.mutable_hello()->set_version(version_);
    hello.mutable_hello()->set_store_id(store_id_);
  }
  struct ClearContext {
    SyncClient* self;
    ~ClearContext() {
      std::lock_guard lock(self->mu_);
      self->context_ = nullptr;
    }
  } clear{this};

  std::unique_ptr<grpc::ClientReaderWriter<api::SyncRequest, api::SyncResponse>> stream =
      stub_->Sync(&context);
  if (!stream->Write(hello)) return stream->Finish();

  ReceivedVersion assembling;
  std::shared_ptr<google::protobuf::Arena> arena;
  std::string nonce;
  std::string parse_error;
  api::SyncResponse part;
  while (stream->Read(&part)) {
    connected_ = true;
    // A part of a new version discards an unfinished one.
    if (part.nonce() != nonce || part.version() != assembling.version) {
      assembling = ReceivedVersion{};
      arena = NewArena();
      assembling.version = part.version();
      assembling.store_id = part.store_id();
      assembling.snapshot = part.snapshot();
      nonce = part.nonce();
      parse_error.clear();
    }
    for (int i = 0; i < part.upserts_size(); ++i) {
      auto* r = google::protobuf::Arena::CreateMessage<api::Resource>(arena.get());
      if (!r->ParseFromString(part.upserts(i)) && parse_error.empty()) {
        parse_error = absl::StrCat("version ", part.version(), ": upsert ",
                                   assembling.upserts.size(), " does not parse");
      }
      // Shares ownership of the arena, points at the resource.
      assembling.upserts.emplace_back(arena, r);
    }
    for (api::ResourceKey& key : *part.mutable_removals()) {
      assembling.removals.push_back(std::move(key));
    }
    if (part.more()) continue;

    const uint64_t version = assembling.version;
    const std::string store_id = assembling.store_id;
    absl::Status applied = parse_error.empty() ? apply_(std::move(assembling))
                                               : absl::InvalidArgumentError(parse_error);
    assembling = ReceivedVersion{};
    arena.reset();
    api::SyncRequest ack;
    ack.mutable_ack()->set_version(version);
    ack.mutable_ack()->set_nonce(nonce);
    {
      std::lock_guard lock(mu_);
      if (applied.ok()) {
        version_ = version;
        store_id_ = store_id;
        last_error_.clear();
      } else {
        last_error_ = absl::StrCat("version ", version, " refused: ", applied.message());
        ack.mutable_ack()->set_error(std::string(applied.message()));
      }
    }
    if (applied.ok()) ++versions_applied_;
    nonce.clear();
    if (!stream->Write(ack)) break;
  }
  return stream->Finish();
}

}  // namespace atl::agent
