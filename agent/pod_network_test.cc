#include "agent/pod_network.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/netns.h"

namespace atl::agent {
namespace {

using ::atl::testing::TestNetns;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

lb::IpAddr A(const char* text) { return *lb::IpAddr::Parse(text); }

std::optional<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[64];
  const ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

// The attributes of a message or nest, by type.
std::map<int, const nlattr*> AttrsOf(const nlmsghdr* nlh, size_t header_size) {
  std::map<int, const nlattr*> attrs;
  mnl_attr_parse(
      nlh, static_cast<unsigned>(header_size),
      [](const nlattr* a, void* data) {
        (*static_cast<std::map<int, const nlattr*>*>(data))[mnl_attr_get_type(a)] = a;
        return MNL_CB_OK;
      },
      &attrs);
  return attrs;
}
std::map<int, const nlattr*> AttrsOf(const nlattr* nest) {
  std::map<int, const nlattr*> attrs;
  mnl_attr_parse_nested(
      nest,
      [](const nlattr* a, void* data) {
        (*static_cast<std::map<int, const nlattr*>*>(data))[mnl_attr_get_type(a)] = a;
        return MNL_CB_OK;
      },
      &attrs);
  return attrs;
}

std::string V4Text(const nlattr* a) {
  return lb::IpAddr::FromV4Bytes(static_cast<const uint8_t*>(mnl_attr_get_payload(a))).ToString();
}

struct LinkState {
  int index = 0;
  unsigned flags = 0;
  uint32_t mtu = 0;
  MacAddr mac{};
  int peer_index = 0;
  std::string kind;
};

struct RouteState {
  std::string gateway;
  int oif = 0;
  bool onlink = false;
  friend bool operator==(const RouteState&, const RouteState&) = default;
};

// The kernel's state read back, and changed, through a netlink socket of the
// calling thread's namespace: written apart from the code under test, so that
// the test does not take that code's word for what it did.
class Netlink {
 public:
  Netlink() : nl_(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC)) {
    if (nl_ == nullptr || mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) != 0) {
      ADD_FAILURE() << "netlink socket: " << std::strerror(errno);
    }
  }
  ~Netlink() {
    if (nl_ != nullptr) mnl_socket_close(nl_);
  }

