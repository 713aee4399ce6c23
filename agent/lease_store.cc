#include "agent/lease_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace atl::agent {
namespace {

constexpr const char* kSchema = R"sql(
  -- One row per pod interface. The address is unique in the table itself:
  -- two attachments can never hold one address, whatever the agent does.
  CREATE TABLE IF NOT EXISTS leases (
    container_id  TEXT NOT NULL,
    ifname        TEXT NOT NULL,
    netns         TEXT NOT NULL,
    pod_namespace TEXT NOT NULL,
    pod_name      TEXT NOT NULL,
    address       BLOB NOT NULL UNIQUE,  -- 16 bytes, network order (IPv4-mapped)
    -- 1 once DEL has answered and the interface is being removed: the address
    -- stays taken until the interface is gone.
    releasing     INTEGER NOT NULL DEFAULT 0,
    network       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (container_id, ifname)
  );
)sql";

// Finalizes a statement when it goes out of scope.
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

void BindText(sqlite3_stmt* stmt, int index, const std::string& text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

void BindAddress(sqlite3_stmt* stmt, int index, const lb::IpAddr& addr) {
  sqlite3_bind_blob(stmt, index, addr.bytes.data(), 16, SQLITE_STATIC);
}

std::string ColumnText(sqlite3_stmt* stmt, int column) {
  const unsigned char* text = sqlite3_column_text(stmt, column);
  return text ? reinterpret_cast<const char*>(text) : "";
}

lb::IpAddr ColumnAddress(sqlite3_stmt* stmt, int column) {
  lb::IpAddr addr;
  if (sqlite3_column_bytes(stmt, column) == 16) {
    std::memcpy(addr.bytes.data(), sqlite3_column_blob(stmt, column), 16);
  }
  return addr;
}

constexpr const char* kColumns =
    "container_id, ifname, netns, pod_namespace, pod_name, address, releasing, network";

Lease ReadLease(sqlite3_stmt* stmt) {
  return Lease{ColumnText(stmt, 0),
               ColumnText(stmt, 1),
               ColumnText(stmt, 2),
               ColumnText(stmt, 3),
               ColumnText(stmt, 4),
               ColumnAddress(stmt, 5),
               sqlite3_column_int(stmt, 6) != 0,
               ColumnText(stmt, 7)};
}

// addr + 1, in place; false when it wrapped.
bool Increment(lb::IpAddr& addr) {
  for (int i = 15; i >= 0; --i) {
    if (++addr.bytes[i] != 0) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LeaseStore>> LeaseStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("leases: cannot open \"", path, "\": ", msg));
  }
  std::unique_ptr<LeaseStore> store(new LeaseStore(db));
  sqlite3_busy_timeout(db, 2000);
  // WAL with synchronous=NORMAL: a commit is in the WAL file, and so survives
  // the agent being killed at any point, before the pod is told its address;
  // only a power loss or kernel crash can lose the last commits, and those
  // take every pod and its network namespace with them. FULL would add an
  // fsync (about 4 ms on the test VM) to every ADD and DEL, one after another.
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", kSchema}) {
    if (absl::Status s = store->Exec(sql); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("leases \"", path, "\": ", s.message()));
    }
  }
  return store;
}

LeaseStore::~LeaseStore() { sqlite3_close(db_); }

absl::Status LeaseStore::Error(const char* what) const {
  return absl::InternalError(absl::StrCat("leases: ", what, ": ", sqlite3_errmsg(db_)));
}

absl::Status LeaseStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(err ? err : "error");
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Lease>> LeaseStore::Find(const std::string& container_id,
                                                      const std::string& ifname) {
  Statement q;
  const std::string sql =
      absl::StrCat("SELECT ", kColumns, " FROM leases WHERE container_id = ?1 AND ifname = ?2");
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &q.stmt, nullptr) != SQLITE_OK) {
    return Error("find");
  }
  BindText(q.stmt, 1, container_id);
  BindText(q.stmt, 2, ifname);
  const int rc = sqlite3_step(q.stmt);
  if (rc == SQLITE_ROW) return std::optional<Lease>(ReadLease(q.stmt));
  if (rc != SQLITE_DONE) return Error("find");
  return std::optional<Lease>();
}

