// The agent's control loop: each version the controller sends goes through
// desired state -> renderer -> dataplane, and is acknowledged only when the
// dataplane holds it. When any step fails the agent undoes the version
// everywhere and NACKs it, so the dataplane keeps its last good state.
//
// The same object serves the local debug API (AgentDebug), which reads the
// state back from the dataplane, and gives the CNI server (cni_server.h) what
// it needs of the controller's state and of the dataplane.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/desired_state.h"
#include "agent/renderer.h"
#include "agent/sync_client.h"
#include "atoll.grpc.pb.h"
#include "dataplane/dataplane.h"

namespace atl::agent {

// What a pod of one namespace is attached to on this node.
struct PodNetwork {
  uint32_t vni = 0;
  std::vector<lb::IpPrefix> cidrs;  // the segment's
  lb::IpAddr gateway;
  std::vector<lb::IpPrefix> blocks;  // this node's blocks of the segment
};

class Agent final : public ::atl::api::v1::AgentDebug::CallbackService {
 public:
  Agent(std::string node, std::string controller_address,
        std::unique_ptr<dataplane::Dataplane> dataplane);
  ~Agent() override;

  // Connects to the controller and keeps the stream up until Stop.
  void Start();
  void Stop();

  // Takes one version into desired state and the dataplane, all or nothing.
  absl::Status ApplyVersion(ReceivedVersion&& received);
  // What the agent holds, read back from the dataplane.
  ::atl::api::v1::AgentStateResponse DebugState() const;

  // True once a version from the controller is held: before that the agent
  // knows no namespace and cannot serve a pod.
  bool synced() const;
  // The segment of namespace `ns` and this node's blocks of it; nullopt when
  // the controller has not sent that namespace's segment (yet).
  std::optional<PodNetwork> FindPodNetwork(std::string_view ns) const;
  // Asks the controller for another block of `ns` for this node, and uses it
  // at once, before the version that carries it arrives. UNAVAILABLE when
  // the controller cannot be reached within `timeout`.
  absl::StatusOr<lb::IpPrefix> AllocateBlock(std::string_view ns,
                                             std::chrono::milliseconds timeout);
  // Adds or replaces pod ports in the dataplane and removes others (by host
  // interface name), all or nothing. With `full_sync` the upserts are all the
  // pod ports there are (Update::full_sync_pod_ports).
  absl::Status UpdatePodPorts(std::vector<dataplane::PodPort> upserts,
                              std::vector<std::string> removals, bool full_sync = false);

  // api::AgentDebug
  grpc::ServerUnaryReactor* State(grpc::CallbackServerContext* ctx,
                                  const ::atl::api::v1::AgentStateRequest* req,
                                  ::atl::api::v1::AgentStateResponse* resp) override;

 private:
  const std::string node_;
  const std::string controller_address_;

  mutable std::mutex mu_;  // the sync thread applies while the debug and CNI APIs read
  std::unique_ptr<dataplane::Dataplane> dataplane_;
  DesiredState state_;
  Renderer renderer_;
  uint64_t applied_version_ = 0;
  std::string applied_store_id_;
  // Blocks the controller gave through AllocateBlock, with the version that
  // carries them in this node's Node; dropped once that version is applied.
  struct AllocatedBlock {
    uint64_t version = 0;
    std::string ns;
    lb::IpPrefix cidr;
  };
  std::vector<AllocatedBlock> allocated_blocks_;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::atl::api::v1::Sync::Stub> allocate_stub_;
  std::unique_ptr<SyncClient> sync_;
};

}  // namespace atl::agent
