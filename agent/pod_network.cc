#include "agent/pod_network.h"

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/ethtool.h>
#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/veth.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lb/status_macros.h"

namespace atl::agent {
namespace {

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A file descriptor, closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// The error of a failed operation: `what` names the operation and the
// interface, the errno its cause, and `detail` the kernel's extended ACK
// message when there is one.
absl::Status OsError(int err, std::string_view what, std::string_view detail = {}) {
  if (err == 0) return absl::InternalError(absl::StrCat(Sv(what), ": no answer from the kernel"));
  absl::Status s = absl::ErrnoToStatus(err, Sv(what));
  if (detail.empty()) return s;
  return absl::Status(s.code(), absl::StrCat(s.message(), " (", Sv(detail), ")"));
}

// Names the kernel accepts for a network device (dev_valid_name() in
// net/core/dev.c); checked here too because host_ifname also names a file
// under /proc/sys.
bool ValidIfname(std::string_view name) {
  if (name.empty() || name.size() >= IFNAMSIZ || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == ':' || c == ' ' || (c >= '\t' && c <= '\r');
  });
}

absl::Status ValidateIfname(std::string_view what, std::string_view name) {
  if (ValidIfname(name)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid ", Sv(what), " \"", Sv(name),
                                                 "\": want 1 to ", IFNAMSIZ - 1,
                                                 " characters without '/', ':' or spaces"));
}

absl::Status Validate(const PodInterfaceSpec& spec) {
  if (spec.netns.empty()) return absl::InvalidArgumentError("no network namespace path");
  ATL_RETURN_IF_ERROR(ValidateIfname("interface name", spec.ifname));
  ATL_RETURN_IF_ERROR(ValidateIfname("host interface name", spec.host_ifname));
  // IPv4 only: the host side has IPv6 disabled, so an IPv6 pod could not reach it.
  if (!spec.address.IsV4() || spec.address.IsUnspecified()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pod address ", spec.address.ToString(), " is not a usable IPv4 address"));
  }
  if (spec.prefix_len < 1 || spec.prefix_len > 32) {
    return absl::InvalidArgumentError(absl::StrCat("prefix length ", spec.prefix_len, " of ",
                                                   spec.address.ToString(), " is not in 1..32"));
  }
  if (!spec.gateway.IsV4() || spec.gateway.IsUnspecified() || spec.gateway == spec.address) {
    return absl::InvalidArgumentError(absl::StrCat("gateway ", spec.gateway.ToString(), " of ",
                                                   spec.address.ToString(), " is not usable"));
  }
  // 68 is the IPv4 minimum (RFC 791), 65535 the most a veth takes (ETH_MAX_MTU).
  if (spec.mtu < 68 || spec.mtu > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("MTU ", spec.mtu, " is not in 68..65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Fd> OpenNetns(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return OsError(errno, absl::StrCat("open network namespace ", path));
  return fd;
}

// Sequence numbers unique in the process, so that no answer is ever taken for
// that of another request, whatever sockets and threads are involved.
std::atomic<uint32_t> g_next_seq{1};

// Writing a disable_ipv6 file takes the RTNL with rtnl_trylock() and, when that
// fails, restarts the write() at once (addrconf_sysctl_disable() in
// net/ipv6/addrconf.c returns restart_syscall()): the writer spins for as long
// as anyone holds the RTNL. When 50 pods start together our own requests hold
// it nearly all the time and the spinning writers take the CPU from the
// holders: 50 concurrent SetUpPodInterface() calls took 2 to 3 times as long.
// So every netlink exchange made here holds this gate shared and the write
// holds it alone: the exchanges in flight finish, new ones wait, and the
// write finds the RTNL free unless another process holds it. Writers are
// preferred, or a stream of exchanges would keep them out.
class RtnlGate {
 public:
  static RtnlGate& Get() {
    static RtnlGate* gate = new RtnlGate();  // never destroyed: used up to exit
    return *gate;
  }
  pthread_rwlock_t* lock() { return &lock_; }

 private:
  RtnlGate() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  pthread_rwlock_t lock_;
};

// Holds the gate for a scope: shared, or alone.
class GateHold {
 public:
  explicit GateHold(bool alone) {
    if (alone) {
      pthread_rwlock_wrlock(RtnlGate::Get().lock());
    } else {
      pthread_rwlock_rdlock(RtnlGate::Get().lock());
    }
  }
  ~GateHold() { pthread_rwlock_unlock(RtnlGate::Get().lock()); }
  GateHold(const GateHold&) = delete;
  GateHold& operator=(const GateHold&) = delete;
};

// An rtnetlink socket. It serves the network namespace it was created in for
// its whole life (netlink_create() takes the creating task's), whatever thread
// uses it later.
class Socket {
 public:
  // A socket in the calling thread's network namespace.
  static absl::StatusOr<Socket> Open() {
    std::unique_ptr<mnl_socket, Closer> nl(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC));
    if (!nl) return OsError(errno, "open rtnetlink socket");
    int one = 1;
    // Error messages from the kernel (NLMSGERR_ATTR_MSG), and errors without a
    // copy of the request: both only change what the ACKs carry, and kernels
    // before 4.12 lack them, so a failure to set them is not an error.
    mnl_socket_setsockopt(nl.get(), NETLINK_EXT_ACK, &one, sizeof(one));
    mnl_socket_setsockopt(nl.get(), NETLINK_CAP_ACK, &one, sizeof(one));
    if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
      return OsError(errno, "bind rtnetlink socket");
    }
    return Socket(std::move(nl));
  }

  // A socket in the network namespace `netns_fd` (opened from `netns_path`).
  // Only the creation has to happen inside it, so a thread of our own enters
  // the namespace, opens the socket and ends; the caller's thread, perhaps a
  // gRPC worker that runs other requests next, never changes namespace.
  static absl::StatusOr<Socket> OpenIn(int netns_fd, const std::string& netns_path) {
    absl::StatusOr<Socket> result = absl::UnknownError("not run");
    try {
      std::thread([&] {
        if (setns(netns_fd, CLONE_NEWNET) != 0) {
          result = OsError(errno, absl::StrCat("enter network namespace ", netns_path));
          return;
        }
        result = Open();
      }).join();
    } catch (const std::system_error& e) {
      return absl::ResourceExhaustedError(
          absl::StrCat("start a thread to enter ", netns_path, ": ", e.what()));
    }
    return result;
  }

  mnl_socket* get() const { return nl_.get(); }

 private:
  struct Closer {
    void operator()(mnl_socket* nl) const { mnl_socket_close(nl); }
  };
  explicit Socket(std::unique_ptr<mnl_socket, Closer> nl) : nl_(std::move(nl)) {}

  std::unique_ptr<mnl_socket, Closer> nl_;
};

