// The server side of dataplane.proto: a Dataplane of this process (atoll-dpdkd's
// DpdkDataplane) served to the agent, which reaches it through RemoteDataplane.
#pragma once

#include <cstdint>
#include <mutex>

#include "dataplane.grpc.pb.h"
#include "dataplane/dataplane.h"

namespace atl::dataplane {

class DataplaneService final : public v1::Dataplane::Service {
 public:
  // `instance`: this process's, at random (DescribeResponse.instance).
  DataplaneService(Dataplane& dataplane, uint64_t instance)
      : dataplane_(dataplane), instance_(instance) {}

  grpc::Status Apply(grpc::ServerContext* ctx, const v1::Update* request,
                     v1::ApplyResponse* response) override;
  grpc::Status Dump(grpc::ServerContext* ctx, const v1::DumpRequest* request,
                    v1::Programmed* response) override;
  grpc::Status Counters(grpc::ServerContext* ctx, const v1::CountersRequest* request,
                        v1::CountersResponse* response) override;
  grpc::Status Describe(grpc::ServerContext* ctx, const v1::DescribeRequest* request,
                        v1::DescribeResponse* response) override;

 private:
  // gRPC calls in from several threads; a backend need not be thread-safe.
  std::mutex mu_;
  Dataplane& dataplane_;
  uint64_t instance_;
};

}  // namespace atl::dataplane
