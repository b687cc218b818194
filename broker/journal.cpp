#include "broker/journal.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <msgpack.hpp>
#include <unordered_set>

namespace ecgq::broker {

namespace {

// The file format this code writes; a file with another version is refused, not guessed at.
constexpr int kFormatVersion = 2;
// Compaction (WAL checkpoint + incremental vacuum) after this many transactions.
constexpr int64_t kCommitsPerCompaction = 256;
// SQLite copies the WAL into the file once it holds this many pages (16 MiB at 4 KiB pages)
// rather than its default 1000: each copy costs two fsyncs, which at the 4-12 ms an fsync took on
// the test VM made every fourth commit several times slower (docs/durability.md).
constexpr int kCheckpointFrames = 4096;

// Bodies live apart from the jobs' small mutable rows: a Dispatch or Finish rewrites a row of a
// few dozen bytes (many to a page) instead of the page holding the ECG, and a finished job's body
// is deleted, not rewritten.
const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  seq INTEGER PRIMARY KEY,
  id BLOB NOT NULL,
  service BLOB NOT NULL,
  submitter BLOB NOT NULL,
  received INTEGER NOT NULL,
  deadline INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  state INTEGER NOT NULL,
  result BLOB,
  expires INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS bodies(seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters(n INTEGER PRIMARY KEY, letter BLOB NOT NULL);
)sql";
Status unavailable(sqlite3* db, const std::string& what) {
  return Status("journal_unavailable",
                what + ": " + (db ? sqlite3_errmsg(db) : "cannot open the journal"), "journal");
}

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  explicit operator bool() const { return stmt_ != nullptr; }
  sqlite3_stmt* get() { return stmt_; }
  void blob(int i, const std::string& s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void integer(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  std::string column_blob(int i) {
    const void* p = sqlite3_column_blob(stmt_, i);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, i))
             : std::string();
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

bool exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

int64_t file_bytes(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

// Creates the file with mode 0600 before SQLite opens it: ECG bodies are health data, and SQLite
// gives its -wal and -shm files the main file's permissions.
Status create_private(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status("journal_unavailable",
                  "cannot create journal " + path + ": " + std::strerror(errno), "journal");
  ::close(fd);
  return Status::Ok();
}

// Format 1 kept each body in its job's row: its bodies move to their own table, then the jobs
// table is rebuilt without them, in one transaction (a crash leaves format 1 intact).
const char* kUpgradeFrom1 = R"sql(
BEGIN IMMEDIATE;
INSERT OR REPLACE INTO bodies(seq, body) SELECT seq, body FROM jobs WHERE state != 2;
CREATE TABLE jobs2(
  seq INTEGER PRIMARY KEY,
  id BLOB NOT NULL,
  service BLOB NOT NULL,
  submitter BLOB NOT NULL,
  received INTEGER NOT NULL,
  deadline INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  state INTEGER NOT NULL,
  result BLOB,
  expires INTEGER NOT NULL DEFAULT 0);
INSERT INTO jobs2 SELECT seq, id, service, submitter, received, deadline, attempts, state, result,
  expires FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs2 RENAME TO jobs;
UPDATE meta SET value='2' WHERE key='format';
COMMIT;
)sql";

// Reads the file's format: a new file gets this code's, format 1 is upgraded, any other refused.
Status check_format(sqlite3* db, const std::string& path) {
  int version = 0;
  {
    Statement get(db, "SELECT value FROM meta WHERE key='format'");
    const int rc = get ? sqlite3_step(get.get()) : SQLITE_ERROR;
    if (rc == SQLITE_ROW) version = sqlite3_column_int(get.get(), 0);
  }
  if (version == 0) {
    if (exec(db, ("INSERT INTO meta VALUES('format','" + std::to_string(kFormatVersion) + "');")
                     .c_str()))
      return Status::Ok();
    return unavailable(db, "cannot write journal " + path);
  }
  if (version == 1) {
    if (exec(db, kUpgradeFrom1)) {
      spdlog::info("event=journal_upgraded path={} from_format=1 to_format={}", path,
                   kFormatVersion);
      return Status::Ok();
    }
    Status s = unavailable(db, "cannot upgrade journal " + path + " from format 1");
    exec(db, "ROLLBACK;");
    return s;
  }
  if (version != kFormatVersion)
    return Status("journal_unavailable",
                  "journal " + path + " has format " + std::to_string(version) +
                      ", this broker reads format " + std::to_string(kFormatVersion),
                  "journal");
  return Status::Ok();
}

}  // namespace

Expected<std::unique_ptr<Journal>> Journal::open(const JournalOptions& options) {
  if (auto s = create_private(options.path); !s.ok()) return s;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(options.path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    Status s = unavailable(db, "cannot open journal " + options.path);
    sqlite3_close(db);
    return s;
  }
  // auto_vacuum only takes effect on an empty file, so it comes before the schema.
  const bool ok =
      exec(db, "PRAGMA auto_vacuum=INCREMENTAL;") && exec(db, "PRAGMA journal_mode=WAL;") &&
      exec(db, options.sync_full ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;") &&
      exec(db, ("PRAGMA wal_autocheckpoint=" + std::to_string(kCheckpointFrames) + ";").c_str()) &&
      exec(db, ("PRAGMA journal_size_limit=" + std::to_string(2 * kCheckpointFrames * 4096) + ";")
                   .c_str()) &&
      exec(db, kSchema);
  if (!ok) {
    Status s = unavailable(db, "cannot set up journal " + options.path);
    sqlite3_close(db);
    return s;
  }
  if (Status s = check_format(db, options.path); !s.ok()) {
    sqlite3_close(db);
    return s;
  }
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    sqlite3_close(db);
    return Status("internal", std::string("eventfd: ") + std::strerror(errno));
  }
  return std::unique_ptr<Journal>(new Journal(options, db, fd));
}

Journal::Journal(JournalOptions options, sqlite3* db, int notify_fd)
    : options_(std::move(options)), db_(db), notify_fd_(notify_fd) {
  size_bytes_ = measure_size();
  writer_ = std::thread([this] { writer_loop(); });
}

Journal::~Journal() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_writer_.notify_one();
  if (writer_.joinable()) writer_.join();
  sqlite3_close(db_);
  if (notify_fd_ >= 0) ::close(notify_fd_);
}

Expected<std::vector<JournaledJob>> Journal::load() {
  std::lock_guard<std::mutex> lock(mutex_);  // the writer is idle before the first append
  Statement q(db_,
              "SELECT jobs.seq,id,service,submitter,body,received,deadline,attempts,state,"
              "result,expires FROM jobs LEFT JOIN bodies USING(seq) ORDER BY jobs.seq");
  if (!q) return unavailable(db_, "cannot read the journal");
  std::vector<JournaledJob> jobs;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    JournaledJob j;
    j.seq = static_cast<uint64_t>(sqlite3_column_int64(q.get(), 0));
    j.id = q.column_blob(1);
    j.service = q.column_blob(2);
    j.submitter = q.column_blob(3);
    j.body = q.column_blob(4);
    j.received_unix_ms = sqlite3_column_int64(q.get(), 5);
    j.deadline_unix_ms = sqlite3_column_int64(q.get(), 6);
    j.attempts = sqlite3_column_int64(q.get(), 7);
    const int state = sqlite3_column_int(q.get(), 8);
    if (state < 0 || state > 2)
      return Status("journal_corrupt",
                    "job seq " + std::to_string(j.seq) + " has state " + std::to_string(state));
    j.state = static_cast<JournalState>(state);
    j.result = q.column_blob(9);
    j.expires_unix_ms = sqlite3_column_int64(q.get(), 10);
    jobs.push_back(std::move(j));
  }
  if (rc != SQLITE_DONE) return unavailable(db_, "cannot read the journal");
  return jobs;
}