// Requests sent together in one datagram. rtnetlink handles the messages of a
// datagram one after the other (netlink_rcv_skb()), so a message sees what the
// ones before it did, and answers each on its own: a doit request with
// NLM_F_ACK gets its reply (if any) and then an ACK that carries its errno; a
// dump gets its messages and NLMSG_DONE. At most one dump per batch: a socket
// runs one dump at a time (netlink_dump_start() says EBUSY otherwise).
class Batch {
 public:
  struct Answer {
    int error = 0;             // errno, 0 on success
    std::string message;       // the kernel's extended ACK message, if any
    bool interrupted = false;  // NLM_F_DUMP_INTR: the dump may be inconsistent
  };

  // Starts a request; the caller adds its fixed header and attributes with
  // Header() and mnl_attr_put*(), which do not check for room: every request
  // here is far smaller than kMaxRequest (its names have at most 15
  // characters), so that much is made free first. The pointer is good until
  // the next Add().
  nlmsghdr* Add(uint16_t type, uint16_t flags) {
    static constexpr size_t kMaxRequest = 1024;
    Close();
    if (buf_.size() < used_ + kMaxRequest) buf_.resize(used_ + kMaxRequest);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.data() + used_);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    open_ = nlh;
    starts_.push_back(used_);
    return nlh;
  }
  template <typename T>
  static T* Header(nlmsghdr* nlh) {
    return static_cast<T*>(mnl_nlmsg_put_extra_header(nlh, sizeof(T)));
  }

  const Answer& answer(size_t i) const { return answers_[i]; }
  size_t size() const { return starts_.size(); }

  // Sends every request and reads until each is answered; `on_data` sees each
  // reply or dump message with the index of its request. The status is that
  // of the exchange itself; the requests' own errors are in answer().
  absl::Status Exchange(const Socket& socket,
                        const std::function<void(size_t, const nlmsghdr*)>& on_data) {
    Close();
    const uint32_t n = static_cast<uint32_t>(starts_.size());
    const uint32_t base = g_next_seq.fetch_add(n, std::memory_order_relaxed);
    for (uint32_t i = 0; i < n; ++i) {
      reinterpret_cast<nlmsghdr*>(buf_.data() + starts_[i])->nlmsg_seq = base + i;
    }
    answers_.assign(n, Answer());
    // The kernel does the work in sendmsg(), and continues a dump in recvmsg().
    GateHold gate(/*alone=*/false);
    if (mnl_socket_sendto(socket.get(), buf_.data(), used_) < 0) {
      return OsError(errno, "send rtnetlink request");
    }
    const uint32_t portid = mnl_socket_get_portid(socket.get());
    std::vector<bool> done(n, false);
    uint32_t pending = n;
    // A dump's messages fill datagrams of up to 32 KiB when the reader offers
    // that much (netlink_dump() sizes them by the last recvmsg()).
    std::vector<char> rx(32768);
    while (pending > 0) {
      ssize_t len = mnl_socket_recvfrom(socket.get(), rx.data(), rx.size());
      if (len < 0) {
        if (errno == EINTR) continue;
        return OsError(errno, "receive rtnetlink answer");
      }
      int left = static_cast<int>(len);
      for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rx.data()); mnl_nlmsg_ok(nlh, left);
           nlh = mnl_nlmsg_next(nlh, &left)) {
        const uint32_t i = nlh->nlmsg_seq - base;
        if (nlh->nlmsg_pid != portid || i >= n || done[i]) continue;
        Answer& answer = answers_[i];
        if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) answer.interrupted = true;
        if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE) {
          ReadEnd(nlh, answer);
          done[i] = true;
          --pending;
        } else {
          on_data(i, nlh);
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  void Close() {
    if (open_ != nullptr) used_ += NLMSG_ALIGN(open_->nlmsg_len);
    open_ = nullptr;
  }

  // Reads the errno of an NLMSG_ERROR or NLMSG_DONE (both start with an int)
  // and the message among the TLVs that follow an error with NLM_F_ACK_TLVS
  // (after the request's header, or the whole request without NLM_F_CAPPED;
  // linux/netlink.h, struct nlmsgerr).
  static void ReadEnd(const nlmsghdr* nlh, Answer& answer) {
    const size_t payload = mnl_nlmsg_get_payload_len(nlh);
    if (payload < sizeof(int)) return;
    int error;
    std::memcpy(&error, mnl_nlmsg_get_payload(nlh), sizeof(error));
    answer.error = -error;
    if (nlh->nlmsg_type != NLMSG_ERROR || !(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return;
    if (payload < sizeof(nlmsgerr)) return;
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    size_t offset = sizeof(nlmsgerr);
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
    offset = MNL_ALIGN(offset);
    if (offset >= payload) return;
    const char* tlvs = static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + offset;
    mnl_attr_parse_payload(
        tlvs, payload - offset,
        [](const nlattr* attr, void* data) {
          if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
              mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
            *static_cast<std::string*>(data) = mnl_attr_get_str(attr);
          }
          return MNL_CB_OK;
        },
        &answer.message);
  }

  std::vector<char> buf_;  // operator new aligns it for nlmsghdr
  size_t used_ = 0;
  nlmsghdr* open_ = nullptr;
  std::vector<size_t> starts_;
  std::vector<Answer> answers_;
};

// The error of a request that failed: `what` names the operation and the
// interface.
absl::Status RequestError(const Batch& batch, size_t i, std::string_view what) {
  return OsError(batch.answer(i).error, what, batch.answer(i).message);
}

// The attributes of a message or nest by type; the kernel sends each at most
// once. One size for every kind of message: the largest type we read is below
// IFLA_MAX.
class Attrs {
 public:
  Attrs(const nlmsghdr* nlh, size_t header_size) {
    mnl_attr_parse(nlh, static_cast<unsigned>(header_size), &Attrs::Collect, this);
  }
  explicit Attrs(const nlattr* nest) { mnl_attr_parse_nested(nest, &Attrs::Collect, this); }

  const nlattr* operator[](int type) const {
    return type >= 0 && type < kSize ? table_[type] : nullptr;
  }
  std::optional<uint32_t> U32(int type) const {
    const nlattr* a = (*this)[type];
    if (a == nullptr || mnl_attr_get_payload_len(a) < sizeof(uint32_t)) return std::nullopt;
    return mnl_attr_get_u32(a);
  }
  std::string Str(int type) const {
    const nlattr* a = (*this)[type];
    if (a == nullptr) return "";
    const char* p = static_cast<const char*>(mnl_attr_get_payload(a));
    return std::string(p, strnlen(p, mnl_attr_get_payload_len(a)));
  }
  std::optional<lb::IpAddr> V4(int type) const {
    const nlattr* a = (*this)[type];
    if (a == nullptr || mnl_attr_get_payload_len(a) != 4) return std::nullopt;
    return lb::IpAddr::FromV4Bytes(static_cast<const uint8_t*>(mnl_attr_get_payload(a)));
  }

 private:
  static constexpr int kSize = IFLA_MAX + 1;
  static_assert(RTA_MAX < kSize && IFA_MAX < kSize && IFLA_INFO_MAX < kSize && RTAX_MAX < kSize &&
                NETNSA_MAX < kSize);

  static int Collect(const nlattr* attr, void* data) {
    const int type = mnl_attr_get_type(attr);
    if (type < kSize) static_cast<Attrs*>(data)->table_[type] = attr;
    return MNL_CB_OK;
  }
  std::array<const nlattr*, kSize> table_{};
};

// What we read of a link (RTM_NEWLINK).
struct Link {
  int index = 0;
  unsigned flags = 0;
  uint32_t mtu = 0;
  MacAddr mac{};
  std::string kind;  // IFLA_INFO_KIND: "veth", "dummy", ...
  // For a veth, its peer's ifindex (veth_get_iflink()), and when the peer is in
  // another namespace that namespace's id as this one numbers it.
  int peer_index = 0;
  std::optional<int32_t> peer_netnsid;
};

std::optional<Link> ParseLink(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(nlh) < sizeof(ifinfomsg)) {
    return std::nullopt;
  }
  const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  Attrs attrs(nlh, sizeof(ifinfomsg));
  Link link;
  link.index = ifm->ifi_index;
  link.flags = ifm->ifi_flags;
  link.mtu = attrs.U32(IFLA_MTU).value_or(0);
  if (const nlattr* a = attrs[IFLA_ADDRESS]; a && mnl_attr_get_payload_len(a) == link.mac.size()) {
    std::memcpy(link.mac.data(), mnl_attr_get_payload(a), link.mac.size());
  }
  if (const nlattr* info = attrs[IFLA_LINKINFO]) {
    link.kind = Attrs(info).Str(IFLA_INFO_KIND);
  }
  link.peer_index = static_cast<int>(attrs.U32(IFLA_LINK).value_or(0));
  if (std::optional<uint32_t> id = attrs.U32(IFLA_LINK_NETNSID)) {
    link.peer_netnsid = static_cast<int32_t>(*id);
  }
  return link;
}