absl::StatusOr<Lease> LeaseStore::Acquire(const Lease& request,
                                          std::span<const lb::IpPrefix> blocks,
                                          std::span<const lb::IpAddr> reserved) {
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  auto fail = [&](absl::Status s) {
    (void)Exec("ROLLBACK");
    return s;
  };
  absl::StatusOr<std::optional<Lease>> held = Find(request.container_id, request.ifname);
  if (!held.ok()) return fail(held.status());
  if (held->has_value()) {
    (void)Exec("ROLLBACK");
    return **held;
  }

  std::optional<lb::IpAddr> chosen;
  for (const lb::IpPrefix& block : blocks) {
    const lb::IpAddr last = block.Last();
    // The addresses of the block already leased, in order: the first gap is the answer.
    Statement used;
    if (sqlite3_prepare_v2(db_,
                           "SELECT address FROM leases WHERE address >= ?1 AND address <= ?2 "
                           "ORDER BY address",
                           -1, &used.stmt, nullptr) != SQLITE_OK) {
      return fail(Error("acquire"));
    }
    BindAddress(used.stmt, 1, block.addr);
    BindAddress(used.stmt, 2, last);
    std::vector<lb::IpAddr> taken;
    int rc;
    while ((rc = sqlite3_step(used.stmt)) == SQLITE_ROW) {
      taken.push_back(ColumnAddress(used.stmt, 0));
    }
    if (rc != SQLITE_DONE) return fail(Error("acquire"));
    lb::IpAddr candidate = block.addr;
    size_t next_taken = 0;
    for (;;) {
      while (next_taken < taken.size() && taken[next_taken] < candidate) ++next_taken;
      const bool is_taken = next_taken < taken.size() && taken[next_taken] == candidate;
      const bool is_reserved =
          std::find(reserved.begin(), reserved.end(), candidate) != reserved.end();
      if (!is_taken && !is_reserved) {
        chosen = candidate;
        break;
      }
      if (candidate == last || !Increment(candidate)) break;
    }
    if (chosen) break;
  }
  if (!chosen) {
    return fail(absl::ResourceExhaustedError(
        absl::StrCat("no free address in the ", blocks.size(), " block(s) of namespace \"",
                     request.pod_namespace, "\" on this node")));
  }

  Lease lease = request;
  lease.address = *chosen;
  lease.releasing = false;
  Statement insert;
  const std::string sql =
      absl::StrCat("INSERT INTO leases (", kColumns, ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)");
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &insert.stmt, nullptr) != SQLITE_OK) {
    return fail(Error("acquire"));
  }
  BindText(insert.stmt, 1, lease.container_id);
  BindText(insert.stmt, 2, lease.ifname);
  BindText(insert.stmt, 3, lease.netns);
  BindText(insert.stmt, 4, lease.pod_namespace);
  BindText(insert.stmt, 5, lease.pod_name);
  BindAddress(insert.stmt, 6, lease.address);
  BindText(insert.stmt, 7, lease.network);
  if (sqlite3_step(insert.stmt) != SQLITE_DONE) return fail(Error("acquire"));
  if (absl::Status s = Exec("COMMIT"); !s.ok()) return fail(s);
  return lease;
}

absl::StatusOr<std::optional<Lease>> LeaseStore::Release(const std::string& container_id,
                                                         const std::string& ifname) {
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  absl::StatusOr<std::optional<Lease>> held = Find(container_id, ifname);
  if (!held.ok() || !held->has_value()) {
    (void)Exec("ROLLBACK");
    return held;
  }
  Statement del;
  if (sqlite3_prepare_v2(db_, "DELETE FROM leases WHERE container_id = ?1 AND ifname = ?2", -1,
                         &del.stmt, nullptr) != SQLITE_OK) {
    (void)Exec("ROLLBACK");
    return Error("release");
  }
  BindText(del.stmt, 1, container_id);
  BindText(del.stmt, 2, ifname);
  if (sqlite3_step(del.stmt) != SQLITE_DONE) {
    (void)Exec("ROLLBACK");
    return Error("release");
  }
  if (absl::Status s = Exec("COMMIT"); !s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  return held;
}

absl::StatusOr<std::optional<Lease>> LeaseStore::MarkReleasing(const std::string& container_id,
                                                               const std::string& ifname) {
  Statement update;
  if (sqlite3_prepare_v2(db_,
                         "UPDATE leases SET releasing = 1 WHERE container_id = ?1 AND ifname = ?2",
                         -1, &update.stmt, nullptr) != SQLITE_OK) {
    return Error("mark releasing");
  }
  BindText(update.stmt, 1, container_id);
  BindText(update.stmt, 2, ifname);
  if (sqlite3_step(update.stmt) != SQLITE_DONE) return Error("mark releasing");
  return Find(container_id, ifname);
}

absl::StatusOr<std::vector<Lease>> LeaseStore::List() {
  Statement q;
  const std::string sql = absl::StrCat("SELECT ", kColumns, " FROM leases ORDER BY address");
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &q.stmt, nullptr) != SQLITE_OK) {
    return Error("list");
  }
  std::vector<Lease> out;
  int rc;
  while ((rc = sqlite3_step(q.stmt)) == SQLITE_ROW) out.push_back(ReadLease(q.stmt));
  if (rc != SQLITE_DONE) return Error("list");
  return out;
}

}  // namespace atl::agent