Expected<std::vector<std::string>> Journal::load_dead_letters() {
  std::lock_guard<std::mutex> lock(mutex_);  // the writer is idle before the first append
  Statement q(db_, "SELECT letter FROM dead_letters ORDER BY n");
  if (!q) return unavailable(db_, "cannot read the journal's dead letters");
  std::vector<std::string> letters;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) letters.push_back(q.column_blob(0));
  if (rc != SQLITE_DONE) return unavailable(db_, "cannot read the journal's dead letters");
  return letters;
}

uint64_t Journal::append(JournalRecord record, bool wake) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_bytes_ += static_cast<int64_t>(record.job.body.size() + record.job.result.size());
    pending_.push_back(std::move(record));
    ticket = next_ticket_++;
  }
  if (wake) wake_writer_.notify_one();
  return ticket;
}

void Journal::flush() {
  wake_writer_.notify_one();
}

JournalCommits Journal::take_commits() {
  uint64_t counter;
  while (::read(notify_fd_, &counter, sizeof counter) == sizeof counter) {
  }
  std::lock_guard<std::mutex> lock(mutex_);
  JournalCommits out;
  std::swap(out, commits_);
  return out;
}

Status Journal::health() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return health_;
}

bool Journal::would_exceed(int64_t body_bytes) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return size_bytes_.load() + pending_bytes_ + body_bytes > options_.max_bytes;
}

