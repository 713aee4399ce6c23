#include "agent/lease_store.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atl::agent {
namespace {

using ::testing::HasSubstr;

lb::IpAddr A(const char* text) { return *lb::IpAddr::Parse(text); }
lb::IpPrefix P(const char* text) { return *lb::IpPrefix::Parse(text); }

Lease Pod(const std::string& container_id, const std::string& ifname = "eth0") {
  return Lease{container_id,
               ifname,
               "/var/run/netns/" + container_id,
               "shop",
               "web-" + container_id,
               lb::IpAddr(),
               false,
               "atoll"};
}

class LeaseStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("atoll-lease-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "leases.db").string();
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    auto opened = LeaseStore::Open(path_);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = *std::move(opened);
  }

  // The segment 198.19.0.0/24: its network address and gateway are never leased.
  const std::vector<lb::IpAddr> reserved_ = {A("198.19.0.0"), A("198.19.0.1")};
  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<LeaseStore> store_;
};

TEST_F(LeaseStoreTest, HandsOutTheLowestFreeAddressSkippingReservedOnes) {
  const std::vector<lb::IpPrefix> blocks = {P("198.19.0.0/28")};
  auto a = store_->Acquire(Pod("a"), blocks, reserved_);
  auto b = store_->Acquire(Pod("b"), blocks, reserved_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->address, A("198.19.0.2"));
  EXPECT_EQ(b->address, A("198.19.0.3"));
  EXPECT_EQ(a->pod_name, "web-a");
}

TEST_F(LeaseStoreTest, ARepeatedAddForTheSameInterfaceGetsTheSameLease) {
  const std::vector<lb::IpPrefix> blocks = {P("198.19.0.0/28")};
  auto first = store_->Acquire(Pod("a"), blocks, reserved_);
  auto again = store_->Acquire(Pod("a"), blocks, reserved_);
  auto other_if = store_->Acquire(Pod("a", "net1"), blocks, reserved_);
  ASSERT_TRUE(first.ok() && again.ok() && other_if.ok());
  EXPECT_EQ(*again, *first);
  EXPECT_NE(other_if->address, first->address) << "another interface, another address";
  EXPECT_EQ(store_->List()->size(), 2u);
  EXPECT_EQ(store_->List()->front().network, "atoll");
}

TEST_F(LeaseStoreTest, AFullBlockIsExhaustedUntilAnotherBlockComes) {
  std::vector<lb::IpPrefix> blocks = {P("198.19.0.0/30")};  // .0 and .1 reserved: .2, .3
  ASSERT_TRUE(store_->Acquire(Pod("a"), blocks, reserved_).ok());
  ASSERT_TRUE(store_->Acquire(Pod("b"), blocks, reserved_).ok());
  auto full = store_->Acquire(Pod("c"), blocks, reserved_);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.status().message()), HasSubstr("\"shop\""));
  blocks.push_back(P("198.19.0.16/28"));
  auto c = store_->Acquire(Pod("c"), blocks, reserved_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->address, A("198.19.0.16"));
}

TEST_F(LeaseStoreTest, ReleaseIsRepeatableAndFreesTheAddress) {
  const std::vector<lb::IpPrefix> blocks = {P("198.19.0.0/28")};
  auto a = store_->Acquire(Pod("a"), blocks, reserved_);
  ASSERT_TRUE(a.ok());
  auto released = store_->Release("a", "eth0");
  ASSERT_TRUE(released.ok());
  ASSERT_TRUE(released->has_value());
  EXPECT_EQ((*released)->address, a->address);
  auto twice = store_->Release("a", "eth0");
  ASSERT_TRUE(twice.ok()) << "a second DEL is not an error";
  EXPECT_FALSE(twice->has_value());
  EXPECT_TRUE(store_->List()->empty());
}

TEST_F(LeaseStoreTest, LeasesSurviveAReopenAndAreNeverHandedOutTwice) {
  const std::vector<lb::IpPrefix> blocks = {P("198.19.0.0/28")};
  std::vector<lb::IpAddr> before;
  for (const char* id : {"a", "b", "c"})
    before.push_back(store_->Acquire(Pod(id), blocks, reserved_)->address);
  ASSERT_TRUE(store_->Release("b", "eth0").ok());
  Reopen();  // as after kill -9 of the agent
  auto leases = store_->List();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 2u);
  EXPECT_EQ((*leases)[0].address, before[0]);
  EXPECT_EQ((*leases)[1].address, before[2]);
  // New pods fill the hole and go on past the held addresses, never onto them.
  std::vector<lb::IpAddr> after;
  for (const char* id : {"d", "e"})
    after.push_back(store_->Acquire(Pod(id), blocks, reserved_)->address);
  EXPECT_EQ(after[0], before[1]);
  EXPECT_EQ(after[1], A("198.19.0.5"));
}

TEST_F(LeaseStoreTest, AReleasingLeaseKeepsItsAddressUntilReleasedAndSurvivesAReopen) {
  const std::vector<lb::IpPrefix> blocks = {P("198.19.0.0/28")};
  const lb::IpAddr first = store_->Acquire(Pod("a"), blocks, reserved_)->address;
  auto marked = store_->MarkReleasing("a", "eth0");
  ASSERT_TRUE(marked.ok() && marked->has_value());
  EXPECT_TRUE((*marked)->releasing);
  EXPECT_FALSE(store_->MarkReleasing("nobody", "eth0")->has_value());

  Reopen();  // a kill -9 while the interface was being removed
  auto held = store_->Find("a", "eth0");
  ASSERT_TRUE(held.ok() && held->has_value());
  EXPECT_TRUE((*held)->releasing);
  // Its address is still taken.
  EXPECT_NE(store_->Acquire(Pod("b"), blocks, reserved_)->address, first);

  ASSERT_TRUE(store_->Release("a", "eth0").ok());
  EXPECT_EQ(store_->Acquire(Pod("c"), blocks, reserved_)->address, first);
}

TEST_F(LeaseStoreTest, Ipv6BlocksWork) {
  const std::vector<lb::IpPrefix> blocks = {P("fd00:a70:1::/124")};
  const std::vector<lb::IpAddr> reserved = {A("fd00:a70:1::"), A("fd00:a70:1::1")};
  auto a = store_->Acquire(Pod("a"), blocks, reserved);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->address, A("fd00:a70:1::2"));
}

TEST_F(LeaseStoreTest, AnUnopenablePathIsNamed) {
  auto store = LeaseStore::Open((dir_ / "missing" / "leases.db").string());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("missing"));
}

}  // namespace
}  // namespace atl::agent