  std::optional<LinkState> Link(const std::string& name) {
    nlmsghdr* nlh = Start(RTM_GETLINK, NLM_F_ACK);
    Extra<ifinfomsg>(nlh)->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
    std::optional<LinkState> link;
    if (Request(nlh, [&](const nlmsghdr* m) {
          const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(m));
          auto attrs = AttrsOf(m, sizeof(ifinfomsg));
          link.emplace();
          link->index = ifm->ifi_index;
          link->flags = ifm->ifi_flags;
          link->mtu = mnl_attr_get_u32(attrs.at(IFLA_MTU));
          std::memcpy(link->mac.data(), mnl_attr_get_payload(attrs.at(IFLA_ADDRESS)), 6);
          if (attrs.count(IFLA_LINK)) link->peer_index = mnl_attr_get_u32(attrs[IFLA_LINK]);
          if (attrs.count(IFLA_LINKINFO)) {
            auto info = AttrsOf(attrs[IFLA_LINKINFO]);
            if (info.count(IFLA_INFO_KIND)) link->kind = mnl_attr_get_str(info[IFLA_INFO_KIND]);
          }
        }) != 0) {
      return std::nullopt;
    }
    return link;
  }

  // The addresses of `index`, as "198.19.0.5/24".
  std::vector<std::string> Addresses(int index, int family = AF_INET) {
    nlmsghdr* nlh = Start(RTM_GETADDR, NLM_F_DUMP);
    Extra<ifaddrmsg>(nlh)->ifa_family = static_cast<uint8_t>(family);
    std::vector<std::string> found;
    EXPECT_EQ(Request(nlh,
                      [&](const nlmsghdr* m) {
                        const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m));
                        if (static_cast<int>(ifa->ifa_index) != index) return;
                        auto attrs = AttrsOf(m, sizeof(ifaddrmsg));
                        const nlattr* a =
                            attrs.count(IFA_LOCAL) ? attrs[IFA_LOCAL] : attrs[IFA_ADDRESS];
                        found.push_back(absl::StrCat(family == AF_INET ? V4Text(a) : "v6", "/",
                                                     ifa->ifa_prefixlen));
                      }),
              0);
    return found;
  }

  // The default IPv4 routes of the main table.
  std::vector<RouteState> DefaultRoutes() {
    nlmsghdr* nlh = Start(RTM_GETROUTE, NLM_F_DUMP);
    Extra<rtmsg>(nlh)->rtm_family = AF_INET;
    std::vector<RouteState> found;
    EXPECT_EQ(Request(nlh,
                      [&](const nlmsghdr* m) {
                        const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(m));
                        if (rtm->rtm_table != RT_TABLE_MAIN || rtm->rtm_dst_len != 0) return;
                        auto attrs = AttrsOf(m, sizeof(rtmsg));
                        RouteState r;
                        if (attrs.count(RTA_GATEWAY)) r.gateway = V4Text(attrs[RTA_GATEWAY]);
                        if (attrs.count(RTA_OIF)) r.oif = mnl_attr_get_u32(attrs[RTA_OIF]);
                        r.onlink = rtm->rtm_flags & RTNH_F_ONLINK;
                        found.push_back(r);
                      }),
              0);
    return found;
  }

  int DeleteAddress(int index, const char* addr, int prefix_len) {
    nlmsghdr* nlh = Start(RTM_DELADDR, NLM_F_ACK);
    auto* ifa = Extra<ifaddrmsg>(nlh);
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = static_cast<uint8_t>(prefix_len);
    ifa->ifa_index = static_cast<uint32_t>(index);
    mnl_attr_put(nlh, IFA_LOCAL, 4, A(addr).v4_bytes());
    return Request(nlh);
  }

  int DeleteDefaultRoute() {
    nlmsghdr* nlh = Start(RTM_DELROUTE, NLM_F_ACK);
    auto* rtm = Extra<rtmsg>(nlh);
    rtm->rtm_family = AF_INET;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_scope = RT_SCOPE_NOWHERE;
    return Request(nlh);
  }

  // Replaces the default route with one via `gateway` on `index` that carries
  // its own MTU (RTA_METRICS, RTAX_MTU).
  int ReplaceDefaultRoute(int index, const char* gateway, uint32_t mtu) {
    nlmsghdr* nlh = Start(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
    auto* rtm = Extra<rtmsg>(nlh);
    rtm->rtm_family = AF_INET;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = RTPROT_BOOT;
    rtm->rtm_type = RTN_UNICAST;
    rtm->rtm_flags = RTNH_F_ONLINK;
    mnl_attr_put(nlh, RTA_GATEWAY, 4, A(gateway).v4_bytes());
    mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(index));
    nlattr* metrics = mnl_attr_nest_start(nlh, RTA_METRICS);
    mnl_attr_put_u32(nlh, RTAX_MTU, mtu);
    mnl_attr_nest_end(nlh, metrics);
    return Request(nlh);
  }

  int SetDown(int index) {
    nlmsghdr* nlh = Start(RTM_NEWLINK, NLM_F_ACK);
    auto* ifm = Extra<ifinfomsg>(nlh);
    ifm->ifi_index = index;
    ifm->ifi_change = IFF_UP;
    return Request(nlh);
  }

 private:
  nlmsghdr* Start(uint16_t type, uint16_t flags) {
    std::memset(buf_, 0, sizeof(buf_));
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf_);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    nlh->nlmsg_seq = ++seq_;
    return nlh;
  }
  template <typename T>
  static T* Extra(nlmsghdr* nlh) {
    return static_cast<T*>(mnl_nlmsg_put_extra_header(nlh, sizeof(T)));
  }

  // Sends `nlh` and passes each answer to `on_msg`; the errno, 0 on success.
  int Request(nlmsghdr* nlh, const std::function<void(const nlmsghdr*)>& on_msg = nullptr) {
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return errno;
    std::vector<char> rx(32768);
    int ret = MNL_CB_OK;
    while (ret == MNL_CB_OK) {
      const ssize_t n = mnl_socket_recvfrom(nl_, rx.data(), rx.size());
      if (n < 0) return errno;
      ret = mnl_cb_run(
          rx.data(), static_cast<size_t>(n), nlh->nlmsg_seq, mnl_socket_get_portid(nl_),
          [](const nlmsghdr* m, void* data) {
            const auto& f = *static_cast<const std::function<void(const nlmsghdr*)>*>(data);
            if (f) f(m);
            return MNL_CB_OK;
          },
          const_cast<std::function<void(const nlmsghdr*)>*>(&on_msg));
    }
    return ret == MNL_CB_ERROR ? errno : 0;
  }

  mnl_socket* nl_;
  uint32_t seq_ = 0;
  alignas(nlmsghdr) char buf_[1024];
};

