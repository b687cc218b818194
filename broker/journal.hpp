// The broker's durable journal of accepted jobs: SQLite in WAL mode, written by one thread with
// group commit (every record appended while a transaction runs goes into the next one), so the
// broker loop never waits on the disk. The loop learns which records are durable through a file
// descriptor it polls next to its sockets; only then does it tell the producer `accepted`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/journal_record.hpp"
#include "common/status.hpp"

struct sqlite3;

namespace ecgq::broker {

// What the writer thread reports back: the tickets (from append) now durable, in order, and
// those whose transaction failed (their jobs must be refused with journal_unavailable).
struct JournalCommits {
  std::vector<uint64_t> durable;
  std::vector<uint64_t> failed;
};

// Where and how much.
struct JournalOptions {
  std::string path;                      // the SQLite file (created mode 0600)
  int64_t max_bytes = int64_t{2} << 30;  // journal_full beyond this (file + WAL)
  bool sync_full = true;                 // fsync every commit (power-loss safe)
  int64_t dead_letter_max = 100;         // dead letters kept (the newest)
};

// The journal; append() and take_commits() from the broker loop, disk work on its own thread.
class Journal {
 public:
  // Opens (or creates) the file, checks its schema, starts the writer thread.
  static Expected<std::unique_ptr<Journal>> open(const JournalOptions& options);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Every job in the file, in acceptance order: queued, running (to dispatch again) and done
  // (results to keep). Call before the first append.
  Expected<std::vector<JournaledJob>> load();
  // The dead-letter list (encoded ext::DeadLetter maps), oldest first. Call before the first
  // append.
  Expected<std::vector<std::string>> load_dead_letters();

  // Queues a record for the next transaction and returns its ticket (increasing from 1). With
  // `wake` false the writer is not woken (flush() does it): the broker loop wakes it once per
  // turn, so one turn's records go into one transaction instead of the first record of a turn
  // starting a transaction of its own.
  uint64_t append(JournalRecord record, bool wake = true);
  // Wakes the writer for what append(..., false) queued.
  void flush();
  // Readable when commits are waiting in take_commits() (an eventfd; poll it with the sockets).
  int notify_fd() const { return notify_fd_; }
  // The outcome of every transaction finished since the last call.
  JournalCommits take_commits();

  // ok, or journal_unavailable with the last disk error (the file cannot be written).
  Status health() const;
  // True when accepting `body_bytes` more would pass max_bytes (the file, its WAL and what is
  // queued for writing).
  bool would_exceed(int64_t body_bytes) const;
  // Bytes on disk (file + WAL) at the last commit.
  int64_t size_bytes() const { return size_bytes_.load(); }
  // Transactions committed and records written since open, for mmi.status and metrics.
  int64_t transactions() const { return transactions_.load(); }
  int64_t records_written() const { return records_written_.load(); }

 private:
  Journal(JournalOptions options, sqlite3* db, int notify_fd);
  void writer_loop();
  Status write_batch(const std::vector<JournalRecord>& batch);
  void compact_if_due();
  int64_t measure_size() const;

  JournalOptions options_;
  sqlite3* db_ = nullptr;
  int notify_fd_ = -1;
  std::thread writer_;

  mutable std::mutex mutex_;  // guards everything below down to stop_
  std::condition_variable wake_writer_;
  std::deque<JournalRecord> pending_;
  int64_t pending_bytes_ = 0;
  uint64_t next_ticket_ = 1;
  uint64_t written_ticket_ = 0;  // tickets up to this one were handed to a transaction
  JournalCommits commits_;
  Status health_;
  bool stop_ = false;

  std::atomic<int64_t> size_bytes_{0};
  std::atomic<int64_t> transactions_{0};
  std::atomic<int64_t> records_written_{0};
  int64_t commits_since_compaction_ = 0;
};

}  // namespace ecgq::broker
