#include "agent/cni_server.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/pod_network.h"
#include "grpc_status.h"

namespace atl::agent {
namespace {

namespace api = ::atl::api::v1;

std::string DescribePod(const api::PodAttachment& pod) {
  return absl::StrCat("container ", pod.container_id(), " interface ", pod.ifname());
}

absl::Status ValidateAttachment(const api::PodAttachment& pod, bool needs_netns) {
  if (pod.container_id().empty()) {
    return absl::InvalidArgumentError("attachment.container_id is empty");
  }
  if (pod.ifname().empty() || pod.ifname().size() > 15) {
    return absl::InvalidArgumentError(
        absl::StrCat("attachment.ifname \"", pod.ifname(), "\" is not 1 to 15 bytes"));
  }
  if (needs_netns && pod.netns().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("attachment.netns of ", DescribePod(pod), " is empty"));
  }
  return absl::OkStatus();
}

// Addresses of a segment no pod may have: each CIDR's network and broadcast
// addresses (the pod sees its CIDR as its subnet) and the gateway.
std::vector<lb::IpAddr> ReservedAddresses(const PodNetwork& net) {
  std::vector<lb::IpAddr> reserved = {net.gateway};
  for (const lb::IpPrefix& cidr : net.cidrs) {
    reserved.push_back(cidr.addr);
    reserved.push_back(cidr.Last());
  }
  return reserved;
}

// The pod's subnet is the segment CIDR its address is in.
int PrefixLength(const PodNetwork& net, const lb::IpAddr& address) {
  for (const lb::IpPrefix& cidr : net.cidrs) {
    if (cidr.Contains(address)) return cidr.len;
  }
  return address.IsV4() ? 32 : 128;
}

PodInterfaceSpec SpecFor(const Lease& lease, const std::string& netns, const PodNetwork& net,
                         const CniServer::Options& options) {
  PodInterfaceSpec spec;
  spec.netns = netns;
  spec.ifname = lease.ifname;
  spec.host_ifname = HostIfname(lease.container_id, lease.ifname);
  spec.address = lease.address;
  spec.prefix_len = PrefixLength(net, lease.address);
  spec.gateway = net.gateway;
  spec.mtu = options.mtu;
  spec.checksums_in_software = options.checksums_in_software;
  spec.host_route = options.host_routes;
  return spec;
}

dataplane::PodPort PortFor(const Lease& lease, const PodInterface& interface) {
  dataplane::PodPort port;
  port.host_ifname = interface.host_ifname;
  port.host_ifindex = static_cast<uint32_t>(interface.host_ifindex);
  port.mac = PodMac(lease.address);  // what the pod side has: it follows from the address
  port.address = lease.address;
  port.segment = lease.pod_namespace;
  port.pod = lease.pod_name.empty() ? lease.container_id
                                    : absl::StrCat(lease.pod_namespace, "/", lease.pod_name);
  return port;
}

}  // namespace

CniServer::CniServer(Agent& agent, LeaseStore& leases, Options options)
    : agent_(agent), leases_(leases), options_(options), reaper_([this] { RunReaper(); }) {}

CniServer::~CniServer() {
  {
    std::lock_guard lock(reap_mu_);
    stopping_ = true;
  }
  reap_cv_.notify_all();
  reaper_.join();
}

CniServer::AttachmentLock::AttachmentLock(CniServer& server, Key key)
    : server_(server), key_(std::move(key)) {
  std::unique_lock lock(server_.busy_mu_);
  server_.busy_cv_.wait(lock, [&] { return !server_.busy_.contains(key_); });
  server_.busy_.insert(key_);
}

CniServer::AttachmentLock::~AttachmentLock() {
  {
    std::lock_guard lock(server_.busy_mu_);
    server_.busy_.erase(key_);
  }
  server_.busy_cv_.notify_all();
}

void CniServer::GiveBack(const Lease& lease, const std::string& host_ifname) {
  // The address goes back only once the interface is known to be gone;
  // otherwise the reaper removes both.
  if (TearDownPodInterface(host_ifname).ok() && Release(lease).ok()) return;
  {
    std::lock_guard lock(leases_mu_);
    (void)leases_.MarkReleasing(lease.container_id, lease.ifname);
  }
  Reap({lease.container_id, lease.ifname});
}

