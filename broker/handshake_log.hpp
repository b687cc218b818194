// Logs the CURVE handshakes a ROUTER socket refused for reasons the ZAP handler never sees: a
// plaintext (NULL) or otherwise mismatched peer fails before ZAP is asked. One line per refused
// handshake, from the socket monitor (RFC 27 covers only the handshakes that reach ZAP).
#pragma once

#include <string>
#include <zmq.hpp>

namespace ecgq::broker {

// A socket monitor of one ROUTER socket, polled by the broker loop.
class HandshakeLog {
 public:
  // Monitors `router` (in `context`) for failed handshakes; `name` tells the sockets apart.
  HandshakeLog(zmq::context_t& context, zmq::socket_t& router, const std::string& name);
  HandshakeLog(const HandshakeLog&) = delete;
  HandshakeLog& operator=(const HandshakeLog&) = delete;

  // The PAIR socket to poll for ZMQ_POLLIN.
  zmq::socket_t& socket() { return socket_; }
  // Logs every event waiting on the monitor, without blocking.
  void log_pending();

 private:
  zmq::socket_t socket_;
  std::string name_;
};

}  // namespace ecgq::broker
