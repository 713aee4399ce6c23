#include "dataplane/daemon/dataplane_service.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "dataplane/daemon/wire.h"
#include "grpc_status.h"

namespace atl::dataplane {

using api::v1::ToGrpcStatus;

grpc::Status DataplaneService::Apply(grpc::ServerContext*, const v1::Update* request,
                                     v1::ApplyResponse*) {
  absl::StatusOr<Update> update = FromWire(*request);
  if (!update.ok()) return ToGrpcStatus(update.status());
  std::lock_guard lock(mu_);
  return ToGrpcStatus(dataplane_.Apply(*update));
}

grpc::Status DataplaneService::Dump(grpc::ServerContext*, const v1::DumpRequest*,
                                    v1::Programmed* response) {
  std::lock_guard lock(mu_);
  *response = ToWire(dataplane_.Dump());
  return grpc::Status::OK;
}

grpc::Status DataplaneService::Counters(grpc::ServerContext*, const v1::CountersRequest*,
                                        v1::CountersResponse* response) {
  std::lock_guard lock(mu_);
  ToWire(dataplane_.Drops(), response->mutable_drops());
  ToWire(dataplane_.Packets(), response->mutable_packets());
  return grpc::Status::OK;
}

grpc::Status DataplaneService::Describe(grpc::ServerContext*, const v1::DescribeRequest*,
                                        v1::DescribeResponse* response) {
  response->set_name(std::string(dataplane_.name()));
  response->set_pid(getpid());
  response->set_instance(instance_);
  return grpc::Status::OK;
}

}  // namespace atl::dataplane
