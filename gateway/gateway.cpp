#include "gateway/gateway.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cctype>
#include <random>
#include <thread>

#include "common/text.hpp"
#include "gateway/http_errors.hpp"

namespace ecgq::gateway {

namespace {

// Time the I/O threads get to write the last answers when the gateway stops.
constexpr std::chrono::milliseconds kShutdownFlush{300};

std::string random_hex(size_t bytes) {
  static thread_local std::mt19937_64 gen{std::random_device{}() ^
                                          (static_cast<uint64_t>(std::random_device{}()) << 32)};
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; i += 8) {
    uint64_t v = gen();
    for (size_t k = 0; k < 8 && i + k < bytes; ++k, v >>= 8) {
      out.push_back(kHex[(v >> 4) & 0xf]);
      out.push_back(kHex[v & 0xf]);
    }
  }
  return out;
}

bool sane_request_id(const std::string& id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Gateway::Gateway(GatewayConfig config, TokenTable tokens)
    : config_(std::move(config)),
      tokens_(std::move(tokens)),
      jobs_(config_.max_stored_jobs, config_.job_ttl),
      instance_(random_hex(4)),
      started_(SteadyClock::now()) {
  add_ecgfm_routes();
  add_oip_routes();
  add_ui_routes();
}

Gateway::~Gateway() {
  stop();
}

Status Gateway::start() {
  LinkOptions lo;
  lo.broker = config_.broker;
  lo.curve = config_.curve;
  lo.service = config_.service;
  lo.connections = config_.broker_connections;
  lo.broker_timeout = config_.broker_timeout;
  lo.status_interval = config_.status_interval;
  lo.max_in_flight = config_.max_in_flight;
  link_ = std::make_unique<BrokerLink>(lo);
  pool_ = std::make_unique<boost::asio::thread_pool>(static_cast<size_t>(config_.parse_threads));
  ServerOptions so;
  so.host = config_.bind_host;
  so.port = config_.port;
  so.threads = static_cast<int>(config_.http_threads);
  so.tls_cert = config_.tls_cert;
  so.tls_key = config_.tls_key;
  so.limits.max_connections = config_.max_connections;
  so.limits.max_body_bytes = config_.max_body_bytes;
  so.limits.max_header_bytes = config_.max_header_bytes;
  so.limits.header_timeout = config_.header_timeout;
  so.limits.body_timeout = config_.body_timeout;
  so.limits.keep_alive_timeout = config_.keep_alive_timeout;
  server_ = std::make_unique<HttpServer>(
      so, [this](const HttpRequest& head) { return head_check(head); },
      [this](HttpRequest request, Respond respond) {
        handle(std::move(request), std::move(respond));
      });
  link_->start();
  return server_->start();
}

void Gateway::stop() {
  // Waiting requests get an answer (503 shutting_down from the link) before connections close.
  if (server_) server_->stop_accepting();
  if (pool_) pool_->join();
  if (link_) link_->stop();
  if (server_) {
    std::this_thread::sleep_for(kShutdownFlush);
    server_->stop();
  }
}

std::string Gateway::new_job_id() {
  return "g" + random_hex(16);
}

std::string Gateway::request_id(const HttpRequest& request) {
  const std::string given = request.header("x-request-id");
  if (sane_request_id(given)) return given;
  return "r" + instance_ + "-" + std::to_string(++request_seq_);
}

std::optional<HttpResponse> Gateway::admit(const HttpRequest& request, const Router::Match& match,
                                           std::string& token) {
  if (match.route == nullptr) {
    if (!match.allowed.empty()) {
      std::string allow;
      for (const auto& m : match.allowed) allow += (allow.empty() ? "" : ", ") + m;
      return error_response("method_not_allowed", request.method + " is not allowed here")
          .with("Allow", allow);
    }
    return error_response("no_such_route", "no such endpoint; see GET /openapi.json", "path");
  }
  if (!tokens_.empty() && !match.route->open) {
    const std::string auth = request.header("authorization");
    if (auth.empty())
      return error_response("unauthorized", "send Authorization: Bearer TOKEN", "authorization");
    auto name = tokens_.authenticate(auth);
    if (!name) return error_response("unauthorized", "unknown bearer token", "authorization");
    token = *name;
  }
  const auto& types = match.route->content_types;
  const bool has_body =
      (!request.header("content-length").empty() && request.header("content-length") != "0") ||
      !request.header("transfer-encoding").empty();
  if (!types.empty() && has_body) {
    const std::string type = lower(request.header("content-type"));
    if (std::none_of(types.begin(), types.end(),
                     [&](const std::string& t) { return type.rfind(t, 0) == 0; })) {
      std::string list;
      for (const auto& t : types) list += (list.empty() ? "" : " or ") + t;
      return error_response("unsupported_media_type", "send " + list, "content-type");
    }
  }
  return std::nullopt;
}

std::optional<HttpResponse> Gateway::head_check(const HttpRequest& head) {
  const auto match = router_.match(head.method, head.path);
  std::string token;
  auto refusal = admit(head, match, token);
  if (!refusal) return std::nullopt;
  RequestContext ctx;
  ctx.request_id = request_id(head);
  ctx.route = match.route != nullptr ? match.route->pattern : "other";
  ctx.start = SteadyClock::now();
  HttpResponse out;
  instrument(head, ctx, [&](HttpResponse r) { out = std::move(r); })(std::move(*refusal));
  return out;
}

Respond Gateway::instrument(const HttpRequest& request, const RequestContext& ctx,
                            Respond respond) {
  return [this, respond = std::move(respond), rid = ctx.request_id, route = ctx.route,
          start = ctx.start, method = request.method, path = loggable(request.path, 96),
          token = ctx.token, bytes = request.body.size()](HttpResponse r) {
    const double ms = ms_since(start);
    r.with("X-Request-Id", rid);
    // Label values must stay few: any token is a method to the parser.
    static const char* const kMethods[] = {"GET",   "POST", "DELETE", "PUT",
                                           "PATCH", "HEAD", "OPTIONS"};
    const bool known = std::any_of(std::begin(kMethods), std::end(kMethods),
                                   [&](const char* m) { return method == m; });
    metrics_.observe_request(route, known ? method : "OTHER", r.status, ms / 1000.0);
    std::string job;
    for (const auto& [k, v] : r.headers)
      if (k == "X-Job-Id") job = v;
    spdlog::info(
        "event=request rid={} method={} path=\"{}\" route={} status={} ms={:.1f} in_bytes={} "
        "out_bytes={} token={} job={}",
        rid, loggable(method, 16), path, route, r.status, ms, bytes, r.body.size(),
        token.empty() ? "-" : loggable(token, 64), job.empty() ? "-" : job);
    respond(std::move(r));
  };
}

void Gateway::handle(HttpRequest request, Respond respond) {
  RequestContext ctx;
  ctx.start = SteadyClock::now();
  ctx.request_id = request_id(request);
  const auto match = router_.match(request.method, request.path);
  ctx.route = match.route != nullptr ? match.route->pattern : "other";
  std::string token;
  if (auto refusal = admit(request, match, token)) {
    instrument(request, ctx, std::move(respond))(std::move(*refusal));
    return;
  }
  ctx.token = token;
  ctx.params = match.params;
  Respond done = instrument(request, ctx, std::move(respond));
  try {
    match.route->fn(request, ctx, done);
  } catch (const std::exception& e) {
    // Handlers answer last, so one that threw has not answered: answer for it.
    spdlog::error("event=handler_failed rid={} reason=\"{}\"", ctx.request_id, loggable(e.what()));
    done(error_response("internal", "the gateway failed to handle the request"));
  }
}

bool Gateway::submit(schema::Job job, const RequestContext& ctx, JobDone done,
                     JobProgress progress) {
  const bool has_deadline = job.deadline_ms.has_value() && *job.deadline_ms > 0;
  // Wait for the deadline plus the time a result needs to come back, else request_timeout.
  const Millis wait =
      has_deadline ? Millis(*job.deadline_ms) + Millis(5000) : config_.request_timeout;
  if (!has_deadline) job.deadline_ms.reset();
  return link_->submit(
      std::move(job), wait,
      [this, done = std::move(done)](schema::Result result) {
        static const char* const kKnown[] = {"ok",
                                             "bad_request",
                                             "bad_shape",
                                             "unsupported_dtype",
                                             "message_too_large",
                                             "queue_full",
                                             "no_worker",
                                             "deadline_exceeded",
                                             "worker_lost",
                                             "shutting_down",
                                             "cancelled",
                                             "missing_leads",
                                             "too_short",
                                             "too_long",
                                             "bad_samples",
                                             "unsupported_output",
                                             "model_error",
                                             "internal",
                                             "timeout",
                                             "broker_unreachable"};
        std::string outcome = result.status == "ok" ? "ok" : result.error ? result.error->code : "";
        if (std::none_of(std::begin(kKnown), std::end(kKnown),
                         [&](const char* k) { return outcome == k; }))
          outcome = "other";
        metrics_.observe_job(outcome);
        done(std::move(result));
      },
      std::move(progress));
}

}  // namespace ecgq::gateway
