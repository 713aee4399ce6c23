// atoll-cni end to end: the real plugin binary, run the way a runtime runs it,
// against a real agent and controller, making real veths into real pod
// network namespaces.
//
// The whole test runs in a network and mount namespace of its own (see main):
// the agent's host-side veths, the controller's loopback port and the pods'
// netns mounts all vanish with the process, whatever happens to it.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "lb/net.h"
#include "tests/netns.h"
#include "tests/processes.h"

namespace atl::testing {
namespace {

namespace api = ::atl::api::v1;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using Json = nlohmann::json;

struct Ran {
  int exit_code = -1;
  std::string out;
  Json json() const { return Json::parse(out.empty() ? "null" : out); }
};

// Runs `argv` with `env` as its whole environment and `input` on stdin, and
// returns its exit status and stdout.
Ran Exec(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
         const std::string& input) {
  int in[2];
  int out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  (void)!write(in[1], input.data(), input.size());
  close(in[1]);
  Ran run;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof(buf))) > 0) run.out.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

// What `ip -j addr show` says of the pod's interface: read by a program other
// than ours, so the test does not trust the plumbing to check itself.
Json PodLink(const std::string& netns, const std::string& ifname) {
  Ran r = Exec(
      {"/usr/bin/nsenter", "--net=" + netns, "/usr/sbin/ip", "-j", "addr", "show", "dev", ifname},
      {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}}, "");
  if (r.exit_code != 0) return Json();
  Json links = Json::parse(r.out, nullptr, false);
  return links.is_array() && links.size() == 1 ? links[0] : Json();
}

Json PodRoutes(const std::string& netns) {
  Ran r = Exec({"/usr/bin/nsenter", "--net=" + netns, "/usr/sbin/ip", "-j", "route", "show"},
               {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}}, "");
  return r.exit_code == 0 ? Json::parse(r.out, nullptr, false) : Json();
}

bool HostLinkExists(const std::string& name) { return if_nametoindex(name.c_str()) != 0; }

class CniTest : public ::testing::Test {
 protected:
  void SetUp() override {
    controller_ = std::make_unique<ControllerProcess>(dir_.path());
    api::ApplyResponse applied;
    ASSERT_TRUE(
        controller_
            ->Apply({Namespace("shop"), Namespace("blog"), Node("h1", "198.18.0.1")}, &applied)
            .ok());
    StartAgent();
    ASSERT_TRUE(WaitFor([&] { return controller_->AllAcked({"h1"}); }));
  }

  // A failure may have happened in the agent: what it said goes with it
  // (every agent of a test appends to one log, a restarted one included).
  void TearDown() override {
    if (HasFailure() && agent_) {
      std::fprintf(stderr, "--- agent log ---\n%s", agent_->Log().c_str());
    }
  }

  void StartAgent() {
    agent_ = std::make_unique<AgentProcess>(dir_.path(), "h1", controller_->address());
  }

  std::string Conf(const std::string& version = "1.0.0", const std::string& extra = "") const {
    return R"({"cniVersion":")" + version + R"(","name":"atoll","type":"atoll-cni","socket":")" +
           agent_->socket().string() + R"(","defaultNamespace":"blog")" + extra + "}";
  }

  // A pod: its own network namespace, made the way runtimes make them.
  const TestNetns& Pod(const std::string& name) {
    auto& slot = pods_[name];
    if (!slot) {
      absl::StatusOr<std::unique_ptr<TestNetns>> ns = TestNetns::Create();
      EXPECT_TRUE(ns.ok()) << ns.status();
      slot = *std::move(ns);
    }
    return *slot;
  }

  Ran Cni(const std::string& command, const std::string& pod, const std::string& ns,
          const std::string& conf, bool with_netns = true) {
    std::map<std::string, std::string> env = {{"CNI_COMMAND", command},
                                              {"CNI_CONTAINERID", "ctr-" + pod},
                                              {"CNI_IFNAME", "eth0"},
                                              {"CNI_PATH", "/usr/lib/cni"}};
    if (with_netns) env["CNI_NETNS"] = Pod(pod).path();
    env["CNI_ARGS"] = ns.empty()
                          ? "IgnoreUnknown=1;K8S_POD_NAME=" + pod
                          : "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + ns + ";K8S_POD_NAME=" + pod;
    return Exec({BinaryPath("ATOLL_CNI")}, env, conf);
  }

  // The segment CIDR of `ns`, as the controller allocated it.
  lb::IpPrefix SegmentCidr(const std::string& ns) {
    const api::AgentStateResponse state = agent_->State();
    for (const api::Segment& s : state.segments()) {
      if (s.namespace_() == ns) return *lb::IpPrefix::Parse(s.cidrs(0));
    }
    ADD_FAILURE() << "no segment for " << ns;
    return {};
  }

  static lb::IpAddr AddressOf(const Ran& add) {
    const std::string cidr = add.json()["ips"][0]["address"];
    return *lb::IpAddr::Parse(cidr.substr(0, cidr.find('/')));
  }

  TempDir dir_{"atoll-cni-test"};
  std::unique_ptr<ControllerProcess> controller_;
  std::unique_ptr<AgentProcess> agent_;
  std::map<std::string, std::unique_ptr<TestNetns>> pods_;
};