// " but a dummy", for errors; devices without rtnetlink ops (lo, NICs) have no kind.
std::string KindOf(const Link& link) {
  return link.kind.empty() ? "" : absl::StrCat(" but a ", link.kind);
}

// Asks for one link by name (or by index when `name` is empty), without its
// statistics, which are most of a link message and not needed here.
void AddGetLink(Batch& batch, std::string_view name, int index = 0) {
  nlmsghdr* nlh = batch.Add(RTM_GETLINK, NLM_F_ACK);
  auto* ifm = Batch::Header<ifinfomsg>(nlh);
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = index;
  if (!name.empty()) {
    mnl_attr_put(nlh, IFLA_IFNAME, name.size() + 1, std::string(name).c_str());
  }
  mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
}

// Asks which id the socket's namespace gives the namespace `netns_fd`
// (RTM_GETNSID, linux/net_namespace.h): the id a veth's IFLA_LINK_NETNSID
// names its peer's namespace by.
void AddGetNsid(Batch& batch, int netns_fd) {
  nlmsghdr* nlh = batch.Add(RTM_GETNSID, NLM_F_ACK);
  Batch::Header<rtgenmsg>(nlh)->rtgen_family = AF_UNSPEC;
  mnl_attr_put_u32(nlh, NETNSA_FD, static_cast<uint32_t>(netns_fd));
}

std::optional<int32_t> ParseNsid(const nlmsghdr* nlh) {
  if (nlh->nlmsg_type != RTM_NEWNSID) return std::nullopt;
  std::optional<uint32_t> id = Attrs(nlh, sizeof(rtgenmsg)).U32(NETNSA_NSID);
  if (!id) return std::nullopt;
  return static_cast<int32_t>(*id);
}

// Changes an existing link: MTU and MAC when given, and up.
void AddSetLink(Batch& batch, int index, std::string_view name, std::optional<uint32_t> mtu,
                const MacAddr* mac) {
  nlmsghdr* nlh = batch.Add(RTM_NEWLINK, NLM_F_ACK);
  auto* ifm = Batch::Header<ifinfomsg>(nlh);
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = index;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  if (index == 0) mnl_attr_put(nlh, IFLA_IFNAME, name.size() + 1, std::string(name).c_str());
  if (mtu) mnl_attr_put_u32(nlh, IFLA_MTU, *mtu);
  if (mac) mnl_attr_put(nlh, IFLA_ADDRESS, mac->size(), mac->data());
}

// The veth pair, its peer made directly in the pod's namespace: the peer's
// attributes sit in VETH_INFO_PEER behind a struct ifinfomsg of their own
// (linux/veth.h; veth_newlink() reads them from there), and IFLA_NET_NS_FD
// among them moves the peer before it is registered, so the pod's name never
// has to be free on the host. Both ends are created down.
void AddNewVeth(Batch& batch, const PodInterfaceSpec& spec, const MacAddr& pod_mac, int netns_fd) {
  nlmsghdr* nlh = batch.Add(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
  Batch::Header<ifinfomsg>(nlh)->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, spec.host_ifname.c_str());
  mnl_attr_put_u32(nlh, IFLA_MTU, spec.mtu);
  nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  Batch::Header<ifinfomsg>(nlh)->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, spec.ifname.c_str());
  mnl_attr_put_u32(nlh, IFLA_MTU, spec.mtu);
  mnl_attr_put(nlh, IFLA_ADDRESS, pod_mac.size(), pod_mac.data());
  mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<uint32_t>(netns_fd));
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, linkinfo);
}

void AddNewAddress(Batch& batch, int index, const lb::IpAddr& addr, int prefix_len) {
  nlmsghdr* nlh = batch.Add(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
  auto* ifa = Batch::Header<ifaddrmsg>(nlh);
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix_len);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<uint32_t>(index);
  mnl_attr_put(nlh, IFA_LOCAL, 4, addr.v4_bytes());
  mnl_attr_put(nlh, IFA_ADDRESS, 4, addr.v4_bytes());
}

