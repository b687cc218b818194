// The gateway's settings: declared once here so --help, config/gateway.yaml, ECGQ_* variables and
// flags all list the same keys with the same defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/duration.hpp"
#include "common/settings.hpp"
#include "common/status.hpp"
#include "protocol/curve.hpp"

namespace ecgq::gateway {

// Typed gateway configuration, read from a Settings after every layer was merged.
struct GatewayConfig {
  std::string broker = "tcp://127.0.0.1:5555";  // the ecgq-broker this gateway submits to
  std::optional<curve::ClientKeys> curve;       // CURVE keys for the broker; none = plaintext
  std::string service = "ecg-fm";               // the broker service jobs go to
  std::string model_name = "ecg-fm";            // the model name of the /v2 endpoints
  std::string bind_host = "127.0.0.1";          // --bind HOST:PORT, split
  int port = 8080;
  std::string tokens_file;      // bearer tokens, one "NAME TOKEN" per line; "" = no authentication
  std::string tls_cert;         // PEM certificate chain; with tls_key serves HTTPS
  std::string tls_key;          // PEM private key
  bool allow_insecure = false;  // permits a non-loopback bind without tokens
  int64_t http_threads = 2;     // threads doing socket I/O
  int64_t parse_threads = 2;    // threads decoding uploads (never the I/O threads)
  int64_t broker_connections = 1;  // Client (DEALER) connections to the broker
  int64_t max_connections = 4096;  // open HTTP connections; more are answered 503 and closed
  int64_t max_body_bytes = int64_t{64} << 20;  // larger bodies get 413 before being read
  int64_t max_header_bytes = 16 << 10;         // request line + headers
  int64_t max_in_flight = 1024;                // jobs waiting on the broker at once
  Millis header_timeout{10000};                // a connection must send a whole header within this
  Millis body_timeout{60000};                  // and then its whole body within this
  Millis keep_alive_timeout{30000};            // idle time between requests on one connection
  Millis request_timeout{300000};   // longest wait for a result when the job has no deadline
  Millis broker_timeout{60000};     // broker silence tolerated while jobs are outstanding
  Millis status_interval{1000};     // how often mmi.status is refreshed for /health
  Millis job_ttl{3600000};          // how long async job records are kept after they finish
  int64_t max_stored_jobs = 10000;  // async job records kept at most
  std::string ui_records;           // directory of the records /ui offers ("" = none)
  std::string upload_dir;           // temporary files of uploads ("" = $TMPDIR or /tmp)
  std::string log_level = "info";

  // True when the bind address reaches only this machine.
  bool loopback() const;
  // True when HTTPS is configured.
  bool tls() const { return !tls_cert.empty(); }
};

// Declares every gateway setting with its default and help line.
void declare_settings(Settings& settings);
// Reads and range-checks the typed configuration; errors are bad_config naming the key.
Expected<GatewayConfig> load_config(const Settings& settings);

}  // namespace ecgq::gateway