TEST_F(CniTest, EachNamespaceGetsAddressesFromItsOwnSegment) {
  const lb::IpPrefix shop = SegmentCidr("shop");
  const lb::IpPrefix blog = SegmentCidr("blog");
  std::set<lb::IpAddr> seen;
  for (const char* pod : {"s1", "s2", "s3"}) {
    const Ran add = Cni("ADD", pod, "shop", Conf());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    EXPECT_TRUE(shop.Contains(AddressOf(add))) << add.out;
    EXPECT_TRUE(seen.insert(AddressOf(add)).second) << "address handed out twice: " << add.out;
  }
  // No K8S_POD_NAMESPACE (podman): the configuration's defaultNamespace.
  for (const char* pod : {"b1", "b2"}) {
    const Ran add = Cni("ADD", pod, "", Conf());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    EXPECT_TRUE(blog.Contains(AddressOf(add))) << add.out;
    EXPECT_TRUE(seen.insert(AddressOf(add)).second);
  }

  // What the pod sees, read by iproute2: eth0 up with the address, the MAC
  // and MTU of the result, and a default route via the segment gateway.
  const Ran add = Cni("ADD", "s1", "shop", Conf());  // repeated: the same result
  const Json result = add.json();
  const Json link = PodLink(Pod("s1").path(), "eth0");
  ASSERT_TRUE(link.is_object()) << "no eth0 in the pod";
  EXPECT_EQ(link["address"], result["interfaces"][1]["mac"]);
  EXPECT_EQ(link["mtu"], 1450);  // no default route here: 1500 less VXLAN's 50
  EXPECT_THAT(link["flags"].dump(), HasSubstr("\"UP\""));
  const std::string address = result["ips"][0]["address"];
  bool has_address = false;
  for (const Json& a : link["addr_info"]) {
    if (a["family"] == "inet") {
      has_address =
          a["local"].get<std::string>() + "/" + std::to_string(a["prefixlen"].get<int>()) ==
          address;
    }
  }
  EXPECT_TRUE(has_address) << link.dump() << " lacks " << address;
  bool has_default = false;
  const Json routes = PodRoutes(Pod("s1").path());
  for (const Json& r : routes) {
    if (r["dst"] == "default") has_default = r["gateway"] == result["ips"][0]["gateway"];
  }
  EXPECT_TRUE(has_default) << PodRoutes(Pod("s1").path()).dump();
  // The gateway is the segment's first host address.
  lb::IpAddr gateway = shop.addr;
  gateway.bytes[15] |= 1;
  EXPECT_EQ(result["ips"][0]["gateway"], gateway.ToString());

  // The dataplane holds every pod port, with the pod's address.
  const api::AgentStateResponse state = agent_->State();
  ASSERT_THAT(state.pod_ports(), SizeIs(5));
  EXPECT_TRUE(HostLinkExists(result["interfaces"][0]["name"]));
}

