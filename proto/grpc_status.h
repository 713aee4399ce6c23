// absl::Status and grpc::Status, each as the other, once for every server
// and client of ours.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace atl::api::v1 {

// absl and gRPC number their status codes alike (both follow google.rpc.Code).
inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// A call's outcome as absl's, its message after `what` says which call it was.
inline absl::Status FromGrpcStatus(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, s.error_message()));
}

}  // namespace atl::api::v1