void CniServer::Reap(const Key& key) {
  {
    std::lock_guard lock(reap_mu_);
    if (std::find(reaping_.begin(), reaping_.end(), key) != reaping_.end() ||
        std::find(to_reap_.begin(), to_reap_.end(), key) != to_reap_.end()) {
      return;  // a repeated DEL
    }
    to_reap_.push_back(key);
  }
  reap_cv_.notify_all();
}

void CniServer::Unreap(const Key& key) {
  std::unique_lock lock(reap_mu_);
  std::erase(to_reap_, key);
  reap_cv_.wait(lock,
                [&] { return std::find(reaping_.begin(), reaping_.end(), key) == reaping_.end(); });
}

void CniServer::WaitForReaper() {
  std::unique_lock lock(reap_mu_);
  reap_cv_.wait(lock, [&] { return to_reap_.empty() && reaping_.empty(); });
}

void CniServer::ReleaseIfReleasing(const Key& key) {
  const auto& [container_id, ifname] = key;
  std::lock_guard lock(leases_mu_);
  absl::StatusOr<std::optional<Lease>> held = leases_.Find(container_id, ifname);
  if (held.ok() && held->has_value() && (*held)->releasing) {
    held = leases_.Release(container_id, ifname);
  }
  if (!held.ok()) {
    std::fprintf(stderr, "atoll-agent: releasing the lease of container %s %s: %s\n",
                 container_id.c_str(), ifname.c_str(),
                 std::string(held.status().message()).c_str());
  }
}

void CniServer::ReapNow(const std::vector<Key>& all) {
  // A lease that is there and not releasing belongs to a later ADD: its
  // interface is not to be touched.
  std::vector<Key> keys;
  {
    std::lock_guard lock(leases_mu_);
    for (const Key& key : all) {
      absl::StatusOr<std::optional<Lease>> held = leases_.Find(key.first, key.second);
      if (held.ok() && held->has_value() && !(*held)->releasing) continue;
      keys.push_back(key);
    }
  }
  std::vector<std::string> host_ifnames;
  for (const auto& [container_id, ifname] : keys) {
    host_ifnames.push_back(HostIfname(container_id, ifname));
  }
  if (TearDownPodInterfaces(host_ifnames).ok()) {
    for (const Key& key : keys) ReleaseIfReleasing(key);
    return;
  }
  // One at a time, so that one that cannot go keeps only its own lease.
  for (size_t i = 0; i < keys.size(); ++i) {
    if (absl::Status s = TearDownPodInterface(host_ifnames[i]); !s.ok()) {
      // The lease stays releasing, so its address stays taken; a later DEL
      // or GC of the attachment, an ADD of it, or the next start tries again.
      std::fprintf(stderr, "atoll-agent: removing %s of container %s: %s\n",
                   host_ifnames[i].c_str(), keys[i].first.c_str(),
                   std::string(s.message()).c_str());
      continue;
    }
    ReleaseIfReleasing(keys[i]);
  }
}

void CniServer::RunReaper() {
  // At most this many pairs go in one kernel request.
  constexpr size_t kBatch = 64;
  std::unique_lock lock(reap_mu_);
  for (;;) {
    reap_cv_.wait(lock, [&] { return stopping_ || !to_reap_.empty(); });
    if (stopping_) return;
    while (!to_reap_.empty() && reaping_.size() < kBatch) {
      reaping_.push_back(std::move(to_reap_.front()));
      to_reap_.pop_front();
    }
    const std::vector<Key> batch = reaping_;
    lock.unlock();
    ReapNow(batch);
    lock.lock();
    reaping_.clear();
    reap_cv_.notify_all();
  }
}

