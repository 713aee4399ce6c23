#include "controller/sync_server.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "grpc_status.h"

namespace atl::controller {
namespace api = ::atl::api::v1;

namespace {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// One agent's stream. gRPC runs its reactions on its own threads, a read and
// a write possibly at once, and SyncServer::Publish calls MaybeSend from the
// writer's thread: mu_ guards the state they share.
class AgentStream final : public grpc::ServerBidiReactor<api::SyncRequest, api::SyncResponse> {
 public:
  AgentStream(SyncServer* server, grpc::CallbackServerContext* context)
      : server_(server), peer_(context->peer()) {
    {
      std::lock_guard lock(server_->agents_mu_);
      server_->streams_.insert(this);
    }
    StartRead(&request_);
  }

  // Sends the next version if the agent is idle and something is due.
  void MaybeSend() {
    std::lock_guard lock(mu_);
    if (done_ || node_.empty() || writing_ || in_flight_) return;
    // After a NACK, wait for something new rather than resend what was refused.
    if (refused_version_ != 0 && server_->revision() <= refused_version_) return;
    std::optional<SyncServer::Pending> pending = server_->Collect(sent_, need_snapshot_);
    if (!pending) return;
    in_flight_nonce_ = absl::StrCat(++nonce_counter_);
    pending->nonce = in_flight_nonce_;
    in_flight_ = true;
    in_flight_version_ = pending->version;
    sent_ = pending->end;
    status_.set_sent_version(pending->version);
    if (pending->snapshot) status_.set_snapshots_sent(status_.snapshots_sent() + 1);
    pending_ = std::move(pending);
    WriteNextPart();
  }

  // Ends the stream: the node connected again, or the controller stops.
  void End(grpc::Status why) {
    std::lock_guard lock(mu_);
    FinishOnce(std::move(why));
  }

  api::AgentStatus Status() const {
    std::lock_guard lock(mu_);
    return status_;
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the agent went away or half-closed
      std::lock_guard lock(mu_);
      FinishOnce(grpc::Status::OK);
      return;
    }
    if (request_.has_hello()) {
      if (!OnHello(request_.hello())) return;
    } else if (request_.has_ack()) {
      OnAck(request_.ack());
    }
    {
      std::lock_guard lock(mu_);
      if (done_) return;
      StartRead(&request_);
    }
    MaybeSend();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok || done_) return;  // a broken stream; OnReadDone sees it too
    part_.reset();
    WriteNextPart();
  }

  void OnDone() override {
    api::AgentStatus last = Status();
    last.set_connected(false);
    server_->Unregister(node_, this, last);
    delete this;
  }

 private:
  // Returns false when the stream ended.
  bool OnHello(const api::Hello& hello) {
    {
      std::lock_guard lock(mu_);
      if (!node_.empty()) {
        FinishOnce(
            grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "hello: sent twice on one stream"));
        return false;
      }
      if (hello.node().empty()) {
        FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello: node is empty"));
        return false;
      }
      node_ = hello.node();
      status_.set_node(node_);
      status_.set_connected(true);
      status_.set_peer(peer_);
      status_.set_last_seen_unix_ms(NowUnixMs());
      // Resume from the agent's version when it is of this store's history.
      if (hello.version() != 0 && hello.store_id() == server_->store_id()) {
        sent_ = Cursor::After(hello.version());
        acked_ = sent_;
        need_snapshot_ = false;
        status_.set_acked_version(hello.version());
      }
    }
    server_->Register(node_, this);
    return true;
  }

  void OnAck(const api::Ack& ack) {
    std::lock_guard lock(mu_);
    status_.set_last_seen_unix_ms(NowUnixMs());
    // Only the version in flight can be acknowledged; anything else is stale.
    if (!in_flight_ || ack.version() != in_flight_version_ || ack.nonce() != in_flight_nonce_) {
      return;
    }
    in_flight_ = false;
    if (ack.error().empty()) {
      acked_ = sent_;
      need_snapshot_ = false;
      refused_version_ = 0;
      status_.set_acked_version(ack.version());
      status_.clear_last_error();
    } else {
      // NACK: the agent holds what it acknowledged last. A refused snapshot
      // stays due; a refused delta is folded into the next one.
      sent_ = acked_;
      refused_version_ = in_flight_version_;
      status_.set_last_error(ack.error());
      std::fprintf(stderr, "sync: node %s refused version %llu: %s\n", node_.c_str(),
                   static_cast<unsigned long long>(ack.version()), ack.error().c_str());
    }
  }

  void WriteNextPart() {
    if (!pending_ || writing_ || done_) return;
    part_ = server_->NextPart(*pending_);
    if (pending_->done()) pending_.reset();
    writing_ = true;
    status_.set_bytes_sent(status_.bytes_sent() + part_->ByteSizeLong());
    StartWrite(part_.get());
  }

  void FinishOnce(grpc::Status status) {
    if (done_) return;
    done_ = true;
    Finish(std::move(status));
  }

  SyncServer* const server_;
  const std::string peer_;
  api::SyncRequest request_;  // the one read outstanding

  mutable std::mutex mu_;
  std::string node_;  // empty until the hello
  bool done_ = false;
  bool writing_ = false;
  std::optional<SyncServer::Pending> pending_;  // the rest of the version being written
  std::unique_ptr<api::SyncResponse> part_;     // the part being written
  bool in_flight_ = false;  // a version sent (or being sent) and not yet acknowledged
  uint64_t in_flight_version_ = 0;
  std::string in_flight_nonce_;
  uint64_t nonce_counter_ = 0;
  bool need_snapshot_ = true;
  uint64_t refused_version_ = 0;
  Cursor sent_;   // the journal up to here is sent
  Cursor acked_;  // the journal up to here is acknowledged
  api::AgentStatus status_;
};

