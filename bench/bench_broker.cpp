// Broker throughput: jobs/s through the real broker (in-process, on its own thread) with a
// trivial in-process worker that answers every REQUEST with a FINAL at once, driven by the
// client library with many jobs in flight; compared in the same run with a raw ZeroMQ
// DEALER/ROUTER echo of the same message sizes and window, and with the durable journal on
// (SQLite in a temporary directory, or --journal-dir: put it on the disk you mean to use) with
// journal_sync full and normal. The paths are interleaved for --rounds rounds (journal off and on
// alternate which runs first) and the best round of each is reported; the per-round figures give
// the spread. --json adds one `json: {...}` line for scripts.
//
//   bench_broker [--jobs 20000] [--window 256] [--samples 64] [--capacity 256] [--rounds 3]
//                [--journal-dir DIR] [--paths raw,generic,ecgq,journal,normal] [--json]
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <msgpack.hpp>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "bench/bench_support.hpp"
#include "broker/broker.hpp"
#include "client/client.hpp"
#include "protocol/protocol.hpp"
#include "protocol/schema.hpp"

using namespace ecgq;
using bench::free_port;
using bench::recv_frames;
using bench::send_frames;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  int64_t jobs = 20000;
  size_t window = 256;
  int64_t samples = 64;
  int64_t capacity = 256;
  int rounds = 3;
  std::string journal_dir;                                // "" = a fresh temporary directory
  std::string paths = "raw,generic,ecgq,journal,normal";  // which measurements each round makes
  bool json = false;
};

[[noreturn]] void usage() {
  std::fprintf(
      stderr,
      "usage: bench_broker [--jobs N] [--window N] [--samples N] [--capacity N] "
      "[--rounds N] [--journal-dir DIR] [--paths raw,generic,ecgq,journal,normal] [--json]\n");
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
    if (k == "--journal-dir") {
      a.journal_dir = argv[++i];
      continue;
    }
    if (k == "--paths") {
      a.paths = argv[++i];
      continue;
    }
    const long long v = std::atoll(argv[++i]);
    if (v < 1) usage();
    if (k == "--jobs")
      a.jobs = v;
    else if (k == "--window")
      a.window = static_cast<size_t>(v);
    else if (k == "--samples")
      a.samples = v;
    else if (k == "--capacity")
      a.capacity = v;
    else if (k == "--rounds")
      a.rounds = static_cast<int>(v);
    else
      usage();
  }
  return a;
}

// An MDP worker that answers each REQUEST with a minimal ok result for the job's id.
void echo_worker(zmq::context_t& ctx, const std::string& endpoint, const std::string& service,
                 int64_t capacity, const std::atomic<bool>& stop) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(endpoint);
  msgpack::sbuffer meta;
  msgpack::packer<msgpack::sbuffer> pk(meta);
  pk.pack_map(4);
  pk.pack(std::string("v"));
  pk.pack(1);
  pk.pack(std::string("capacity"));
  pk.pack(capacity);
  pk.pack(std::string("state"));
  pk.pack(std::string("warm"));
  pk.pack(std::string("worker_id"));
  pk.pack(std::string("bench-echo"));
  send_frames(s, mdp::ready_frames(service, std::string(meta.data(), meta.size())));
  auto heartbeat_at = Clock::now();
  while (!stop) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    if (Clock::now() >= heartbeat_at) {
      send_frames(s, mdp::heartbeat_frames());
      heartbeat_at = Clock::now() + std::chrono::milliseconds(1000);
    }
    if ((item.revents & ZMQ_POLLIN) == 0) continue;
    auto frames = recv_frames(s);
    auto msg = mdp::parse_worker(frames);
    if (!msg || msg->command != mdp::WorkerCommand::Request || msg->body.empty()) continue;
    auto env = schema::peek_job(msg->body[0]);
    schema::Result r;
    r.id = env ? env->id : "";
    send_frames(s, mdp::worker_reply_frames(mdp::WorkerCommand::Final, msg->reply_to,
                                            {schema::encode_result(r)}));
  }
}