absl::Status CniServer::RestorePodPorts() {
  absl::StatusOr<std::vector<Lease>> leases;
  {
    std::lock_guard lock(leases_mu_);
    leases = leases_.List();
  }
  if (!leases.ok()) return leases.status();
  std::vector<dataplane::PodPort> ports;
  for (const Lease& lease : *leases) {
    if (lease.releasing) {
      Reap({lease.container_id, lease.ifname});
      continue;
    }
    absl::StatusOr<PodInterface> interface =
        FindHostInterface(HostIfname(lease.container_id, lease.ifname));
    if (interface.ok()) {
      ports.push_back(PortFor(lease, *interface));
    } else if (!absl::IsNotFound(interface.status())) {
      // Not a reason to leave the host without CNI: that pod only.
      std::fprintf(stderr, "atoll-agent: pod port of container %s %s not restored: %s\n",
                   lease.container_id.c_str(), lease.ifname.c_str(),
                   std::string(interface.status().message()).c_str());
    }
  }
  if (!ports.empty()) {
    std::fprintf(stderr, "atoll-agent: %zu pod port(s) of %zu lease(s) restored\n", ports.size(),
                 leases->size());
  }
  // These are all the pods there are: a dataplane that kept ports from before
  // (pinned maps) forgets the others.
  return agent_.UpdatePodPorts(std::move(ports), {}, /*full_sync=*/true);
}

absl::StatusOr<Lease> CniServer::NewLease(const api::PodAttachment& pod, PodNetwork net) {
  Lease request;
  request.container_id = pod.container_id();
  request.ifname = pod.ifname();
  request.netns = pod.netns();
  request.pod_namespace = pod.pod_namespace();
  request.pod_name = pod.pod_name();
  request.network = pod.network();

  auto acquire = [&](const PodNetwork& n) -> absl::StatusOr<Lease> {
    const std::vector<lb::IpAddr> reserved = ReservedAddresses(n);
    std::lock_guard lock(leases_mu_);
    return leases_.Acquire(request, n.blocks, reserved);
  };

  absl::StatusOr<Lease> lease = acquire(net);
  if (lease.ok() || !absl::IsResourceExhausted(lease.status())) return lease;

  // The node's blocks are full (or it has none yet). One ADD at a time asks
  // the controller for another; the others find its block when they get the
  // lock. ADDs that did not need the lock may fill the new block before its
  // asker gets to it, so the asker asks again, a bounded number of times.
  constexpr int kMaxNewBlocks = 8;
  std::lock_guard lock(allocate_mu_);
  for (int asked = 0;; ++asked) {
    if (std::optional<PodNetwork> now = agent_.FindPodNetwork(pod.pod_namespace())) net = *now;
    lease = acquire(net);
    if (lease.ok() || !absl::IsResourceExhausted(lease.status()) || asked == kMaxNewBlocks) {
      return lease;
    }
    absl::StatusOr<lb::IpPrefix> block =
        agent_.AllocateBlock(pod.pod_namespace(), options_.allocate_timeout);
    if (!block.ok()) return block.status();
  }
}

absl::Status CniServer::Release(const Lease& lease) {
  std::lock_guard lock(leases_mu_);
  return leases_.Release(lease.container_id, lease.ifname).status();
}