class PodNetworkTest : public ::testing::Test {
 protected:
  // The "host" namespace: everything the tests make lives in it or in pod
  // namespaces, and goes with them when the test ends, pass or fail.
  void SetUp() override {
    host_ = NewNetns();
    ASSERT_NE(host_, nullptr);
  }

  static std::unique_ptr<TestNetns> NewNetns() {
    absl::StatusOr<std::unique_ptr<TestNetns>> ns = TestNetns::Create();
    EXPECT_TRUE(ns.ok()) << ns.status();
    return ns.ok() ? std::move(*ns) : nullptr;
  }

  // Runs `fn` in `ns`, or in the host namespace.
  static void In(const TestNetns& ns, const std::function<void()>& fn) {
    absl::Status status = ns.Run(fn);
    ASSERT_TRUE(status.ok()) << status;
  }
  void InHost(const std::function<void()>& fn) { In(*host_, fn); }

  static PodInterfaceSpec Spec(const TestNetns& pod, const std::string& container = "c1",
                               const char* address = "198.19.0.5",
                               const char* gateway = "198.19.0.1") {
    PodInterfaceSpec spec;
    spec.netns = pod.path();
    spec.ifname = "eth0";
    spec.host_ifname = HostIfname(container, "eth0");
    spec.address = A(address);
    spec.prefix_len = 24;
    spec.gateway = A(gateway);
    return spec;
  }

  absl::StatusOr<PodInterface> SetUpInHost(const PodInterfaceSpec& spec) {
    absl::StatusOr<PodInterface> result = absl::UnknownError("not run");
    InHost([&] { result = SetUpPodInterface(spec); });
    return result;
  }
  absl::Status CheckInHost(const PodInterfaceSpec& spec) {
    absl::Status status = absl::UnknownError("not run");
    InHost([&] { status = CheckPodInterface(spec); });
    return status;
  }
  absl::Status TearDownInHost(const std::string& host_ifname) {
    absl::Status status = absl::UnknownError("not run");
    InHost([&] { status = TearDownPodInterface(host_ifname); });
    return status;
  }
  std::optional<LinkState> HostLink(const std::string& name) {
    std::optional<LinkState> link;
    InHost([&] { link = Netlink().Link(name); });
    return link;
  }
  static std::optional<LinkState> LinkIn(const TestNetns& ns, const std::string& name) {
    std::optional<LinkState> link;
    In(ns, [&] { link = Netlink().Link(name); });
    return link;
  }

  std::unique_ptr<TestNetns> host_;
};

TEST(PodNetworkNamesTest, PodMacIsTheKubernetesConvention) {
  EXPECT_EQ(FormatMac(PodMac(A("198.19.0.5"))), "0a:58:c6:13:00:05");
  EXPECT_EQ(FormatMac(PodMac(A("198.18.255.254"))), "0a:58:c6:12:ff:fe");
}

TEST(PodNetworkNamesTest, HostIfnameIsStableShortAndDistinct) {
  // Pinned: a change of the hash would lose the interfaces of running pods.
  EXPECT_EQ(HostIfname("0123456789abcdef", "eth0"), "atl20cf95920f1");
  EXPECT_EQ(HostIfname("0123456789abcdef", "eth0").size(), 14u);
  EXPECT_NE(HostIfname("ab", "c"), HostIfname("a", "bc"));
  EXPECT_NE(HostIfname("c1", "eth0"), HostIfname("c1", "eth1"));
  std::set<std::string> names;
  for (int i = 0; i < 10000; ++i) names.insert(HostIfname(absl::StrCat("container-", i), "eth0"));
  EXPECT_EQ(names.size(), 10000u);
}