SyncServer::SyncServer(std::string store_id, SyncOptions options, AllocateBlockFn allocate_block)
    : store_id_(std::move(store_id)),
      options_(options),
      allocate_block_(std::move(allocate_block)) {}

SyncServer::~SyncServer() = default;

grpc::ServerBidiReactor<api::SyncRequest, api::SyncResponse>* SyncServer::Sync(
    grpc::CallbackServerContext* context) {
  return new AgentStream(this, context);
}

grpc::ServerUnaryReactor* SyncServer::AllocateBlock(grpc::CallbackServerContext* context,
                                                    const api::AllocateBlockRequest* request,
                                                    api::AllocateBlockResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<api::AllocateBlockResponse> result = allocate_block_(*request);
  if (!result.ok()) {
    reactor->Finish(api::ToGrpcStatus(result.status()));
  } else {
    *response = *std::move(result);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

uint64_t SyncServer::Publish(uint64_t revision, std::vector<Write> writes) {
  uint64_t compacted;
  {
    std::lock_guard lock(journal_mu_);
    for (Write& w : writes) journal_.Put(w.key, revision, std::move(w.data));
    compacted = journal_.Trim(options_.max_tombstones);
  }
  std::lock_guard lock(agents_mu_);
  for (auto& [node, record] : agents_) {
    if (record.stream) record.stream->MaybeSend();
  }
  return compacted;
}

std::optional<SyncServer::Pending> SyncServer::Collect(Cursor from, bool snapshot) const {
  std::lock_guard lock(journal_mu_);
  Pending p;
  p.version = journal_.revision();
  p.end = journal_.end();
  p.snapshot = snapshot || !journal_.CanResumeFrom(from);
  if (p.snapshot) {
    p.upserts.reserve(journal_.live());
    journal_.ForEachLive([&](const Journal::Entry& e) { p.upserts.push_back(e.data); });
    return p;
  }
  if (!(from < journal_.end())) return std::nullopt;
  journal_.ForEachAfter(from, [&](const Journal::Entry& e) {
    if (e.data) {
      p.upserts.push_back(e.data);
    } else {
      p.removals.push_back(e.key);
    }
  });
  if (p.upserts.empty() && p.removals.empty()) return std::nullopt;
  return p;
}

std::unique_ptr<api::SyncResponse> SyncServer::NextPart(Pending& pending) const {
  auto part = std::make_unique<api::SyncResponse>();
  part->set_version(pending.version);
  part->set_nonce(pending.nonce);
  part->set_store_id(store_id_);
  part->set_snapshot(pending.snapshot);
  size_t bytes = 0;
  for (; pending.next_upsert < pending.upserts.size(); ++pending.next_upsert) {
    const std::string& data = *pending.upserts[pending.next_upsert];
    if (bytes > 0 && bytes + data.size() > options_.part_bytes) break;
    part->add_upserts(data);
    bytes += data.size() + 4;
  }
  for (; pending.next_removal < pending.removals.size(); ++pending.next_removal) {
    api::ResourceKey& key = pending.removals[pending.next_removal];
    if (bytes > 0 && bytes + key.ByteSizeLong() > options_.part_bytes) break;
    bytes += key.ByteSizeLong() + 2;
    *part->add_removals() = std::move(key);
  }
  part->set_more(!pending.done());
  return part;
}

void SyncServer::Register(const std::string& node, AgentStream* stream) {
  std::lock_guard lock(agents_mu_);
  if (shutting_down_) {
    stream->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller is stopping"));
    return;
  }
  AgentRecord& record = agents_[node];
  if (record.stream && record.stream != stream) {
    record.stream->End(
        grpc::Status(grpc::StatusCode::ABORTED, absl::StrCat("node ", node, " connected again")));
  }
  record.stream = stream;
}

void SyncServer::Unregister(const std::string& node, AgentStream* stream,
                            const api::AgentStatus& last) {
  std::lock_guard lock(agents_mu_);
  streams_.erase(stream);
  if (node.empty()) return;
  auto it = agents_.find(node);
  if (it != agents_.end() && it->second.stream == stream) {
    it->second.stream = nullptr;
    it->second.last = last;
  }
}

std::vector<api::AgentStatus> SyncServer::AgentStatuses() const {
  std::lock_guard lock(agents_mu_);
  std::vector<api::AgentStatus> out;
  out.reserve(agents_.size());
  for (const auto& [node, record] : agents_) {
    out.push_back(record.stream ? record.stream->Status() : record.last);
  }
  std::sort(out.begin(), out.end(), [](const api::AgentStatus& a, const api::AgentStatus& b) {
    return a.node() < b.node();
  });
  return out;
}

void SyncServer::Shutdown() {
  std::lock_guard lock(agents_mu_);
  shutting_down_ = true;
  for (AgentStream* s : streams_) {
    s->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "controller is stopping"));
  }
}

}  // namespace atl::controller
