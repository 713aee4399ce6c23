// The gRPC status for an absl::Status, once for every server of ours.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace atl::api::v1 {

// absl and gRPC number their status codes alike (both follow google.rpc.Code).
inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace atl::api::v1
