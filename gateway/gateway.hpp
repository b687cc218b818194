// ecgq-gateway: HTTP in front of the broker. The ECG-FM API (/, /health, /info, /predict,
// /jobs/ID), the Open Inference Protocol (/v2/...), /openapi.json and /metrics, on the Beast
// server; every prediction is a job on the broker through the BrokerLink thread; uploads are
// decoded on a separate pool, never on the I/O threads.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <optional>
#include <string>

#include "gateway/broker_link.hpp"
#include "gateway/config.hpp"
#include "gateway/http_server.hpp"
#include "gateway/job_store.hpp"
#include "gateway/metrics.hpp"
#include "gateway/router.hpp"
#include "gateway/tokens.hpp"

namespace ecgq::gateway {

// Bodies up to this size are decoded on the I/O thread that read them; larger ones on the pool.
inline constexpr size_t kInlineBodyBytes = 256 << 10;

// The whole gateway; start() binds and connects, stop() (or destruction) ends it.
class Gateway {
 public:
  // Builds the routes; `tokens` empty = no authentication.
  Gateway(GatewayConfig config, TokenTable tokens);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Connects to the broker and listens.
  Status start();
  // Stops listening, ends pending jobs (shutting_down) and joins every thread.
  void stop();
  // The port listened on.
  int port() const { return server_ ? server_->port() : 0; }
  // The route table (the OpenAPI document describes exactly these).
  const Router& router() const { return router_; }

 private:
  std::optional<HttpResponse> head_check(const HttpRequest& head);
  void handle(HttpRequest request, Respond respond);
  // Checks token and body type; an answer when the request cannot go on.
  std::optional<HttpResponse> admit(const HttpRequest& request, const Router::Match& match,
                                    std::string& token);
  // Wraps `respond` so that every answer is counted, timed, logged and carries X-Request-Id.
  Respond instrument(const HttpRequest& request, const RequestContext& ctx, Respond respond);
  std::string request_id(const HttpRequest& request);

  // ECG-FM API (ecgfm_api.cpp).
  void add_ecgfm_routes();
  void get_root(HttpRequest& request, const RequestContext& ctx, Respond respond);
  void get_health(HttpRequest& request, const RequestContext& ctx, Respond respond);
  void get_info(HttpRequest& request, const RequestContext& ctx, Respond respond);
  void post_predict(HttpRequest& request, const RequestContext& ctx, Respond respond);
  void get_job(HttpRequest& request, const RequestContext& ctx, Respond respond);
  void delete_job(HttpRequest& request, const RequestContext& ctx, Respond respond);
  void get_metrics(HttpRequest& request, const RequestContext& ctx, Respond respond);
  // Open Inference Protocol (oip_api.cpp).
  void add_oip_routes();
  // --- the web page (ui_api.cpp)
  void add_ui_routes();
  void post_ui_predict(HttpRequest& request, const RequestContext& ctx, Respond respond);
  // The records under `ui_records`, relative to it.
  std::vector<std::string> ui_records() const;
  void post_infer(HttpRequest& request, const RequestContext& ctx, Respond respond);
  // Submits a job under a fresh id; `done` gets its result on the link thread. False when too
  // many jobs are in flight.
  bool submit(schema::Job job, const RequestContext& ctx, JobDone done, JobProgress progress = {});
  // A fresh unguessable job id (128 random bits).
  std::string new_job_id();

  GatewayConfig config_;
  TokenTable tokens_;
  Router router_;
  Metrics metrics_;
  JobStore jobs_;
  std::unique_ptr<BrokerLink> link_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  std::atomic<uint64_t> request_seq_{0};
  std::string instance_;  // random prefix of request ids
  SteadyClock::time_point started_;
};

}  // namespace ecgq::gateway
