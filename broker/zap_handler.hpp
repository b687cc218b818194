// The broker's ZAP handler (ZeroMQ RFC 27): libzmq asks it, over inproc://zeromq.zap.01, whether
// each CURVE handshake may complete. It admits keys in the allow-lists and refuses the rest,
// logging every refusal with the key's fingerprint (the audit trail by key). The admitted key
// becomes the connection's User-Id, which the broker checks against the current lists on every
// message (a key removed by a reload stops working on open connections too).
#pragma once

#include <cstdint>
#include <memory>
#include <zmq.hpp>

#include "broker/key_store.hpp"

namespace ecgq::broker {

// Answers ZAP requests from the broker loop (poll socket() with the ROUTER sockets).
class ZapHandler {
 public:
  // Binds the ZAP endpoint in `context` (must be the context of the CURVE server sockets,
  // before they bind).
  ZapHandler(zmq::context_t& context, std::shared_ptr<const KeyStore> keys);

  // The REP socket to poll for ZMQ_POLLIN.
  zmq::socket_t& socket() { return socket_; }
  // Replaces the allow-lists (SIGHUP); later handshakes see the new ones.
  void set_keys(std::shared_ptr<const KeyStore> keys) { keys_ = std::move(keys); }
  // The current allow-lists.
  const KeyStore& keys() const { return *keys_; }
  // Answers every request waiting on the socket, without blocking.
  void answer_pending();

  // Handshakes admitted and refused since start, for mmi.status and metrics.
  uint64_t admitted() const { return admitted_; }
  uint64_t refused() const { return refused_; }

 private:
  zmq::socket_t socket_;
  std::shared_ptr<const KeyStore> keys_;
  uint64_t admitted_ = 0;
  uint64_t refused_ = 0;
};

}  // namespace ecgq::broker
