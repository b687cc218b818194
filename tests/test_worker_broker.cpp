// ecgq-worker with the real ecgq-broker: a job end to end, re-registration after a broker
// restart, and keep_warm from the broker. The client side is a DEALER speaking MDPC02.
#include <signal.h>

#include "tests/support/process.hpp"
#include "tests/test_worker_support.hpp"

using namespace ecgq;
using namespace ecgq::test;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kWait{30000};

std::unique_ptr<ChildProcess> start_broker(const std::string& endpoint,
                                           std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {
      bin("ecgq-broker"),     "--bind", endpoint, "--heartbeat-interval", "100ms",
      "--heartbeat-liveness", "30"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::make_unique<ChildProcess>(argv);
}

std::vector<std::string> worker_argv(const std::string& endpoint,
                                     std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {bin("ecgq-worker"),
                                   "serve",
                                   "--broker",
                                   endpoint,
                                   "--checkpoint",
                                   data_path("ecgfm/tiny_finetuned.pt"),
                                   "--heartbeat-interval",
                                   "100ms",
                                   "--heartbeat-liveness",
                                   "5",
                                   "--reconnect-max",
                                   "500ms",
                                   "--worker-id",
                                   "e2e-worker",
                                   "--threads",
                                   "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// A producer speaking MDP/0.2 client frames over a DEALER.
class Client {
 public:
  explicit Client(const std::string& endpoint) : socket_(ctx_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }

  // Sends a job and returns its FINAL (progress events go to `events`), or nullopt on timeout.
  std::optional<schema::Result> run(const schema::Job& job, milliseconds timeout,
                                    std::vector<std::string>* events = nullptr) {
    auto frames =
        mdp::client_frames(mdp::ClientCommand::Request, "ecg-fm", {schema::encode_job(job)});
    mdp::send_frames(socket_, frames);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      auto f = mdp::recv_frames(socket_);
      if (!f) continue;
      auto m = mdp::parse_client(*f);
      if (!m || m->body.empty()) continue;
      if (m->command == mdp::ClientCommand::Partial) {
        auto p = schema::decode_progress(m->body[0]);
        if (p && events) events->push_back(p->event);
        continue;
      }
      if (m->command == mdp::ClientCommand::Final) {
        auto r = schema::decode_result(m->body[0]);
        if (r) return r.value();
        ADD_FAILURE() << r.status().to_string();
        return std::nullopt;
      }
    }
    return std::nullopt;
  }

 private:
  zmq::context_t ctx_;
  zmq::socket_t socket_;
};

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(WorkerWithBroker, ServesAJobEndToEnd) {
  const std::string endpoint = free_endpoint();
  auto broker = start_broker(endpoint);
  ChildProcess worker(worker_argv(endpoint));
  Client client(endpoint);
  std::vector<std::string> events;
  auto r = client.run(synthetic_job("e2e-1"), kWait, &events);
  ASSERT_TRUE(r.has_value()) << "no FINAL\nworker:\n"
                             << worker.stderr_text() << "\nbroker:\n"
                             << broker->stderr_text();
  ASSERT_EQ(r->status, "ok") << (r->error ? r->error->message : "");
  EXPECT_EQ(r->id, "e2e-1");
  EXPECT_EQ(r->worker_id, "e2e-worker");
  EXPECT_EQ(r->attempts, 1);
  EXPECT_EQ(r->probs.size(), 17u);
  EXPECT_GE(r->timings.total_ms, r->timings.queued_ms);
  EXPECT_NE(std::find(events.begin(), events.end(), "running"), events.end());
}

TEST(WorkerWithBroker, ReRegistersWithARestartedBroker) {
  const std::string endpoint = free_endpoint();
  auto broker = start_broker(endpoint);
  ChildProcess worker(worker_argv(endpoint));
  {
    Client client(endpoint);
    auto first = client.run(synthetic_job("before"), kWait);
    ASSERT_TRUE(first.has_value()) << worker.stderr_text();
    EXPECT_EQ(first->status, "ok");
  }
  broker->signal(SIGKILL);
  broker->wait(kWait);
  broker = start_broker(endpoint);
  // The new broker does not know the worker: it answers its heartbeats with DISCONNECT (or
  // stays silent until the worker's liveness runs out); either way the worker sends READY again.
  ASSERT_TRUE(wait_until([&] { return count(worker.stderr_text(), "event=ready ") >= 2; }, kWait))
      << worker.stderr_text();
  Client client(endpoint);
  auto second = client.run(synthetic_job("after"), kWait);
  ASSERT_TRUE(second.has_value()) << "worker:\n"
                                  << worker.stderr_text() << "\nbroker:\n"
                                  << broker->stderr_text();
  EXPECT_EQ(second->status, "ok");
  EXPECT_EQ(second->worker_id, "e2e-worker");
}

TEST(WorkerWithBroker, ColdWorkerWakesForAJobAndSigtermDisconnects) {
  const std::string endpoint = free_endpoint();
  auto broker = start_broker(endpoint);
  ChildProcess worker(worker_argv(endpoint, {"--warm-on-start", "false"}));
  Client client(endpoint);
  std::vector<std::string> events;
  auto r = client.run(synthetic_job("cold-1"), kWait, &events);
  ASSERT_TRUE(r.has_value()) << worker.stderr_text();
  ASSERT_EQ(r->status, "ok") << (r->error ? r->error->message : "");
  EXPECT_TRUE(r->cold_start);
  EXPECT_GT(r->timings.load_ms, 0);
  EXPECT_NE(std::find(events.begin(), events.end(), "waking"), events.end());
  worker.signal(SIGTERM);
  EXPECT_EQ(worker.wait(kWait), 0) << worker.stderr_text();
  EXPECT_TRUE(wait_until(
      [&] { return broker->stderr_text().find("worker sent DISCONNECT") != std::string::npos; },
      kWait))
      << broker->stderr_text();
}
