#include "dataplane/dpdk/host_link.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>

#include "absl/strings/str_cat.h"
#include "lb/status_macros.h"

namespace atl::dataplane::dpdk {
namespace {

using Reply = std::function<void(const nlmsghdr*)>;

// One SIOC* request about `ifname`, answered in `req`; 0, or the errno.
int InterfaceIoctl(const std::string& ifname, unsigned long request, ifreq& req) {
  std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int rc = fd < 0 ? -1 : ioctl(fd, request, &req);
  const int err = errno;
  if (fd >= 0) close(fd);
  return rc < 0 ? err : 0;
}

// Sends one rtnetlink request and runs `reply` on every message of the answer
// (a dump's entries; without `reply`, the request is acknowledged); an error
// answer becomes the status.
absl::Status Talk(nlmsghdr* nlh, const std::string& what, const Reply& reply = {}) {
  std::unique_ptr<mnl_socket, int (*)(mnl_socket*)> nl(
      mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC), mnl_socket_close);
  if (nl == nullptr || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return absl::InternalError(absl::StrCat(what, ": netlink: ", std::strerror(errno)));
  }
  // A dump ends with NLMSG_DONE; any other request asks for its ACK. (The
  // flags cannot tell: NLM_F_REPLACE is NLM_F_DUMP's NLM_F_ROOT bit.)
  nlh->nlmsg_flags |= NLM_F_REQUEST | (reply ? 0 : NLM_F_ACK);
  nlh->nlmsg_seq = 1;
  if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0) {
    return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
  }
  std::vector<char> buf(32768);
  const uint32_t portid = mnl_socket_get_portid(nl.get());
  auto cb = [](const nlmsghdr* m, void* data) -> int {
    const auto* r = static_cast<const Reply*>(data);
    if (*r) (*r)(m);
    return MNL_CB_OK;
  };
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
    if (n < 0) return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
    const int rc = mnl_cb_run(buf.data(), n, 1, portid, cb, const_cast<Reply*>(&reply));
    if (rc == MNL_CB_STOP) return absl::OkStatus();
    if (rc < 0) return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
  }
}

absl::StatusOr<int> IfIndex(const std::string& name) {
  const unsigned index = if_nametoindex(name.c_str());
  if (index == 0) {
    return absl::NotFoundError(absl::StrCat("interface \"", name, "\": ", std::strerror(errno)));
  }
  return static_cast<int>(index);
}

// Runs `each` on every attribute of `m` after a header of `header_size` bytes.
void ForEachAttr(const nlmsghdr* m, size_t header_size,
                 const std::function<void(const nlattr*)>& each) {
  mnl_attr_parse(
      m, static_cast<unsigned>(header_size),
      [](const nlattr* a, void* data) {
        (*static_cast<const std::function<void(const nlattr*)>*>(data))(a);
        return MNL_CB_OK;
      },
      const_cast<std::function<void(const nlattr*)>*>(&each));
}

lb::IpAddr V4(const void* p) { return lb::IpAddr::FromV4Bytes(static_cast<const uint8_t*>(p)); }

// An IPv4 route of the main table, as much of it as the copy needs.
struct V4Route {
  rtmsg head{};
  bool has_dst = false;
  uint32_t dst = 0, gateway = 0, prefsrc = 0, priority = 0;  // addresses in network order
  bool has_gateway = false, has_prefsrc = false, has_priority = false;
};

absl::StatusOr<std::vector<V4Route>> RoutesThrough(int ifindex, const std::string& what) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_DUMP;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  std::vector<V4Route> routes;
  ATL_RETURN_IF_ERROR(Talk(nlh, what, [&](const nlmsghdr* m) {
    const auto* r = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(m));
    if (r->rtm_table != RT_TABLE_MAIN || r->rtm_type != RTN_UNICAST) return;
    V4Route route;
    route.head = *r;
    bool through = false;
    ForEachAttr(m, sizeof(rtmsg), [&](const nlattr* a) {
      switch (mnl_attr_get_type(a)) {
        case RTA_OIF:
          through = static_cast<int>(mnl_attr_get_u32(a)) == ifindex;
          break;
        case RTA_DST:
          route.has_dst = true;
          route.dst = mnl_attr_get_u32(a);
          break;
        case RTA_GATEWAY:
          route.has_gateway = true;
          route.gateway = mnl_attr_get_u32(a);
          break;
        case RTA_PREFSRC:
          route.has_prefsrc = true;
          route.prefsrc = mnl_attr_get_u32(a);
          break;
        case RTA_PRIORITY:
          route.has_priority = true;
          route.priority = mnl_attr_get_u32(a);
          break;
        default:
          break;
      }
    });
    if (through) routes.push_back(route);
  }));
  return routes;
}

}  // namespace

absl::StatusOr<lb::MacAddr> InterfaceMac(const std::string& ifname) {
  ifreq req{};
  if (const int err = InterfaceIoctl(ifname, SIOCGIFHWADDR, req)) {
    return absl::NotFoundError(absl::StrCat("MAC of \"", ifname, "\": ", std::strerror(err)));
  }
  lb::MacAddr mac;
  std::memcpy(mac.data(), req.ifr_hwaddr.sa_data, 6);
  return mac;
}

