#include "agent/desired_state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace atl::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

api::Resource Service(std::string ns, std::string name, std::string cluster_ip) {
  api::Resource r;
  api::Service* s = r.mutable_service();
  s->set_namespace_(ns);
  s->set_name(name);
  s->add_cluster_ips(cluster_ip);
  return r;
}

api::Resource Slice(std::string ns, std::string name, std::string service) {
  api::Resource r;
  api::EndpointSlice* s = r.mutable_endpoint_slice();
  s->set_namespace_(ns);
  s->set_name(name);
  s->set_service_name(service);
  return r;
}

api::Resource Node(std::string name, std::string underlay) {
  api::Resource r;
  r.mutable_node()->set_name(name);
  r.mutable_node()->set_underlay_address(underlay);
  return r;
}

api::Resource Namespace(std::string name) {
  api::Resource r;
  r.mutable_namespace_()->set_name(name);
  return r;
}

api::Resource Segment(std::string ns, uint32_t id) {
  api::Resource r;
  r.mutable_segment()->set_namespace_(ns);
  r.mutable_segment()->set_id(id);
  return r;
}

api::ResourceKey Key(api::Kind kind, std::string ns, std::string name) {
  api::ResourceKey k;
  k.set_kind(kind);
  k.set_namespace_(ns);
  k.set_name(name);
  return k;
}

std::vector<std::string> SliceNames(const DesiredState& state, std::string ns,
                                    std::string service) {
  std::vector<std::string> names;
  for (const api::EndpointSlice* s : state.SlicesOf(ns, service)) names.push_back(s->name());
  return names;
}

std::vector<std::string> Described(const std::vector<Change>& changes) {
  std::vector<std::string> out;
  for (const Change& c : changes) {
    out.push_back(absl::StrCat(c.before ? "" : "+", c.after ? "" : "-", Describe(c.key)));
  }
  return out;
}

TEST(KeyOf, NamesEveryKind) {
  EXPECT_EQ(Describe(KeyOf(Service("shop", "web", "198.18.64.1"))), "Service shop/web");
  EXPECT_EQ(Describe(KeyOf(Slice("shop", "web-1", "web"))), "EndpointSlice shop/web-1");
  EXPECT_EQ(Describe(KeyOf(Node("h1", ""))), "Node h1");
  EXPECT_EQ(Describe(KeyOf(Namespace("shop"))), "Namespace shop");
  // A segment is cluster-scoped and named after its namespace.
  const api::ResourceKey seg = KeyOf(Segment("shop", 7));
  EXPECT_EQ(seg.kind(), api::KIND_SEGMENT);
  EXPECT_EQ(seg.namespace_(), "");
  EXPECT_EQ(seg.name(), "shop");
  EXPECT_EQ(KeyOf(api::Resource()).kind(), api::KIND_UNSPECIFIED);
}

TEST(DesiredState, SnapshotReplacesEverything) {
  DesiredState state;
  auto first =
      state.ApplySnapshot({Service("shop", "web", "198.18.64.1"), Slice("shop", "web-1", "web"),
                           Node("h1", "198.18.0.1"), Namespace("shop"), Segment("shop", 7)});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->size(), 5u);
  EXPECT_EQ(state.size(), 5u);
  for (const Change& c : *first) {
    EXPECT_EQ(c.before, nullptr);
    EXPECT_NE(c.after, nullptr);
  }

  // web changes, the slice and h1 stay, the rest goes, h2 arrives.
  auto second =
      state.ApplySnapshot({Service("shop", "web", "198.18.64.2"), Slice("shop", "web-1", "web"),
                           Node("h1", "198.18.0.1"), Node("h2", "198.18.0.2")});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(Described(*second), testing::UnorderedElementsAre("-Namespace shop", "-Segment shop",
                                                                "Service shop/web", "+Node h2"));
  for (const Change& c : *second) {
    if (c.key.kind() == api::KIND_SERVICE) {
      EXPECT_EQ(c.before->service().cluster_ips(0), "198.18.64.1");
      EXPECT_EQ(c.after->service().cluster_ips(0), "198.18.64.2");
    }
  }
  EXPECT_EQ(state.size(), 4u);
  EXPECT_EQ(state.FindSegment("shop"), nullptr);
  EXPECT_EQ(state.FindService("shop", "web")->cluster_ips(0), "198.18.64.2");
  ASSERT_EQ(state.Nodes().size(), 2u);
  EXPECT_EQ(state.Nodes()[1]->name(), "h2");
  EXPECT_THAT(state.Segments(), IsEmpty());
  EXPECT_THAT(state.Namespaces(), IsEmpty());
}

TEST(DesiredState, EqualUpsertsAreNoChange) {
  DesiredState state;
  ASSERT_TRUE(state.ApplySnapshot({Service("shop", "web", "198.18.64.1")}).ok());
  auto same = state.ApplyDelta({Service("shop", "web", "198.18.64.1")}, {});
  ASSERT_TRUE(same.ok());
  EXPECT_THAT(*same, IsEmpty());
  auto snapshot = state.ApplySnapshot({Service("shop", "web", "198.18.64.1")});
  ASSERT_TRUE(snapshot.ok());
  EXPECT_THAT(*snapshot, IsEmpty());
  // Removing what is not held is no change either.
  auto absent =
      state.ApplyDelta(std::vector<api::Resource>{}, {Key(api::KIND_SERVICE, "shop", "gone")});
  ASSERT_TRUE(absent.ok());
  EXPECT_THAT(*absent, IsEmpty());
}