// A unicast route of routing table `table` through the link `index` to
// `dst_len` bits of RTA_DST, which the caller adds, replacing one there was.
rtmsg* AddRoute(Batch& batch, nlmsghdr** nlh, uint32_t table, int index, uint8_t dst_len,
                uint8_t scope) {
  *nlh = batch.Add(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
  auto* rtm = Batch::Header<rtmsg>(*nlh);
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = dst_len;
  rtm->rtm_table = static_cast<uint8_t>(table < 256 ? table : uint32_t{RT_TABLE_UNSPEC});
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = scope;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put_u32(*nlh, RTA_TABLE, table);
  mnl_attr_put_u32(*nlh, RTA_OIF, static_cast<uint32_t>(index));
  return rtm;
}

// The routing table of the host's routes to its pods, which only the host's
// own packets look up (AddHostRouteRule): a host that forwards (ip_forward)
// must not hand a pod what arrives for it from elsewhere, past the
// dataplane's isolation. "ATL" in ASCII, as kTearDownGroup.
constexpr uint32_t kHostRouteTable = 0x41544c;
// Before the main table's rule (32766).
constexpr uint32_t kHostRouteRulePriority = 7470;

// The rule that sends the host's own packets (`iif lo`: generated here, not
// forwarded) to kHostRouteTable. Made once per host: EEXIST after.
void AddHostRouteRule(Batch& batch) {
  nlmsghdr* nlh = batch.Add(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
  auto* rule = Batch::Header<fib_rule_hdr>(nlh);
  rule->family = AF_INET;
  rule->table = RT_TABLE_UNSPEC;
  rule->action = FR_ACT_TO_TBL;
  mnl_attr_put_strz(nlh, FRA_IIFNAME, "lo");
  mnl_attr_put_u32(nlh, FRA_TABLE, kHostRouteTable);
  mnl_attr_put_u32(nlh, FRA_PRIORITY, kHostRouteRulePriority);
}

// The default route via `gateway` on `index`, replacing any default route of
// the main table. RTNH_F_ONLINK makes the kernel take the gateway as on the
// link whatever the link's addresses are, and needs the link up
// (fib_check_nh_v4_gw()).
void AddDefaultRoute(Batch& batch, int index, const lb::IpAddr& gateway) {
  nlmsghdr* nlh;
  AddRoute(batch, &nlh, RT_TABLE_MAIN, index, 0, RT_SCOPE_UNIVERSE)->rtm_flags = RTNH_F_ONLINK;
  mnl_attr_put(nlh, RTA_GATEWAY, 4, gateway.v4_bytes());
}

// The route to `addr` alone on the link `index`, in kHostRouteTable.
void AddHostRoute(Batch& batch, int index, const lb::IpAddr& addr) {
  nlmsghdr* nlh;
  AddRoute(batch, &nlh, kHostRouteTable, index, 32, RT_SCOPE_LINK);
  mnl_attr_put(nlh, RTA_DST, 4, addr.v4_bytes());
}

// `addr` at `mac` on the link `index`, for good (NUD_PERMANENT).
void AddPermanentNeighbour(Batch& batch, int index, const lb::IpAddr& addr, const MacAddr& mac) {
  nlmsghdr* nlh = batch.Add(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
  auto* ndm = Batch::Header<ndmsg>(nlh);
  ndm->ndm_family = AF_INET;
  ndm->ndm_ifindex = index;
  ndm->ndm_state = NUD_PERMANENT;
  mnl_attr_put(nlh, NDA_DST, 4, addr.v4_bytes());
  mnl_attr_put(nlh, NDA_LLADDR, mac.size(), mac.data());
}

// The interface group (IFLA_GROUP) of host sides about to be deleted together.
// Only TearDownPodInterfaces() puts links in it, right before it deletes the
// group; "ATL" in ASCII, far from the small numbers people give groups.
constexpr uint32_t kTearDownGroup = 0x41544c;

void AddDeleteLink(Batch& batch, int index) {
  nlmsghdr* nlh = batch.Add(RTM_DELLINK, NLM_F_ACK);
  auto* ifm = Batch::Header<ifinfomsg>(nlh);
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = index;
}

// Runs a one-request dump built by `add` until it was not interrupted by a
// concurrent change (NLM_F_DUMP_INTR), a few times at most.
absl::Status Dump(const Socket& socket, std::string_view what,
                  const std::function<void(Batch&)>& add,
                  const std::function<void(const nlmsghdr*)>& on_data) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    Batch batch;
    add(batch);
    ATL_RETURN_IF_ERROR(batch.Exchange(socket, [&](size_t, const nlmsghdr* nlh) { on_data(nlh); }));
    if (batch.answer(0).error != 0) return RequestError(batch, 0, what);
    if (!batch.answer(0).interrupted) return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat(Sv(what), ": interrupted by changes, try again"));
}

// An IPv4 address of a link (RTM_NEWADDR).
struct Address {
  lb::IpAddr addr;
  int prefix_len = 0;
};

absl::StatusOr<std::vector<Address>> ListAddresses(const Socket& socket, int index,
                                                   std::string_view what) {
  std::vector<Address> found;
  ATL_RETURN_IF_ERROR(Dump(
      socket, what,
      [&](Batch& batch) {
        nlmsghdr* nlh = batch.Add(RTM_GETADDR, NLM_F_DUMP);
        Batch::Header<ifaddrmsg>(nlh)->ifa_family = AF_INET;
      },
      [&](const nlmsghdr* nlh) {
        if (nlh->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(nlh) < sizeof(ifaddrmsg)) {
          return;
        }
        const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
        if (ifa->ifa_family != AF_INET || static_cast<int>(ifa->ifa_index) != index) return;
        Attrs attrs(nlh, sizeof(ifaddrmsg));
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's
        // on point-to-point links (linux/if_addr.h).
        std::optional<lb::IpAddr> addr = attrs.V4(IFA_LOCAL);
        if (!addr) addr = attrs.V4(IFA_ADDRESS);
        if (addr) found.push_back(Address{*addr, ifa->ifa_prefixlen});
      }));
  return found;
}

// A default IPv4 route of the main table (RTM_NEWROUTE).
struct DefaultRoute {
  uint32_t priority = 0;
  std::optional<lb::IpAddr> gateway;
  std::vector<int> oifs;  // one, or a multipath route's nexthops
  uint32_t mtu = 0;       // RTAX_MTU, 0 when unset
};

absl::StatusOr<std::vector<DefaultRoute>> ListDefaultRoutes(const Socket& socket,
                                                            std::string_view what) {
  std::vector<DefaultRoute> found;
  ATL_RETURN_IF_ERROR(Dump(
      socket, what,
      [&](Batch& batch) {
        nlmsghdr* nlh = batch.Add(RTM_GETROUTE, NLM_F_DUMP);
        Batch::Header<rtmsg>(nlh)->rtm_family = AF_INET;
      },
      [&](const nlmsghdr* nlh) {
        if (nlh->nlmsg_type != RTM_NEWROUTE || mnl_nlmsg_get_payload_len(nlh) < sizeof(rtmsg)) {
          return;
        }
        const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
        if (rtm->rtm_family != AF_INET || rtm->rtm_dst_len != 0 || rtm->rtm_type != RTN_UNICAST) {
          return;
        }
        Attrs attrs(nlh, sizeof(rtmsg));
        // rtm_table holds only 8 bits; RTA_TABLE, when present, is the table.
        if (attrs.U32(RTA_TABLE).value_or(rtm->rtm_table) != RT_TABLE_MAIN) return;
        DefaultRoute route;
        route.priority = attrs.U32(RTA_PRIORITY).value_or(0);
        route.gateway = attrs.V4(RTA_GATEWAY);
        if (std::optional<uint32_t> oif = attrs.U32(RTA_OIF)) route.oifs.push_back(*oif);
        if (const nlattr* mp = attrs[RTA_MULTIPATH]) {
          auto* nh = static_cast<const rtnexthop*>(mnl_attr_get_payload(mp));
          int left = static_cast<int>(mnl_attr_get_payload_len(mp));
          for (; RTNH_OK(nh, left); left -= RTNH_ALIGN(nh->rtnh_len), nh = RTNH_NEXT(nh)) {
            route.oifs.push_back(nh->rtnh_ifindex);
          }
        }
        if (const nlattr* metrics = attrs[RTA_METRICS]) {
          route.mtu = Attrs(metrics).U32(RTAX_MTU).value_or(0);
        }
        found.push_back(std::move(route));
      }));
  return found;
}

// Disables IPv6 on a link of the calling thread's namespace. There is no
// rtnetlink attribute for it (inet6_set_link_af() takes only the token and the
// address generation mode), so it is the sysctl file, which belongs to the
// namespace of the thread that opens it: /proc/sys/net looks up its entries in
// current->nsproxy->net_ns (net_ctl_header_lookup() in net/sysctl_net.c).
absl::Status DisableIpv6(const std::string& ifname) {
  const std::string path = absl::StrCat("/proc/sys/net/ipv6/conf/", ifname, "/disable_ipv6");
  Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    // Without IPv6 in the kernel (ipv6.disable=1) there is nothing to disable.
    if (err == ENOENT && access("/proc/sys/net/ipv6", F_OK) != 0) return absl::OkStatus();
    return OsError(err, absl::StrCat("disable IPv6 on ", ifname, ": open ", path));
  }
  GateHold gate(/*alone=*/true);
  if (write(fd.get(), "1\n", 2) != 2) {
    return OsError(errno, absl::StrCat("disable IPv6 on ", ifname, ": write ", path));
  }
  return absl::OkStatus();
}