void Journal::writer_loop() {
  while (true) {
    std::vector<JournalRecord> batch;
    uint64_t first_ticket;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_writer_.wait(lock, [this] { return stop_ || !pending_.empty(); });
      if (pending_.empty() && stop_) return;
      // Group commit: everything queued while the last transaction ran goes into this one.
      batch.assign(std::make_move_iterator(pending_.begin()),
                   std::make_move_iterator(pending_.end()));
      pending_.clear();
      first_ticket = written_ticket_ + 1;
      written_ticket_ += batch.size();
    }
    const Status written = write_batch(batch);
    int64_t batch_bytes = 0;
    for (const auto& r : batch) batch_bytes += r.job.body.size() + r.job.result.size();
    if (written.ok()) {
      transactions_ += 1;
      records_written_ += static_cast<int64_t>(batch.size());
      compact_if_due();
      size_bytes_ = measure_size();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_bytes_ -= batch_bytes;
      auto& into = written.ok() ? commits_.durable : commits_.failed;
      for (uint64_t t = first_ticket; t < first_ticket + batch.size(); ++t) into.push_back(t);
      if (!written.ok() && health_.ok())
        spdlog::error("event=journal_unavailable path={} reason=\"{}\"", options_.path,
                      written.message());
      if (written.ok() && !health_.ok())
        spdlog::info("event=journal_available path={}", options_.path);
      health_ = written;
    }
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(notify_fd_, &one, sizeof one);
  }
}

namespace {

// The statements of one transaction, prepared together.
struct BatchStatements {
  explicit BatchStatements(sqlite3* db)
      : accept(db,
               "INSERT OR REPLACE INTO jobs(seq,id,service,submitter,received,deadline,attempts,"
               "state,result,expires) VALUES(?,?,?,?,?,?,?,0,NULL,0)"),
        body(db, "INSERT OR REPLACE INTO bodies(seq,body) VALUES(?,?)"),
        dispatch(db, "UPDATE jobs SET attempts=?, state=1 WHERE seq=?"),
        finish(db, "UPDATE jobs SET state=2, attempts=?, result=?, expires=? WHERE seq=?"),
        drop_body(db, "DELETE FROM bodies WHERE seq=?"),
        forget(db, "DELETE FROM jobs WHERE seq=?"),
        dead_letter(db, "INSERT INTO dead_letters(letter) VALUES(?)"),
        trim_letters(db,
                     "DELETE FROM dead_letters WHERE n <= (SELECT max(n) FROM dead_letters) - ?") {}
  bool ok() const {
    return accept && body && dispatch && finish && drop_body && forget && dead_letter &&
           trim_letters;
  }