TEST_F(CniTest, AddIsIdempotentAndDelIsRepeatable) {
  const Ran first = Cni("ADD", "p1", "shop", Conf());
  ASSERT_EQ(first.exit_code, 0) << first.out;
  const Ran again = Cni("ADD", "p1", "shop", Conf());
  ASSERT_EQ(again.exit_code, 0) << again.out;
  EXPECT_EQ(first.json(), again.json());
  const std::string host_side = first.json()["interfaces"][0]["name"];

  const std::string prev = ",\"prevResult\":" + first.out;
  for (int i = 0; i < 2; ++i) {
    const Ran del = Cni("DEL", "p1", "shop", Conf("1.0.0", prev));
    EXPECT_EQ(del.exit_code, 0) << del.out;
    EXPECT_EQ(del.out, "");
  }
  // containerd's second DEL has no netns at all.
  const Ran del = Cni("DEL", "p1", "shop", Conf(), /*with_netns=*/false);
  EXPECT_EQ(del.exit_code, 0) << del.out;
  // Gone from the pod and the dataplane when DEL answers; the kernel's
  // removal of the pair, and with it the address, follows.
  EXPECT_FALSE(PodLink(Pod("p1").path(), "eth0").is_object());
  EXPECT_THAT(agent_->State().pod_ports(), SizeIs(0));
  EXPECT_TRUE(WaitFor([&] { return !HostLinkExists(host_side); }));
  // The lease goes right after the interface; give the reaper that moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));

  // The address is free again, and the next pod gets it.
  const Ran next = Cni("ADD", "p2", "shop", Conf());
  ASSERT_EQ(next.exit_code, 0) << next.out;
  EXPECT_EQ(AddressOf(next), AddressOf(first));
}

TEST_F(CniTest, AddRightAfterDelOfTheSameAttachmentGetsAFreshInterface) {
  for (int round = 0; round < 5; ++round) {
    const Ran add = Cni("ADD", "r1", "shop", Conf());
    ASSERT_EQ(add.exit_code, 0) << "round " << round << ": " << add.out;
    ASSERT_TRUE(PodLink(Pod("r1").path(), "eth0").is_object());
    const Ran del = Cni("DEL", "r1", "shop", Conf());
    ASSERT_EQ(del.exit_code, 0) << del.out;
  }
  const Ran add = Cni("ADD", "r1", "shop", Conf("0.4.0"));
  ASSERT_EQ(add.exit_code, 0) << add.out;
  EXPECT_EQ(Cni("CHECK", "r1", "shop", Conf("0.4.0", ",\"prevResult\":" + add.out)).exit_code, 0);
}

TEST_F(CniTest, AKillDuringRemovalFinishesAfterTheRestart) {
  std::vector<std::string> host_sides;
  for (int i = 0; i < 10; ++i) {
    const Ran add = Cni("ADD", "d" + std::to_string(i), "shop", Conf());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    host_sides.push_back(add.json()["interfaces"][0]["name"]);
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(Cni("DEL", "d" + std::to_string(i), "shop", Conf()).exit_code, 0);
  }
  agent_->Stop(SIGKILL);  // most pairs are still on the reaper's list
  StartAgent();
  for (const std::string& host_side : host_sides) {
    EXPECT_TRUE(WaitFor([&] { return !HostLinkExists(host_side); })) << host_side;
  }
  EXPECT_THAT(agent_->State().pod_ports(), SizeIs(0));
}

TEST_F(CniTest, CheckFindsWhatChanged) {
  const Ran add = Cni("ADD", "p1", "shop", Conf("0.4.0"));
  ASSERT_EQ(add.exit_code, 0) << add.out;
  const std::string prev = ",\"prevResult\":" + add.out;
  const Ran ok = Cni("CHECK", "p1", "shop", Conf("0.4.0", prev));
  EXPECT_EQ(ok.exit_code, 0) << ok.out;

  // Someone takes the pod's address away.
  const std::string address = add.json()["ips"][0]["address"];
  ASSERT_EQ(Exec({"/usr/bin/nsenter", "--net=" + Pod("p1").path(), "/usr/sbin/ip", "addr", "del",
                  address, "dev", "eth0"},
                 {}, "")
                .exit_code,
            0);
  const Ran broken = Cni("CHECK", "p1", "shop", Conf("0.4.0", prev));
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_EQ(broken.json()["code"], 100);
  EXPECT_THAT(broken.json()["msg"].get<std::string>(), HasSubstr(address));

  // A container the agent never saw.
  const Ran unknown = Cni("CHECK", "p9", "shop", Conf("0.4.0", prev));
  EXPECT_EQ(unknown.json()["code"], 3) << unknown.out;
}

