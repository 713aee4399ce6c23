// dataplane::Update, Programmed and counters as dataplane.proto carries them
// between the agent and a dataplane process (atoll-dpdkd). Encoding cannot
// fail; decoding checks what the wire can get wrong (an address that does not
// parse, a port above 65535, a MAC that is not 6 bytes) and says which field
// and value, as INVALID_ARGUMENT. What the types allow but a dataplane
// refuses (a VNI of 0) is the dataplane's to refuse, as in-process.
#pragma once

#include "absl/status/statusor.h"
#include "dataplane.pb.h"
#include "dataplane/dataplane.h"

namespace atl::dataplane {

v1::Update ToWire(const Update& update);
absl::StatusOr<Update> FromWire(const v1::Update& update);

v1::Programmed ToWire(const Programmed& programmed);
absl::StatusOr<Programmed> FromWire(const v1::Programmed& programmed);

void ToWire(const Dataplane::Counters& counters,
            google::protobuf::RepeatedPtrField<v1::Counter>* out);
Dataplane::Counters FromWire(const google::protobuf::RepeatedPtrField<v1::Counter>& counters);

}  // namespace atl::dataplane
