// The agent's control loop: each version the controller sends goes through
// desired state -> renderer -> dataplane, and is acknowledged only when the
// dataplane holds it. When any step fails the agent undoes the version
// everywhere and NACKs it, so the dataplane keeps its last good state.
//
// The same object serves the local debug API (AgentDebug), which reads the
// state back from the dataplane.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "agent/desired_state.h"
#include "agent/renderer.h"
#include "agent/sync_client.h"
#include "atoll.grpc.pb.h"
#include "dataplane/dataplane.h"

namespace atl::agent {

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

  // api::AgentDebug
  grpc::ServerUnaryReactor* State(grpc::CallbackServerContext* ctx,
                                  const ::atl::api::v1::AgentStateRequest* req,
                                  ::atl::api::v1::AgentStateResponse* resp) override;

 private:
  const std::string node_;
  const std::string controller_address_;

  mutable std::mutex mu_;  // the sync thread applies while the debug API reads
  std::unique_ptr<dataplane::Dataplane> dataplane_;
  DesiredState state_;
  Renderer renderer_;

  std::unique_ptr<SyncClient> sync_;
};

}  // namespace atl::agent
