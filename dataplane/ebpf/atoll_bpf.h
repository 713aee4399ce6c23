// The loaded eBPF dataplane: atoll.bpf.c's programs and maps (through its
// bpftool skeleton), with the maps pinned under a directory so that they
// outlive the process that loaded them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/ebpf/atoll_types.h"

struct atoll_bpf;  // the skeleton (atoll.skel.h)

namespace atl::dataplane::ebpf {

enum class Program { kFromPod, kFromOverlay, kFromUplink, kFromOverlayTest };

class AtollBpf {
 public:
  // Loads the programs. Maps already pinned in `pin_dir` (by an earlier
  // agent) are reused with their contents; missing ones are created and
  // pinned. `pin_dir` must be on a BPF file system.
  static absl::StatusOr<std::unique_ptr<AtollBpf>> Load(const std::filesystem::path& pin_dir,
                                                        uint64_t clock_offset_ns = 0);
  ~AtollBpf();
  AtollBpf(const AtollBpf&) = delete;
  AtollBpf& operator=(const AtollBpf&) = delete;

  // Runs `program` on what `ifindex` receives (tc ingress, clsact), replacing
  // whatever an earlier agent attached there.
  absl::Status Attach(Program program, uint32_t ifindex);
  // Removes it; an interface already gone is not an error.
  absl::Status Detach(uint32_t ifindex);
  // Unpins every map (the maps live on while programs use them).
  absl::Status Unpin();

  int prog_fd(Program program) const;
  const atoll_bpf& skel() const { return *skel_; }
  // The memory-mapped arrays a service's regions live in.
  atl_backend* backends() const { return backends_; }
  atl_maglev_entry* maglev() const { return maglev_; }

 private:
  AtollBpf() = default;

  atoll_bpf* skel_ = nullptr;
  atl_backend* backends_ = nullptr;
  atl_maglev_entry* maglev_ = nullptr;
};

}  // namespace atl::dataplane::ebpf
