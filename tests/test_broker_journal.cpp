// The durable journal on real files: group commit, replay order and states, mode 0600, a
// kill -9 right after commits were reported durable, a file-size limit (the disk-full path),
// the size bound and a foreign format.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "broker/journal.hpp"

namespace ecgq::broker {
namespace {

namespace fs = std::filesystem;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ecgq-journal-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path() const { return (dir_ / "journal.db").string(); }

  fs::path dir_;
};

JournalRecord accept(uint64_t seq, const std::string& id, const std::string& body = "x") {
  JournalRecord r;
  r.kind = JournalRecord::Kind::Accept;
  r.job.seq = seq;
  r.job.id = id;
  r.job.service = "ecg-fm";
  r.job.submitter = "key-a";
  r.job.body = pack_frames({body});
  r.job.received_unix_ms = 1000 + static_cast<int64_t>(seq);
  return r;
}

JournalRecord by_seq(JournalRecord::Kind kind, uint64_t seq) {
  JournalRecord r;
  r.kind = kind;
  r.job.seq = seq;
  return r;
}

// Waits (poll on the notify fd, no sleeps) until `tickets` commits or failures were reported.
JournalCommits wait_commits(Journal& j, size_t tickets) {
  JournalCommits all;
  while (all.durable.size() + all.failed.size() < tickets) {
    pollfd p{j.notify_fd(), POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) break;
    auto c = j.take_commits();
    all.durable.insert(all.durable.end(), c.durable.begin(), c.durable.end());
    all.failed.insert(all.failed.end(), c.failed.begin(), c.failed.end());
  }
  return all;
}

TEST_F(JournalTest, CommitsAreReportedInTicketOrderAndReplayedInAcceptanceOrder) {
  {
    auto j = Journal::open({path()});
    ASSERT_TRUE(j.ok()) << j.status().to_string();
    for (uint64_t s = 1; s <= 50; ++s) (*j)->append(accept(s, "job-" + std::to_string(s)));
    auto c = wait_commits(**j, 50);
    ASSERT_EQ(c.durable.size(), 50u);
    for (size_t i = 0; i < 50; ++i) EXPECT_EQ(c.durable[i], i + 1);
    EXPECT_TRUE(c.failed.empty());
    EXPECT_EQ((*j)->records_written(), 50);
  }
  auto j = Journal::open({path()});
  ASSERT_TRUE(j.ok());
  auto jobs = (*j)->load();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 50u);
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ((*jobs)[i].seq, i + 1);
    EXPECT_EQ((*jobs)[i].id, "job-" + std::to_string(i + 1));
    EXPECT_EQ((*jobs)[i].state, JournalState::Queued);
    auto frames = unpack_frames((*jobs)[i].body);
    ASSERT_TRUE(frames.ok());
    EXPECT_EQ(*frames, std::vector<std::string>{"x"});
  }
}

TEST_F(JournalTest, DispatchFinishAndForgetChangeWhatReplaySees) {
  {
    auto j = Journal::open({path()});
    ASSERT_TRUE(j.ok());
    for (uint64_t s = 1; s <= 3; ++s) (*j)->append(accept(s, "j" + std::to_string(s)));
    auto d = by_seq(JournalRecord::Kind::Dispatch, 2);
    d.job.attempts = 1;
    (*j)->append(d);
    auto f = by_seq(JournalRecord::Kind::Finish, 3);
    f.job.result = "result-bytes";
    f.job.expires_unix_ms = 99;
    (*j)->append(f);
    (*j)->append(by_seq(JournalRecord::Kind::Forget, 1));
    ASSERT_EQ(wait_commits(**j, 6).durable.size(), 6u);
  }
  auto j = Journal::open({path()});
  auto jobs = (*j)->load();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id, "j2");
  EXPECT_EQ((*jobs)[0].state, JournalState::Running);
  EXPECT_EQ((*jobs)[0].attempts, 1);
  EXPECT_EQ((*jobs)[1].id, "j3");
  EXPECT_EQ((*jobs)[1].state, JournalState::Done);
  EXPECT_EQ((*jobs)[1].result, "result-bytes");
  EXPECT_EQ((*jobs)[1].expires_unix_ms, 99);
}