TEST_F(PodNetworkTest, SetUpGivesThePodItsInterface) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  absl::StatusOr<PodInterface> got = SetUpInHost(spec);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->host_ifname, spec.host_ifname);
  EXPECT_EQ(FormatMac(got->pod_mac), "0a:58:c6:13:00:05");

  In(*pod, [&] {
    Netlink nl;
    std::optional<LinkState> eth0 = nl.Link("eth0");
    ASSERT_TRUE(eth0);
    EXPECT_EQ(eth0->index, got->pod_ifindex);
    EXPECT_EQ(eth0->kind, "veth");
    EXPECT_TRUE(eth0->flags & IFF_UP);
    EXPECT_EQ(eth0->mtu, 1450u);
    EXPECT_EQ(FormatMac(eth0->mac), "0a:58:c6:13:00:05");
    EXPECT_EQ(eth0->peer_index, got->host_ifindex);
    EXPECT_THAT(nl.Addresses(eth0->index), ElementsAre("198.19.0.5/24"));
    EXPECT_THAT(nl.DefaultRoutes(), ElementsAre(RouteState{"198.19.0.1", eth0->index, true}));
    std::optional<LinkState> lo = nl.Link("lo");
    ASSERT_TRUE(lo);
    EXPECT_TRUE(lo->flags & IFF_UP);
  });

  InHost([&] {
    Netlink nl;
    std::optional<LinkState> host = nl.Link(spec.host_ifname);
    ASSERT_TRUE(host);
    EXPECT_EQ(host->index, got->host_ifindex);
    EXPECT_EQ(host->mac, got->host_mac);
    EXPECT_EQ(host->kind, "veth");
    EXPECT_TRUE(host->flags & IFF_UP);
    EXPECT_EQ(host->mtu, 1450u);
    EXPECT_EQ(host->peer_index, got->pod_ifindex);
    EXPECT_EQ(ReadFile("/proc/sys/net/ipv6/conf/" + spec.host_ifname + "/disable_ipv6"), "1\n");
    // Not even a link-local address: the host side sends nothing of its own.
    EXPECT_THAT(nl.Addresses(host->index, AF_INET6), IsEmpty());
  });
}

// /proc/sys/net shows the namespace of the thread that opens it, not that of
// the process or of the /proc mount: the host side's sysctl is seen in the
// host namespace only, and the pod's own interface is left alone.
TEST_F(PodNetworkTest, SysctlIsThatOfTheCallingThreadsNamespace) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  ASSERT_TRUE(SetUpInHost(spec).ok());
  const std::string host_sysctl = "/proc/sys/net/ipv6/conf/" + spec.host_ifname + "/disable_ipv6";
  InHost([&] { EXPECT_EQ(ReadFile(host_sysctl), "1\n"); });
  In(*pod, [&] {
    EXPECT_EQ(ReadFile(host_sysctl), std::nullopt);
    EXPECT_EQ(ReadFile("/proc/sys/net/ipv6/conf/eth0/disable_ipv6"), "0\n");
  });
  EXPECT_EQ(ReadFile(host_sysctl), std::nullopt);  // this thread's namespace
}

TEST_F(PodNetworkTest, SetUpTwiceGivesTheSameInterface) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  absl::StatusOr<PodInterface> first = SetUpInHost(spec);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<PodInterface> second = SetUpInHost(spec);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*first, *second);
  In(*pod, [&] {
    Netlink nl;
    EXPECT_THAT(nl.Addresses(first->pod_ifindex), ElementsAre("198.19.0.5/24"));
    EXPECT_THAT(nl.DefaultRoutes(),
                ElementsAre(RouteState{"198.19.0.1", first->pod_ifindex, true}));
  });
  EXPECT_TRUE(CheckInHost(spec).ok());
}

// A repeated ADD completes a pair that lost its address, route or state.
TEST_F(PodNetworkTest, SetUpAgainCompletesAPair) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  absl::StatusOr<PodInterface> first = SetUpInHost(spec);
  ASSERT_TRUE(first.ok()) << first.status();
  In(*pod, [&] {
    Netlink nl;
    EXPECT_EQ(nl.DeleteDefaultRoute(), 0);
    EXPECT_EQ(nl.DeleteAddress(first->pod_ifindex, "198.19.0.5", 24), 0);
    EXPECT_EQ(nl.SetDown(first->pod_ifindex), 0);
  });
  InHost([&] { EXPECT_EQ(Netlink().SetDown(first->host_ifindex), 0); });
  EXPECT_FALSE(CheckInHost(spec).ok());

  absl::StatusOr<PodInterface> again = SetUpInHost(spec);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*first, *again);
  absl::Status check = CheckInHost(spec);
  EXPECT_TRUE(check.ok()) << check;
}