// Whether `host` is the veth whose peer is `pod` in the namespace the host's
// namespace numbers `pod_nsid`. Each end names the other by ifindex; ifindexes
// are only unique per namespace, so the peer's namespace is compared too.
bool ArePeers(const Link& host, const Link& pod, std::optional<int32_t> pod_nsid) {
  return host.kind == "veth" && host.peer_index == pod.index && pod.peer_index == host.index &&
         pod_nsid.has_value() && *pod_nsid >= 0 && host.peer_netnsid == pod_nsid;
}

// The two ends of a pod's pair as found or made, before Configure().
struct Pair {
  Link host;
  int pod_index = 0;
  std::optional<MacAddr> pod_mac;  // the pod side's MAC when it was there before
  std::optional<uint32_t> pod_mtu;
};

// The steps after the pair exists: IPv6 off and up on the host side, then in
// one round trip the pod side up, lo up, the address and the route.
absl::Status Configure(const PodInterfaceSpec& spec, const Socket& host, const Socket& pod,
                       const Pair& pair, const MacAddr& pod_mac) {
  // Before the link goes up: IPv6 would otherwise start on it (a link-local
  // address, DAD, router solicitations) at NETDEV_UP.
  ATL_RETURN_IF_ERROR(DisableIpv6(spec.host_ifname));

  Batch host_batch;
  AddSetLink(host_batch, pair.host.index, {},
             pair.host.mtu != spec.mtu ? std::optional<uint32_t>(spec.mtu) : std::nullopt, nullptr);
  ATL_RETURN_IF_ERROR(host_batch.Exchange(host, [](size_t, const nlmsghdr*) {}));
  if (host_batch.answer(0).error != 0) {
    return RequestError(host_batch, 0, absl::StrCat("set ", spec.host_ifname, " up"));
  }
  if (spec.host_route) {
    // A link route wants its link up (fib_check_nh_nongw()).
    Batch routes;
    AddHostRouteRule(routes);
    AddHostRoute(routes, pair.host.index, spec.address);
    AddPermanentNeighbour(routes, pair.host.index, spec.address, pod_mac);
    ATL_RETURN_IF_ERROR(routes.Exchange(host, [](size_t, const nlmsghdr*) {}));
    if (routes.answer(0).error != 0 && routes.answer(0).error != EEXIST) {
      return RequestError(routes, 0, absl::StrCat("add rule iif lo lookup ", kHostRouteTable));
    }
    if (routes.answer(1).error != 0) {
      return RequestError(
          routes, 1,
          absl::StrCat("add route to ", spec.address.ToString(), " dev ", spec.host_ifname));
    }
    if (routes.answer(2).error != 0) {
      return RequestError(
          routes, 2,
          absl::StrCat("add neighbour ", spec.address.ToString(), " dev ", spec.host_ifname));
    }
  }

  // The pod side goes up first: the onlink route needs it up.
  const bool set_mac = pair.pod_mac.has_value() && *pair.pod_mac != pod_mac;
  const bool set_mtu = pair.pod_mtu.has_value() && *pair.pod_mtu != spec.mtu;
  Batch batch;
  AddSetLink(batch, pair.pod_index, {}, set_mtu ? std::optional<uint32_t>(spec.mtu) : std::nullopt,
             set_mac ? &pod_mac : nullptr);
  AddSetLink(batch, 0, "lo", std::nullopt, nullptr);
  AddNewAddress(batch, pair.pod_index, spec.address, spec.prefix_len);
  AddDefaultRoute(batch, pair.pod_index, spec.gateway);
  ATL_RETURN_IF_ERROR(batch.Exchange(pod, [](size_t, const nlmsghdr*) {}));
  const std::string where = absl::StrCat(" in ", spec.netns);
  if (batch.answer(0).error != 0) {
    return RequestError(batch, 0, absl::StrCat("set ", spec.ifname, where, " up"));
  }
  if (batch.answer(1).error != 0) {
    return RequestError(batch, 1, absl::StrCat("set lo", where, " up"));
  }
  // EEXIST: the address is there from an earlier ADD.
  if (batch.answer(2).error != 0 && batch.answer(2).error != EEXIST) {
    return RequestError(batch, 2,
                        absl::StrCat("add address ", spec.address.ToString(), "/", spec.prefix_len,
                                     " to ", spec.ifname, where));
  }
  if (batch.answer(3).error != 0) {
    return RequestError(batch, 3,
                        absl::StrCat("add default route via ", spec.gateway.ToString(), " dev ",
                                     spec.ifname, where));
  }
  return absl::OkStatus();
}

absl::Status DeleteLink(const Socket& socket, int index, std::string_view name) {
  Batch batch;
  AddDeleteLink(batch, index);
  ATL_RETURN_IF_ERROR(batch.Exchange(socket, [](size_t, const nlmsghdr*) {}));
  // ENODEV: it went away meanwhile, with its peer's namespace or by another DEL.
  if (batch.answer(0).error != 0 && batch.answer(0).error != ENODEV) {
    return RequestError(batch, 0, absl::StrCat("delete ", Sv(name)));
  }
  return absl::OkStatus();
}

// Reads one link of the socket's namespace; NOT_FOUND when there is none.
absl::StatusOr<Link> GetLink(const Socket& socket, std::string_view name, std::string_view where) {
  Batch batch;
  AddGetLink(batch, name);
  std::optional<Link> link;
  ATL_RETURN_IF_ERROR(
      batch.Exchange(socket, [&](size_t, const nlmsghdr* nlh) { link = ParseLink(nlh); }));
  if (batch.answer(0).error != 0) {
    return RequestError(batch, 0, absl::StrCat("find ", Sv(name), Sv(where)));
  }
  if (!link) return absl::InternalError(absl::StrCat("find ", Sv(name), Sv(where), ": no answer"));
  return *link;
}

}  // namespace

