// Defaults and single-resource checks for applied resources. Checks that need
// other resources (the namespace exists, a ClusterIP is free, CIDRs do not
// overlap, immutable fields) are the Model's.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "atoll.pb.h"
#include "controller/model.h"

namespace atl::controller {

// Kubernetes' defaults, in place: protocol TCP, type ClusterIP, sessionAffinity
// None (timeout 10800 s for ClientIP), traffic policies Cluster, targetPort =
// port, isolation Isolated, address type IPv4; addresses and CIDRs that parse
// are rewritten in canonical text ("FD00:A70::1" -> "fd00:a70::1").
void ApplyDefaults(api::Resource& r);

// The checks one resource passes on its own, against the cluster's ranges.
// INVALID_ARGUMENT naming the resource, the field path and the value, e.g.
//   Service "shop/web": spec.ports[1].nodePort: 29999 is outside 30000-32767
// Expects ApplyDefaults to have run.
absl::Status ValidateResource(const api::Resource& r, const ClusterConfig& config);

// RFC 1123 label: at most 63 of [a-z0-9-], starting and ending alphanumeric.
bool IsDns1123Label(absl::string_view s);
// RFC 1123 subdomain: at most 253 characters, labels joined by '.'.
bool IsDns1123Subdomain(absl::string_view s);
// RFC 1035 label: an RFC 1123 label that starts with a letter (Service names).
bool IsDns1035Label(absl::string_view s);

}  // namespace atl::controller
