// The agent's CNI server: what atoll-cni asks for on the agent's root-only
// unix socket (proto/atoll.proto, service Cni). An ADD takes an address of
// the pod namespace's segment from this node's blocks (asking the controller
// for another block when they are full), records the lease, makes the pod's
// veth and hands the new port to the dataplane. Leases live in SQLite, so a
// restarted agent knows every pod and never hands an address out twice.
//
// DEL answers once the pod's interface is out of the pod's sight and out of
// the dataplane; the kernel's removal of the veth (15 to 20 ms, most of it an
// RCU barrier) happens after, on the server's reaper thread, and only then is
// the address free again. A lease marked releasing in SQLite says so across
// a restart.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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
    // PodInterfaceSpec::checksums_in_software for every pod (the DPDK dataplane).
    bool checksums_in_software = false;
    // PodInterfaceSpec::host_route for every pod.
    bool host_routes = true;
    // How long an ADD waits for the controller when it needs a new block.
    std::chrono::milliseconds allocate_timeout{2000};
  };

  CniServer(Agent& agent, LeaseStore& leases, Options options);
  ~CniServer() override;  // stops the reaper; what it had not removed is removed after a restart
  CniServer(const CniServer&) = delete;
  CniServer& operator=(const CniServer&) = delete;

  // Hands the pods whose interfaces survived an agent restart back to the
  // dataplane, and has the reaper finish the DELs the last run answered.
  // Leases whose interface is gone stay until the runtime's DEL.
  absl::Status RestorePodPorts();
  // Waits until the reaper has removed every interface DEL gave it (tests).
  void WaitForReaper();

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
  // A new lease for `pod` from `net`'s blocks, growing them through the
  // controller when they are full.
  absl::StatusOr<Lease> NewLease(const ::atl::api::v1::PodAttachment& pod, PodNetwork net);
  absl::Status Release(const Lease& lease);

  // An attachment whose interface the reaper is to delete: (container id, ifname).
  using Key = std::pair<std::string, std::string>;
  void Reap(const Key& key);
  // Removes the interfaces and then their leases (unless an ADD took a lease
  // anew), all of them together when it can.
  void ReapNow(const std::vector<Key>& keys);
  void ReleaseIfReleasing(const Key& key);
  // Takes `key` back from the reaper (waiting if it is at work on it), so that
  // an ADD can finish the removal itself before it makes the interface anew.
  void Unreap(const Key& key);
  void RunReaper();

  // Holds one attachment for one operation: a DEL that arrives while the
  // runtime's timed-out ADD of the same attachment still runs here waits for
  // it, and then removes what it made.
  class AttachmentLock {
   public:
    AttachmentLock(CniServer& server, Key key);
    ~AttachmentLock();
    AttachmentLock(const AttachmentLock&) = delete;
    AttachmentLock& operator=(const AttachmentLock&) = delete;

   private:
    CniServer& server_;
    Key key_;
  };
  // Gives up the interface and lease an ADD made when it cannot finish.
  void GiveBack(const Lease& lease, const std::string& host_ifname);

  Agent& agent_;
  LeaseStore& leases_;
  const Options options_;

  std::mutex leases_mu_;    // one SQLite connection, one transaction at a time
  std::mutex allocate_mu_;  // one request for a new block at a time

  std::mutex busy_mu_;
  std::condition_variable busy_cv_;
  std::set<Key> busy_;  // attachments an operation holds

  std::mutex reap_mu_;
  std::condition_variable reap_cv_;
  std::deque<Key> to_reap_;   // in DEL order
  std::vector<Key> reaping_;  // the ones being removed now
  bool stopping_ = false;
  std::thread reaper_;  // last: it starts when everything above exists
};

}  // namespace atl::agent
