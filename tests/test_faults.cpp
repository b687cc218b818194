// The fault-injection suite (issue 12; ctest label `faults`): the real broker and workers with the
// tiny model on 127.0.0.1 under a steady load of distinct jobs, while a driver kills the broker
// (kill -9 with the journal on), kills workers every second, stops one mid-job, runs a black-hole
// and a garbage worker beside healthy ones, and fills the journal's filesystem. Each checks by job
// id that every job sent was answered exactly once (a result or a specific error) and prints the
// counts (docs/reliability.md, "Faults").
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <regex>

#include "tests/job_ledger.hpp"
#include "tests/test_durable_broker.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

// A producer (the client library, which rides through broker restarts) keeping `window` distinct
// jobs outstanding until `total` were sent; every event goes to its ledger.
class SteadyLoad {
 public:
  SteadyLoad(const std::string& endpoint, size_t total, size_t window)
      : client_(connect(endpoint, 60s)),
        total_(total),
        window_(window),
        ecg_(synthetic_ecg(2500)) {}

  // Sends while fewer than `window` are outstanding, then takes one event (waiting up to 20 ms).
  void step() {
    while (!client_failed_ && ledger_.sent() < total_ && client_->outstanding() < window_) send();
    auto event = client_->poll(20ms);
    if (!event.ok()) {
      client_failed_ = true;
      ADD_FAILURE() << event.status().to_string();
    } else if (event->has_value()) {
      ledger_.record(**event);
    }
  }
  // Steps until `condition` holds (true) or `limit` passes or the client failed (false).
  bool run_until(const std::function<bool()>& condition, Millis limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
      if (client_failed_ || std::chrono::steady_clock::now() > until) return false;
      step();
    }
    return true;
  }
  // Sends no more jobs (a load that ran for as long as a fault did).
  void stop_sending() { total_ = ledger_.sent(); }
  // Every job sent and answered.
  bool done() const { return ledger_.sent() == total_ && client_->outstanding() == 0; }
  const JobLedger& ledger() const { return ledger_; }
  // FINALs the client dropped as duplicates of answered jobs.
  uint64_t duplicates_suppressed() const { return client_->unmatched_finals(); }

 private:
  // One more job: the shared record with its first sample moved, so no two bodies are equal.
  void send() {
    schema::Job job = f32_job(ecg_);
    const float first = ecg_[0] + 1e-4f * static_cast<float>(ledger_.sent());
    std::memcpy(job.ecg.data.data(), &first, sizeof first);
    job.id = client_->next_id();
    auto id = client_->submit(std::move(job));
    if (!id.ok()) {
      client_failed_ = true;
      ADD_FAILURE() << id.status().to_string();
      return;
    }
    ledger_.sent(*id);
  }

  std::unique_ptr<client::Client> client_;
  size_t total_, window_;
  std::vector<float> ecg_;
  JobLedger ledger_;
  bool client_failed_ = false;
};

// What brokers logged across their lives: FINALs dropped as late or duplicate (from a registered
// worker, or from one the broker had declared lost), re-dispatches (requeued after a lost worker
// or max_job_time, or restored as running after a restart).
struct BrokerLog {
  size_t dropped_finals = 0, requeued = 0, restored_running = 0;
  // Adds one broker process's log.
  void add(const std::string& log) {
    dropped_finals += occurrences(log, "event=dropped_final");
    static const std::regex unknown("event=unknown_worker [^\n]*command=FINAL");
    dropped_finals += static_cast<size_t>(std::distance(
        std::sregex_iterator(log.begin(), log.end(), unknown), std::sregex_iterator()));
    requeued += occurrences(log, "event=requeued");
    static const std::regex restored("event=restored queued=\\d+ running=(\\d+)");
    for (std::sregex_iterator it(log.begin(), log.end(), restored), end; it != end; ++it)
      restored_running += std::stoul((*it)[1]);
  }
  std::string text(const SteadyLoad& load) const {
    return "duplicates_suppressed={broker_dropped_finals=" + std::to_string(dropped_finals) +
           " client_unmatched_finals=" + std::to_string(load.duplicates_suppressed()) +
           "} redispatches={requeued=" + std::to_string(requeued) +
           " restored_running=" + std::to_string(restored_running) + "}";
  }
};

// Workers w1..wN of the tiny model, each restartable under its id.
class WorkerPool {
 public:
  WorkerPool(std::string endpoint, int n) : endpoint_(std::move(endpoint)) {
    for (int i = 1; i <= n; ++i) restart("w" + std::to_string(i));
  }
  void restart(const std::string& id) { workers_[id] = start_worker(endpoint_, id); }
  ChildProcess& at(const std::string& id) { return *workers_.at(id); }
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    for (const auto& [id, w] : workers_) out.push_back(id);
    return out;
  }
  // Waits until every worker is registered and warm.
  bool ready() {
    auto c = connect(endpoint_);
    return wait_workers(*c, ids(), "warm", 60s);
  }

 private:
  std::string endpoint_;
  std::map<std::string, std::unique_ptr<ChildProcess>> workers_;
};

