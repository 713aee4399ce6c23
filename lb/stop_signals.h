// How each of our daemons stops: on SIGINT or SIGTERM, taken by a sigwait in
// its main thread, so that it can shut down in order rather than die.
#pragma once

#include <pthread.h>
#include <signal.h>

namespace atl::lb {

class StopSignals {
 public:
  // Blocks both signals in the calling thread. Made before any other thread
  // starts (gRPC's, a dataplane's): a thread inherits the mask it starts
  // with, and one with the signals open would be killed by them.
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Until one of them comes; which one.
  int Wait() const {
    int sig = 0;
    sigwait(&set_, &sig);
    return sig;
  }

 private:
  sigset_t set_;
};

}  // namespace atl::lb
