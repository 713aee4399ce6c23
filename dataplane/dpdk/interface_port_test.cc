// Ports over kernel interfaces (AttachInterface): the mbuf pool the AF_XDP
// driver makes its UMEM of, and which interfaces can be attached whole. The
// test runs in a network namespace of its own, where it makes its veths.
#include <gtest/gtest.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "dataplane/dpdk/dpdk_dataplane.h"

namespace atl::dataplane::dpdk {
namespace {

// Every mbuf of a port's pool lies inside the UMEM the AF_XDP driver makes
// of it (InterfacePool): from the page of the pool's first byte, `populated`
// objects of rte_mempool_calc_obj_size() each. One outside is sent by the
// kernel as an invalid descriptor: dropped, counted nowhere DPDK reports.
TEST(InterfacePoolTest, EveryMbufLiesInsideTheUmemTheAfXdpDriverRegisters) {
  constexpr unsigned kMbufs = 4095;
  absl::StatusOr<rte_mempool*> made = InterfacePool("atl_umem_test", kMbufs);
  ASSERT_TRUE(made.ok()) << made.status();
  rte_mempool* pool = *made;
  ASSERT_EQ(pool->populated_size, kMbufs);
  ASSERT_EQ(pool->nb_mem_chunks, 1u);
  // As drivers/net/af_xdp's xdp_umem_configure() computes it.
  const auto first = reinterpret_cast<uintptr_t>(STAILQ_FIRST(&pool->mem_list)->addr);
  const uintptr_t base = first & ~(uintptr_t{4096} - 1);
  const uint64_t frame = rte_mempool_calc_obj_size(pool->elt_size, pool->flags, nullptr);
  struct Umem {
    uintptr_t base, end;
    uint64_t frame;
    uint32_t header;
    unsigned inside = 0, outside = 0;
  } umem{base, first + pool->populated_size * frame, frame, pool->header_size};
  rte_mempool_obj_iter(
      pool,
      [](rte_mempool*, void* arg, void* obj, unsigned) {
        auto* u = static_cast<Umem*>(arg);
        const uintptr_t start = reinterpret_cast<uintptr_t>(obj) - u->header;
        ++(start >= u->base && start + u->frame <= u->end ? u->inside : u->outside);
      },
      &umem);
  EXPECT_EQ(umem.inside, kMbufs);
  EXPECT_EQ(umem.outside, 0u);
  rte_mempool_free(pool);
}

void Ip(const std::string& args) {
  ASSERT_EQ(std::system(("ip " + args).c_str()), 0) << "ip " << args;
}

// A veth made as `ip link add` makes it has one RX queue, which the AF_XDP
// port binds: all its frames come to the dataplane.
TEST(AttachInterfaceTest, AttachesAOneQueueVeth) {
  Ip("link add atl-one type veth peer name atl-one-peer");
  Ip("link set atl-one up");
  Ip("link set atl-one-peer up");
  absl::StatusOr<uint16_t> port = AttachInterface("atl-one");
  ASSERT_TRUE(port.ok()) << port.status();
  rte_eth_dev_info info{};
  ASSERT_EQ(rte_eth_dev_info_get(*port, &info), 0);
  EXPECT_STREQ(info.driver_name, "net_af_xdp");
  EXPECT_EQ(info.nb_rx_queues, 1u);
  DetachPort(*port);
  Ip("link del atl-one");
}

// One with two RX queues and no combined channels would pass the second
// queue's frames to the kernel, unseen: it is refused, by name.
TEST(AttachInterfaceTest, RefusesAnInterfaceWhoseQueuesItCannotAllBind) {
  Ip("link add atl-two numtxqueues 2 numrxqueues 2 type veth peer name atl-two-peer");
  Ip("link set atl-two up");
  absl::StatusOr<uint16_t> port = AttachInterface("atl-two");
  EXPECT_EQ(port.status().code(), absl::StatusCode::kFailedPrecondition) << port.status();
  EXPECT_NE(port.status().message().find("\"atl-two\": it has 2 RX queues"), std::string::npos)
      << port.status();
  if (port.ok()) DetachPort(*port);
  Ip("link del atl-two");
}

}  // namespace
}  // namespace atl::dataplane::dpdk

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // A network namespace of the test's own, before the EAL starts threads.
  if (unshare(CLONE_NEWNET) != 0) {
    std::perror("interface_port_test: unshare(CLONE_NEWNET) (this test needs root)");
    return 1;
  }
  const absl::Status eal = atl::dataplane::dpdk::InitEal(
      atl::dataplane::dpdk::DefaultEalArgs("0", 256, "atoll-interface-port-test"));
  if (!eal.ok()) {
    std::fprintf(stderr, "interface_port_test: %s\n", eal.ToString().c_str());
    return 1;
  }
  return RUN_ALL_TESTS();
}
