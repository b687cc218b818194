#include "broker/handshake_log.hpp"

#include <spdlog/spdlog.h>

#include <cstring>

#include "common/text.hpp"
#include "protocol/zmq_frames.hpp"

namespace ecgq::broker {

namespace {

// Why libzmq failed a handshake, from the monitor event's value. A plaintext peer usually shows
// as the peer closing the connection (the value is then an errno), a CURVE peer using the wrong
// broker key as a protocol error.
std::string reason(uint32_t value) {
  if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) return "not_curve";
  return "bad_handshake";
}

}  // namespace

HandshakeLog::HandshakeLog(zmq::context_t& context, zmq::socket_t& router, const std::string& name)
    : socket_(context, zmq::socket_type::pair), name_(name) {
  const std::string endpoint = "inproc://ecgq.handshakes." + name;
  if (zmq_socket_monitor(router.handle(), endpoint.c_str(),
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
    throw zmq::error_t();
  socket_.set(zmq::sockopt::linger, 0);
  socket_.connect(endpoint);
}

void HandshakeLog::log_pending() {
  while (true) {
    auto event = mdp::recv_frames(socket_, zmq::recv_flags::dontwait);
    if (!event) return;
    // Frame 0: 16-bit event id and 32-bit value, native byte order; frame 1: the endpoint.
    if (event->size() < 2 || (*event)[0].size() < 6) continue;
    uint16_t id = 0;
    uint32_t value = 0;
    std::memcpy(&id, (*event)[0].data(), sizeof id);
    std::memcpy(&value, (*event)[0].data() + sizeof id, sizeof value);
    // Refusals by ZAP were logged with the key by the ZAP handler already.
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) continue;
    spdlog::warn(
        "event=peer_refused reason={} socket={} endpoint={} detail=0x{:x} "
        "hint=\"a plaintext peer, or a CURVE peer with the wrong broker key\"",
        reason(value), name_, loggable((*event)[1], 64), value);
  }
}

}  // namespace ecgq::broker
