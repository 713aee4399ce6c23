#include "dataplane/ebpf/overlay_device.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace atl::dataplane::ebpf {
namespace {

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// One rtnetlink request and its acknowledgement.
absl::Status Request(nlmsghdr* nlh, std::string_view what) {
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (nl == nullptr || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    if (nl) mnl_socket_close(nl);
    return absl::InternalError(absl::StrCat(Sv(what), ": netlink: ", std::strerror(err)));
  }
  nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = 1;
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  int rc = -1;
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) >= 0) {
    const ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    rc = n < 0 ? -1 : mnl_cb_run(buf.data(), n, 1, mnl_socket_get_portid(nl), nullptr, nullptr);
  }
  const int err = errno;
  mnl_socket_close(nl);
  if (rc < 0) return absl::InternalError(absl::StrCat(Sv(what), ": ", std::strerror(err)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint32_t> IfIndex(std::string_view name) {
  const unsigned index = if_nametoindex(std::string(name).c_str());
  if (index == 0) {
    return absl::NotFoundError(absl::StrCat("interface \"", Sv(name), "\": ", std::strerror(errno)));
  }
  return index;
}

absl::StatusOr<uint32_t> EnsureOverlayDevice(std::string_view name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("overlay device name \"", Sv(name), "\" is not 1 to 15 characters"));
  }
  if (!IfIndex(name).ok()) {
    // ip link add NAME type vxlan external dstport 4789
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = RTM_NEWLINK;
    nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, std::string(name).c_str());
    nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "vxlan");
    nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_COLLECT_METADATA, 1);
    mnl_attr_put_u16(nlh, IFLA_VXLAN_PORT, htons(kVxlanPort));
    mnl_attr_put_u8(nlh, IFLA_VXLAN_LEARNING, 0);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, linkinfo);
    absl::Status made = Request(nlh, absl::StrCat("creating VXLAN device \"", Sv(name), "\""));
    if (!made.ok() && !absl::StrContains(made.message(), std::strerror(EEXIST))) return made;
  }
  absl::StatusOr<uint32_t> index = IfIndex(name);
  if (!index.ok()) return index.status();
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_NEWLINK;
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = static_cast<int>(*index);
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  if (absl::Status up = Request(nlh, absl::StrCat("setting \"", Sv(name), "\" up")); !up.ok()) {
    return up;
  }
  return *index;
}

}  // namespace atl::dataplane::ebpf
