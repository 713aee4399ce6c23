// Store in one SQLite file. WAL journal with synchronous=FULL: a commit is on
// disk when Commit returns, and a crash at any point leaves the last committed
// revision intact (SQLite's atomic commit, https://sqlite.org/atomiccommit.html).
#pragma once

#include <memory>
#include <string>

#include "controller/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace atl::controller {

class SqliteStore final : public Store {
 public:
  // Opens or creates the database at `path` (":memory:" for tests that need no file).
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  const std::string& id() const override { return id_; }
  uint64_t revision() const override { return revision_; }
  uint64_t compacted() const override { return compacted_; }
  absl::StatusOr<uint64_t> Commit(const std::vector<StoreWrite>& writes) override;
  absl::Status Load(const std::function<void(StoredEntry&&)>& fn) override;
  absl::Status Compact(uint64_t revision) override;

 private:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  absl::Status Init();
  absl::Status Exec(const char* sql);
  absl::Status Error(std::string_view what) const;
  absl::Status SetMeta(const char* key, const std::string& value);

  sqlite3* db_;
  sqlite3_stmt* upsert_ = nullptr;
  sqlite3_stmt* set_meta_ = nullptr;
  std::string id_;
  uint64_t revision_ = 0;
  uint64_t compacted_ = 0;
};

}  // namespace atl::controller
