// The broker's loop: owns the ROUTER sockets, zmq_poll and the real clock, turns socket traffic
// into BrokerCore events and the core's actions into sends. No protocol rule lives here.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <zmq.hpp>

#include "broker/config.hpp"
#include "broker/core.hpp"
#include "broker/handshake_log.hpp"
#include "broker/journal.hpp"
#include "broker/large_intake.hpp"
#include "broker/metrics_endpoint.hpp"
#include "broker/zap_handler.hpp"
#include "common/status.hpp"

namespace ecgq::broker {

// The ecgq-broker process around a BrokerCore; single-threaded, not copyable.
class Broker {
 public:
  // Creates the core; call bind() next.
  explicit Broker(BrokerConfig config);
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // With curve_secret_cert set: reads the broker's secret certificate and the allow-lists and
  // starts the ZAP handler (before bind()); errors name the file or directory (bad usage).
  Status load_curve();
  // Binds the endpoints (CURVE servers when load_curve() ran) and /metrics with `metrics_bind`;
  // an error names the endpoint.
  Status bind();
  // With `journal` set: opens it and replays what it holds into the core (before run()).
  Status open_journal();
  // Serves until `stop_requested` returns true, then drains and returns the exit code (0; 1 when
  // polling fails). When `reload_requested` returns true (SIGHUP) the allow-lists are read again.
  int run(
      const std::function<bool()>& stop_requested,
      const std::function<bool()>& reload_requested = [] { return false; });

 private:
  Status bind_metrics();
  void receive(int socket_index);
  void take_intake();
  void reload_keys();
  void handle(Event event);
  void take_commits();
  void apply(Actions actions);
  bool send(const std::string& peer, const mdp::Frames& frames, const std::string& job);

  BrokerConfig config_;
  zmq::context_t context_;
  std::string curve_secret_key_;     // Z85; "" = CURVE off
  std::unique_ptr<ZapHandler> zap_;  // with CURVE: admits listed keys at the handshake
  zmq::socket_t sockets_[2];         // [0] bind (clients and workers), [1] worker_bind (optional)
  std::unique_ptr<HandshakeLog> handshakes_[2];  // with CURVE: handshakes ZAP never saw
  BrokerCore core_;
  std::unique_ptr<Journal> journal_;               // null without `journal`
  std::unique_ptr<MetricsEndpoint> metrics_;       // null without `metrics_bind`
  std::map<uint64_t, uint64_t> accepts_;           // journal ticket -> job seq, for Accept records
  std::map<uint64_t, DispatchCommit> dispatches_;  // journal ticket -> Dispatch record
  LargeIntake intake_;                             // copies large bodies off the loop
};

}  // namespace ecgq::broker