  Statement accept, body, dispatch, finish, drop_body, forget, dead_letter, trim_letters;
};

// Runs one bound statement and clears it for the next record; false on a write error.
bool step(Statement& st) {
  const int rc = sqlite3_step(st.get());
  sqlite3_reset(st.get());
  sqlite3_clear_bindings(st.get());
  return rc == SQLITE_DONE;
}

// Writes one record; false on a write error. `dead_letter_max` bounds the dead-letter list.
bool write_record(BatchStatements& st, const JournalRecord& r, int64_t dead_letter_max) {
  const JournaledJob& j = r.job;
  const auto seq = static_cast<int64_t>(j.seq);
  switch (r.kind) {
    case JournalRecord::Kind::Accept:
      st.accept.integer(1, seq);
      st.accept.blob(2, j.id);
      st.accept.blob(3, j.service);
      st.accept.blob(4, j.submitter);
      st.accept.integer(5, j.received_unix_ms);
      st.accept.integer(6, j.deadline_unix_ms);
      st.accept.integer(7, j.attempts);
      st.body.integer(1, seq);
      st.body.blob(2, j.body);
      return step(st.accept) && step(st.body);
    case JournalRecord::Kind::Dispatch:
      st.dispatch.integer(1, j.attempts);
      st.dispatch.integer(2, seq);
      return step(st.dispatch);
    case JournalRecord::Kind::Finish:
      // The body goes once a result exists: replay never needs it again.
      st.finish.integer(1, j.attempts);
      st.finish.blob(2, j.result);
      st.finish.integer(3, j.expires_unix_ms);
      st.finish.integer(4, seq);
      st.drop_body.integer(1, seq);
      return step(st.finish) && step(st.drop_body);
    case JournalRecord::Kind::Forget:
      st.forget.integer(1, seq);
      st.drop_body.integer(1, seq);
      return step(st.forget) && step(st.drop_body);
    case JournalRecord::Kind::DeadLetter:
      st.dead_letter.blob(1, j.result);
      st.trim_letters.integer(1, dead_letter_max);
      return step(st.dead_letter) && step(st.trim_letters);
  }
  return false;
}

// The seqs a batch finishes: their Dispatch records in the same batch need not be written (the
// Finish record carries the attempts), which halves the rows a fast job rewrites.
std::unordered_set<uint64_t> finished_in(const std::vector<JournalRecord>& batch) {
  std::unordered_set<uint64_t> seqs;
  for (const auto& r : batch)
    if (r.kind == JournalRecord::Kind::Finish) seqs.insert(r.job.seq);
  return seqs;
}

}  // namespace

Status Journal::write_batch(const std::vector<JournalRecord>& batch) {
  if (!exec(db_, "BEGIN IMMEDIATE;")) return unavailable(db_, "cannot begin a transaction");
  BatchStatements statements(db_);
  if (!statements.ok()) {
    exec(db_, "ROLLBACK;");
    return unavailable(db_, "cannot prepare journal statements");
  }
  const std::unordered_set<uint64_t> finished = finished_in(batch);
  for (const auto& r : batch) {
    if (r.kind == JournalRecord::Kind::Dispatch && finished.count(r.job.seq) != 0) continue;
    if (!write_record(statements, r, options_.dead_letter_max)) {
      Status s = unavailable(db_, "cannot write the journal");
      exec(db_, "ROLLBACK;");
      return s;
    }
  }
  if (!exec(db_, "COMMIT;")) {
    Status s = unavailable(db_, "cannot commit the journal");
    exec(db_, "ROLLBACK;");
    return s;
  }
  return Status::Ok();
}

void Journal::compact_if_due() {
  if (++commits_since_compaction_ < kCommitsPerCompaction) return;
  commits_since_compaction_ = 0;
  // Give deleted pages back and fold the WAL into the file, so the size bound is the live data.
  // The WAL file keeps its length (journal_size_limit bounds it): SQLite then overwrites it from
  // the start, and an fdatasync of overwritten blocks took 0.2-3 ms on the test VM against
  // 3-8 ms for blocks appended to a file that grows (ext4 commits the new size too).
  exec(db_, "PRAGMA incremental_vacuum;");
  exec(db_, "PRAGMA wal_checkpoint(PASSIVE);");
}

int64_t Journal::measure_size() const {
  return file_bytes(options_.path) + file_bytes(options_.path + "-wal");
}

}  // namespace ecgq::broker