TEST(Faults, TheBrokerKilledTwelveTimesWithTheJournalOnLosesNoAcceptedJob) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  constexpr size_t kJobs = 1200;
  constexpr int kKills = 12;
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"), {"--result-cache-entries", "0"});
  ASSERT_TRUE(broker.start());
  WorkerPool workers(broker.endpoint(), 2);
  ASSERT_TRUE(workers.ready());
  SteadyLoad load(broker.endpoint(), kJobs, 32);
  BrokerLog log;
  for (int kill = 1; kill <= kKills; ++kill) {
    // The journal has landed: `accepted` (sent only after the commit) for more jobs since the
    // restart; then kill -9 with jobs queued, in flight and being committed.
    const size_t before = load.ledger().accepted();
    ASSERT_TRUE(load.run_until(
        [&] { return load.ledger().accepted() >= before + kJobs / (kKills + 2); }, 120s))
        << "kill " << kill << ": accepted " << load.ledger().accepted();
    log.add(broker.proc().stderr_text());
    broker.kill9();
    ASSERT_TRUE(broker.start()) << "restart " << kill;
  }
  ASSERT_TRUE(load.run_until([&] { return load.done(); }, 300s))
      << load.ledger().finished() << " of " << load.ledger().sent() << " answered";
  log.add(broker.proc().stderr_text());
  load.ledger().expect_each_answered_once();
  EXPECT_GE(load.ledger().accepted(), 1000u);
  load.ledger().print("broker kill -9 x12", "kills=12 " + log.text(load));
}

// The mmi.status in_flight of worker `id` (0 when it is not registered).
int64_t in_flight(client::Client& c, const std::string& id) {
  const client::Json s = status_json(c);
  if (!s.is_object() || !s.contains("services") || !s["services"].contains("ecg-fm")) return 0;
  for (const auto& w : s["services"]["ecg-fm"]["workers"])
    if (w.value("id", "") == id) return w.value("in_flight", int64_t{0});
  return 0;
}

TEST(Faults, WorkersKilledEverySecondAndOneStoppedMidJobLoseNoJob) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Broker broker({"--result-cache-entries", "0"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  WorkerPool workers(broker.endpoint, 3);
  ASSERT_TRUE(workers.ready());
  SteadyLoad load(broker.endpoint, 100000, 16);  // until the storm ends
  auto status = connect(broker.endpoint);
  // SIGSTOP while w1 holds a job: heartbeats expire, the job goes to another worker; after
  // SIGCONT its late FINAL must not reach the producer.
  ASSERT_TRUE(load.run_until([&] { return in_flight(*status, "w1") > 0; }, 60s));
  workers.at("w1").signal(SIGSTOP);
  std::smatch lost;
  static const std::regex lost_line("event=worker_lost worker=w1 [^\n]* in_flight=(\\d+)");
  std::string blog;
  ASSERT_TRUE(load.run_until(
      [&] {
        blog = broker.proc->stderr_text();
        return std::regex_search(blog, lost, lost_line);
      },
      30s));
  EXPECT_GE(std::stoi(lost[1]), 1) << "w1 was stopped holding no job: " << lost[0];
  workers.at("w1").signal(SIGCONT);
  // kill -9 of one worker every second for 15 s (round robin), each restarted at once under its
  // id; the fault schedule, not a synchronisation: the load runs between kills.
  const auto ids = workers.ids();
  constexpr size_t kKills = 15;
  size_t kills = 0;
  auto next_kill = std::chrono::steady_clock::now() + 1s;
  ASSERT_TRUE(load.run_until(
      [&] {
        if (std::chrono::steady_clock::now() < next_kill) return false;
        const std::string& id = ids[kills++ % ids.size()];
        workers.at(id).signal(SIGKILL);
        workers.at(id).wait(10s);
        workers.restart(id);
        next_kill += 1s;
        return kills == kKills;
      },
      60s));
  load.stop_sending();
  ASSERT_TRUE(load.run_until([&] { return load.done(); }, 300s))
      << load.ledger().finished() << " of " << load.ledger().sent() << " answered";
  load.ledger().expect_each_answered_once({"worker_lost"});
  BrokerLog log;
  log.add(broker.proc->stderr_text());
  load.ledger().print("worker kill -9 every 1 s + SIGSTOP/SIGCONT",
                      "worker_kills=" + std::to_string(kills) + " " + log.text(load));
}

TEST(Faults, ABlackHoleAndAGarbageWorkerBesideHealthyOnesLoseNoJob) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Broker broker({"--max-job-time", "2s", "--result-cache-entries", "0"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto hole = start_rogue(broker.endpoint, "blackhole", "hole", 1000);
  auto junk = start_rogue(broker.endpoint, "garbage", "junk");
  WorkerPool workers(broker.endpoint, 2);
  ASSERT_TRUE(workers.ready());
  {
    auto c = connect(broker.endpoint);
    ASSERT_TRUE(wait_workers(*c, {"hole", "junk"}));
  }
  SteadyLoad load(broker.endpoint, 400, 16);
  ASSERT_TRUE(load.run_until([&] { return load.done(); }, 300s))
      << load.ledger().finished() << " of " << load.ledger().sent() << " answered";
  load.ledger().expect_each_answered_once({"worker_lost", "bad_result"});
  EXPECT_GE(jobs_received(*hole), 1u) << "the black hole took no job: the run proves nothing";
  EXPECT_GE(jobs_received(*junk), 1u) << "the garbage worker took no job";
  BrokerLog log;
  log.add(broker.proc->stderr_text());
  load.ledger().print("black-hole + garbage workers",
                      "swallowed=" + std::to_string(jobs_received(*hole)) + " garbage_finals=" +
                          std::to_string(jobs_received(*junk)) + " " + log.text(load));
}

// A tmpfs of `bytes` at `dir` in a mount namespace of this test process's own (the broker it
// starts inherits it); "" when done, else why not (no privilege: the test skips).
std::string mount_small_tmpfs(const std::string& dir, size_t bytes) {
  if (unshare(CLONE_NEWNS) != 0) return std::string("unshare(CLONE_NEWNS): ") + strerror(errno);
  if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return std::string("making / private: ") + strerror(errno);
  const std::string size = "size=" + std::to_string(bytes) + ",mode=0700";
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, size.c_str()) != 0)
    return std::string("mount -t tmpfs: ") + strerror(errno);
  return "";
}