TEST(DesiredState, DeltaUpsertsAndRemoves) {
  DesiredState state;
  ASSERT_TRUE(
      state.ApplySnapshot({Service("shop", "web", "198.18.64.1"), Slice("shop", "web-1", "web")})
          .ok());
  auto delta = state.ApplyDelta({Slice("shop", "web-2", "web"), Node("h2", "198.18.0.2")},
                                {Key(api::KIND_ENDPOINT_SLICE, "shop", "web-1")});
  ASSERT_TRUE(delta.ok()) << delta.status();
  EXPECT_THAT(Described(*delta),
              ElementsAre("+EndpointSlice shop/web-2", "+Node h2", "-EndpointSlice shop/web-1"));
  EXPECT_EQ(delta->back().before->endpoint_slice().name(), "web-1");
  EXPECT_THAT(SliceNames(state, "shop", "web"), ElementsAre("web-2"));
  EXPECT_NE(state.Get(Key(api::KIND_NODE, "", "h2")), nullptr);
}

TEST(DesiredState, SliceIndexFollowsServiceName) {
  DesiredState state;
  ASSERT_TRUE(state
                  .ApplySnapshot({Slice("shop", "b", "web"), Slice("shop", "a", "web"),
                                  Slice("shop", "c", "api"), Slice("ops", "a", "web")})
                  .ok());
  EXPECT_THAT(SliceNames(state, "shop", "web"), ElementsAre("a", "b"));
  EXPECT_THAT(SliceNames(state, "ops", "web"), ElementsAre("a"));
  // A slice relabelled to another service moves in the index.
  ASSERT_TRUE(state.ApplyDelta({Slice("shop", "b", "api")}, {}).ok());
  EXPECT_THAT(SliceNames(state, "shop", "web"), ElementsAre("a"));
  EXPECT_THAT(SliceNames(state, "shop", "api"), ElementsAre("b", "c"));
  EXPECT_THAT(SliceNames(state, "shop", "none"), IsEmpty());
}

TEST(DesiredState, UndoRestoresExactly) {
  DesiredState state;
  ASSERT_TRUE(state
                  .ApplySnapshot({Service("shop", "web", "198.18.64.1"),
                                  Slice("shop", "web-1", "web"), Node("h1", "198.18.0.1")})
                  .ok());
  auto delta =
      state.ApplyDelta({Service("shop", "web", "198.18.64.9"), Slice("shop", "web-1", "other"),
                        Slice("shop", "web-2", "web"), Service("shop", "web", "198.18.64.10")},
                       {Key(api::KIND_NODE, "", "h1")});
  ASSERT_TRUE(delta.ok());
  EXPECT_EQ(delta->size(), 5u);  // web twice: each step undoes to the one before
  state.Undo(*std::move(delta));
  EXPECT_EQ(state.size(), 3u);
  EXPECT_EQ(state.FindService("shop", "web")->cluster_ips(0), "198.18.64.1");
  EXPECT_THAT(SliceNames(state, "shop", "web"), ElementsAre("web-1"));
  EXPECT_THAT(SliceNames(state, "shop", "other"), IsEmpty());
  EXPECT_NE(state.FindNode("h1"), nullptr);

  auto snapshot = state.ApplySnapshot({Namespace("shop")});
  ASSERT_TRUE(snapshot.ok());
  state.Undo(*std::move(snapshot));
  EXPECT_EQ(state.size(), 3u);
  EXPECT_EQ(state.FindNamespace("shop"), nullptr);
  EXPECT_THAT(SliceNames(state, "shop", "web"), ElementsAre("web-1"));
}

TEST(DesiredState, RejectsResourcesWithoutKindOrName) {
  DesiredState state;
  ASSERT_TRUE(state.ApplySnapshot({Node("h1", "198.18.0.1")}).ok());
  auto no_kind = state.ApplyDelta({Node("h2", ""), api::Resource()}, {});
  EXPECT_EQ(no_kind.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_kind.status().message(), HasSubstr("upsert 1 has no kind"));
  EXPECT_EQ(state.FindNode("h2"), nullptr);  // nothing of the delta was applied

  auto no_name = state.ApplyDelta({Service("shop", "", "198.18.64.1")}, {});
  EXPECT_THAT(no_name.status().message(), HasSubstr("upsert 0 is a Service with no name"));
  auto no_ns = state.ApplyDelta({Service("", "web", "198.18.64.1")}, {});
  EXPECT_THAT(no_ns.status().message(), HasSubstr("no namespace"));
  auto bad_removal =
      state.ApplyDelta(std::vector<api::Resource>{}, {Key(api::KIND_UNSPECIFIED, "", "h1")});
  EXPECT_THAT(bad_removal.status().message(), HasSubstr("removal 0 has no kind"));
  auto bad_snapshot = state.ApplySnapshot({Node("h3", ""), api::Resource()});
  EXPECT_THAT(bad_snapshot.status().message(), HasSubstr("snapshot resource 1 has no kind"));
  EXPECT_EQ(state.size(), 1u);
  EXPECT_NE(state.FindNode("h1"), nullptr);
}

}  // namespace
}  // namespace atl::agent
