// Scale-out: how close the real ecgq-broker gets to N workers' ideal throughput. The broker runs
// as a child process on 127.0.0.1; the workers are SYNTHETIC: threads of this process that speak
// MDP/Worker 0.2 (READY with ecgq metadata, HEARTBEATs) and answer each REQUEST with a FINAL
// carrying a valid result body after a fixed service time, waited on a timer (no model runs, no
// CPU is burnt, so 64 of them fit on 2 cores). Producer threads keep `window` distinct jobs of a
// real 10 s 12-lead f32 ECG size in flight. For each N: jobs/s against the ideal N / service
// time, and job latency percentiles.
//
//   bench_scaleout [--workers 1,2,4,8,16,32,64] [--service-ms 200] [--seconds 5] [--samples 5000]
//                  [--producers 2] [--queued K] [--capacity 1] [--broker-bin PATH] [--json]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <msgpack.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "bench/bench_support.hpp"
#include "common/time.hpp"
#include "protocol/protocol.hpp"
#include "protocol/schema.hpp"

using namespace ecgq;
using bench::free_port;
using bench::recv_frames;
using bench::send_frames;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::vector<int> workers{1, 2, 4, 8, 16, 32, 64};
  double service_ms = 200;
  double seconds = 5;  // measured time per N, after the warm-up
  int64_t samples = 5000;
  int producers = 2;
  int queued = -1;  // jobs kept queued beyond one per worker slot; -1 = max(2, slots / 4)
  int64_t capacity = 1;
  std::string broker_bin;
  bool json = false;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_scaleout [--workers 1,2,4,...] [--service-ms MS] [--seconds S]\n"
               "                      [--samples N] [--producers P] [--queued K] [--capacity C]\n"
               "                      [--broker-bin PATH] [--json]\n");
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--json") {
      a.json = true;
      continue;
    }
    if (i + 1 >= argc) usage();
    const std::string v = argv[++i];
    if (k == "--workers") {
      a.workers.clear();
      for (size_t p = 0; p < v.size();) {
        const size_t q = v.find(',', p);
        a.workers.push_back(std::atoi(v.substr(p, q - p).c_str()));
        p = q == std::string::npos ? v.size() : q + 1;
      }
    } else if (k == "--service-ms") {
      a.service_ms = std::atof(v.c_str());
    } else if (k == "--seconds") {
      a.seconds = std::atof(v.c_str());
    } else if (k == "--samples") {
      a.samples = std::atoll(v.c_str());
    } else if (k == "--producers") {
      a.producers = std::atoi(v.c_str());
    } else if (k == "--queued") {
      a.queued = std::atoi(v.c_str());
    } else if (k == "--capacity") {
      a.capacity = std::atoll(v.c_str());
    } else if (k == "--broker-bin") {
      a.broker_bin = v;
    } else {
      usage();
    }
  }
  for (int n : a.workers)
    if (n < 1) usage();
  if (a.service_ms <= 0 || a.seconds <= 0 || a.samples < 1 || a.producers < 1 || a.capacity < 1)
    usage();
  return a;
}

// ecgq-broker next to this binary (both land in BUILD/bin).
std::string default_broker_bin() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "ecgq-broker";
  std::string self(buf, static_cast<size_t>(n));
  return self.substr(0, self.rfind('/') + 1) + "ecgq-broker";
}

// The broker as a child process; SIGTERM then SIGKILL on destruction.
class BrokerProcess {
 public:
  BrokerProcess(const std::string& bin, const std::string& endpoint) {
    const std::vector<std::string> args = {
        bin,       "--bind",      endpoint,  "--log-level",      "warn", "--max-queue-per-client",
        "1000000", "--max-queue", "1000000", "--shutdown-grace", "100ms"};
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      std::fprintf(stderr, "bench_scaleout: cannot exec %s: %s\n", bin.c_str(), strerror(errno));
      _exit(127);
    }
  }
  ~BrokerProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;
  // True while the child runs.
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  // CPU seconds (user + system) the child used so far, from /proc/PID/stat; -1 when unreadable.
  double cpu_seconds() const {
    FILE* f = std::fopen(("/proc/" + std::to_string(pid_) + "/stat").c_str(), "r");
    if (!f) return -1;
    char buf[1024];
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
    unsigned long long utime = 0, stime = 0;
    if (!p || std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                          &stime) != 2)
      return -1;
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

 private:
  pid_t pid_ = -1;
};