std::string HostIfname(std::string_view container_id, std::string_view ifname) {
  // FNV-1a, 64 bits (draft-eastlake-fnv); a zero byte between the two fields
  // keeps ("ab", "c") apart from ("a", "bc"). XOR-folding the 64 bits to 44 is
  // how the FNV authors shorten a hash: the high bits are the better mixed.
  uint64_t h = 0xcbf29ce484222325ull;
  auto add = [&h](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 0x100000001b3ull;
    }
  };
  add(container_id);
  add(std::string_view("\0", 1));
  add(ifname);
  constexpr uint64_t kMask = (uint64_t{1} << 44) - 1;
  return absl::StrFormat("atl%011x", (h >> 44) ^ (h & kMask));
}

absl::Status TurnOffChecksumOffload(const std::string& ifname) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return OsError(errno, "open a socket for ethtool");
  // The legacy ETHTOOL_STXCSUM request, which the kernel still maps onto its
  // features (TSO, which needs checksum offload, goes with it).
  ethtool_value off{.cmd = ETHTOOL_STXCSUM, .data = 0};
  ifreq req{};
  std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  req.ifr_data = reinterpret_cast<char*>(&off);
  const int rc = ioctl(fd, SIOCETHTOOL, &req);
  const int err = errno;
  close(fd);
  if (rc != 0) return OsError(err, absl::StrCat("turn off checksum offload of ", ifname));
  return absl::OkStatus();
}

namespace {

// TurnOffChecksumOffload in the pod's namespace: the ioctl acts in the
// namespace its socket was made in, so a thread of our own makes it there.
absl::Status ChecksumInSoftware(int netns_fd, const PodInterfaceSpec& spec) {
  absl::Status result = absl::UnknownError("not run");
  try {
    std::thread([&] {
      if (setns(netns_fd, CLONE_NEWNET) != 0) {
        result = OsError(errno, absl::StrCat("enter network namespace ", spec.netns));
        return;
      }
      result = TurnOffChecksumOffload(spec.ifname);
    }).join();
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("start a thread to enter ", spec.netns, ": ", e.what()));
  }
  return result;
}

}  // namespace

absl::StatusOr<PodInterface> SetUpPodInterface(const PodInterfaceSpec& spec) {
  ATL_RETURN_IF_ERROR(Validate(spec));
  const MacAddr pod_mac = PodMac(spec.address);
  absl::StatusOr<Fd> netns = OpenNetns(spec.netns);
  if (!netns.ok()) return netns.status();
  absl::StatusOr<Socket> host = Socket::Open();
  if (!host.ok()) return host.status();
  absl::StatusOr<Socket> pod = Socket::OpenIn(netns->get(), spec.netns);
  if (!pod.ok()) return pod.status();

  // One round trip: create the pair; read the host side back (the new one, or
  // the one that was there: its ifindex, MAC and its peer's ifindex); and the
  // id the host's namespace gives the pod's, which the GETLINK allocated when
  // the peer is there (rtnl_fill_link_netnsid() calls peernet2id_alloc()).
  Batch batch;
  AddNewVeth(batch, spec, pod_mac, netns->get());
  AddGetLink(batch, spec.host_ifname);
  AddGetNsid(batch, netns->get());
  std::optional<Link> host_link;
  std::optional<int32_t> pod_nsid;
  ATL_RETURN_IF_ERROR(batch.Exchange(*host, [&](size_t i, const nlmsghdr* nlh) {
    if (i == 1) host_link = ParseLink(nlh);
    if (i == 2) pod_nsid = ParseNsid(nlh);
  }));
  const std::string pair_name =
      absl::StrCat(spec.host_ifname, " (peer ", spec.ifname, " in ", spec.netns, ")");
  const bool created = batch.answer(0).error == 0;
  if (!created && batch.answer(0).error != EEXIST) {
    return RequestError(batch, 0, absl::StrCat("create veth ", pair_name));
  }
  if (batch.answer(1).error != 0 || !host_link) {
    if (!created && batch.answer(1).error == ENODEV) {
      // Only the pod's name can have been taken.
      return absl::AlreadyExistsError(absl::StrCat(spec.ifname, " already exists in ", spec.netns,
                                                   " and is not the peer of ", spec.host_ifname));
    }
    return RequestError(batch, 1, absl::StrCat("find ", spec.host_ifname));
  }

  Pair pair;
  pair.host = *host_link;
  pair.pod_index = host_link->peer_index;
  if (!created) {
    // An earlier ADD's pair, if both ends are each other's peer.
    absl::StatusOr<Link> pod_link = GetLink(*pod, spec.ifname, absl::StrCat(" in ", spec.netns));
    if (!pod_link.ok() && !absl::IsNotFound(pod_link.status())) return pod_link.status();
    if (!pod_link.ok() || !ArePeers(*host_link, *pod_link, pod_nsid)) {
      return absl::AlreadyExistsError(absl::StrCat(
          spec.host_ifname, " already exists and is not the veth peer of ", spec.ifname, " in ",
          spec.netns, pod_link.ok() ? "" : absl::StrCat(" (there is no ", spec.ifname, " there)")));
    }
    pair.pod_mac = pod_link->mac;
    pair.pod_mtu = pod_link->mtu;
  }

  absl::Status configured = Configure(spec, *host, *pod, pair, pod_mac);
  if (configured.ok() && spec.checksums_in_software) {
    configured = ChecksumInSoftware(netns->get(), spec);
  }
  if (!configured.ok()) {
    // Leave no half-made interface behind; one that an earlier ADD made stays
    // for the runtime's DEL.
    if (created) {
      absl::Status deleted = DeleteLink(*host, pair.host.index, spec.host_ifname);
      if (!deleted.ok()) {
        return absl::Status(configured.code(),
                            absl::StrCat(configured.message(), "; then ", deleted.message()));
      }
    }
    return configured;
  }
  return PodInterface{spec.host_ifname, pair.host.index, pair.host.mac, pair.pod_index, pod_mac};
}

absl::Status TearDownPodInterface(std::string_view host_ifname) {
  ATL_RETURN_IF_ERROR(ValidateIfname("host interface name", host_ifname));
  absl::StatusOr<Socket> host = Socket::Open();
  if (!host.ok()) return host.status();
  absl::StatusOr<Link> link = GetLink(*host, host_ifname, "");
  if (absl::IsNotFound(link.status())) return absl::OkStatus();
  if (!link.ok()) return link.status();
  // The name is ours by convention only: never delete what is not a veth.
  if (link->kind != "veth") {
    return absl::FailedPreconditionError(
        absl::StrCat(Sv(host_ifname), " is not a veth", KindOf(*link), ": not deleting it"));
  }
  // By ifindex, so that a link made under the name meanwhile is not deleted.
  return DeleteLink(*host, link->index, host_ifname);
}