// Jobs/s through the broker with the client library; with a journal when `journal` is a path.
double run_broker(const Args& a, const std::string& service, const std::string& body_template,
                  const std::string& journal = {}, const std::string& sync = "full") {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  broker::BrokerConfig config;
  config.bind = endpoint;
  config.journal = journal;
  config.journal_sync = sync;
  config.log_level = "warn";
  config.max_queue = 1000000;
  config.max_queue_per_client = 1000000;
  // The worker's capacity is the bench's parameter, not the broker's default credit cap.
  config.max_worker_capacity = a.capacity;
  config.shutdown_grace = std::chrono::milliseconds(100);
  broker::Broker b(config);
  if (Status s = b.bind(); !s.ok()) {
    std::fprintf(stderr, "bind: %s\n", s.to_string().c_str());
    std::exit(1);
  }
  if (Status s = b.open_journal(); !s.ok()) {
    std::fprintf(stderr, "journal: %s\n", s.to_string().c_str());
    std::exit(1);
  }
  std::atomic<bool> stop{false};
  std::thread broker_thread([&] { b.run([&] { return stop.load(); }); });
  zmq::context_t ctx;
  std::thread worker([&] { echo_worker(ctx, endpoint, service, a.capacity, stop); });

  client::ClientOptions o;
  o.broker = endpoint;
  o.service = service;
  o.timeout = std::chrono::seconds(30);
  client::Client c(o);
  while (true) {
    auto up = c.service_available(service, std::chrono::seconds(1));
    if (up.ok() && *up) break;
  }
  schema::Job job = *schema::decode_job(body_template);
  int64_t sent = 0, done = 0, failed = 0;
  const auto start = Clock::now();
  while (done < a.jobs) {
    while (sent < a.jobs && c.outstanding() < a.window) {
      job.id = c.next_id();
      if (!c.submit_body(job.id, schema::encode_job(job)).ok()) std::exit(1);
      ++sent;
    }
    auto ev = c.poll(std::chrono::milliseconds(100));
    if (!ev) {
      std::fprintf(stderr, "broker bench: %s\n", ev.status().to_string().c_str());
      std::exit(1);
    }
    if (ev->has_value() && (*ev)->result) {
      ++done;
      if ((*ev)->result->status != "ok") ++failed;
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  worker.join();
  broker_thread.join();
  if (failed > 0) std::fprintf(stderr, "broker bench: %lld jobs failed\n", (long long)failed);
  return static_cast<double>(a.jobs) / secs;
}

// Round trips/s of a DEALER client and a ROUTER echo with the same bodies and window.
double run_raw(const Args& a, const std::string& body) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  zmq::context_t ctx;
  std::atomic<bool> stop{false};
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind(endpoint);
  std::thread echo([&] {
    while (!stop) {
      zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      auto frames = recv_frames(router);
      // Reply with a small body, as the worker does: identity, header, command, service, body.
      send_frames(router, {frames[0], frames[1], std::string(1, '\x03'), frames[3], "ok"});
    }
  });
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(endpoint);
  const std::vector<std::string> request =
      mdp::client_frames(mdp::ClientCommand::Request, "ecg-fm", {body});
  int64_t sent = 0, done = 0;
  const auto start = Clock::now();
  while (done < a.jobs) {
    while (sent < a.jobs && sent - done < static_cast<int64_t>(a.window)) {
      send_frames(dealer, request);
      ++sent;
    }
    recv_frames(dealer);
    ++done;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  echo.join();
  return static_cast<double>(a.jobs) / secs;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  schema::Job job;
  job.id = "template";
  job.ecg.dtype = "f32";
  job.ecg.shape = {12, a.samples};
  job.ecg.data.assign(static_cast<size_t>(12 * a.samples * 4), '\0');
  job.fs = 500;
  job.leads = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
  const std::string body = schema::encode_job(job);

  std::printf(
      "bench_broker: %lld jobs, window %zu, worker capacity %lld, job body %zu bytes, %d rounds\n",
      (long long)a.jobs, a.window, (long long)a.capacity, body.size(), a.rounds);
  std::string temp;  // made here when no --journal-dir is given, removed at the end
  if (a.journal_dir.empty()) {
    std::string pattern = std::filesystem::temp_directory_path() / "bench-journal-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) return 1;
    temp = pattern;
  }
  const std::string journal_dir = a.journal_dir.empty() ? temp : a.journal_dir;
  double raw = 0, generic = 0, ecgq = 0, journaled = 0, normal = 0;
  std::string rounds_json;  // [[raw, generic, ecgq, journaled], ...] per round
  for (int r = 1; r <= a.rounds; ++r) {
    const auto wanted = [&](const char* path) {
      return ("," + a.paths + ",").find("," + std::string(path) + ",") != std::string::npos;
    };
    // A path left out reads 0 (its ratios are not shown).
    const double raw_r = wanted("raw") ? run_raw(a, body) : 0;
    const double generic_r = wanted("generic") ? run_broker(a, "echo", body) : 0;
    // Journal off and on alternate which goes first, so neither always runs after the other.
    const std::string journal = journal_dir + "/bench-" + std::to_string(r) + ".db";
    double ecgq_r = 0, journaled_r = 0, normal_r = 0;
    const auto on = [&](const char* sync) {
      const double per_s = run_broker(a, "ecg-fm", body, journal, sync);
      for (const char* suffix : {"", "-wal", "-shm"}) std::remove((journal + suffix).c_str());
      return per_s;
    };
    if (r % 2 == 0 && wanted("journal")) journaled_r = on("full");
    if (r % 2 == 0 && wanted("normal")) normal_r = on("normal");
    if (wanted("ecgq")) ecgq_r = run_broker(a, "ecg-fm", body);
    if (r % 2 == 1 && wanted("journal")) journaled_r = on("full");
    if (r % 2 == 1 && wanted("normal")) normal_r = on("normal");
    std::printf(
        "round %d: raw %.0f/s, generic %.0f/s, ecgq %.0f/s, ecgq+journal %.0f/s (%.2f), "
        "ecgq+journal normal %.0f/s (%.2f)\n",
        r, raw_r, generic_r, ecgq_r, journaled_r, journaled_r / ecgq_r, normal_r,
        normal_r / ecgq_r);
    std::fflush(stdout);
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s[%.1f, %.1f, %.1f, %.1f, %.1f]", r > 1 ? ", " : "", raw_r,
                  generic_r, ecgq_r, journaled_r, normal_r);
    rounds_json += buf;
    raw = std::max(raw, raw_r);
    generic = std::max(generic, generic_r);
    ecgq = std::max(ecgq, ecgq_r);
    journaled = std::max(journaled, journaled_r);
    normal = std::max(normal, normal_r);
  }
  std::printf("best of %d rounds:\n", a.rounds);
  std::printf("raw zmq DEALER/ROUTER echo:            %10.0f round trips/s\n", raw);
  std::printf("broker, generic service (forwarded):   %10.0f jobs/s  (%.2f x raw)\n", generic,
              generic / raw);
  std::printf("broker, ecgq service (validated jobs): %10.0f jobs/s  (%.2f x raw)\n", ecgq,
              ecgq / raw);
  std::printf("broker, ecgq service, journal on:      %10.0f jobs/s  (%.2f x journal off)\n",
              journaled, journaled / ecgq);
  std::printf("broker, journal on, journal_sync normal: %8.0f jobs/s  (%.2f x journal off)\n",
              normal, normal / ecgq);
  if (!temp.empty()) std::filesystem::remove_all(temp);
  if (a.json)
    std::printf(
        "json: {\"jobs\": %lld, \"window\": %zu, \"capacity\": %lld, \"body_bytes\": %zu, "
        "\"rounds\": %d, \"raw_per_s\": %.1f, \"generic_per_s\": %.1f, \"ecgq_per_s\": %.1f, "
        "\"ecgq_journal_per_s\": %.1f, \"ecgq_journal_normal_per_s\": %.1f, \"per_round\": [%s]}\n",
        (long long)a.jobs, a.window, (long long)a.capacity, body.size(), a.rounds, raw, generic,
        ecgq, journaled, normal, rounds_json.c_str());
  return 0;
}