TEST_F(JournalTest, AFinishedJobsBodyIsDeletedAndItsRowKeepsTheResult) {
  {
    auto j = Journal::open({path()});
    ASSERT_TRUE(j.ok());
    (*j)->append(accept(1, "j1", std::string(3000, 'e')));
    (*j)->append(accept(2, "j2", std::string(3000, 'e')));
    auto f = by_seq(JournalRecord::Kind::Finish, 1);
    f.job.attempts = 1;
    f.job.result = "result-bytes";
    (*j)->append(f);
    ASSERT_EQ(wait_commits(**j, 3).durable.size(), 3u);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  sqlite3_prepare_v2(db, "SELECT group_concat(seq) FROM bodies", -1, &q, nullptr);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)), "2");
  sqlite3_finalize(q);
  sqlite3_close(db);
  auto j = Journal::open({path()});
  auto jobs = (*j)->load();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].state, JournalState::Done);
  EXPECT_EQ((*jobs)[0].attempts, 1);
  EXPECT_TRUE((*jobs)[0].body.empty());
  EXPECT_EQ((*jobs)[1].body, pack_frames({std::string(3000, 'e')}));
}

TEST_F(JournalTest, DeadLettersAreKeptInOrderUpToTheirBound) {
  JournalOptions options{path()};
  options.dead_letter_max = 2;
  {
    auto j = Journal::open(options);
    ASSERT_TRUE(j.ok());
    for (const char* letter : {"a", "b", "c"}) {
      auto r = by_seq(JournalRecord::Kind::DeadLetter, 1);
      r.job.result = letter;
      (*j)->append(r);
    }
    ASSERT_EQ(wait_commits(**j, 3).durable.size(), 3u);
  }
  auto j = Journal::open(options);
  auto letters = (*j)->load_dead_letters();
  ASSERT_TRUE(letters.ok()) << letters.status().to_string();
  EXPECT_EQ(*letters, (std::vector<std::string>{"b", "c"}));
}

TEST_F(JournalTest, TheFileAndItsWalAreReadableByTheOwnerOnly) {
  auto j = Journal::open({path()});
  ASSERT_TRUE(j.ok());
  (*j)->append(accept(1, "a"));
  ASSERT_EQ(wait_commits(**j, 1).durable.size(), 1u);
  for (const std::string& p : {path(), path() + "-wal"}) {
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << p;
  }
}

TEST_F(JournalTest, WhatWasReportedDurableSurvivesKillMinus9) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto j = Journal::open({path()});
    if (!j.ok()) ::_exit(3);
    for (uint64_t s = 1; s <= 200; ++s) (*j)->append(accept(s, "k" + std::to_string(s)));
    auto c = wait_commits(**j, 200);
    const char ok = c.durable.size() == 200 ? 'y' : 'n';
    [[maybe_unused]] auto n = ::write(ready[1], &ok, 1);
    // Keep writing until killed: the kill lands mid-transaction.
    for (uint64_t s = 201;; ++s) (*j)->append(accept(s, "k" + std::to_string(s)));
  }
  ::close(ready[1]);
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(ok, 'y');
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  auto j = Journal::open({path()});
  ASSERT_TRUE(j.ok()) << j.status().to_string();
  auto jobs = (*j)->load();
  ASSERT_TRUE(jobs.ok()) << jobs.status().to_string();
  ASSERT_GE(jobs->size(), 200u);
  for (size_t i = 0; i < jobs->size(); ++i) EXPECT_EQ((*jobs)[i].seq, i + 1);
}