TEST_F(PodNetworkTest, CheckNamesWhatDiffers) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  absl::StatusOr<PodInterface> got = SetUpInHost(spec);
  ASSERT_TRUE(got.ok()) << got.status();
  absl::Status check = CheckInHost(spec);
  EXPECT_TRUE(check.ok()) << check;

  In(*pod, [&] { EXPECT_EQ(Netlink().DeleteAddress(got->pod_ifindex, "198.19.0.5", 24), 0); });
  check = CheckInHost(spec);
  EXPECT_EQ(check.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(check.message(),
              HasSubstr("eth0 in " + pod->path() + " has no address 198.19.0.5/24 (it has none)"));

  ASSERT_TRUE(SetUpInHost(spec).ok());
  In(*pod, [&] { EXPECT_EQ(Netlink().DeleteDefaultRoute(), 0); });
  check = CheckInHost(spec);
  EXPECT_EQ(check.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(check.message(), HasSubstr(pod->path() + " has no default route via 198.19.0.1"));

  ASSERT_TRUE(SetUpInHost(spec).ok());
  PodInterfaceSpec other = spec;
  other.prefix_len = 16;
  check = CheckInHost(other);
  EXPECT_THAT(check.message(), HasSubstr("has no address 198.19.0.5/16 (it has 198.19.0.5/24)"));
  other = spec;
  other.mtu = 1400;
  EXPECT_THAT(CheckInHost(other).message(),
              HasSubstr("eth0 in " + pod->path() + " has MTU 1450, want 1400"));
  other = spec;
  other.host_ifname = "atlmissing";
  check = CheckInHost(other);
  EXPECT_EQ(check.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(check.message(), HasSubstr("atlmissing"));

  InHost([&] { EXPECT_EQ(Netlink().SetDown(got->host_ifindex), 0); });
  EXPECT_THAT(CheckInHost(spec).message(), HasSubstr(spec.host_ifname + " is down"));
}

TEST_F(PodNetworkTest, TearDownRemovesBothEndsAndMayBeRepeated) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  absl::StatusOr<PodInterface> got = SetUpInHost(spec);
  ASSERT_TRUE(got.ok()) << got.status();

  absl::StatusOr<PodInterface> found = absl::UnknownError("not run");
  InHost([&] { found = FindHostInterface(spec.host_ifname); });
  ASSERT_TRUE(found.ok()) << found.status();
  PodInterface want = *got;
  want.pod_mac = {};
  EXPECT_EQ(*found, want);

  absl::Status status = TearDownInHost(spec.host_ifname);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(HostLink(spec.host_ifname), std::nullopt);
  EXPECT_EQ(LinkIn(*pod, "eth0"), std::nullopt);
  status = TearDownInHost(spec.host_ifname);
  EXPECT_TRUE(status.ok()) << status;
  InHost([&] { found = FindHostInterface(spec.host_ifname); });
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PodNetworkTest, DetachTakesThePodSideOutOfSightAndTearDownFinishes) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  ASSERT_TRUE(SetUpInHost(spec).ok());

  absl::Status status = absl::UnknownError("not run");
  InHost([&] { status = DetachPodInterface(spec.netns, spec.ifname, spec.host_ifname); });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(LinkIn(*pod, "eth0"), std::nullopt);
  // Down, under the host side's name, until the pair is deleted.
  ASSERT_TRUE(LinkIn(*pod, spec.host_ifname));
  EXPECT_FALSE(LinkIn(*pod, spec.host_ifname)->flags & IFF_UP);
  ASSERT_TRUE(HostLink(spec.host_ifname));

  // Again, and with the namespace or the pair gone: nothing to do.
  InHost([&] { status = DetachPodInterface(spec.netns, spec.ifname, spec.host_ifname); });
  EXPECT_TRUE(status.ok()) << status;
  InHost([&] { status = DetachPodInterface("", spec.ifname, spec.host_ifname); });
  EXPECT_TRUE(status.ok()) << status;
  ASSERT_TRUE(TearDownInHost(spec.host_ifname).ok());
  EXPECT_EQ(LinkIn(*pod, spec.host_ifname), std::nullopt);
  InHost([&] { status = DetachPodInterface(spec.netns, spec.ifname, spec.host_ifname); });
  EXPECT_TRUE(status.ok()) << status;
  const std::string gone = spec.netns;
  pod.reset();
  InHost([&] { status = DetachPodInterface(gone, spec.ifname, spec.host_ifname); });
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(PodNetworkTest, TearDownManyAtOnce) {
  std::vector<std::unique_ptr<TestNetns>> pods;
  std::vector<std::string> host_sides;
  for (int i = 0; i < 5; ++i) {
    pods.push_back(NewNetns());
    ASSERT_NE(pods.back(), nullptr);
    const std::string address = "198.19.0." + std::to_string(10 + i);
    const PodInterfaceSpec spec = Spec(*pods.back(), "c" + std::to_string(i), address.c_str());
    ASSERT_TRUE(SetUpInHost(spec).ok());
    host_sides.push_back(spec.host_ifname);
  }
  host_sides.push_back(HostIfname("never-made", "eth0"));  // missing names are skipped

  // Something that is not a veth among them: nothing is deleted.
  std::vector<std::string> with_lo = host_sides;
  with_lo.push_back("lo");
  absl::Status status = absl::UnknownError("not run");
  InHost([&] { status = TearDownPodInterfaces(with_lo); });
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_TRUE(HostLink(host_sides[0]));

  InHost([&] { status = TearDownPodInterfaces(host_sides); });
  EXPECT_TRUE(status.ok()) << status;
  for (size_t i = 0; i < pods.size(); ++i) {
    EXPECT_EQ(HostLink(host_sides[i]), std::nullopt) << host_sides[i];
    EXPECT_EQ(LinkIn(*pods[i], "eth0"), std::nullopt);
  }
  EXPECT_TRUE(HostLink("lo"));
  InHost([&] { status = TearDownPodInterfaces(host_sides); });  // again: nothing left to do
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(PodNetworkTest, DetachLeavesAnInterfaceThatIsNotThePeer) {
  std::unique_ptr<TestNetns> pod_a = NewNetns();
  std::unique_ptr<TestNetns> pod_b = NewNetns();
  ASSERT_NE(pod_a, nullptr);
  ASSERT_NE(pod_b, nullptr);
  PodInterfaceSpec a = Spec(*pod_a);
  PodInterfaceSpec b = Spec(*pod_b);
  b.host_ifname = "atlbbbbbbbbbbb";
  ASSERT_TRUE(SetUpInHost(a).ok());
  ASSERT_TRUE(SetUpInHost(b).ok());
  // b's eth0 is not the peer of a's host side.
  absl::Status status = absl::UnknownError("not run");
  InHost([&] { status = DetachPodInterface(b.netns, b.ifname, a.host_ifname); });
  EXPECT_TRUE(status.ok()) << status;
  ASSERT_TRUE(LinkIn(*pod_b, "eth0"));
  EXPECT_TRUE(LinkIn(*pod_b, "eth0")->flags & IFF_UP);
  ASSERT_TRUE(TearDownInHost(a.host_ifname).ok());
  ASSERT_TRUE(TearDownInHost(b.host_ifname).ok());
}

TEST_F(PodNetworkTest, TearDownAfterThePodNamespaceIsGone) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  ASSERT_TRUE(SetUpInHost(spec).ok());
  pod.reset();
  absl::Status status = TearDownInHost(spec.host_ifname);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(HostLink(spec.host_ifname), std::nullopt);
}

TEST_F(PodNetworkTest, TearDownLeavesWhatIsNotAVeth) {
  absl::Status status = TearDownInHost("lo");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("lo is not a veth: not deleting it"));
  EXPECT_TRUE(HostLink("lo"));
}

