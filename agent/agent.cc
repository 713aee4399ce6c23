#include "agent/agent.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "agent/pod_network.h"
#include "grpc_status.h"

namespace atl::agent {

namespace {

api::Protocol ToProtocol(lb::IpProto proto) {
  switch (proto) {
    case lb::IpProto::kUdp:
      return api::PROTOCOL_UDP;
    case lb::IpProto::kSctp:
      return api::PROTOCOL_SCTP;
    default:
      return api::PROTOCOL_TCP;
  }
}

}  // namespace

Agent::Agent(std::string node, std::string controller_address,
             std::unique_ptr<dataplane::Dataplane> dataplane)
    : node_(std::move(node)),
      controller_address_(std::move(controller_address)),
      dataplane_(std::move(dataplane)),
      renderer_(node_) {}

Agent::~Agent() { Stop(); }

void Agent::Start() {
  channel_ = ControllerChannel(controller_address_);
  allocate_stub_ = api::Sync::NewStub(channel_);
  sync_ = std::make_unique<SyncClient>(
      channel_, SyncClient::Options{.node = node_},
      [this](ReceivedVersion&& v) { return ApplyVersion(std::move(v)); });
  sync_->Start();
}

void Agent::Stop() {
  if (sync_) sync_->Stop();
}

absl::Status Agent::ApplyVersion(ReceivedVersion&& received) {
  std::lock_guard lock(mu_);
  absl::StatusOr<std::vector<Change>> changes =
      received.snapshot ? state_.ApplySnapshot(std::move(received.upserts))
                        : state_.ApplyDelta(std::move(received.upserts), received.removals);
  if (!changes.ok()) return changes.status();

  absl::StatusOr<dataplane::Update> update = renderer_.Render(state_, *changes);
  // The first snapshot this agent applies is the whole truth for a dataplane
  // that outlived the agent before it (later snapshots render as diffs).
  if (update.ok() && received.snapshot && applied_version_ == 0) update->full_sync = true;
  absl::Status applied = update.ok() ? dataplane_->Apply(*update) : update.status();
  if (!applied.ok()) {
    renderer_.Abort();
    state_.Undo(*std::move(changes));
    std::fprintf(stderr, "atoll-agent: version %llu refused: %s\n",
                 static_cast<unsigned long long>(received.version),
                 std::string(applied.message()).c_str());
    return applied;
  }
  renderer_.Commit();
  // Blocks asked for are used until the version that carries them is held;
  // versions of another store (a controller that lost its database) say
  // nothing about them, and the snapshot from it is the whole truth.
  if (received.store_id != applied_store_id_) allocated_blocks_.clear();
  applied_version_ = received.version;
  applied_store_id_ = received.store_id;
  std::erase_if(allocated_blocks_,
                [&](const AllocatedBlock& b) { return b.version <= applied_version_; });
  if (received.snapshot) {
    // A snapshot's parts, changes and update are freed by now: hand their
    // pages back rather than keep them in malloc's free lists.
    malloc_trim(0);
  }
  return absl::OkStatus();
}

api::AgentStateResponse Agent::DebugState() const {
  api::AgentStateResponse resp;
  resp.set_node(node_);
  resp.set_controller(controller_address_);
  if (sync_) {
    // The sync client's version is the last one applied and acknowledged.
    resp.set_connected(sync_->connected());
    resp.set_last_error(sync_->last_error());
    resp.set_version(sync_->version());
    resp.set_store_id(sync_->store_id());
  }
  std::lock_guard lock(mu_);
  resp.set_dataplane(std::string(dataplane_->name()));
  resp.set_resources(state_.size());

  const dataplane::Programmed programmed = dataplane_->Dump();
  for (const dataplane::Frontend& f : programmed.frontends) {
    api::ProgrammedFrontend* out = resp.add_frontends();
    out->set_service(f.name);
    if (!f.key.addr.IsUnspecified()) out->set_address(f.key.addr.ToString());
    out->set_port(f.key.port);
    out->set_protocol(ToProtocol(f.key.proto));
    out->set_external(f.key.scope == lb::Scope::kExternal);
    out->set_affinity_timeout_seconds(f.config.affinity_timeout_s);
    out->set_maglev_size(f.config.maglev_size);
    for (const lb::Backend& b : f.config.backends) {
      api::ProgrammedBackend* pb = out->add_backends();
      pb->set_address(b.endpoint.addr.ToString());
      pb->set_port(b.endpoint.port);
      pb->set_weight(b.weight);
      pb->set_serving(b.serving);
      pb->set_terminating(b.terminating);
      pb->set_node_local(b.node_local);
    }
  }
  for (const dataplane::Segment& s : programmed.segments) {
    api::Segment* out = resp.add_segments();
    out->set_namespace_(s.name);
    out->set_id(s.vni);
    for (const lb::IpPrefix& p : s.cidrs) out->add_cidrs(p.ToString());
    out->set_gateway(s.gateway.ToString());
  }
  for (const dataplane::Route& r : programmed.routes) {
    api::ProgrammedRoute* out = resp.add_routes();
    out->set_cidr(r.cidr.ToString());
    out->set_node(r.node);
    out->set_underlay_address(r.underlay.ToString());
    out->set_vni(r.vni);
  }
  for (const dataplane::PodPort& p : programmed.pod_ports) {
    api::PodPort* out = resp.add_pod_ports();
    out->set_pod(p.pod);
    out->set_host_ifname(p.host_ifname);
    out->set_host_ifindex(p.host_ifindex);
    out->set_address(p.address.ToString());
    out->set_mac(FormatMac(p.mac));
  }
  const auto add_counters = [](const dataplane::Dataplane::Counters& counters, auto* out) {
    for (const auto& [name, value] : counters) {
      api::Counter* c = out->Add();
      c->set_name(name);
      c->set_value(value);
    }
  };
  add_counters(dataplane_->Drops(), resp.mutable_drops());
  add_counters(dataplane_->Packets(), resp.mutable_packets());
  return resp;
}

bool Agent::synced() const {
  std::lock_guard lock(mu_);
  return applied_version_ != 0;
}

std::optional<PodNetwork> Agent::FindPodNetwork(std::string_view ns) const {
  std::lock_guard lock(mu_);
  const api::Segment* segment = state_.FindSegment(ns);
  if (segment == nullptr) return std::nullopt;
  PodNetwork net;
  net.vni = segment->id();
  for (const std::string& text : segment->cidrs()) {
    if (auto cidr = lb::IpPrefix::Parse(text)) net.cidrs.push_back(*cidr);
  }
  net.gateway = lb::IpAddr::Parse(segment->gateway()).value_or(lb::IpAddr{});
  if (const api::Node* node = state_.FindNode(node_)) {
    for (const api::NodeBlock& block : node->blocks()) {
      if (block.namespace_() != ns) continue;
      if (auto cidr = lb::IpPrefix::Parse(block.cidr())) net.blocks.push_back(*cidr);
    }
  }
  for (const AllocatedBlock& b : allocated_blocks_) {
    if (b.ns == ns && std::find(net.blocks.begin(), net.blocks.end(), b.cidr) == net.blocks.end()) {
      net.blocks.push_back(b.cidr);
    }
  }
  return net;
}

absl::StatusOr<lb::IpPrefix> Agent::AllocateBlock(std::string_view ns,
                                                  std::chrono::milliseconds timeout) {
  if (!allocate_stub_) return absl::FailedPreconditionError("the agent is not started");
  api::AllocateBlockRequest req;
  req.set_node(node_);
  req.set_namespace_(std::string(ns));
  api::AllocateBlockResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  const absl::Status s = api::FromGrpcStatus(
      allocate_stub_->AllocateBlock(&ctx, req, &resp),
      absl::StrCat("the controller at ", controller_address_, " gave no new block of namespace \"",
                   absl::string_view(ns.data(), ns.size()), "\": "));
  if (!s.ok()) {
    // A controller too slow to answer is one that is away.
    if (absl::IsDeadlineExceeded(s)) return absl::UnavailableError(s.message());
    return s;
  }
  std::optional<lb::IpPrefix> cidr = lb::IpPrefix::Parse(resp.block().cidr());
  if (!cidr) {
    return absl::InternalError(absl::StrCat("the controller gave a block \"", resp.block().cidr(),
                                            "\" that is not a CIDR"));
  }
  std::lock_guard lock(mu_);
  if (resp.version() > applied_version_) {
    allocated_blocks_.push_back({resp.version(), std::string(ns), *cidr});
  }
  return *cidr;
}

absl::Status Agent::UpdatePodPorts(std::vector<dataplane::PodPort> upserts,
                                   std::vector<std::string> removals, bool full_sync) {
  dataplane::Update update;
  update.full_sync_pod_ports = full_sync;
  update.upsert_pod_ports = std::move(upserts);
  update.remove_pod_ports = std::move(removals);
  std::lock_guard lock(mu_);
  return dataplane_->Apply(update);
}

grpc::ServerUnaryReactor* Agent::State(grpc::CallbackServerContext* ctx,
                                       const api::AgentStateRequest*,
                                       api::AgentStateResponse* resp) {
  *resp = DebugState();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace atl::agent
