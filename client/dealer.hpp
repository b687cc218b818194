// A DEALER socket connected to the broker, speaking whole multipart messages.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "protocol/curve.hpp"
#include "protocol/protocol.hpp"
#include "common/status.hpp"

namespace ecgq::client {

// One DEALER connection (ZMQ_LINGER 0, so a dead broker never blocks exit).
class Dealer {
 public:
  // Creates the socket and connects to `endpoint`; connecting never waits for the peer. With
  // `keys` the connection is a CURVE client of the broker (encrypted and authenticated).
  Dealer(zmq::context_t& context, const std::string& endpoint,
         const curve::ClientKeys* keys = nullptr);
  Dealer(const Dealer&) = delete;
  Dealer& operator=(const Dealer&) = delete;

  // Queues a multipart message; false when it cannot be queued now (EAGAIN: no peer, or HWM).
  bool try_send(const mdp::Frames& frames);
  // Waits up to `wait` for a whole message; nullopt when none arrived (EAGAIN).
  std::optional<mdp::Frames> receive(std::chrono::milliseconds wait);
  // Waits up to `wait` until a message can be queued.
  bool wait_writable(std::chrono::milliseconds wait);
  // The endpoint connected to.
  const std::string& endpoint() const { return endpoint_; }

 private:
  zmq::socket_t socket_;
  std::string endpoint_;
};

}  // namespace ecgq::client
