#include "dataplane/daemon/remote_dataplane.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "dataplane/daemon/dataplane_service.h"
#include "dataplane/daemon/wire.h"
#include "dataplane/in_process_dataplane.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server_builder.h"

namespace atl::dataplane {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

lb::IpAddr Addr(std::string_view text) { return lb::IpAddr::Parse(text).value(); }
lb::IpPrefix Prefix(std::string_view text) { return lb::IpPrefix::Parse(text).value(); }

// Every field of an Update set to something other than its default, in both
// address families, with the NodePort's unspecified IPv4 and IPv6 keys (two
// frontends that differ only there).
Update EveryField() {
  Update u;
  Frontend f;
  f.key = {Addr("198.18.64.1"), 80, lb::IpProto::kUdp, lb::Scope::kInternal};
  f.name = "shop/web:dns";
  f.config.backends = {{.endpoint = {Addr("198.19.0.20"), 8053},
                        .weight = 3,
                        .serving = true,
                        .terminating = false,
                        .node_local = true},
                       {.endpoint = {Addr("198.19.0.21"), 8053},
                        .weight = 1,
                        .serving = false,
                        .terminating = true,
                        .node_local = false}};
  f.config.external_policy = lb::TrafficPolicy::kLocal;
  f.config.internal_policy = lb::TrafficPolicy::kLocal;
  f.config.affinity_timeout_s = 10800;
  f.config.maglev_size = 1021;
  u.upsert_frontends.push_back(f);
  Frontend np = f;
  np.key = {lb::IpAddr::V4(0), 30080, lb::IpProto::kTcp, lb::Scope::kExternal};
  np.name = "shop/web:np4";
  u.upsert_frontends.push_back(np);
  np.key.addr = lb::IpAddr{};
  np.key.proto = lb::IpProto::kSctp;
  np.name = "shop/web:np6";
  np.config.backends = {{.endpoint = {Addr("fd00:a70::20"), 30080}}};  // SCTP: no port NAT
  u.upsert_frontends.push_back(np);
  u.remove_frontends = {{Addr("fd00:a70:ff::1"), 443, lb::IpProto::kTcp, lb::Scope::kExternal}};
  u.upsert_segments = {{"shop",
                        7,
                        {Prefix("198.19.0.0/24"), Prefix("fd00:a70:1::/64")},
                        Addr("198.19.0.1"),
                        false,
                        {"web", "ops"},
                        Addr("198.18.48.7")},
                       {"ops", 8, {Prefix("198.19.1.0/24")}, Addr("198.19.1.1"), true, {}, {}}};
  u.remove_segments = {"old"};
  u.upsert_routes = {{Prefix("198.19.0.64/26"), 7, "h2", Addr("198.18.0.12")}};
  u.remove_routes = {Prefix("198.19.2.0/26")};
  u.upsert_pod_ports = {{"atl0123456789a",
                         7,
                         {0x0a, 0x58, 0xc6, 0x13, 0, 5},
                         Addr("198.19.0.5"),
                         "shop",
                         "shop/web-1"}};
  u.remove_pod_ports = {"atl0123456789b"};
  u.set_node_addresses = true;
  u.node_addresses = {Addr("198.18.0.11"), Addr("fd00:a70::11")};
  u.full_sync = true;
  u.full_sync_pod_ports = true;
  return u;
}

// Two updates are equal when their wire forms are: the test below checks
// that the wire form keeps every field, so this compares them all.
std::string Bytes(const Update& u) { return ToWire(u).SerializeAsString(); }

TEST(Wire, AnUpdateComesBackAsItWent) {
  const Update sent = EveryField();
  const absl::StatusOr<Update> got = FromWire(ToWire(sent));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Bytes(*got), Bytes(sent));
  // Field by field where the wire form could blur two values into one.
  ASSERT_EQ(got->upsert_frontends.size(), 3u);
  EXPECT_EQ(got->upsert_frontends[1].key.addr, lb::IpAddr::V4(0));
  EXPECT_EQ(got->upsert_frontends[2].key.addr, lb::IpAddr{});
  EXPECT_EQ(got->upsert_frontends[2].key.proto, lb::IpProto::kSctp);
  EXPECT_EQ(got->upsert_frontends[0].config.backends, sent.upsert_frontends[0].config.backends);
  EXPECT_EQ(got->upsert_frontends[0].config.external_policy, lb::TrafficPolicy::kLocal);
  EXPECT_EQ(got->upsert_frontends[0].config.affinity_timeout_s, 10800u);
  EXPECT_EQ(got->upsert_frontends[0].config.maglev_size, 1021u);
  EXPECT_EQ(got->remove_frontends[0], sent.remove_frontends[0]);
  EXPECT_EQ(got->upsert_segments, sent.upsert_segments);
  EXPECT_TRUE(got->upsert_segments[1].egress_ip.IsUnspecified());
  EXPECT_EQ(got->remove_segments, sent.remove_segments);
  EXPECT_EQ(got->upsert_routes, sent.upsert_routes);
  EXPECT_EQ(got->remove_routes[0].ToString(), "198.19.2.0/26");
  EXPECT_EQ(got->upsert_pod_ports, sent.upsert_pod_ports);
  EXPECT_EQ(got->remove_pod_ports, sent.remove_pod_ports);
  EXPECT_TRUE(got->set_node_addresses);
  EXPECT_EQ(got->node_addresses, sent.node_addresses);
  EXPECT_TRUE(got->full_sync);
  EXPECT_TRUE(got->full_sync_pod_ports);
  EXPECT_EQ(Bytes(Update{}), "");  // and the defaults are the wire's own
}

