// atoll-cni's commands: the runtime's environment and network configuration
// in, one call to the agent's Cni service, the CNI result or error out. The
// agent is reached through AgentClient so that tests can stand in for it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "atoll.grpc.pb.h"
#include "cni-plugin/spec.h"

namespace atl::cni {

// The agent's Cni service as the plugin calls it, one call per run.
class AgentClient {
 public:
  virtual ~AgentClient() = default;
  virtual grpc::Status Add(const ::atl::api::v1::CniAddRequest& req,
                           ::atl::api::v1::CniAddResponse& resp) = 0;
  virtual grpc::Status Del(const ::atl::api::v1::CniDelRequest& req,
                           ::atl::api::v1::CniDelResponse& resp) = 0;
  virtual grpc::Status Check(const ::atl::api::v1::CniCheckRequest& req) = 0;
  virtual grpc::Status Gc(const ::atl::api::v1::CniGcRequest& req,
                          ::atl::api::v1::CniGcResponse& resp) = 0;
  virtual grpc::Status Status() = 0;
};

// The real one: gRPC on the unix socket `socket`, every call bounded by
// `timeout_ms` from the moment it starts. It does not wait for an agent
// that is down: the runtime gets "try again later" at once.
std::unique_ptr<AgentClient> ConnectToAgent(const std::string& socket, uint32_t timeout_ms);

// What the plugin prints on stdout, and its exit status (SPEC.md, section 2
// "Output": 0 on success, else non-zero with an error on stdout).
struct Outcome {
  int exit_code = 0;
  std::string output;
};

// Returns the client for the agent at `socket`, which the connector keeps: the
// binary never destroys it (that would shut gRPC down and join its threads,
// about 2.5 ms, only to exit right after).
using AgentConnector = std::function<AgentClient&(const std::string& socket, uint32_t timeout_ms)>;

// One run of the plugin. `getenv` reads the CNI_* variables and `stdin_bytes`
// is the network configuration. The agent is connected only for the commands
// that need it (not VERSION).
Outcome Run(const std::function<const char*(const char*)>& getenv, std::string_view stdin_bytes,
            const AgentConnector& connect);

// The CNI error code for an agent's answer (proto/atoll.proto, service Cni).
int ErrorCodeFor(const grpc::Status& status, Command command);

}  // namespace atl::cni
