#include "controller/sqlite_store.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atl::controller {
namespace {

namespace api = ::atl::api::v1;

api::ResourceKey Ns(const std::string& name) {
  api::ResourceKey k;
  k.set_kind(api::KIND_NAMESPACE);
  k.set_name(name);
  return k;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("atoll-store-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "controller.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<StoredEntry> LoadAll(Store& s) {
    std::vector<StoredEntry> out;
    EXPECT_TRUE(s.Load([&](StoredEntry&& e) { out.push_back(std::move(e)); }).ok());
    return out;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(SqliteStoreTest, CommitsSurviveReopeningWithTheirRevisionsAndId) {
  std::string id;
  {
    auto store = SqliteStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    id = (*store)->id();
    EXPECT_EQ((*store)->revision(), 0u);
    EXPECT_EQ(*(*store)->Commit({{Ns("a"), "A1"}, {Ns("b"), "B1"}}), 1u);
    EXPECT_EQ(*(*store)->Commit({{Ns("a"), "A2"}}), 2u);
    EXPECT_EQ(*(*store)->Commit({{Ns("b"), ""}}), 3u);
  }
  auto store = SqliteStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->id(), id) << "the same history";
  EXPECT_EQ((*store)->revision(), 3u);
  std::vector<StoredEntry> all = LoadAll(**store);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].key.name(), "a");
  EXPECT_EQ(all[0].revision, 2u);
  EXPECT_EQ(all[0].data, "A2");
  EXPECT_EQ(all[1].key.name(), "b");
  EXPECT_EQ(all[1].revision, 3u);
  EXPECT_EQ(all[1].data, "") << "a tombstone";
}

TEST_F(SqliteStoreTest, ANewDatabaseIsANewHistory) {
  auto first = SqliteStore::Open(path_);
  ASSERT_TRUE(first.ok());
  auto other = SqliteStore::Open((dir_ / "other.db").string());
  ASSERT_TRUE(other.ok());
  EXPECT_NE((*first)->id(), (*other)->id());
  EXPECT_EQ((*first)->id().size(), 32u);
}

TEST_F(SqliteStoreTest, CompactDropsTombstonesUpToTheRevisionAndRemembersIt) {
  {
    auto store = SqliteStore::Open(path_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Commit({{Ns("a"), "A"}, {Ns("b"), "B"}, {Ns("c"), "C"}}).ok());
    ASSERT_TRUE((*store)->Commit({{Ns("a"), ""}}).ok());
    ASSERT_TRUE((*store)->Commit({{Ns("b"), ""}}).ok());
    ASSERT_TRUE((*store)->Compact(2).ok());
    EXPECT_EQ((*store)->compacted(), 2u);
  }
  auto store = SqliteStore::Open(path_);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->compacted(), 2u);
  std::vector<StoredEntry> all = LoadAll(**store);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].key.name(), "c");
  EXPECT_EQ(all[1].key.name(), "b");
  EXPECT_EQ(all[1].data, "");
}

TEST_F(SqliteStoreTest, AnUnopenablePathIsNamedInTheError) {
  auto store = SqliteStore::Open((dir_ / "missing-dir" / "x.db").string());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), ::testing::HasSubstr("missing-dir"));
}

}  // namespace
}  // namespace atl::controller
