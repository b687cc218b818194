#include "gateway/config.hpp"

#include <algorithm>

namespace ecgq::gateway {

bool GatewayConfig::loopback() const {
  return bind_host == "localhost" || bind_host == "::1" || bind_host.rfind("127.", 0) == 0;
}

void declare_settings(Settings& s) {
  s.declare("broker", "tcp://127.0.0.1:5555", "ecgq-broker endpoint jobs are submitted to");
  s.declare("curve_cert", "", "own CURVE secret certificate for the broker ('' = plaintext)");
  s.declare("broker_key", "", "the broker's CURVE public certificate file or Z85 key");
  s.declare("bind", "127.0.0.1:8080", "HOST:PORT the HTTP server listens on");
  s.declare("service", "ecg-fm", "broker service the jobs go to");
  s.declare("model_name", "ecg-fm", "model name in the /v2 (Open Inference Protocol) paths");
  s.declare("tokens", "", "file of bearer tokens, one 'NAME TOKEN' per line ('' = no auth)");
  s.declare("tls_cert", "", "PEM certificate (chain) file: serve HTTPS");
  s.declare("tls_key", "", "PEM private key file of tls_cert");
  s.declare("allow_insecure", "false", "allow a non-loopback bind without tokens (warns)");
  s.declare("http_threads", "2", "threads doing HTTP socket I/O");
  s.declare("parse_threads", "2", "threads decoding uploads and JSON bodies");
  s.declare("broker_connections", "1", "DEALER connections to the broker");
  s.declare("max_connections", "4096", "open HTTP connections at most (more get 503 and close)");
  s.declare("max_body_bytes", "64MiB", "largest request body (413 before it is read)");
  s.declare("max_header_bytes", "16KiB", "largest request line + headers (431)");
  s.declare("max_in_flight", "1024", "jobs waiting on the broker at once (more get 503)");
  s.declare("header_timeout", "10s", "time a connection gets to send a request's headers");
  s.declare("body_timeout", "60s", "time a request gets to send its whole body");
  s.declare("keep_alive_timeout", "30s", "idle time allowed between requests on a connection");
  s.declare("request_timeout", "5m", "longest wait for a result of a job without deadline");
  s.declare("broker_timeout", "60s", "broker silence tolerated while jobs are outstanding");
  s.declare("status_interval", "1s", "how often the broker's mmi.status is refreshed");
  s.declare("job_ttl", "1h", "how long ?async=1 job records are kept after they finish");
  s.declare("max_stored_jobs", "10000", "?async=1 job records kept at most");
  s.declare("upload_dir", "", "directory for uploads' temporary files ('' = $TMPDIR or /tmp)");
  s.declare("ui_records", "",
            "directory of ECG records the /ui page offers ('' = the bundled data/ecg)");
  s.declare("log_level", "info", "trace, debug, info, warn or error");
}

namespace {

Status out_of_range(const Settings& s, const std::string& key, const std::string& expected) {
  return Status("bad_config",
                "setting " + key + " = '" + s.text(key) + "' (from " + s.origin(key) +
                    "): expected " + expected,
                key);
}

// Splits "HOST:PORT" ("[::1]:8080" for IPv6).
Status split_bind(const Settings& s, GatewayConfig& c) {
  const std::string& text = s.text("bind");
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return out_of_range(s, "bind", "HOST:PORT such as 127.0.0.1:8080");
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string port = text.substr(colon + 1);
  if (!std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) ||
      port.size() > 5 || std::stoi(port) > 65535)
    return out_of_range(s, "bind", "HOST:PORT with a port from 0 to 65535");
  c.bind_host = host;
  c.port = std::stoi(port);
  return Status::Ok();
}

}  // namespace

Expected<GatewayConfig> load_config(const Settings& s) {
  GatewayConfig c;
  c.broker = s.text("broker");
  ASSIGN_OR_RETURN(c.curve, curve::load_client_keys(s.text("curve_cert"), s.text("broker_key")));
  c.service = s.text("service");
  c.model_name = s.text("model_name");
  c.tokens_file = s.text("tokens");
  c.tls_cert = s.text("tls_cert");
  c.tls_key = s.text("tls_key");
  c.upload_dir = s.text("upload_dir");
  c.ui_records = s.text("ui_records");
  if (c.ui_records.empty()) c.ui_records = ECGQ_UI_RECORDS_DEFAULT;
  c.log_level = s.text("log_level");
  if (c.broker.rfind("tcp://", 0) != 0 && c.broker.rfind("ipc://", 0) != 0)
    return out_of_range(s, "broker", "an endpoint such as tcp://HOST:PORT");
  if (c.service.empty()) return out_of_range(s, "service", "a service name");
  if (c.model_name.empty() || c.model_name.find('/') != std::string::npos)
    return out_of_range(s, "model_name", "a name without '/'");
  if (c.tls_cert.empty() != c.tls_key.empty())
    return out_of_range(s, c.tls_cert.empty() ? "tls_cert" : "tls_key",
                        "tls_cert and tls_key given together");
  if (Status st = split_bind(s, c); !st.ok()) return st;
  auto insecure = s.boolean("allow_insecure");
  if (!insecure) return insecure.status();
  c.allow_insecure = *insecure;
  struct Dur {
    const char* key;
    Millis* out;
  };
  for (const Dur& d :
       {Dur{"header_timeout", &c.header_timeout}, Dur{"body_timeout", &c.body_timeout},
        Dur{"keep_alive_timeout", &c.keep_alive_timeout},
        Dur{"request_timeout", &c.request_timeout}, Dur{"broker_timeout", &c.broker_timeout},
        Dur{"status_interval", &c.status_interval}, Dur{"job_ttl", &c.job_ttl}}) {
    auto v = s.duration(d.key);
    if (!v) return v.status();
    if (v->count() <= 0) return out_of_range(s, d.key, "a positive duration");
    *d.out = *v;
  }
  struct Int {
    const char* key;
    int64_t* out;
    int64_t min;
    int64_t max;
  };
  for (const Int& i : {Int{"http_threads", &c.http_threads, 1, 256},
                       Int{"parse_threads", &c.parse_threads, 1, 256},
                       Int{"broker_connections", &c.broker_connections, 1, 64},
                       Int{"max_connections", &c.max_connections, 1, 1000000},
                       Int{"max_in_flight", &c.max_in_flight, 1, 1000000},
                       Int{"max_stored_jobs", &c.max_stored_jobs, 1, 100000000}}) {
    auto v = s.integer(i.key);
    if (!v) return v.status();
    if (*v < i.min || *v > i.max)
      return out_of_range(
          s, i.key, "an integer from " + std::to_string(i.min) + " to " + std::to_string(i.max));
    *i.out = *v;
  }
  auto body = s.bytes("max_body_bytes");
  if (!body) return body.status();
  if (*body < 1024) return out_of_range(s, "max_body_bytes", "at least 1KiB");
  c.max_body_bytes = *body;
  auto header = s.bytes("max_header_bytes");
  if (!header) return header.status();
  if (*header < 1024) return out_of_range(s, "max_header_bytes", "at least 1KiB");
  c.max_header_bytes = *header;
  static const char* const kLevels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::none_of(std::begin(kLevels), std::end(kLevels),
                   [&](const char* l) { return c.log_level == l; }))
    return out_of_range(s, "log_level", "trace, debug, info, warn or error");
  return c;
}

}  // namespace ecgq::gateway