TEST(Wire, ABadFieldIsNamedWithItsValue) {
  const v1::Update good = ToWire(EveryField());
  const auto refused = [&](auto spoil) {
    v1::Update w = good;
    spoil(w);
    const absl::StatusOr<Update> u = FromWire(w);
    EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(u.status().message());
  };
  EXPECT_EQ(refused([](v1::Update& w) {
              w.mutable_upsert_frontends(0)->mutable_backends(1)->set_address("198.19.0.256");
            }),
            "upsert_frontends[0].backends[1].address: \"198.19.0.256\" is no address");
  EXPECT_EQ(
      refused([](v1::Update& w) { w.mutable_upsert_frontends(1)->mutable_key()->set_port(70000); }),
      "upsert_frontends[1].key.port: port 70000 is above 65535");
  EXPECT_THAT(
      refused([](v1::Update& w) { w.mutable_upsert_frontends(1)->mutable_key()->set_protocol(1); }),
      HasSubstr("upsert_frontends[1].key.protocol: 1 is not TCP"));
  EXPECT_EQ(refused([](v1::Update& w) { w.mutable_upsert_pod_ports(0)->set_mac("abcde"); }),
            "upsert_pod_ports[0].mac: 5 bytes, not 6");
  EXPECT_EQ(refused([](v1::Update& w) { w.set_remove_routes(0, "198.19.2.1/26"); }),
            "remove_routes[0]: \"198.19.2.1/26\" is no CIDR");
  EXPECT_EQ(refused([](v1::Update& w) { w.mutable_upsert_segments(0)->set_cidrs(1, "shop"); }),
            "upsert_segments[0].cidrs[1]: \"shop\" is no CIDR");
  EXPECT_EQ(refused([](v1::Update& w) { w.set_node_addresses(1, ""); }),
            "node_addresses[1]: \"\" is no address");
}

// The service on a Unix socket of the test's own, the in-process backend
// behind it, and the agent's side of it.
class RemoteDataplaneTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kInstance = 0x5eed;

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("atoll-remote-dataplane-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    socket_ = (dir_ / "dataplane.sock").string();
    backend_ = InProcessDataplane::Create(64).value();
    service_ = std::make_unique<DataplaneService>(*backend_, kInstance);
    Serve(*service_);
  }
  // (Again) serves `service` on the socket.
  void Serve(DataplaneService& service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(&service);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::string socket_;
  std::unique_ptr<InProcessDataplane> backend_;
  std::unique_ptr<DataplaneService> service_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(RemoteDataplaneTest, ProgramsTheBackendAndReadsItBack) {
  absl::StatusOr<std::unique_ptr<RemoteDataplane>> remote =
      RemoteDataplane::Connect(socket_, std::chrono::seconds(5));
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_EQ((*remote)->name(), "in-process");
  EXPECT_EQ((*remote)->pid(), getpid());

  Update u = EveryField();
  u.upsert_segments[0].cidrs.pop_back();  // the in-process backend holds IPv4 segments here
  const absl::Status applied = (*remote)->Apply(u);
  ASSERT_TRUE(applied.ok()) << applied;
  const Programmed here = backend_->Dump();
  const Programmed there = (*remote)->Dump();
  EXPECT_EQ(ToWire(there).SerializeAsString(), ToWire(here).SerializeAsString());
  EXPECT_EQ(there.frontends.size(), 3u);
  EXPECT_THAT(there.pod_ports, ElementsAre(u.upsert_pod_ports[0]));
}

TEST_F(RemoteDataplaneTest, TheBackendsRefusalKeepsItsCodeAndMessage) {
  auto remote = RemoteDataplane::Connect(socket_, std::chrono::seconds(5));
  ASSERT_TRUE(remote.ok()) << remote.status();
  Update vni0;
  vni0.upsert_segments.push_back({"shop", 0, {}, {}, true, {}, {}});
  const absl::Status s = (*remote)->Apply(vni0);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), backend_->Apply(vni0).message());
  EXPECT_THAT(s.message(), HasSubstr("\"shop\": VNI 0"));
}