TEST_F(JournalTest, AWriteFailureIsReportedAndTheJournalRecoversWhenTheDiskDoes) {
  // A child with a 256 KiB file-size limit: the disk-full path without a special filesystem.
  int result[2];
  ASSERT_EQ(::pipe(result), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    auto j = Journal::open({path()});
    if (!j.ok()) ::_exit(3);
    rlimit lim{256 * 1024, 256 * 1024};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    (*j)->append(accept(1, "small"));
    auto first = wait_commits(**j, 1);
    (*j)->append(accept(2, "big", std::string(1 << 20, 'b')));
    auto second = wait_commits(**j, 1);
    const bool unhealthy = (*j)->health().is(ErrorCode::JournalUnavailable);
    (*j)->append(accept(3, "small-again"));
    auto third = wait_commits(**j, 1);
    const char out[4] = {first.durable.size() == 1 ? 'y' : 'n',
                         second.failed.size() == 1 ? 'y' : 'n', unhealthy ? 'y' : 'n',
                         third.durable.size() == 1 && (*j)->health().ok() ? 'y' : 'n'};
    [[maybe_unused]] auto n = ::write(result[1], out, 4);
    ::_exit(0);
  }
  ::close(result[1]);
  char out[4] = {};
  ASSERT_EQ(::read(result[0], out, 4), 4);
  ::close(result[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(out[0], 'y') << "the first small job commits";
  EXPECT_EQ(out[1], 'y') << "the 1 MiB job fails to commit";
  EXPECT_EQ(out[2], 'y') << "health says journal_unavailable";
  EXPECT_EQ(out[3], 'y') << "a small job commits again and health recovers";

  auto j = Journal::open({path()});
  auto jobs = (*j)->load();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id, "small");
  EXPECT_EQ((*jobs)[1].id, "small-again");
}

TEST_F(JournalTest, WouldExceedCountsTheFileAndWhatIsQueued) {
  JournalOptions o{path()};
  o.max_bytes = 200 * 1024;
  auto j = Journal::open(o);
  ASSERT_TRUE(j.ok());
  EXPECT_FALSE((*j)->would_exceed(1024));
  EXPECT_TRUE((*j)->would_exceed(300 * 1024));
  (*j)->append(accept(1, "a", std::string(150 * 1024, 'a')));
  ASSERT_EQ(wait_commits(**j, 1).durable.size(), 1u);
  EXPECT_GT((*j)->size_bytes(), 150 * 1024);
  EXPECT_TRUE((*j)->would_exceed(100 * 1024));
}

TEST_F(JournalTest, AFileOfAnotherFormatIsRefusedNotGuessedAt) {
  { ASSERT_TRUE(Journal::open({path()}).ok()); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "UPDATE meta SET value='7' WHERE key='format'", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto j = Journal::open({path()});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), "journal_unavailable");
  EXPECT_NE(j.status().message().find("format 7"), std::string::npos) << j.status().message();
}

TEST_F(JournalTest, AFormat1FileIsUpgradedWithItsJobs) {
  // A journal as format 1 wrote it: bodies in the jobs' rows.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  const std::string body = pack_frames({"ecg"});
  const std::string sql =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE jobs(seq INTEGER PRIMARY KEY, id BLOB NOT NULL, service BLOB NOT NULL,"
      " submitter BLOB NOT NULL, body BLOB NOT NULL, received INTEGER NOT NULL,"
      " deadline INTEGER NOT NULL, attempts INTEGER NOT NULL, state INTEGER NOT NULL,"
      " result BLOB, expires INTEGER NOT NULL DEFAULT 0);"
      "INSERT INTO meta VALUES('format','1');"
      "INSERT INTO jobs VALUES(1,'running','ecg-fm','',x'" +
      [&] {
        std::string hex;
        for (unsigned char c : body) {
          char b[3];
          std::snprintf(b, sizeof b, "%02x", c);
          hex += b;
        }
        return hex;
      }() +
      "',10,0,1,1,NULL,0);"
      "INSERT INTO jobs VALUES(2,'done','ecg-fm','',x'',11,0,1,2,'result-bytes',99);";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto j = Journal::open({path()});
  ASSERT_TRUE(j.ok()) << j.status().to_string();
  auto jobs = (*j)->load();
  ASSERT_TRUE(jobs.ok()) << jobs.status().to_string();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id, "running");
  EXPECT_EQ((*jobs)[0].state, JournalState::Running);
  EXPECT_EQ((*jobs)[0].attempts, 1);
  EXPECT_EQ((*jobs)[0].body, body);
  EXPECT_EQ((*jobs)[1].result, "result-bytes");
  // New records go to the upgraded tables.
  (*j)->append(accept(3, "new"));
  EXPECT_EQ(wait_commits(**j, 1).durable.size(), 1u);
}

TEST_F(JournalTest, AnUnwritablePlaceGivesASpecificError) {
  auto j = Journal::open({(dir_ / "no" / "such" / "dir" / "j.db").string()});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), "journal_unavailable");
  EXPECT_NE(j.status().message().find("cannot create journal"), std::string::npos);
}

TEST(JournalFrames, PackAndUnpackRoundTripAndRefuseGarbage) {
  const std::vector<std::string> frames{"", std::string("\0\1\2", 3), std::string(70000, 'z')};
  auto back = unpack_frames(pack_frames(frames));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, frames);
  EXPECT_EQ(unpack_frames("\x92\x01").status().code(), "journal_corrupt");
  EXPECT_EQ(unpack_frames("not msgpack at all \xc1").status().code(), "journal_corrupt");
}

}  // namespace
}  // namespace ecgq::broker
