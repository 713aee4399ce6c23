// A gRPC server on a Unix socket that only root on this host may use, once for
// every such server of ours (the agent's CNI and debug API, atoll-dpdkd).
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <initializer_list>
#include <memory>
#include <system_error>

#include "grpcpp/grpcpp.h"

namespace atl::api::v1 {

// Serves `services` on `socket`, made under umask 0077 and then 0600, in
// place of a socket an earlier run left; nullptr when it cannot listen. No
// message size limit: the peer is root on this host, and a dataplane's full
// sync or dump of 100,000 frontends is tens of megabytes.
inline std::unique_ptr<grpc::Server> ServeOnRootSocket(
    const std::filesystem::path& socket, std::initializer_list<grpc::Service*> services) {
  std::error_code ec;
  std::filesystem::create_directories(socket.parent_path(), ec);
  std::filesystem::remove(socket, ec);
  const mode_t old_umask = umask(0077);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket.string(), grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(-1);
  builder.SetMaxSendMessageSize(-1);
  for (grpc::Service* s : services) builder.RegisterService(s);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask(old_umask);
  if (server) chmod(socket.c_str(), 0600);
  return server;
}

}  // namespace atl::api::v1