TEST_F(RemoteDataplaneTest, ABadWireUpdateChangesNothing) {
  Update first;
  first.upsert_segments.push_back({"shop", 7, {Prefix("198.19.0.0/24")}, {}, true, {}, {}});
  ASSERT_TRUE(backend_->Apply(first).ok());
  v1::Update w = ToWire(EveryField());
  w.mutable_upsert_routes(0)->set_underlay("h2");
  auto stub = v1::Dataplane::NewStub(
      grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::ApplyResponse response;
  const grpc::Status s = stub->Apply(&ctx, w, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "upsert_routes[0].underlay: \"h2\" is no address");
  ASSERT_EQ(backend_->Dump().segments.size(), 1u);
  EXPECT_EQ(backend_->Dump().segments[0].vni, 7u);
}

TEST_F(RemoteDataplaneTest, CountersComeAcross) {
  auto remote = RemoteDataplane::Connect(socket_, std::chrono::seconds(5));
  ASSERT_TRUE(remote.ok()) << remote.status();
  // The in-process backend moves no packets and counts none.
  EXPECT_EQ((*remote)->Drops(), backend_->Drops());
  EXPECT_EQ((*remote)->Packets(), backend_->Packets());
}

TEST_F(RemoteDataplaneTest, NoProcessOnTheSocketIsUnavailable) {
  const std::string nobody = (dir_ / "nobody.sock").string();
  const auto started = std::chrono::steady_clock::now();
  auto remote = RemoteDataplane::Connect(nobody, std::chrono::milliseconds(300));
  EXPECT_EQ(remote.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(remote.status().message(), HasSubstr(nobody));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST_F(RemoteDataplaneTest, AGoneProcessIsUnavailableAndFoundAgainWhenBack) {
  auto remote = RemoteDataplane::Connect(socket_, std::chrono::seconds(5));
  ASSERT_TRUE(remote.ok()) << remote.status();
  server_->Shutdown();
  server_.reset();
  Update u;
  u.upsert_segments.push_back({"shop", 7, {Prefix("198.19.0.0/24")}, {}, true, {}, {}});
  const absl::Status down = (*remote)->Apply(u);
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(down.message(), HasSubstr(socket_));
  EXPECT_TRUE((*remote)->Dump().segments.empty());

  Serve(*service_);
  // The channel reconnects within its backoff (at most a second).
  absl::Status up;
  for (int i = 0; i < 50; ++i) {
    up = (*remote)->Apply(u);
    if (up.ok()) break;
    usleep(100 * 1000);
  }
  EXPECT_TRUE(up.ok()) << up;
  EXPECT_EQ((*remote)->Dump().segments.size(), 1u);
}

// The same process back after a pause is not a restart; another process is.
TEST_F(RemoteDataplaneTest, ARestartedProcessIsToldFromTheSameOneBack) {
  auto remote = RemoteDataplane::Connect(socket_, std::chrono::seconds(5));
  ASSERT_TRUE(remote.ok()) << remote.status();
  std::mutex mu;
  std::condition_variable cv;
  std::optional<std::string> restarted;
  (*remote)->OnDiverged(
      [&](const std::string& why) {
        std::lock_guard lock(mu);
        restarted = why;
        cv.notify_all();
      },
      std::chrono::milliseconds(50));

  server_->Shutdown();
  Serve(*service_);
  std::unique_lock lock(mu);
  EXPECT_FALSE(cv.wait_for(lock, std::chrono::seconds(1), [&] { return restarted.has_value(); }))
      << "the same instance back was taken for a restart";
  lock.unlock();

  server_->Shutdown();
  auto fresh = InProcessDataplane::Create(64).value();
  DataplaneService another(*fresh, kInstance + 1);
  Serve(another);
  lock.lock();
  EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return restarted.has_value(); }));
  EXPECT_THAT(restarted.value_or(""), HasSubstr(absl::StrCat("restarted (pid ", getpid())));
  lock.unlock();
  server_->Shutdown();
  server_.reset();
}

// A backend that takes its time over an update, and applies it anyway.
class SlowDataplane final : public Dataplane {
 public:
  absl::Status Apply(const Update&) override {
    usleep(400 * 1000);
    ++applied;
    return absl::OkStatus();
  }
  Programmed Dump() const override { return {}; }
  std::string_view name() const override { return "slow"; }
  std::atomic<int> applied{0};
};

// Past its deadline an update may still be applied: the agent cannot tell
// what the dataplane holds, and hears so.
TEST_F(RemoteDataplaneTest, AnUpdatePastItsDeadlineDiverges) {
  server_->Shutdown();
  SlowDataplane slow;
  DataplaneService service(slow, kInstance);
  Serve(service);
  auto remote =
      RemoteDataplane::Connect(socket_, std::chrono::seconds(5), std::chrono::milliseconds(100));
  ASSERT_TRUE(remote.ok()) << remote.status();
  std::vector<std::string> told;
  (*remote)->OnDiverged([&](const std::string& why) { told.push_back(why); },
                        std::chrono::seconds(60));
  EXPECT_EQ((*remote)->Apply(Update{}).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*remote)->Apply(Update{}).code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_EQ(told.size(), 1u) << "told once";
  EXPECT_THAT(told[0], HasSubstr("took over 100 ms and may yet be applied"));
  server_->Shutdown();  // waits for the calls in flight
  server_.reset();
  EXPECT_EQ(slow.applied, 2);
}

}  // namespace
}  // namespace atl::dataplane