// One finished job as a producer saw it.
struct Completion {
  Clock::time_point done;
  double latency_ms;  // submit to FINAL at the producer
  double queued_ms;   // waiting in the broker's queue, as the broker told the worker
  bool ok;
  std::string worker_id;  // which synthetic worker ran it
};

// What one measurement run shares between its threads.
struct Run {
  std::string endpoint;
  std::string service = "ecg-fm";
  std::atomic<bool> stop{false};
  std::atomic<int> workers_started_work{0};  // workers that finished at least one job
  std::mutex mu;
  std::vector<Completion> completions;
};

// A synthetic MDP worker: answers each REQUEST with a FINAL `service` later, from a timer.
void synthetic_worker(zmq::context_t& ctx, Run& run, int index, const Args& a) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(run.endpoint);
  const std::string worker_id = "synthetic-" + std::to_string(index);
  msgpack::sbuffer meta;
  msgpack::packer<msgpack::sbuffer> pk(meta);
  pk.pack_map(4);
  pk.pack(std::string("v"));
  pk.pack(1);
  pk.pack(std::string("capacity"));
  pk.pack(a.capacity);
  pk.pack(std::string("state"));
  pk.pack(std::string("warm"));
  pk.pack(std::string("worker_id"));
  pk.pack(worker_id);
  const std::string ready(meta.data(), meta.size());
  send_frames(s, mdp::ready_frames(run.service, ready));

  struct Pending {
    Clock::time_point due;
    std::string reply_to;
    std::string id;
    double queued_ms;
  };
  std::deque<Pending> pending;  // due times are in arrival order: service time is fixed
  const auto service = std::chrono::microseconds(static_cast<int64_t>(a.service_ms * 1000));
  const auto heartbeat_every = std::chrono::milliseconds(1000);
  auto heartbeat_at = Clock::now() + heartbeat_every;
  bool counted = false;
  while (!run.stop) {
    auto wake = std::min(heartbeat_at, Clock::now() + std::chrono::milliseconds(100));
    if (!pending.empty()) wake = std::min(wake, pending.front().due);
    const auto left = wake - Clock::now();
    const auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(left);
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (left_ms.count() > 0) {
      zmq::poll(&item, 1, left_ms);
    } else {
      // zmq_poll counts whole milliseconds: sleep the sub-millisecond rest so FINALs leave on
      // time, then look at the socket without blocking.
      if (left.count() > 0) std::this_thread::sleep_for(left);
      zmq::poll(&item, 1, std::chrono::milliseconds(0));
    }
    if (item.revents & ZMQ_POLLIN) {
      while (true) {
        mdp::Frames frames = recv_frames(s, zmq::recv_flags::dontwait);
        if (frames.empty()) break;
        auto msg = mdp::parse_worker(frames);
        if (!msg) continue;
        if (msg->command == mdp::WorkerCommand::Disconnect) {
          send_frames(s, mdp::ready_frames(run.service, ready));  // re-register
          pending.clear();
          continue;
        }
        if (msg->command != mdp::WorkerCommand::Request || msg->body.empty()) continue;
        Pending p;
        p.due = Clock::now() + service;
        p.reply_to = msg->reply_to;
        auto job = schema::decode_job(msg->body[0]);
        p.id = job ? job->id : "";
        p.queued_ms = job && job->dispatch ? job->dispatch->queued_ms : 0;
        pending.push_back(std::move(p));
      }
    }
    const auto now = Clock::now();
    while (!pending.empty() && pending.front().due <= now) {
      const Pending& p = pending.front();
      schema::Result r;
      r.id = p.id;
      r.labels.reserve(17);
      for (int i = 0; i < 17; ++i) r.labels.push_back("synthetic_label_" + std::to_string(i));
      r.probs.assign(17, 0.5f);
      r.n_segments = 2;
      r.model.kind = "synthetic";
      r.model.name = "synthetic-200ms";
      r.model.precision = "fp32";
      r.worker_id = worker_id;
      r.batch_segments = 2;
      r.batch_jobs = 1;
      r.timings.queued_ms = p.queued_ms;
      r.timings.infer_ms = a.service_ms;
      send_frames(s, mdp::worker_reply_frames(mdp::WorkerCommand::Final, p.reply_to,
                                              {schema::encode_result(r)}));
      pending.pop_front();
      heartbeat_at = now + heartbeat_every;  // any traffic counts as a heartbeat
      if (!counted) {
        counted = true;
        ++run.workers_started_work;
      }
    }
    if (now >= heartbeat_at) {
      send_frames(s, mdp::heartbeat_frames());
      heartbeat_at = now + heartbeat_every;
    }
  }
}