absl::StatusOr<api::CniAddResponse> CniServer::Add(const api::PodAttachment& pod) {
  if (absl::Status s = ValidateAttachment(pod, /*needs_netns=*/true); !s.ok()) return s;
  if (pod.pod_namespace().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("attachment.pod_namespace of ", DescribePod(pod), " is empty"));
  }
  const Key key{pod.container_id(), pod.ifname()};
  AttachmentLock hold(*this, key);
  // The same attachment again while its interface from before is still on
  // the reaper's list: finish that here first, so that the reaper cannot
  // remove what this ADD makes, and nothing of the old one is taken for it.
  Unreap(key);
  absl::StatusOr<std::optional<Lease>> held;
  {
    std::lock_guard lock(leases_mu_);
    held = leases_.Find(pod.container_id(), pod.ifname());
  }
  if (!held.ok()) return held.status();
  if (held->has_value() && (*held)->releasing) {
    ReapNow({key});
    std::lock_guard lock(leases_mu_);
    held = leases_.Find(pod.container_id(), pod.ifname());
    if (!held.ok()) return held.status();
    if (held->has_value()) {
      Reap(key);
      return absl::UnavailableError(
          absl::StrCat("the earlier interface of ", DescribePod(pod), " is still being removed"));
    }
  }
  std::optional<PodNetwork> net = agent_.FindPodNetwork(pod.pod_namespace());
  if (!net) {
    // Try again later: the namespace may be on its way from the controller.
    return absl::UnavailableError(
        absl::StrCat("namespace \"", pod.pod_namespace(), "\" is not known to this agent (yet)"));
  }

  // The attachment is held: the lease found above is still the one there is.
  const bool created = !held->has_value();
  absl::StatusOr<Lease> lease = created ? NewLease(pod, *net) : **held;
  if (!lease.ok()) return lease.status();
  if (lease->pod_namespace != pod.pod_namespace()) {
    return absl::FailedPreconditionError(absl::StrCat(
        DescribePod(pod), " already has address ", lease->address.ToString(), " of namespace \"",
        lease->pod_namespace, "\", not of \"", pod.pod_namespace(), "\""));
  }
  // The segment as it is now: NewLease may have grown it.
  if (std::optional<PodNetwork> now = agent_.FindPodNetwork(pod.pod_namespace())) net = *now;

  // Anything that fails from here gives back what this ADD took, and only that.
  const PodInterfaceSpec spec = SpecFor(*lease, pod.netns(), *net, options_);
  absl::StatusOr<PodInterface> interface = SetUpPodInterface(spec);
  if (!interface.ok()) {
    if (created) GiveBack(*lease, spec.host_ifname);
    return interface.status();
  }
  if (absl::Status s = agent_.UpdatePodPorts({PortFor(*lease, *interface)}, {}); !s.ok()) {
    if (created) GiveBack(*lease, spec.host_ifname);
    return s;
  }

  api::CniAddResponse resp;
  resp.set_host_ifname(interface->host_ifname);
  resp.set_host_mac(FormatMac(interface->host_mac));
  resp.set_pod_mac(FormatMac(interface->pod_mac));
  resp.set_address(absl::StrCat(lease->address.ToString(), "/", spec.prefix_len));
  resp.set_gateway(net->gateway.ToString());
  resp.set_mtu(options_.mtu);
  return resp;
}

absl::StatusOr<api::CniDelResponse> CniServer::Del(const api::PodAttachment& pod) {
  if (absl::Status s = ValidateAttachment(pod, /*needs_netns=*/false); !s.ok()) return s;
  const Key key{pod.container_id(), pod.ifname()};
  AttachmentLock hold(*this, key);
  // Each step is a no-op when done already: DEL is repeated, and the netns
  // may be gone. The lease is marked first, so that a crash at any later
  // point still finishes this DEL at the next start; and whatever fails
  // after it, the reaper gets the attachment.
  const std::string host_ifname = HostIfname(pod.container_id(), pod.ifname());
  absl::StatusOr<std::optional<Lease>> lease;
  {
    std::lock_guard lock(leases_mu_);
    lease = leases_.MarkReleasing(pod.container_id(), pod.ifname());
  }
  if (!lease.ok()) return lease.status();
  absl::Status done = agent_.UpdatePodPorts({}, {host_ifname});
  // Out of the pod's sight now; removed from the kernel, and the address
  // freed, by the reaper. When that fails the removal happens here.
  if (done.ok()) {
    if (absl::Status s = DetachPodInterface(pod.netns(), pod.ifname(), host_ifname); !s.ok()) {
      std::fprintf(stderr, "atoll-agent: DEL of %s: %s; removing it at once\n",
                   DescribePod(pod).c_str(), std::string(s.message()).c_str());
      done = TearDownPodInterface(host_ifname);
    }
  }
  Reap(key);
  if (!done.ok()) return done;
  api::CniDelResponse resp;
  if (lease->has_value()) resp.set_released_address((*lease)->address.ToString());
  return resp;
}