TEST_F(PodNetworkTest, HostNameTakenByAnotherPodsPair) {
  std::unique_ptr<TestNetns> pod_a = NewNetns();
  std::unique_ptr<TestNetns> pod_b = NewNetns();
  ASSERT_NE(pod_a, nullptr);
  ASSERT_NE(pod_b, nullptr);
  const PodInterfaceSpec a = Spec(*pod_a);
  ASSERT_TRUE(SetUpInHost(a).ok());

  PodInterfaceSpec b = Spec(*pod_b, "c2", "198.19.0.6");
  b.host_ifname = a.host_ifname;
  absl::StatusOr<PodInterface> got = SetUpInHost(b);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(got.status().message(),
              HasSubstr(a.host_ifname + " already exists and is not the veth peer of eth0 in " +
                        pod_b->path()));
  EXPECT_EQ(LinkIn(*pod_b, "eth0"), std::nullopt);
  absl::Status check = CheckInHost(a);
  EXPECT_TRUE(check.ok()) << check;
}

TEST_F(PodNetworkTest, HostNameTakenByAPeerOfAnotherName) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  ASSERT_TRUE(SetUpInHost(spec).ok());

  PodInterfaceSpec eth1 = spec;
  eth1.ifname = "eth1";
  absl::StatusOr<PodInterface> got = SetUpInHost(eth1);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(got.status().message(),
              HasSubstr(spec.host_ifname + " already exists and is not the veth peer of eth1"));
  EXPECT_EQ(LinkIn(*pod, "eth1"), std::nullopt);
  EXPECT_TRUE(CheckInHost(spec).ok());
}