// A producer: keeps `window` distinct jobs in flight on its own DEALER.
void producer(zmq::context_t& ctx, Run& run, int index, size_t window, int64_t samples) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(run.endpoint);
  schema::Job job;
  job.ecg.dtype = "f32";
  job.ecg.shape = {12, samples};
  std::vector<float> x(static_cast<size_t>(12 * samples));
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = 0.5f *
           std::sin(0.0126f * static_cast<float>(i % samples) + static_cast<float>(i / samples));
  job.ecg.data.assign(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
  job.fs = 500;
  job.leads = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
  std::map<std::string, Clock::time_point> outstanding;
  uint64_t seq = 0;
  std::vector<Completion> local;
  while (!run.stop) {
    while (outstanding.size() < window) {
      // Every body differs (id and one sample), so the broker's result cache cannot answer it.
      ++seq;
      job.id = "p" + std::to_string(index) + "-" + std::to_string(seq);
      const float v = static_cast<float>(seq) * 1e-6f;
      std::memcpy(&job.ecg.data[0], &v, sizeof v);
      const auto now = Clock::now();
      send_frames(s, mdp::client_frames(mdp::ClientCommand::Request, run.service,
                                        {schema::encode_job(job)}));
      outstanding.emplace(job.id, now);
    }
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    if ((item.revents & ZMQ_POLLIN) == 0) continue;
    while (true) {
      mdp::Frames frames = recv_frames(s, zmq::recv_flags::dontwait);
      if (frames.empty()) break;
      auto msg = mdp::parse_client(frames);
      if (!msg || msg->command != mdp::ClientCommand::Final || msg->body.empty()) continue;
      const auto now = Clock::now();
      auto r = schema::decode_result(msg->body[0]);
      if (!r) continue;
      auto it = outstanding.find(r->id);
      if (it == outstanding.end()) continue;
      local.push_back({now, ms_between(it->second, now), r->timings.queued_ms, r->status == "ok",
                       r->worker_id});
      outstanding.erase(it);
    }
    if (local.size() >= 64) {
      std::lock_guard<std::mutex> lock(run.mu);
      run.completions.insert(run.completions.end(), local.begin(), local.end());
      local.clear();
    }
  }
  std::lock_guard<std::mutex> lock(run.mu);
  run.completions.insert(run.completions.end(), local.begin(), local.end());
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

// One row of the table.
struct Row {
  int workers = 0;
  size_t window = 0;
  size_t jobs = 0;  // completions inside the measured interval
  size_t failed = 0;
  double jobs_per_s = 0, ideal = 0, efficiency = 0;
  double p50 = 0, p99 = 0, queued_p50 = 0, overhead_p50 = 0;
  double broker_cpu = 0;  // broker CPU time / wall time over the measured interval
};

Row measure(const Args& a, int n) {
  Run run;
  run.endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  BrokerProcess broker(a.broker_bin, run.endpoint);
  zmq::context_t ctx(2);
  const int64_t slots = n * a.capacity;
  const int queued = a.queued >= 0 ? a.queued : std::max<int>(2, static_cast<int>(slots / 4));
  const size_t window = static_cast<size_t>(slots + queued);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back([&, i] { synthetic_worker(ctx, run, i, a); });
  const size_t per_producer = (window + a.producers - 1) / a.producers;
  for (int p = 0; p < a.producers; ++p)
    threads.emplace_back([&, p] { producer(ctx, run, p, per_producer, a.samples); });

  // Warm-up: every worker registered and answered at least once.
  const auto warm_deadline = Clock::now() + std::chrono::seconds(30);
  while (run.workers_started_work < n && Clock::now() < warm_deadline && broker.running())
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (run.workers_started_work < n) {
    std::fprintf(stderr, "bench_scaleout: only %d of %d workers got a job within 30 s%s\n",
                 run.workers_started_work.load(), n, broker.running() ? "" : " (broker exited)");
    std::exit(1);
  }
  std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(a.service_ms * 1000)));
  const double cpu0 = broker.cpu_seconds();
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(a.seconds * 1e6)));
  const auto t1 = Clock::now();
  const double cpu1 = broker.cpu_seconds();
  run.stop = true;
  for (auto& t : threads) t.join();

  std::vector<Completion> in;
  for (const auto& c : run.completions)
    if (c.done >= t0 && c.done <= t1) in.push_back(c);
  std::sort(in.begin(), in.end(), [](const auto& x, const auto& y) { return x.done < y.done; });
  Row row;
  row.workers = n;
  row.window = window;
  row.jobs = in.size();
  row.ideal = static_cast<double>(slots) / (a.service_ms / 1000.0);
  // Per worker, from its first to its last completion inside the interval, summed: each worker
  // is periodic, so this is exact whatever the workers' phases (counting all completions over
  // the interval is off by up to one job per worker, and workers started together finish in
  // bursts).
  std::map<std::string, std::vector<Clock::time_point>> by_worker;
  for (const auto& c : in) by_worker[c.worker_id].push_back(c.done);
  for (const auto& [id, times] : by_worker) {
    if (times.size() < 2) continue;
    const double span = std::chrono::duration<double>(times.back() - times.front()).count();
    if (span > 0) row.jobs_per_s += static_cast<double>(times.size() - 1) / span;
  }
  row.efficiency = row.jobs_per_s / row.ideal;
  row.broker_cpu =
      cpu0 >= 0 && cpu1 >= 0 ? (cpu1 - cpu0) / std::chrono::duration<double>(t1 - t0).count() : -1;
  std::vector<double> lat, q, over;
  for (const auto& c : in) {
    if (!c.ok) ++row.failed;
    lat.push_back(c.latency_ms);
    q.push_back(c.queued_ms);
    over.push_back(c.latency_ms - c.queued_ms - a.service_ms);
  }
  row.p50 = percentile(lat, 0.50);
  row.p99 = percentile(lat, 0.99);
  row.queued_p50 = percentile(q, 0.50);
  row.overhead_p50 = percentile(over, 0.50);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (a.broker_bin.empty()) a.broker_bin = default_broker_bin();
  signal(SIGPIPE, SIG_IGN);
  schema::Job probe;
  probe.id = "p0-1";
  probe.ecg.dtype = "f32";
  probe.ecg.shape = {12, a.samples};
  probe.ecg.data.assign(static_cast<size_t>(12 * a.samples * 4), '\0');
  probe.fs = 500;
  probe.leads = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
  const size_t body_bytes = schema::encode_job(probe).size();
  std::printf(
      "bench_scaleout: SYNTHETIC workers (threads of this process speaking MDP/Worker 0.2, "
      "fixed service time %.0f ms on a timer, no model), real broker %s\n"
      "job body %zu bytes (12 x %lld f32, every body distinct), %d producer DEALERs, worker "
      "capacity %lld, %.1f s measured per row\n",
      a.service_ms, a.broker_bin.c_str(), body_bytes, (long long)a.samples, a.producers,
      (long long)a.capacity, a.seconds);
  std::printf("%8s %7s %6s %9s %9s %10s %9s %9s %10s %12s %10s\n", "workers", "window", "jobs",
              "jobs/s", "ideal", "efficiency", "p50 ms", "p99 ms", "queued p50", "overhead p50",
              "broker CPU");
  std::fflush(stdout);
  for (int n : a.workers) {
    const Row r = measure(a, n);
    std::printf("%8d %7zu %6zu %9.2f %9.2f %9.1f%% %9.1f %9.1f %10.1f %12.2f %9.1f%%%s\n",
                r.workers, r.window, r.jobs, r.jobs_per_s, r.ideal, 100 * r.efficiency, r.p50,
                r.p99, r.queued_p50, r.overhead_p50, 100 * r.broker_cpu,
                r.failed ? "  (FAILED JOBS)" : "");
    if (a.json)
      std::printf(
          "json: {\"workers\": %d, \"capacity\": %lld, \"window\": %zu, \"jobs\": %zu, "
          "\"failed\": %zu, \"jobs_per_s\": %.3f, \"ideal\": %.3f, \"efficiency\": %.5f, "
          "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"queued_p50_ms\": %.2f, "
          "\"overhead_p50_ms\": %.3f, \"broker_cpu\": %.4f, \"service_ms\": %.1f, \"body_bytes\": "
          "%zu, "
          "\"seconds\": %.2f, \"producers\": %d}\n",
          r.workers, (long long)a.capacity, r.window, r.jobs, r.failed, r.jobs_per_s, r.ideal,
          r.efficiency, r.p50, r.p99, r.queued_p50, r.overhead_p50, r.broker_cpu, a.service_ms,
          body_bytes, a.seconds, a.producers);
    std::fflush(stdout);
  }
  return 0;
}