absl::Status TearDownPodInterfaces(const std::vector<std::string>& host_ifnames) {
  for (const std::string& name : host_ifnames) {
    ATL_RETURN_IF_ERROR(ValidateIfname("host interface name", name));
  }
  if (host_ifnames.empty()) return absl::OkStatus();
  absl::StatusOr<Socket> host = Socket::Open();
  if (!host.ok()) return host.status();

  // Which of them exist, and are veths (the names are ours by convention only).
  Batch find;
  for (const std::string& name : host_ifnames) AddGetLink(find, name);
  std::vector<std::optional<Link>> links(host_ifnames.size());
  ATL_RETURN_IF_ERROR(
      find.Exchange(*host, [&](size_t i, const nlmsghdr* nlh) { links[i] = ParseLink(nlh); }));
  Batch mark;
  for (size_t i = 0; i < links.size(); ++i) {
    if (find.answer(i).error == ENODEV) continue;  // gone already
    if (find.answer(i).error != 0) {
      return RequestError(find, i, absl::StrCat("find ", host_ifnames[i]));
    }
    if (!links[i]) {
      return absl::InternalError(absl::StrCat("find ", host_ifnames[i], ": no answer"));
    }
    if (links[i]->kind != "veth") {
      return absl::FailedPreconditionError(
          absl::StrCat(host_ifnames[i], " is not a veth", KindOf(*links[i]), ": not deleting it"));
    }
    nlmsghdr* nlh = mark.Add(RTM_NEWLINK, NLM_F_ACK);
    auto* ifm = Batch::Header<ifinfomsg>(nlh);
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = links[i]->index;
    mnl_attr_put_u32(nlh, IFLA_GROUP, kTearDownGroup);
  }
  if (mark.size() == 0) return absl::OkStatus();
  ATL_RETURN_IF_ERROR(mark.Exchange(*host, [](size_t, const nlmsghdr*) {}));
  for (size_t i = 0; i < mark.size(); ++i) {
    if (mark.answer(i).error != 0 && mark.answer(i).error != ENODEV) {
      return RequestError(mark, i, "mark a pod interface for deletion");
    }
  }
  // One request deletes the whole group (rtnl_group_dellink()): one
  // unregister_netdevice_many(), so one RCU barrier for all of them.
  Batch del;
  nlmsghdr* nlh = del.Add(RTM_DELLINK, NLM_F_ACK);
  Batch::Header<ifinfomsg>(nlh)->ifi_family = AF_UNSPEC;
  mnl_attr_put_u32(nlh, IFLA_GROUP, kTearDownGroup);
  ATL_RETURN_IF_ERROR(del.Exchange(*host, [](size_t, const nlmsghdr*) {}));
  if (del.answer(0).error != 0 && del.answer(0).error != ENODEV) {
    return RequestError(del, 0, "delete the pod interfaces marked for deletion");
  }
  return absl::OkStatus();
}

absl::Status DetachPodInterface(const std::string& netns_path, std::string_view ifname,
                                std::string_view host_ifname) {
  ATL_RETURN_IF_ERROR(ValidateIfname("interface name", ifname));
  ATL_RETURN_IF_ERROR(ValidateIfname("host interface name", host_ifname));
  if (netns_path.empty()) return absl::OkStatus();
  absl::StatusOr<Fd> netns = OpenNetns(netns_path);
  // The namespace is gone, and the pair with it.
  if (absl::IsNotFound(netns.status())) return absl::OkStatus();
  if (!netns.ok()) return netns.status();
  absl::StatusOr<Socket> host = Socket::Open();
  if (!host.ok()) return host.status();

  Batch batch;
  AddGetLink(batch, host_ifname);
  AddGetNsid(batch, netns->get());
  std::optional<Link> host_link;
  std::optional<int32_t> pod_nsid;
  ATL_RETURN_IF_ERROR(batch.Exchange(*host, [&](size_t i, const nlmsghdr* nlh) {
    if (i == 0) host_link = ParseLink(nlh);
    if (i == 1) pod_nsid = ParseNsid(nlh);
  }));
  if (batch.answer(0).error == ENODEV || !host_link) return absl::OkStatus();
  if (batch.answer(0).error != 0) {
    return RequestError(batch, 0, absl::StrCat("find ", Sv(host_ifname)));
  }

  absl::StatusOr<Socket> pod = Socket::OpenIn(netns->get(), netns_path);
  if (!pod.ok()) return pod.status();
  const std::string where = absl::StrCat(" in ", netns_path);
  absl::StatusOr<Link> pod_link = GetLink(*pod, ifname, where);
  if (absl::IsNotFound(pod_link.status())) return absl::OkStatus();
  if (!pod_link.ok()) return pod_link.status();
  // Whatever else bears the name in the pod is not ours to touch.
  if (!ArePeers(*host_link, *pod_link, pod_nsid)) return absl::OkStatus();

  // Down, then renamed: the kernel renames only links that are down
  // (dev_change_name() refuses a running one with EBUSY).
  Batch detach;
  nlmsghdr* down = detach.Add(RTM_NEWLINK, NLM_F_ACK);
  auto* ifm = Batch::Header<ifinfomsg>(down);
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = pod_link->index;
  ifm->ifi_change = IFF_UP;
  nlmsghdr* rename = detach.Add(RTM_NEWLINK, NLM_F_ACK);
  ifm = Batch::Header<ifinfomsg>(rename);
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = pod_link->index;
  mnl_attr_put(rename, IFLA_IFNAME, host_ifname.size() + 1, std::string(host_ifname).c_str());
  ATL_RETURN_IF_ERROR(detach.Exchange(*pod, [](size_t, const nlmsghdr*) {}));
  if (detach.answer(0).error != 0 && detach.answer(0).error != ENODEV) {
    return RequestError(detach, 0, absl::StrCat("set ", Sv(ifname), where, " down"));
  }
  if (detach.answer(1).error != 0 && detach.answer(1).error != ENODEV) {
    return RequestError(detach, 1,
                        absl::StrCat("rename ", Sv(ifname), where, " to ", Sv(host_ifname)));
  }
  return absl::OkStatus();
}

