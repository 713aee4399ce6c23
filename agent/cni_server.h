// The agent's CNI server: what atoll-cni asks for on the agent's root-only
// unix socket (proto/atoll.proto, service Cni). An ADD takes an address of
// the pod namespace's segment from this node's blocks (asking the controller
// for another block when they are full), records the lease, makes the pod's
// veth and hands the new port to the dataplane. Leases live in SQLite, so a
// restarted agent knows every pod and never hands an address out twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/agent.h"
#include "agent/lease_store.h"
#include "atoll.grpc.pb.h"

namespace atl::agent {

class CniServer final : public ::atl::api::v1::Cni::Service {
 public:
  struct Options {
    // The pods' MTU: the underlay's less the overlay's overhead.
    uint32_t mtu = 1450;
    // How long an ADD waits for the controller when it needs a new block.
    std::chrono::milliseconds allocate_timeout{2000};
  };

  CniServer(Agent& agent, LeaseStore& leases, Options options);

  // Hands the pods whose interfaces survived an agent restart back to the
  // dataplane. Leases whose interface is gone stay until the runtime's DEL.
  absl::Status RestorePodPorts();

  absl::StatusOr<::atl::api::v1::CniAddResponse> Add(const ::atl::api::v1::PodAttachment& pod);
  absl::StatusOr<::atl::api::v1::CniDelResponse> Del(const ::atl::api::v1::PodAttachment& pod);
  absl::Status Check(const ::atl::api::v1::CniCheckRequest& req);
  absl::StatusOr<::atl::api::v1::CniGcResponse> Gc(const ::atl::api::v1::CniGcRequest& req);

  // api::Cni
  grpc::Status Add(grpc::ServerContext* ctx, const ::atl::api::v1::CniAddRequest* req,
                   ::atl::api::v1::CniAddResponse* resp) override;
  grpc::Status Del(grpc::ServerContext* ctx, const ::atl::api::v1::CniDelRequest* req,
                   ::atl::api::v1::CniDelResponse* resp) override;
  grpc::Status Check(grpc::ServerContext* ctx, const ::atl::api::v1::CniCheckRequest* req,
                     ::atl::api::v1::CniCheckResponse* resp) override;
  grpc::Status Gc(grpc::ServerContext* ctx, const ::atl::api::v1::CniGcRequest* req,
                  ::atl::api::v1::CniGcResponse* resp) override;
  grpc::Status Status(grpc::ServerContext* ctx, const ::atl::api::v1::CniStatusRequest* req,
                      ::atl::api::v1::CniStatusResponse* resp) override;

 private:
  // The lease of `pod`: the one it holds, or a new one from `net`'s blocks,
  // growing them through the controller when they are full. `created` says
  // which, so that a failed ADD gives back only what it took.
  absl::StatusOr<Lease> AcquireLease(const ::atl::api::v1::PodAttachment& pod, PodNetwork net,
                                     bool& created);
  absl::Status Release(const Lease& lease);

  Agent& agent_;
  LeaseStore& leases_;
  const Options options_;

  std::mutex leases_mu_;    // one SQLite connection, one transaction at a time
  std::mutex allocate_mu_;  // one request for a new block at a time
};

}  // namespace atl::agent