TEST_F(CniTest, UnknownNamespaceAndAbsentAgentAreTryAgainLater) {
  const Ran unknown = Cni("ADD", "p1", "nowhere", Conf());
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.json()["code"], 11) << unknown.out;
  EXPECT_THAT(unknown.json()["details"].get<std::string>(), HasSubstr("\"nowhere\""));

  // Once the namespace exists, the same ADD goes through.
  api::ApplyResponse applied;
  ASSERT_TRUE(controller_->Apply({Namespace("nowhere")}, &applied).ok());
  ASSERT_TRUE(WaitFor([&] { return Cni("ADD", "p1", "nowhere", Conf()).exit_code == 0; }));

  agent_->Stop(SIGKILL);
  const Ran down = Cni("ADD", "p2", "shop", Conf());
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_EQ(down.json()["code"], 11) << down.out;
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return controller_->AllAcked({"h1"}); }));
  const Ran up = Cni("ADD", "p2", "shop", Conf());
  EXPECT_EQ(up.exit_code, 0) << up.out;
}

TEST_F(CniTest, AnAgentThatDoesNotAnswerCostsTheDeadlineAndNoMore) {
  // Something listens on the socket and never speaks.
  const std::string path = (dir_.path() / "silent.sock").string();
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 16), 0);
  const std::string conf = R"({"cniVersion":"1.0.0","name":"atoll","type":"atoll-cni","socket":")" +
                           path + R"(","timeoutMs":300})";
  const auto start = std::chrono::steady_clock::now();
  const Ran add = Cni("ADD", "p1", "shop", conf);
  const auto took = std::chrono::steady_clock::now() - start;
  close(listener);
  EXPECT_EQ(add.exit_code, 1);
  EXPECT_EQ(add.json()["code"], 11) << add.out;
  EXPECT_LT(took, std::chrono::seconds(3)) << "the plugin waited past its deadline";
}

TEST_F(CniTest, KilledAgentKeepsEveryLease) {
  std::map<std::string, lb::IpAddr> before;
  for (int i = 0; i < 5; ++i) {
    const std::string pod = "k" + std::to_string(i);
    const Ran add = Cni("ADD", pod, "shop", Conf());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    before[pod] = AddressOf(add);
  }
  agent_->Stop(SIGKILL);
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return controller_->AllAcked({"h1"}); }));
  // The pods' ports are back in the dataplane before anyone asks.
  EXPECT_THAT(agent_->State().pod_ports(), SizeIs(5));

  std::set<lb::IpAddr> seen;
  for (const auto& [pod, address] : before) {
    const Ran add = Cni("ADD", pod, "shop", Conf());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    EXPECT_EQ(AddressOf(add), address) << pod << " changed address across the restart";
    seen.insert(address);
  }
  for (int i = 5; i < 10; ++i) {
    const Ran add = Cni("ADD", "k" + std::to_string(i), "shop", Conf());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    EXPECT_TRUE(seen.insert(AddressOf(add)).second) << "address handed out twice: " << add.out;
  }
}

TEST_F(CniTest, FullBlocksGrowThroughTheController) {
  // A node block is a /28: 16 addresses, the first block less the segment's
  // network address and gateway. 40 pods need three blocks.
  const lb::IpPrefix shop = SegmentCidr("shop");
  std::set<lb::IpAddr> seen;
  for (int i = 0; i < 40; ++i) {
    const Ran add = Cni("ADD", "g" + std::to_string(i), "shop", Conf());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    const lb::IpAddr a = AddressOf(add);
    EXPECT_TRUE(shop.Contains(a)) << a.ToString();
    EXPECT_NE(a, shop.addr) << "the segment's network address was handed out";
    EXPECT_TRUE(seen.insert(a).second) << "address handed out twice: " << a.ToString();
  }
  // The controller recorded the node's blocks of the namespace.
  grpc::ClientContext ctx;
  api::ResourceKey key;
  key.set_kind(api::KIND_NODE);
  key.set_name("h1");
  api::Resource node;
  ASSERT_TRUE(controller_->admin().Get(&ctx, key, &node).ok());
  int blocks = 0;
  for (const api::NodeBlock& b : node.node().blocks()) blocks += b.namespace_() == "shop";
  EXPECT_EQ(blocks, 3);
}

