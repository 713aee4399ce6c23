#include "agent/agent.h"

#include <malloc.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

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
  sync_ = std::make_unique<SyncClient>(
      ControllerChannel(controller_address_), SyncClient::Options{.node = node_},
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
  return resp;
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
