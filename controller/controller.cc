#include "controller/controller.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpc_status.h"

namespace atl::controller {
namespace api = ::atl::api::v1;

namespace {

// Runs `fn` and finishes the unary call with its status.
template <typename Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, Fn&& fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(api::ToGrpcStatus(fn()));
  return reactor;
}

}  // namespace

Controller::Controller(std::unique_ptr<Store> store, ClusterConfig config, SyncOptions sync_options)
    : store_(std::move(store)), model_(std::move(config)) {
  sync_ = std::make_unique<SyncServer>(
      store_->id(), sync_options,
      [this](const api::AllocateBlockRequest& req) { return AllocateBlock(req); });
}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Create(std::unique_ptr<Store> store,
                                                               ClusterConfig config,
                                                               SyncOptions sync_options) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  std::unique_ptr<Controller> c(new Controller(std::move(store), std::move(config), sync_options));
  absl::Status bad = absl::OkStatus();
  absl::Status loaded = c->store_->Load([&](StoredEntry&& e) {
    if (!e.data.empty()) {
      api::Resource r;
      if (!r.ParseFromString(e.data)) {
        bad = absl::DataLossError(absl::StrCat("store: entry ", Describe(e.key), " at revision ",
                                               e.revision, " does not parse"));
        return;
      }
      c->model_.Load(r);
    }
    c->sync_->Load(e.key, e.revision, std::move(e.data));
  });
  if (!loaded.ok()) return loaded;
  if (!bad.ok()) return bad;
  c->sync_->SetCompacted(c->store_->compacted());
  return c;
}

absl::StatusOr<uint64_t> Controller::CommitLocked(const Changes& changes) {
  std::vector<StoreWrite> writes;
  writes.reserve(changes.upserts.size() + changes.removals.size());
  for (const api::Resource& r : changes.upserts) {
    writes.push_back(StoreWrite{KeyOf(r), r.SerializeAsString()});
  }
  for (const api::ResourceKey& k : changes.removals) writes.push_back(StoreWrite{k, {}});
  absl::StatusOr<uint64_t> revision = store_->Commit(writes);
  if (!revision.ok()) return revision.status();
  model_.Commit(changes);

  std::vector<SyncServer::Write> published;
  published.reserve(writes.size());
  for (StoreWrite& w : writes) {
    published.push_back(SyncServer::Write{std::move(w.key), std::move(w.data)});
  }
  const uint64_t forgotten = sync_->Publish(*revision, std::move(published));
  if (forgotten > store_->compacted()) {
    // The journal forgot these tombstones; agents behind them get snapshots,
    // so the store need not keep them either. Failing here loses nothing.
    if (absl::Status s = store_->Compact(forgotten); !s.ok()) {
      std::fprintf(stderr, "controller: compacting the store: %s\n", s.ToString().c_str());
    }
  }
  return revision;
}

absl::StatusOr<api::ApplyResponse> Controller::ApplyResources(const api::ApplyRequest& req) {
  if (req.resources().empty()) return absl::InvalidArgumentError("apply: no resources given");
  std::lock_guard lock(mu_);
  const std::vector<api::Resource> batch(req.resources().begin(), req.resources().end());
  absl::StatusOr<Changes> changes = model_.PlanApply(batch);
  if (!changes.ok()) return changes.status();
  absl::StatusOr<uint64_t> revision = CommitLocked(*changes);
  if (!revision.ok()) return revision.status();
  api::ApplyResponse resp;
  resp.set_version(*revision);
  // The applied resources as stored; segments the controller made along are
  // in the store too, but were not asked for.
  for (const api::Resource& asked : req.resources()) {
    if (const api::Resource* stored = model_.Get(KeyOf(asked))) *resp.add_resources() = *stored;
  }
  return resp;
}

