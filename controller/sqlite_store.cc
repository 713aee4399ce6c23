#include "controller/sqlite_store.h"

#include <sqlite3.h>

#include <cinttypes>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace atl::controller {
namespace api = ::atl::api::v1;

namespace {

// Finalizes a statement when it goes out of scope.
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

std::string NewStoreId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x%08x%08x", rd(), rd(), rd(), rd());
}

constexpr const char* kSchema = R"sql(
  CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  -- One row per key. data is NULL for a tombstone: the key was deleted at
  -- `revision`, which agents resuming from an older revision must learn.
  CREATE TABLE IF NOT EXISTS resources (
    kind      INTEGER NOT NULL,
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    revision  INTEGER NOT NULL,
    data      BLOB,
    PRIMARY KEY (kind, namespace, name)
  );
  CREATE INDEX IF NOT EXISTS resources_by_revision ON resources (revision);
)sql";

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("store: cannot open \"", path, "\": ", msg));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db));
  if (absl::Status s = store->Init(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("store \"", path, "\": ", s.message()));
  }
  return store;
}

SqliteStore::~SqliteStore() {
  sqlite3_finalize(upsert_);
  sqlite3_finalize(set_meta_);
  sqlite3_close(db_);
}

absl::Status SqliteStore::Error(std::string_view what) const {
  return absl::InternalError(std::string(what) + ": " + sqlite3_errmsg(db_));
}

absl::Status SqliteStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(absl::StrCat(err ? err : "error", " in: ", sql));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::Init() {
  // Another controller on the same file would fork the history; wait briefly
  // for a lock instead of failing at once, then refuse.
  sqlite3_busy_timeout(db_, 2000);
  if (absl::Status s = Exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
  if (absl::Status s = Exec("PRAGMA synchronous=FULL"); !s.ok()) return s;
  if (absl::Status s = Exec(kSchema); !s.ok()) return s;
  if (sqlite3_prepare_v2(db_,
                         "INSERT INTO resources (kind, namespace, name, revision, data) "
                         "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (kind, namespace, name) "
                         "DO UPDATE SET revision = excluded.revision, data = excluded.data",
                         -1, &upsert_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", -1,
                         &set_meta_, nullptr) != SQLITE_OK) {
    return Error("prepare");
  }

  Statement meta;
  if (sqlite3_prepare_v2(db_, "SELECT key, value FROM meta", -1, &meta.stmt, nullptr) !=
      SQLITE_OK) {
    return Error("read meta");
  }
  while (sqlite3_step(meta.stmt) == SQLITE_ROW) {
    std::string key = reinterpret_cast<const char*>(sqlite3_column_text(meta.stmt, 0));
    std::string value = reinterpret_cast<const char*>(sqlite3_column_text(meta.stmt, 1));
    if (key == "store_id") id_ = value;
    if (key == "revision") revision_ = std::stoull(value);
    if (key == "compacted") compacted_ = std::stoull(value);
  }
  if (id_.empty()) {
    id_ = NewStoreId();
    if (absl::Status s = SetMeta("store_id", id_); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::SetMeta(const char* key, const std::string& value) {
  sqlite3_reset(set_meta_);
  sqlite3_bind_text(set_meta_, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(set_meta_, 2, value.c_str(), static_cast<int>(value.size()), SQLITE_STATIC);
  if (sqlite3_step(set_meta_) != SQLITE_DONE) return Error(absl::StrCat("write meta ", key));
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SqliteStore::Commit(const std::vector<StoreWrite>& writes) {
  const uint64_t next = revision_ + 1;
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  auto fail = [&](absl::Status s) {
    (void)Exec("ROLLBACK");
    return s;
  };
  for (const StoreWrite& w : writes) {
    sqlite3_reset(upsert_);
    sqlite3_bind_int(upsert_, 1, w.key.kind());
    sqlite3_bind_text(upsert_, 2, w.key.namespace_().data(),
                      static_cast<int>(w.key.namespace_().size()), SQLITE_STATIC);
    sqlite3_bind_text(upsert_, 3, w.key.name().data(), static_cast<int>(w.key.name().size()),
                      SQLITE_STATIC);
    sqlite3_bind_int64(upsert_, 4, static_cast<int64_t>(next));
    if (w.data.empty()) {
      sqlite3_bind_null(upsert_, 5);
    } else {
      sqlite3_bind_blob(upsert_, 5, w.data.data(), static_cast<int>(w.data.size()), SQLITE_STATIC);
    }
    if (sqlite3_step(upsert_) != SQLITE_DONE) return fail(Error("write resource"));
  }
  if (absl::Status s = SetMeta("revision", std::to_string(next)); !s.ok()) return fail(s);
  if (absl::Status s = Exec("COMMIT"); !s.ok()) return fail(s);
  revision_ = next;
  return next;
}

absl::Status SqliteStore::Load(const std::function<void(StoredEntry&&)>& fn) {
  Statement q;
  if (sqlite3_prepare_v2(db_,
                         "SELECT kind, namespace, name, revision, data FROM resources "
                         "ORDER BY revision",
                         -1, &q.stmt, nullptr) != SQLITE_OK) {
    return Error("load");
  }
  int rc;
  while ((rc = sqlite3_step(q.stmt)) == SQLITE_ROW) {
    StoredEntry e;
    e.key.set_kind(static_cast<api::Kind>(sqlite3_column_int(q.stmt, 0)));
    e.key.set_namespace_(reinterpret_cast<const char*>(sqlite3_column_text(q.stmt, 1)));
    e.key.set_name(reinterpret_cast<const char*>(sqlite3_column_text(q.stmt, 2)));
    e.revision = static_cast<uint64_t>(sqlite3_column_int64(q.stmt, 3));
    if (sqlite3_column_type(q.stmt, 4) != SQLITE_NULL) {
      const void* blob = sqlite3_column_blob(q.stmt, 4);
      e.data.assign(static_cast<const char*>(blob), sqlite3_column_bytes(q.stmt, 4));
    }
    fn(std::move(e));
  }
  if (rc != SQLITE_DONE) return Error("load");
  return absl::OkStatus();
}

absl::Status SqliteStore::Compact(uint64_t revision) {
  if (revision <= compacted_) return absl::OkStatus();
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Statement del;
  if (sqlite3_prepare_v2(db_, "DELETE FROM resources WHERE data IS NULL AND revision <= ?1", -1,
                         &del.stmt, nullptr) != SQLITE_OK) {
    (void)Exec("ROLLBACK");
    return Error("compact");
  }
  sqlite3_bind_int64(del.stmt, 1, static_cast<int64_t>(revision));
  if (sqlite3_step(del.stmt) != SQLITE_DONE) {
    (void)Exec("ROLLBACK");
    return Error("compact");
  }
  if (absl::Status s = SetMeta("compacted", std::to_string(revision)); !s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  if (absl::Status s = Exec("COMMIT"); !s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  compacted_ = revision;
  return absl::OkStatus();
}

}  // namespace atl::controller