TEST_F(PodNetworkTest, PodNameTakenByAnotherInterface) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  ASSERT_TRUE(SetUpInHost(spec).ok());

  PodInterfaceSpec other = spec;
  other.host_ifname = HostIfname("c2", "eth0");
  absl::StatusOr<PodInterface> got = SetUpInHost(other);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(got.status().message(), HasSubstr("eth0 already exists in " + pod->path() +
                                                " and is not the peer of " + other.host_ifname));
  EXPECT_EQ(HostLink(other.host_ifname), std::nullopt);
  EXPECT_TRUE(CheckInHost(spec).ok());
}

// A failure after the pair was made (here the kernel refuses the broadcast
// address as a gateway) leaves neither end behind.
TEST_F(PodNetworkTest, FailedSetUpLeavesNothingBehind) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod, "c1", "198.19.0.5", "198.19.0.255");
  absl::StatusOr<PodInterface> got = SetUpInHost(spec);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(),
              HasSubstr("add default route via 198.19.0.255 dev eth0 in " + pod->path()));
  EXPECT_EQ(HostLink(spec.host_ifname), std::nullopt);
  EXPECT_EQ(LinkIn(*pod, "eth0"), std::nullopt);
}

TEST_F(PodNetworkTest, GatewayOutsideTheSubnetIsOnlink) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod, "c1", "198.19.0.5", "198.18.255.1");
  absl::StatusOr<PodInterface> got = SetUpInHost(spec);
  ASSERT_TRUE(got.ok()) << got.status();
  In(*pod, [&] {
    EXPECT_THAT(Netlink().DefaultRoutes(),
                ElementsAre(RouteState{"198.18.255.1", got->pod_ifindex, true}));
  });
  absl::Status check = CheckInHost(spec);
  EXPECT_TRUE(check.ok()) << check;
}

