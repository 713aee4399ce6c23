// A prefetch the compiler cannot drop.
//
// __builtin_prefetch has no effect the language can observe, so GCC may
// find a function whose only effect is a prefetch to be pure, and then drop
// every call whose result is unused. GCC 12 at -O3 did so to
// ConntrackShard::PrefetchInsert once its hash became cheap enough to change
// the inliner's mind: new flows lost their reply-slot prefetch and took 45 %
// longer, with no warning. An asm volatile statement is an effect the
// compiler must keep where it stands, as in DPDK's rte_prefetch0.
#pragma once

namespace atl::lb {

// Starts loading the cache line holding `p` into every level (prefetcht0).
inline void Prefetch(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const volatile char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

}  // namespace atl::lb