absl::StatusOr<ethtool_channels> InterfaceChannels(const std::string& ifname) {
  ethtool_channels channels{};
  channels.cmd = ETHTOOL_GCHANNELS;
  ifreq req{};
  req.ifr_data = reinterpret_cast<char*>(&channels);
  if (const int err = InterfaceIoctl(ifname, SIOCETHTOOL, req)) {
    return absl::Status(
        err == EOPNOTSUPP ? absl::StatusCode::kUnimplemented : absl::StatusCode::kNotFound,
        absl::StrCat("channels of \"", ifname, "\": ", std::strerror(err)));
  }
  return channels;
}

absl::Status SetUp(const std::string& ifname) {
  ATL_ASSIGN_OR_RETURN(const int index, IfIndex(ifname));
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_NEWLINK;
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = index;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  return Talk(nlh, absl::StrCat("setting \"", ifname, "\" up"));
}

absl::Status RouteThrough(const std::string& from, const std::string& to) {
  ATL_ASSIGN_OR_RETURN(const int from_index, IfIndex(from));
  ATL_ASSIGN_OR_RETURN(const int to_index, IfIndex(to));
  const std::string what = absl::StrCat("routes of \"", from, "\" through \"", to, "\"");
  ATL_ASSIGN_OR_RETURN(std::vector<V4Route> routes, RoutesThrough(from_index, what));
  for (const V4Route& r : routes) {
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_NEWROUTE;
    // Without NLM_F_APPEND the new route goes in front of the uplink's own.
    nlh->nlmsg_flags = NLM_F_CREATE;
    auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
    *rtm = r.head;
    rtm->rtm_protocol = RTPROT_STATIC;
    rtm->rtm_flags = 0;
    if (r.has_dst) mnl_attr_put_u32(nlh, RTA_DST, r.dst);
    if (r.has_gateway) mnl_attr_put_u32(nlh, RTA_GATEWAY, r.gateway);
    if (r.has_prefsrc) mnl_attr_put_u32(nlh, RTA_PREFSRC, r.prefsrc);
    if (r.has_priority) mnl_attr_put_u32(nlh, RTA_PRIORITY, r.priority);
    mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(to_index));
    absl::Status added = Talk(nlh, what);
    if (!added.ok() && added.message().find(std::strerror(EEXIST)) == std::string::npos) {
      return added;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Neighbour>> ResolvedNeighbours(const std::string& ifname) {
  ATL_ASSIGN_OR_RETURN(const int index, IfIndex(ifname));
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_GETNEIGH;
  nlh->nlmsg_flags = NLM_F_DUMP;
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
  ndm->ndm_family = AF_INET;
  ndm->ndm_ifindex = index;
  std::vector<Neighbour> found;
  ATL_RETURN_IF_ERROR(
      Talk(nlh, absl::StrCat("neighbours of \"", ifname, "\""), [&](const nlmsghdr* m) {
        const auto* n = static_cast<const ndmsg*>(mnl_nlmsg_get_payload(m));
        if (n->ndm_ifindex != index || !(n->ndm_state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY |
                                                         NUD_PROBE | NUD_PERMANENT | NUD_NOARP))) {
          return;
        }
        Neighbour nb;
        bool has_addr = false, has_mac = false;
        ForEachAttr(m, sizeof(ndmsg), [&](const nlattr* a) {
          if (mnl_attr_get_type(a) == NDA_DST && mnl_attr_get_payload_len(a) == 4) {
            nb.addr = V4(mnl_attr_get_payload(a));
            has_addr = true;
          } else if (mnl_attr_get_type(a) == NDA_LLADDR && mnl_attr_get_payload_len(a) == 6) {
            std::memcpy(nb.mac.data(), mnl_attr_get_payload(a), 6);
            has_mac = true;
          }
        });
        if (has_addr && has_mac) found.push_back(nb);
      }));
  return found;
}

absl::Status Resolve(const std::string& ifname, const lb::IpAddr& addr) {
  ATL_ASSIGN_OR_RETURN(const int index, IfIndex(ifname));
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_NEWNEIGH;
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
  ndm->ndm_family = AF_INET;
  ndm->ndm_ifindex = index;
  ndm->ndm_flags = NTF_USE;  // "use" the entry: the kernel starts resolving it
  mnl_attr_put(nlh, NDA_DST, 4, addr.v4_bytes());
  return Talk(nlh, absl::StrCat("resolving ", addr.ToString(), " on \"", ifname, "\""));
}

absl::StatusOr<std::vector<HostRoute>> HostRoutes(const std::string& ifname) {
  ATL_ASSIGN_OR_RETURN(const int index, IfIndex(ifname));
  ATL_ASSIGN_OR_RETURN(std::vector<V4Route> routes,
                       RoutesThrough(index, absl::StrCat("routes of \"", ifname, "\"")));
  std::vector<HostRoute> out;
  for (const V4Route& r : routes) {
    out.push_back(HostRoute{.addr = r.has_dst ? r.dst : 0,
                            .len = r.head.rtm_dst_len,
                            .gateway = r.has_gateway ? r.gateway : 0});
  }
  return out;
}

}  // namespace atl::dataplane::dpdk
