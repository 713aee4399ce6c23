// Network namespaces for tests, made the way container runtimes make a pod's:
// a thread unshares its network namespace and bind-mounts it onto a file, so
// that the namespace outlives the thread and has a path. Nothing runs `ip`.
//
// Tests act inside a namespace with Run(), on a thread of their own that
// entered it, and so never change the namespace of a thread they did not make.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace atl::testing {

// A network namespace at <temporary directory>/net, unmounted and removed
// with its directory when the object goes. The kernel frees the namespace
// itself once nothing else holds it (a thread in it, an open fd, a socket).
//
// Not tests/processes.h's TempDir: that header pulls in gRPC, and a bind mount
// has to be unmounted before its directory can be removed anyway.
class TestNetns {
 public:
  static absl::StatusOr<std::unique_ptr<TestNetns>> Create() {
    std::string dir = "/tmp/atoll-netns-XXXXXX";
    if (mkdtemp(dir.data()) == nullptr) {
      return absl::ErrnoToStatus(errno, "create a directory for a network namespace");
    }
    std::unique_ptr<TestNetns> ns(new TestNetns(dir));
    const int fd = open(ns->path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("create ", ns->path_));
    close(fd);
    absl::Status status;
    Spawn(status, [&] {
      if (unshare(CLONE_NEWNET) != 0) {
        status = absl::ErrnoToStatus(errno, "unshare(CLONE_NEWNET)");
      } else if (mount("/proc/thread-self/ns/net", ns->path_.c_str(), nullptr, MS_BIND, nullptr) !=
                 0) {
        status = absl::ErrnoToStatus(errno, absl::StrCat("bind-mount a netns on ", ns->path_));
      } else {
        ns->mounted_ = true;
      }
    });
    if (!status.ok()) return status;
    return ns;
  }

  ~TestNetns() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;

  const std::string& path() const { return path_; }

  // Runs `fn` on a new thread inside the namespace and waits for it; an error
  // when the thread could not enter it (then `fn` does not run).
  absl::Status Run(const std::function<void()>& fn) const {
    absl::Status status;
    Spawn(status, [&] {
      const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        status = absl::ErrnoToStatus(errno, absl::StrCat("open ", path_));
        return;
      }
      const int entered = setns(fd, CLONE_NEWNET);
      const int err = errno;
      close(fd);
      if (entered != 0) {
        status = absl::ErrnoToStatus(err, absl::StrCat("enter ", path_));
        return;
      }
      fn();
    });
    return status;
  }

 private:
  explicit TestNetns(std::string dir) : dir_(std::move(dir)), path_(dir_ + "/net") {}

  // Runs `fn` on a thread of its own and joins it.
  static void Spawn(absl::Status& status, const std::function<void()>& fn) {
    try {
      std::thread(fn).join();
    } catch (const std::system_error& e) {
      status = absl::ResourceExhaustedError(e.what());
    }
  }

  std::string dir_;
  std::string path_;
  bool mounted_ = false;
};

}  // namespace atl::testing
