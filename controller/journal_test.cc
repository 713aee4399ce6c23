#include "controller/journal.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atl::controller {
namespace {

namespace api = ::atl::api::v1;
using ::testing::ElementsAre;

api::ResourceKey Svc(const std::string& name) {
  api::ResourceKey k;
  k.set_kind(api::KIND_SERVICE);
  k.set_namespace_("shop");
  k.set_name(name);
  return k;
}

// What an agent at `from` is sent: "name=data" for upserts, "-name" for removals.
std::vector<std::string> After(const Journal& j, Cursor from) {
  std::vector<std::string> out;
  j.ForEachAfter(from, [&](const Journal::Entry& e) {
    out.push_back(e.data ? e.key.name() + "=" + *e.data : "-" + e.key.name());
  });
  return out;
}

std::vector<std::string> Live(const Journal& j) {
  std::vector<std::string> out;
  j.ForEachLive([&](const Journal::Entry& e) { out.push_back(e.key.name() + "=" + *e.data); });
  return out;
}

TEST(Journal, AnAgentBehindGetsEachChangedKeyOnceWithItsLatestValue) {
  Journal j;
  j.Put(Svc("a"), 1, "a1");
  j.Put(Svc("b"), 1, "b1");
  const Cursor agent = j.end();
  j.Put(Svc("a"), 2, "a2");
  j.Put(Svc("c"), 3, "c3");
  j.Put(Svc("a"), 4, "a4");
  EXPECT_THAT(After(j, agent), ElementsAre("c=c3", "a=a4"));
  EXPECT_THAT(Live(j), ElementsAre("b=b1", "c=c3", "a=a4"));
  EXPECT_EQ(j.revision(), 4u);
}

TEST(Journal, ResumingFromARevisionSendsWhatCameAfterIt) {
  Journal j;
  j.Put(Svc("a"), 1, "a1");
  j.Put(Svc("b"), 2, "b2");
  j.Put(Svc("c"), 2, "c2");
  j.Put(Svc("d"), 3, "d3");
  EXPECT_THAT(After(j, Cursor::After(1)), ElementsAre("b=b2", "c=c2", "d=d3"));
  EXPECT_THAT(After(j, Cursor::After(2)), ElementsAre("d=d3"));
  EXPECT_THAT(After(j, Cursor::After(3)), ElementsAre());
  EXPECT_TRUE(j.CanResumeFrom(Cursor::After(3)));
  EXPECT_FALSE(j.CanResumeFrom(Cursor::After(4))) << "a version this journal never had";
}

TEST(Journal, DeletionsReachAgentsAsRemovalsAndLeaveSnapshots) {
  Journal j;
  j.Put(Svc("a"), 1, "a1");
  j.Put(Svc("b"), 1, "b1");
  j.Put(Svc("a"), 2, "");
  EXPECT_THAT(After(j, Cursor::After(1)), ElementsAre("-a"));
  EXPECT_THAT(Live(j), ElementsAre("b=b1"));
  EXPECT_EQ(j.live(), 1u);
  EXPECT_EQ(j.tombstones(), 1u);
  // Written again after the deletion: an upsert, no longer a tombstone.
  j.Put(Svc("a"), 3, "a3");
  EXPECT_THAT(After(j, Cursor::After(1)), ElementsAre("a=a3"));
  EXPECT_EQ(j.tombstones(), 0u);
}

TEST(Journal, TrimForgetsTheOldestTombstonesAndRefusesResumeBeforeThem) {
  Journal j;
  for (int i = 0; i < 5; ++i) j.Put(Svc("s" + std::to_string(i)), 1, "x");
  for (int i = 0; i < 5; ++i) j.Put(Svc("s" + std::to_string(i)), 2 + i, "");
  EXPECT_EQ(j.Trim(2), 4u) << "tombstones of revisions 2, 3 and 4 are gone";
  EXPECT_EQ(j.tombstones(), 2u);
  EXPECT_FALSE(j.CanResumeFrom(Cursor::After(3)));
  EXPECT_TRUE(j.CanResumeFrom(Cursor::After(4)));
  EXPECT_THAT(After(j, Cursor::After(4)), ElementsAre("-s3", "-s4"));
}

}  // namespace
}  // namespace atl::controller