absl::StatusOr<api::DeleteResponse> Controller::DeleteResources(const api::DeleteRequest& req) {
  if (req.keys().empty()) return absl::InvalidArgumentError("delete: no keys given");
  std::lock_guard lock(mu_);
  const std::vector<api::ResourceKey> keys(req.keys().begin(), req.keys().end());
  absl::StatusOr<Changes> changes = model_.PlanDelete(keys);
  if (!changes.ok()) return changes.status();
  absl::StatusOr<uint64_t> revision = CommitLocked(*changes);
  if (!revision.ok()) return revision.status();
  api::DeleteResponse resp;
  resp.set_version(*revision);
  return resp;
}

absl::StatusOr<api::AllocateBlockResponse> Controller::AllocateBlock(
    const api::AllocateBlockRequest& req) {
  std::lock_guard lock(mu_);
  absl::StatusOr<Changes> changes = model_.PlanAllocateBlock(req.node(), req.namespace_());
  if (!changes.ok()) return changes.status();
  // The plan's Node upsert carries the new block: the last one of the namespace.
  api::NodeBlock block;
  for (const api::Resource& r : changes->upserts) {
    if (!r.has_node() || r.node().name() != req.node()) continue;
    for (const api::NodeBlock& b : r.node().blocks()) {
      if (b.namespace_() == req.namespace_()) block = b;
    }
  }
  absl::StatusOr<uint64_t> revision = CommitLocked(*changes);
  if (!revision.ok()) return revision.status();
  api::AllocateBlockResponse resp;
  *resp.mutable_block() = block;
  resp.set_version(*revision);
  return resp;
}

absl::StatusOr<api::Resource> Controller::GetResource(const api::ResourceKey& key) {
  std::lock_guard lock(mu_);
  const api::Resource* r = model_.Get(key);
  if (!r) return absl::NotFoundError(absl::StrCat(Describe(key), " not found"));
  return *r;
}

api::ListResponse Controller::ListResources(const api::ListRequest& req) {
  std::lock_guard lock(mu_);
  api::ListResponse resp;
  resp.set_version(store_->revision());
  for (const api::Resource* r : model_.List(req.kind(), req.namespace_())) {
    *resp.add_resources() = *r;
  }
  return resp;
}

api::StatusResponse Controller::ClusterStatus() {
  api::StatusResponse resp;
  resp.set_version(sync_->revision());
  resp.set_store_id(sync_->store_id());
  for (api::AgentStatus& a : sync_->AgentStatuses()) *resp.add_agents() = std::move(a);
  return resp;
}

grpc::ServerUnaryReactor* Controller::Apply(grpc::CallbackServerContext* ctx,
                                            const api::ApplyRequest* req,
                                            api::ApplyResponse* resp) {
  return Unary(ctx, [&] {
    absl::StatusOr<api::ApplyResponse> r = ApplyResources(*req);
    if (r.ok()) *resp = *std::move(r);
    return r.status();
  });
}

grpc::ServerUnaryReactor* Controller::Delete(grpc::CallbackServerContext* ctx,
                                             const api::DeleteRequest* req,
                                             api::DeleteResponse* resp) {
  return Unary(ctx, [&] {
    absl::StatusOr<api::DeleteResponse> r = DeleteResources(*req);
    if (r.ok()) *resp = *std::move(r);
    return r.status();
  });
}

grpc::ServerUnaryReactor* Controller::Get(grpc::CallbackServerContext* ctx,
                                          const api::ResourceKey* req, api::Resource* resp) {
  return Unary(ctx, [&] {
    absl::StatusOr<api::Resource> r = GetResource(*req);
    if (r.ok()) *resp = *std::move(r);
    return r.status();
  });
}

grpc::ServerUnaryReactor* Controller::List(grpc::CallbackServerContext* ctx,
                                           const api::ListRequest* req, api::ListResponse* resp) {
  return Unary(ctx, [&] {
    *resp = ListResources(*req);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* Controller::Status(grpc::CallbackServerContext* ctx,
                                             const api::StatusRequest*, api::StatusResponse* resp) {
  return Unary(ctx, [&] {
    *resp = ClusterStatus();
    return absl::OkStatus();
  });
}

}  // namespace atl::controller
