// The Sync service: one stream per agent, a snapshot then deltas, each
// version acknowledged before the next is sent (DESIGN.md, "Control plane
// protocol").
//
// Flow control is one version in flight per agent. While an agent works on
// a version, further changes only move the journal on; its next delta is the
// journal after its cursor, so changes to one key coalesce and a slow agent
// holds no queue. A delta is relative to what the agent acknowledged: after a
// NACK the cursor goes back to the last ACK and the next delta, sent when
// something new is written, carries the refused changes again with the new
// ones (the agent kept its last good state).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "atoll.grpc.pb.h"
#include "controller/journal.h"

namespace atl::controller {

class AgentStream;

struct SyncOptions {
  // A version is sent in parts of about this many bytes, so that no message
  // nears gRPC's 4 MiB default limit and parts stream while others are built.
  size_t part_bytes = 1 << 20;
  // Deleted keys remembered for agents that resume; beyond this, the oldest
  // are forgotten and agents older than them get a snapshot.
  size_t max_tombstones = 100000;
};

class SyncServer final : public ::atl::api::v1::Sync::CallbackService {
 public:
  using AllocateBlockFn = std::function<absl::StatusOr<::atl::api::v1::AllocateBlockResponse>(
      const ::atl::api::v1::AllocateBlockRequest&)>;

  SyncServer(std::string store_id, SyncOptions options, AllocateBlockFn allocate_block);
  ~SyncServer() override;

  // Loads the store's content at startup, before agents connect.
  void Load(const ::atl::api::v1::ResourceKey& key, uint64_t revision, std::string data) {
    std::lock_guard lock(journal_mu_);
    journal_.Put(key, revision, std::move(data));
  }
  void SetCompacted(uint64_t revision) {
    std::lock_guard lock(journal_mu_);
    journal_.SetCompacted(revision);
  }
  struct Write {
    ::atl::api::v1::ResourceKey key;
    std::string data;  // serialized Resource; empty for a deletion
  };
  // Records a committed revision and wakes every agent stream. Returns the
  // revision at or below which deleted keys are now forgotten (for the store
  // to compact).
  uint64_t Publish(uint64_t revision, std::vector<Write> writes);

  uint64_t revision() const {
    std::lock_guard lock(journal_mu_);
    return journal_.revision();
  }
  const std::string& store_id() const { return store_id_; }
  // Every agent seen since the controller started, connected or not.
  std::vector<::atl::api::v1::AgentStatus> AgentStatuses() const;
  // Ends every stream (at shutdown, so the server can stop).
  void Shutdown();

  // api::Sync
  grpc::ServerBidiReactor<::atl::api::v1::SyncRequest, ::atl::api::v1::SyncResponse>* Sync(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* AllocateBlock(grpc::CallbackServerContext* context,
                                          const ::atl::api::v1::AllocateBlockRequest* request,
                                          ::atl::api::v1::AllocateBlockResponse* response) override;

 private:
  friend class AgentStream;

  // What an agent is sent next: collected under the journal lock as
  // references to the journal's encoded resources, and copied into parts
  // outside it, one part at a time, as the stream takes them. A stream so
  // holds one part and the references, never a whole encoded snapshot.
  struct Pending {
    uint64_t version = 0;
    Cursor end;
    bool snapshot = false;
    std::string nonce;
    std::vector<std::shared_ptr<const std::string>> upserts;
    std::vector<::atl::api::v1::ResourceKey> removals;
    size_t next_upsert = 0;  // the first not yet in a part
    size_t next_removal = 0;
    bool done() const { return next_upsert == upserts.size() && next_removal == removals.size(); }
  };
  // The changes after `from`, or a snapshot when those are forgotten or
  // `snapshot` is asked; nullopt when nothing was written after `from`.
  std::optional<Pending> Collect(Cursor from, bool snapshot) const;
  // The next part of `pending`, of about SyncOptions::part_bytes; the last
  // one has `more` false.
  std::unique_ptr<::atl::api::v1::SyncResponse> NextPart(Pending& pending) const;

  // The stream that serves `node` now; an older one for the node is ended.
  void Register(const std::string& node, AgentStream* stream);
  void Unregister(const std::string& node, AgentStream* stream,
                  const ::atl::api::v1::AgentStatus& last);

  const std::string store_id_;
  const SyncOptions options_;
  const AllocateBlockFn allocate_block_;

  mutable std::mutex journal_mu_;
  Journal journal_;

  // Lock order: agents_mu_, then a stream's own lock, then journal_mu_.
  mutable std::mutex agents_mu_;
  struct AgentRecord {
    AgentStream* stream = nullptr;     // the live stream; null while disconnected
    ::atl::api::v1::AgentStatus last;  // as the last stream left it
  };
  absl::flat_hash_map<std::string, AgentRecord> agents_;
  absl::flat_hash_set<AgentStream*> streams_;  // every open stream, with a hello or not
  bool shutting_down_ = false;
};

}  // namespace atl::controller