absl::Status CheckPodInterface(const PodInterfaceSpec& spec) {
  ATL_RETURN_IF_ERROR(Validate(spec));
  absl::StatusOr<Fd> netns = OpenNetns(spec.netns);
  if (!netns.ok()) return netns.status();
  absl::StatusOr<Socket> host = Socket::Open();
  if (!host.ok()) return host.status();
  absl::StatusOr<Socket> pod = Socket::OpenIn(netns->get(), spec.netns);
  if (!pod.ok()) return pod.status();

  // The pod side.
  const std::string pod_name = absl::StrCat(spec.ifname, " in ", spec.netns);
  absl::StatusOr<Link> pod_link = GetLink(*pod, spec.ifname, absl::StrCat(" in ", spec.netns));
  if (!pod_link.ok()) return pod_link.status();
  if (!(pod_link->flags & IFF_UP)) {
    return absl::FailedPreconditionError(absl::StrCat(pod_name, " is down"));
  }
  const MacAddr want_mac = PodMac(spec.address);
  if (pod_link->mac != want_mac) {
    return absl::FailedPreconditionError(absl::StrCat(
        pod_name, " has MAC ", FormatMac(pod_link->mac), ", want ", FormatMac(want_mac)));
  }
  if (pod_link->mtu != spec.mtu) {
    return absl::FailedPreconditionError(
        absl::StrCat(pod_name, " has MTU ", pod_link->mtu, ", want ", spec.mtu));
  }
  absl::StatusOr<std::vector<Address>> addresses =
      ListAddresses(*pod, pod_link->index, absl::StrCat("list addresses of ", pod_name));
  if (!addresses.ok()) return addresses.status();
  const bool has_address = std::any_of(addresses->begin(), addresses->end(), [&](const Address& a) {
    return a.addr == spec.address && a.prefix_len == spec.prefix_len;
  });
  if (!has_address) {
    std::vector<std::string> found;
    for (const Address& a : *addresses) {
      found.push_back(absl::StrCat(a.addr.ToString(), "/", a.prefix_len));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(pod_name, " has no address ", spec.address.ToString(), "/", spec.prefix_len,
                     found.empty() ? " (it has none)"
                                   : absl::StrCat(" (it has ", absl::StrJoin(found, ", "), ")")));
  }
  absl::StatusOr<std::vector<DefaultRoute>> routes =
      ListDefaultRoutes(*pod, absl::StrCat("list routes in ", spec.netns));
  if (!routes.ok()) return routes.status();
  const bool has_route = std::any_of(routes->begin(), routes->end(), [&](const DefaultRoute& r) {
    return r.gateway == spec.gateway && r.oifs.size() == 1 && r.oifs[0] == pod_link->index;
  });
  if (!has_route) {
    std::vector<std::string> found;
    for (const DefaultRoute& r : *routes) {
      found.push_back(absl::StrCat("via ", r.gateway ? r.gateway->ToString() : "none", " dev ",
                                   absl::StrJoin(r.oifs, ",")));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(spec.netns, " has no default route via ", spec.gateway.ToString(), " dev ",
                     spec.ifname, " (ifindex ", pod_link->index, ")",
                     found.empty() ? " (it has none)"
                                   : absl::StrCat(" (it has ", absl::StrJoin(found, "; "), ")")));
  }

  // The host side, and that the two are each other's peer.
  Batch batch;
  AddGetLink(batch, spec.host_ifname);
  AddGetNsid(batch, netns->get());
  std::optional<Link> host_link;
  std::optional<int32_t> pod_nsid;
  ATL_RETURN_IF_ERROR(batch.Exchange(*host, [&](size_t i, const nlmsghdr* nlh) {
    if (i == 0) host_link = ParseLink(nlh);
    if (i == 1) pod_nsid = ParseNsid(nlh);
  }));
  if (batch.answer(0).error != 0 || !host_link) {
    return RequestError(batch, 0, absl::StrCat("find ", spec.host_ifname));
  }
  if (!(host_link->flags & IFF_UP)) {
    return absl::FailedPreconditionError(absl::StrCat(spec.host_ifname, " is down"));
  }
  if (host_link->mtu != spec.mtu) {
    return absl::FailedPreconditionError(
        absl::StrCat(spec.host_ifname, " has MTU ", host_link->mtu, ", want ", spec.mtu));
  }
  if (!ArePeers(*host_link, *pod_link, pod_nsid)) {
    return absl::FailedPreconditionError(
        absl::StrCat(spec.host_ifname, " (", host_link->kind.empty() ? "no kind" : host_link->kind,
                     ", peer ifindex ", host_link->peer_index, ") is not the veth peer of ",
                     pod_name, " (ifindex ", pod_link->index, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PodInterface> FindHostInterface(std::string_view host_ifname) {
  ATL_RETURN_IF_ERROR(ValidateIfname("host interface name", host_ifname));
  absl::StatusOr<Socket> host = Socket::Open();
  if (!host.ok()) return host.status();
  absl::StatusOr<Link> link = GetLink(*host, host_ifname, "");
  if (!link.ok()) return link.status();
  if (link->kind != "veth") {
    return absl::FailedPreconditionError(
        absl::StrCat(Sv(host_ifname), " is not a veth", KindOf(*link)));
  }
  return PodInterface{std::string(host_ifname), link->index, link->mac, link->peer_index, {}};
}

namespace {

// The default route the kernel uses: the one with the lowest metric.
absl::StatusOr<std::optional<DefaultRoute>> UsedDefaultRoute(const Socket& socket) {
  absl::StatusOr<std::vector<DefaultRoute>> routes = ListDefaultRoutes(socket, "list routes");
  if (!routes.ok()) return routes.status();
  if (routes->empty()) return std::nullopt;
  const DefaultRoute& route = *std::min_element(
      routes->begin(), routes->end(),
      [](const DefaultRoute& a, const DefaultRoute& b) { return a.priority < b.priority; });
  if (route.oifs.empty()) {
    return absl::FailedPreconditionError("the default route has no output interface");
  }
  return route;
}

}  // namespace

absl::StatusOr<std::string> DefaultRouteInterface() {
  absl::StatusOr<Socket> socket = Socket::Open();
  if (!socket.ok()) return socket.status();
  absl::StatusOr<std::optional<DefaultRoute>> route = UsedDefaultRoute(*socket);
  if (!route.ok()) return route.status();
  if (!route->has_value()) return absl::NotFoundError("this host has no default IPv4 route");
  char name[IF_NAMESIZE] = {};
  if (if_indextoname((*route)->oifs.front(), name) == nullptr) {
    return absl::NotFoundError(absl::StrCat("the default route's ifindex ", (*route)->oifs.front(),
                                            ": ", std::strerror(errno)));
  }
  return std::string(name);
}

absl::StatusOr<std::string> UplinkInterface(const std::string& given) {
  if (!given.empty()) return given;
  absl::StatusOr<std::string> uplink = DefaultRouteInterface();
  if (!uplink.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--uplink not given and ", uplink.status().message()));
  }
  return uplink;
}

absl::StatusOr<uint32_t> DefaultRouteMtu() {
  absl::StatusOr<Socket> socket = Socket::Open();
  if (!socket.ok()) return socket.status();
  absl::StatusOr<std::optional<DefaultRoute>> used = UsedDefaultRoute(*socket);
  if (!used.ok()) return used.status();
  if (!used->has_value()) return 1500;
  const DefaultRoute& route = **used;
  Batch batch;
  for (int oif : route.oifs) AddGetLink(batch, {}, oif);
  std::vector<uint32_t> mtus(route.oifs.size(), 0);
  ATL_RETURN_IF_ERROR(batch.Exchange(*socket, [&](size_t i, const nlmsghdr* nlh) {
    if (std::optional<Link> link = ParseLink(nlh)) mtus[i] = link->mtu;
  }));
  uint32_t mtu = route.mtu;
  for (size_t i = 0; i < route.oifs.size(); ++i) {
    if (batch.answer(i).error != 0 || mtus[i] == 0) {
      return RequestError(batch, i, absl::StrCat("find ifindex ", route.oifs[i]));
    }
    if (mtu == 0 || mtus[i] < mtu) mtu = mtus[i];
  }
  return mtu;
}

}  // namespace atl::agent