TEST_F(CniTest, FiftyAddsAtOnceGrowTheBlocksAndAllSucceed) {
  // A namespace with no block on this node yet: the first ADDs all find the
  // node's blocks full at once, and blocks are asked for while others fill them.
  constexpr int kPods = 50;
  std::vector<std::string> names;
  for (int i = 0; i < kPods; ++i) {
    names.push_back("x" + std::to_string(i));
    Pod(names.back());
  }
  std::vector<Ran> adds(kPods);
  std::vector<std::thread> threads;
  for (int i = 0; i < kPods; ++i) {
    threads.emplace_back([&, i] { adds[i] = Cni("ADD", names[i], "blog", Conf()); });
  }
  for (std::thread& t : threads) t.join();
  std::set<lb::IpAddr> seen;
  for (int i = 0; i < kPods; ++i) {
    ASSERT_EQ(adds[i].exit_code, 0) << names[i] << ": " << adds[i].out;
    EXPECT_TRUE(seen.insert(AddressOf(adds[i])).second) << "address handed out twice";
  }
  EXPECT_THAT(agent_->State().pod_ports(), SizeIs(kPods));
}

TEST_F(CniTest, GcRemovesWhatIsNotListed) {
  std::vector<std::string> host_sides;
  for (const char* pod : {"c1", "c2", "c3"}) {
    const Ran add = Cni("ADD", pod, "shop", Conf("1.1.0"));
    ASSERT_EQ(add.exit_code, 0) << add.out;
    host_sides.push_back(add.json()["interfaces"][0]["name"]);
  }
  // A pod of another network (another runtime, or a second network of the
  // pod) is not this GC's business.
  std::string other_conf = Conf("1.1.0");
  other_conf.replace(other_conf.find("\"name\":\"atoll\""), 14, "\"name\":\"other\"");
  const Ran other = Cni("ADD", "c4", "shop", other_conf);
  ASSERT_EQ(other.exit_code, 0) << other.out;
  const Ran gc = Exec(
      {BinaryPath("ATOLL_CNI")}, {{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/usr/lib/cni"}},
      Conf("1.1.0", R"(,"cni.dev/valid-attachments":[{"containerID":"ctr-c2","ifname":"eth0"}])"));
  EXPECT_EQ(gc.exit_code, 0) << gc.out;
  EXPECT_TRUE(WaitFor([&] { return !HostLinkExists(host_sides[0]); }));
  EXPECT_TRUE(HostLinkExists(host_sides[1]));
  EXPECT_TRUE(WaitFor([&] { return !HostLinkExists(host_sides[2]); }));
  EXPECT_FALSE(PodLink(Pod("c1").path(), "eth0").is_object());
  EXPECT_TRUE(HostLinkExists(other.json()["interfaces"][0]["name"]));
  ASSERT_THAT(agent_->State().pod_ports(), SizeIs(2));

  const Ran status = Exec({BinaryPath("ATOLL_CNI")},
                          {{"CNI_COMMAND", "STATUS"}, {"CNI_PATH", "/usr/lib/cni"}}, Conf("1.1.0"));
  EXPECT_EQ(status.exit_code, 0) << status.out;
}

}  // namespace
}  // namespace atl::testing

// The test's own network and mount namespaces: everything it makes goes away
// with it. Done before gtest starts any thread (unshare of the mount
// namespace needs a single-threaded process).
int main(int argc, char** argv) {
  if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
    std::perror("cni_test: unshare(CLONE_NEWNET | CLONE_NEWNS) (this test needs root)");
    return 1;
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    std::perror("cni_test: make / private");
    return 1;
  }
  // The controller listens on loopback, which starts down in a new namespace.
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
  if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0 ||
      (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)) {
    std::perror("cni_test: bring lo up");
    return 1;
  }
  close(fd);
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}
