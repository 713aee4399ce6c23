// The host's VXLAN device in collect_md ("external") mode: one device for
// every segment and remote host, the VNI and remote address coming from each
// packet's tunnel key (RFC 7348; the model of Cilium's cilium_vxlan).
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "dataplane/ebpf/atoll_types.h"

namespace atl::dataplane::ebpf {

inline constexpr uint16_t kVxlanPort = ATL_VXLAN_PORT;

// Creates the device `name` when it is missing (an existing one is kept:
// a restarted agent finds its own), sets it up, and returns its ifindex.
absl::StatusOr<uint32_t> EnsureOverlayDevice(std::string_view name);

// The ifindex of `name` in this network namespace.
absl::StatusOr<uint32_t> IfIndex(std::string_view name);

}  // namespace atl::dataplane::ebpf
