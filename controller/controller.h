// The controller: the admin API in front of the model, the store behind it,
// and the sync server that streams every committed revision to the agents.
//
// Every write takes the same path under one lock, so revisions are committed,
// applied to the model and published to agents in one order:
//   plan (validate, default, allocate) -> store commit -> model -> journal.
#pragma once

#include <memory>
#include <mutex>

#include "absl/status/statusor.h"
#include "atoll.grpc.pb.h"
#include "controller/model.h"
#include "controller/store.h"
#include "controller/sync_server.h"

namespace atl::controller {

class Controller final : public ::atl::api::v1::Admin::CallbackService {
 public:
  // Loads the store into the model and the journal.
  static absl::StatusOr<std::unique_ptr<Controller>> Create(std::unique_ptr<Store> store,
                                                            ClusterConfig config,
                                                            SyncOptions sync_options);

  SyncServer& sync() { return *sync_; }

  absl::StatusOr<::atl::api::v1::ApplyResponse> ApplyResources(
      const ::atl::api::v1::ApplyRequest& req);
  absl::StatusOr<::atl::api::v1::DeleteResponse> DeleteResources(
      const ::atl::api::v1::DeleteRequest& req);
  absl::StatusOr<::atl::api::v1::Resource> GetResource(const ::atl::api::v1::ResourceKey& key);
  ::atl::api::v1::ListResponse ListResources(const ::atl::api::v1::ListRequest& req);
  ::atl::api::v1::StatusResponse ClusterStatus();
  absl::StatusOr<::atl::api::v1::AllocateBlockResponse> AllocateBlock(
      const ::atl::api::v1::AllocateBlockRequest& req);

  // api::Admin, over the functions above (named apart: clang warns when an
  // overload hides a virtual).
  grpc::ServerUnaryReactor* Apply(grpc::CallbackServerContext* ctx,
                                  const ::atl::api::v1::ApplyRequest* req,
                                  ::atl::api::v1::ApplyResponse* resp) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx,
                                   const ::atl::api::v1::DeleteRequest* req,
                                   ::atl::api::v1::DeleteResponse* resp) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const ::atl::api::v1::ResourceKey* req,
                                ::atl::api::v1::Resource* resp) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* ctx,
                                 const ::atl::api::v1::ListRequest* req,
                                 ::atl::api::v1::ListResponse* resp) override;
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx,
                                   const ::atl::api::v1::StatusRequest* req,
                                   ::atl::api::v1::StatusResponse* resp) override;

 private:
  Controller(std::unique_ptr<Store> store, ClusterConfig config, SyncOptions sync_options);
  // Writes a planned change through store, model and journal; returns its revision.
  absl::StatusOr<uint64_t> CommitLocked(const Changes& changes);

  std::mutex mu_;  // one writer at a time; readers of the model too
  std::unique_ptr<Store> store_;
  Model model_;
  std::unique_ptr<SyncServer> sync_;
};

}  // namespace atl::controller