TEST_F(PodNetworkTest, InvalidSpecsAreRefused) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  PodInterfaceSpec spec = Spec(*pod);
  spec.ifname = "a-name-too-long-for-linux";
  EXPECT_EQ(SetUpInHost(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec = Spec(*pod);
  spec.host_ifname = "../../x";
  EXPECT_EQ(SetUpInHost(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec = Spec(*pod);
  spec.address = A("2001:db8::5");
  EXPECT_EQ(SetUpInHost(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec = Spec(*pod);
  spec.netns = pod->path() + "-missing";
  absl::StatusOr<PodInterface> got = SetUpInHost(spec);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(got.status().message(), HasSubstr(spec.netns));
  EXPECT_EQ(HostLink(spec.host_ifname), std::nullopt);
}

TEST_F(PodNetworkTest, ConcurrentSetUps) {
  constexpr int kPods = 20;
  std::vector<std::unique_ptr<TestNetns>> pods;
  std::vector<PodInterfaceSpec> specs;
  for (int i = 0; i < kPods; ++i) {
    pods.push_back(NewNetns());
    ASSERT_NE(pods.back(), nullptr);
    specs.push_back(Spec(*pods.back(), absl::StrCat("concurrent-", i),
                         absl::StrCat("198.19.1.", 10 + i).c_str(), "198.19.1.1"));
  }
  std::vector<absl::StatusOr<PodInterface>> results(kPods, absl::UnknownError("not run"));
  InHost([&] {
    std::vector<std::thread> threads;
    for (int i = 0; i < kPods; ++i) {
      threads.emplace_back([&, i] { results[i] = SetUpPodInterface(specs[i]); });
    }
    for (std::thread& t : threads) t.join();
  });
  std::set<std::string> names;
  std::set<int> indexes;
  for (int i = 0; i < kPods; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    names.insert(results[i]->host_ifname);
    indexes.insert(results[i]->host_ifindex);
    absl::Status check = CheckInHost(specs[i]);
    EXPECT_TRUE(check.ok()) << check;
  }
  EXPECT_EQ(names.size(), size_t{kPods});
  EXPECT_EQ(indexes.size(), size_t{kPods});

  std::vector<absl::Status> torn(kPods, absl::UnknownError("not run"));
  InHost([&] {
    std::vector<std::thread> threads;
    for (int i = 0; i < kPods; ++i) {
      threads.emplace_back([&, i] { torn[i] = TearDownPodInterface(specs[i].host_ifname); });
    }
    for (std::thread& t : threads) t.join();
  });
  for (int i = 0; i < kPods; ++i) {
    EXPECT_TRUE(torn[i].ok()) << torn[i];
    EXPECT_EQ(HostLink(specs[i].host_ifname), std::nullopt);
  }
}

TEST_F(PodNetworkTest, DefaultRouteMtu) {
  absl::StatusOr<uint32_t> mtu = absl::UnknownError("not run");
  InHost([&] { mtu = DefaultRouteMtu(); });
  ASSERT_TRUE(mtu.ok()) << mtu.status();
  EXPECT_EQ(*mtu, 1500u);  // no default route

  // A veth of MTU 1400 that carries the default route.
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  PodInterfaceSpec spec = Spec(*pod);
  spec.mtu = 1400;
  ASSERT_TRUE(SetUpInHost(spec).ok());
  In(*pod, [&] { mtu = DefaultRouteMtu(); });
  ASSERT_TRUE(mtu.ok()) << mtu.status();
  EXPECT_EQ(*mtu, 1400u);

  // A route's own MTU below its link's is what the kernel uses.
  In(*pod, [&] {
    std::optional<LinkState> eth0 = Netlink().Link("eth0");
    ASSERT_TRUE(eth0);
    EXPECT_EQ(Netlink().ReplaceDefaultRoute(eth0->index, "198.19.0.1", 1300), 0);
    mtu = DefaultRouteMtu();
  });
  ASSERT_TRUE(mtu.ok()) << mtu.status();
  EXPECT_EQ(*mtu, 1300u);
}

int OpenFds() {
  return static_cast<int>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                        std::filesystem::directory_iterator()));
}

// Every call closes what it opened: the netns file, its sockets, the sysctl.
TEST_F(PodNetworkTest, NoFileDescriptorIsLeft) {
  std::unique_ptr<TestNetns> pod = NewNetns();
  ASSERT_NE(pod, nullptr);
  const PodInterfaceSpec spec = Spec(*pod);
  const int before = OpenFds();
  InHost([&] {
    EXPECT_TRUE(SetUpPodInterface(spec).ok());
    EXPECT_TRUE(SetUpPodInterface(spec).ok());
    EXPECT_TRUE(CheckPodInterface(spec).ok());
    EXPECT_TRUE(FindHostInterface(spec.host_ifname).ok());
    EXPECT_TRUE(DefaultRouteMtu().ok());
    EXPECT_TRUE(TearDownPodInterface(spec.host_ifname).ok());
    EXPECT_FALSE(SetUpPodInterface(Spec(*pod, "c1", "198.19.0.5", "198.19.0.255")).ok());
  });
  EXPECT_EQ(OpenFds(), before);
}

}  // namespace
}  // namespace atl::agent