// Writes `path` until the filesystem is full; returns the bytes written.
size_t fill(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return 0;
  const std::string block(64 * 1024, 'f');
  size_t written = 0;
  for (ssize_t n; (n = ::write(fd, block.data(), block.size())) > 0;) written += size_t(n);
  for (ssize_t n; (n = ::write(fd, block.data(), 512)) > 0;) written += size_t(n);
  ::close(fd);
  return written;
}

TEST(Faults, AFullJournalFilesystemRefusesNewJobsAndLosesNoAcceptedOne) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  TempDir dir;
  const std::string mounted = dir.file("tmpfs");
  ASSERT_EQ(::mkdir(mounted.c_str(), 0700), 0);
  if (const std::string why = mount_small_tmpfs(mounted, 16u << 20); !why.empty())
    GTEST_SKIP() << "cannot mount a small tmpfs for the journal here (" << why << ")";
  DurableBroker broker(mounted + "/journal.db", {"--result-cache-entries", "0"});
  ASSERT_TRUE(broker.start());
  WorkerPool workers(broker.endpoint(), 1);
  ASSERT_TRUE(workers.ready());
  SteadyLoad load(broker.endpoint(), 400, 16);
  ASSERT_TRUE(load.run_until([&] { return load.ledger().accepted() >= 50; }, 120s));
  // The disk fills: new jobs get journal_unavailable, accepted ones still finish.
  const std::string filler = mounted + "/filler";
  const size_t filled = fill(filler);
  const auto refused = [&] {
    size_t n = 0;
    for (const auto& [id, r] : load.ledger().finals()) {
      if (!r.front().error || r.front().error->code != "journal_unavailable") continue;
      EXPECT_FALSE(load.ledger().was_accepted(id)) << id << " was accepted, then refused";
      ++n;
    }
    return n;
  };
  ASSERT_TRUE(load.run_until([&] { return refused() >= 20; }, 120s))
      << "no journal_unavailable after filling " << filled << " bytes";
  // Space again: jobs are accepted again and the log says so.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  const size_t accepted_when_freed = load.ledger().accepted();
  ASSERT_TRUE(load.run_until([&] { return load.done(); }, 300s))
      << load.ledger().finished() << " of " << load.ledger().sent() << " answered";
  EXPECT_GT(load.ledger().accepted(), accepted_when_freed)
      << "no job accepted after the space came back";
  const std::string blog = broker.proc().stderr_text();
  // Logged once per change of health (it may flap while the disk is nearly full).
  const size_t unavailable = occurrences(blog, "event=journal_unavailable ");
  const size_t available = occurrences(blog, "event=journal_available ");
  EXPECT_GE(unavailable, 1u);
  EXPECT_GE(available, 1u);
  load.ledger().expect_each_answered_once({"journal_unavailable"});
  BrokerLog log;
  log.add(blog);
  load.ledger().print("journal filesystem full (16 MiB tmpfs)",
                      "filler_bytes=" + std::to_string(filled) +
                          " log_unavailable=" + std::to_string(unavailable) +
                          " log_available=" + std::to_string(available) + " " + log.text(load));
  broker.kill9();
  umount2(mounted.c_str(), MNT_DETACH);
}

}  // namespace
}  // namespace ecgq::test
