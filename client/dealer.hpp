// A DEALER socket connected to the broker, speaking whole multipart messages, and counting its
// handshakes so that its owner can tell a reconnection (a broker restart, a dropped link).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/status.hpp"
#include "protocol/protocol.hpp"

namespace ecgq::client {

// One DEALER connection (ZMQ_LINGER 0, so a dead broker never blocks exit; ZMTP heartbeats, so a
// silent dead link is dropped and reconnected).
class Dealer {
 public:
  // Creates the socket and connects to `endpoint`; connecting never waits for the peer.
  Dealer(zmq::context_t& context, const std::string& endpoint);
  Dealer(const Dealer&) = delete;
  Dealer& operator=(const Dealer&) = delete;

  // Queues a multipart message; false when it cannot be queued now (EAGAIN: no peer, or HWM).
  bool try_send(const mdp::Frames& frames);
  // Waits up to `wait` for a whole message; nullopt when none arrived (EAGAIN) or when the
  // connection changed (see handshakes()) before one did.
  std::optional<mdp::Frames> receive(std::chrono::milliseconds wait);
  // Waits up to `wait` until a message can be queued.
  bool wait_writable(std::chrono::milliseconds wait);
  // The endpoint connected to.
  const std::string& endpoint() const { return endpoint_; }
  // ZMTP handshakes completed with a broker: 1 once first connected, one more per reconnection.
  uint64_t handshakes() const { return handshakes_; }

 private:
  // Reads the socket monitor's pending events (handshakes, disconnections) without waiting.
  void read_monitor();

  zmq::socket_t socket_;
  zmq::socket_t monitor_;  // PAIR end of the DEALER's socket monitor
  std::string endpoint_;
  uint64_t handshakes_ = 0;
};

}  // namespace ecgq::client
