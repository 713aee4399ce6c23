#include "dataplane/ebpf/atoll_bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
// The skeleton embeds the BPF object as one long string literal.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
#include "dataplane/ebpf/atoll.skel.h"
#pragma GCC diagnostic pop

namespace atl::dataplane::ebpf {
namespace {

absl::Status Errno(int err, std::string_view what) {
  return absl::InternalError(
      absl::StrCat(absl::string_view(what.data(), what.size()), ": ", std::strerror(err)));
}

template <typename T>
absl::StatusOr<T*> MapArray(bpf_map* map, std::string_view what) {
  const size_t bytes = static_cast<size_t>(bpf_map__value_size(map)) * bpf_map__max_entries(map);
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
  if (mem == MAP_FAILED) return Errno(errno, absl::StrCat("mapping ", absl::string_view(what.data(), what.size())));
  return static_cast<T*>(mem);
}

void Unmap(void* mem, bpf_map* map) {
  if (mem == nullptr) return;
  munmap(mem, static_cast<size_t>(bpf_map__value_size(map)) * bpf_map__max_entries(map));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AtollBpf>> AtollBpf::Load(const std::filesystem::path& pin_dir,
                                                         uint64_t clock_offset_ns) {
  std::error_code ec;
  std::filesystem::create_directories(pin_dir, ec);
  struct statfs fs {};
  if (statfs(pin_dir.c_str(), &fs) != 0 || fs.f_type != BPF_FS_MAGIC) {
    return absl::FailedPreconditionError(absl::StrCat(
        "BPF pin directory \"", pin_dir.string(),
        "\" is not on a BPF file system (mount -t bpf bpf /sys/fs/bpf)",
        ec ? absl::StrCat(": ", ec.message()) : ""));
  }
  std::unique_ptr<AtollBpf> bpf(new AtollBpf());
  const std::string root = pin_dir.string();
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  opts.pin_root_path = root.c_str();
  bpf->skel_ = atoll_bpf__open_opts(&opts);
  if (bpf->skel_ == nullptr) return Errno(errno, "opening the eBPF dataplane's programs");
  bpf->skel_->rodata->atl_clock_offset_ns = clock_offset_ns;
  if (int err = atoll_bpf__load(bpf->skel_); err != 0) {
    return Errno(-err, "loading the eBPF dataplane's programs (is this root, on Linux >= 5.10?)");
  }
  absl::StatusOr<atl_backend*> backends = MapArray<atl_backend>(bpf->skel_->maps.atl_backends,
                                                                "atl_backends");
  if (!backends.ok()) return backends.status();
  bpf->backends_ = *backends;
  absl::StatusOr<atl_maglev_entry*> maglev =
      MapArray<atl_maglev_entry>(bpf->skel_->maps.atl_maglev, "atl_maglev");
  if (!maglev.ok()) return maglev.status();
  bpf->maglev_ = *maglev;
  return bpf;
}

AtollBpf::~AtollBpf() {
  if (skel_ == nullptr) return;
  Unmap(backends_, skel_->maps.atl_backends);
  Unmap(maglev_, skel_->maps.atl_maglev);
  // Attached programs stay where they are: the kernel holds them and their
  // maps, so packets keep flowing while no agent runs.
  atoll_bpf__destroy(skel_);
}

int AtollBpf::prog_fd(Program program) const {
  switch (program) {
    case Program::kFromPod:
      return bpf_program__fd(skel_->progs.atl_from_pod);
    case Program::kFromOverlay:
      return bpf_program__fd(skel_->progs.atl_from_overlay);
    case Program::kFromUplink:
      return bpf_program__fd(skel_->progs.atl_from_uplink);
    case Program::kFromOverlayTest:
      return bpf_program__fd(skel_->progs.atl_from_overlay_test);
  }
  return -1;
}

absl::Status AtollBpf::Attach(Program program, uint32_t ifindex) {
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = static_cast<int>(ifindex);
  hook.attach_point = BPF_TC_INGRESS;
  if (int err = bpf_tc_hook_create(&hook); err != 0 && err != -EEXIST) {
    return Errno(-err, absl::StrCat("adding a clsact qdisc to ifindex ", ifindex));
  }
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.handle = 1;
  opts.priority = 1;
  opts.prog_fd = prog_fd(program);
  opts.flags = BPF_TC_F_REPLACE;
  if (int err = bpf_tc_attach(&hook, &opts); err != 0) {
    return Errno(-err, absl::StrCat("attaching a tc program to ifindex ", ifindex));
  }
  return absl::OkStatus();
}

absl::Status AtollBpf::Detach(uint32_t ifindex) {
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = static_cast<int>(ifindex);
  hook.attach_point = BPF_TC_INGRESS;
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.handle = 1;
  opts.priority = 1;
  const int err = bpf_tc_detach(&hook, &opts);
  if (err != 0 && err != -ENOENT && err != -ENODEV && err != -EINVAL) {
    return Errno(-err, absl::StrCat("detaching the tc program of ifindex ", ifindex));
  }
  return absl::OkStatus();
}

absl::Status AtollBpf::Unpin() {
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    if (bpf_map__is_pinned(map) && bpf_map__unpin(map, nullptr) != 0) {
      return Errno(errno, absl::StrCat("unpinning map ", bpf_map__name(map)));
    }
  }
  return absl::OkStatus();
}

}  // namespace atl::dataplane::ebpf