absl::Status CniServer::Check(const api::CniCheckRequest& req) {
  const api::PodAttachment& pod = req.attachment();
  if (absl::Status s = ValidateAttachment(pod, /*needs_netns=*/true); !s.ok()) return s;
  AttachmentLock hold(*this, {pod.container_id(), pod.ifname()});
  absl::StatusOr<std::optional<Lease>> lease;
  {
    std::lock_guard lock(leases_mu_);
    lease = leases_.Find(pod.container_id(), pod.ifname());
  }
  if (!lease.ok()) return lease.status();
  if (!lease->has_value() || (*lease)->releasing) {
    return absl::NotFoundError(absl::StrCat(DescribePod(pod), " has no address on this node"));
  }
  const Lease& held = **lease;
  std::optional<PodNetwork> net = agent_.FindPodNetwork(held.pod_namespace);
  if (!net) {
    return absl::UnavailableError(
        absl::StrCat("namespace \"", held.pod_namespace, "\" is not known to this agent (yet)"));
  }
  const PodInterfaceSpec spec = SpecFor(held, pod.netns(), *net, options_);
  const std::string want = absl::StrCat(held.address.ToString(), "/", spec.prefix_len);
  for (const std::string& address : req.addresses()) {
    if (address != want) {
      return absl::FailedPreconditionError(absl::StrCat(
          DescribePod(pod), ": the runtime's result gives ", address, ", the lease is ", want));
    }
  }
  return CheckPodInterface(spec);
}

absl::StatusOr<api::CniGcResponse> CniServer::Gc(const api::CniGcRequest& req) {
  std::set<Key> valid;
  for (const api::PodAttachment& a : req.valid()) valid.emplace(a.container_id(), a.ifname());
  absl::StatusOr<std::vector<Lease>> leases;
  {
    std::lock_guard lock(leases_mu_);
    leases = leases_.List();
  }
  if (!leases.ok()) return leases.status();
  // SPEC.md, "GC": remove what can be removed and report what could not.
  api::CniGcResponse resp;
  std::vector<std::string> failures;
  for (const Lease& lease : *leases) {
    // Another network's attachments are not this GC's to judge.
    if (lease.network != req.network()) continue;
    if (valid.contains({lease.container_id, lease.ifname})) continue;
    api::PodAttachment stale;
    stale.set_container_id(lease.container_id);
    stale.set_ifname(lease.ifname);
    stale.set_pod_namespace(lease.pod_namespace);
    stale.set_pod_name(lease.pod_name);
    stale.set_network(lease.network);
    if (absl::StatusOr<api::CniDelResponse> del = Del(stale); !del.ok()) {
      failures.push_back(absl::StrCat(DescribePod(stale), ": ", del.status().message()));
      continue;
    }
    *resp.add_removed() = std::move(stale);
  }
  if (!failures.empty()) {
    return absl::InternalError(
        absl::StrCat("GC removed ", resp.removed_size(), ", not ", absl::StrJoin(failures, "; ")));
  }
  return resp;
}

grpc::Status CniServer::Add(grpc::ServerContext*, const api::CniAddRequest* req,
                            api::CniAddResponse* resp) {
  absl::StatusOr<api::CniAddResponse> out = Add(req->attachment());
  if (!out.ok()) return api::ToGrpcStatus(out.status());
  *resp = *std::move(out);
  return grpc::Status::OK;
}

grpc::Status CniServer::Del(grpc::ServerContext*, const api::CniDelRequest* req,
                            api::CniDelResponse* resp) {
  absl::StatusOr<api::CniDelResponse> out = Del(req->attachment());
  if (!out.ok()) return api::ToGrpcStatus(out.status());
  *resp = *std::move(out);
  return grpc::Status::OK;
}

grpc::Status CniServer::Check(grpc::ServerContext*, const api::CniCheckRequest* req,
                              api::CniCheckResponse*) {
  return api::ToGrpcStatus(Check(*req));
}

grpc::Status CniServer::Gc(grpc::ServerContext*, const api::CniGcRequest* req,
                           api::CniGcResponse* resp) {
  absl::StatusOr<api::CniGcResponse> out = Gc(*req);
  if (!out.ok()) return api::ToGrpcStatus(out.status());
  *resp = *std::move(out);
  return grpc::Status::OK;
}

grpc::Status CniServer::Status(grpc::ServerContext*, const api::CniStatusRequest*,
                               api::CniStatusResponse*) {
  if (!agent_.synced()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the agent holds no state from the controller yet");
  }
  return grpc::Status::OK;
}

}  // namespace atl::agent
