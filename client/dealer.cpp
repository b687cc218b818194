#include "client/dealer.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "protocol/zmq_frames.hpp"

namespace ecgq::client {

namespace {

// Heartbeats on the link itself (ZMTP PING/PONG, answered by libzmq in any peer): a broker host
// that vanished without closing the connection is noticed, and reconnected to, within seconds.
constexpr int kLinkHeartbeatMs = 2000;
constexpr int kLinkTimeoutMs = 6000;

}  // namespace

Dealer::Dealer(zmq::context_t& context, const std::string& endpoint)
    : socket_(context, zmq::socket_type::dealer),
      monitor_(context, zmq::socket_type::pair),
      endpoint_(endpoint) {
  socket_.set(zmq::sockopt::linger, 0);
  // Large ECGs are single frames; the broker enforces its own limit and answers clearly.
  socket_.set(zmq::sockopt::sndhwm, 10000);
  socket_.set(zmq::sockopt::rcvhwm, 10000);
  socket_.set(zmq::sockopt::heartbeat_ivl, kLinkHeartbeatMs);
  socket_.set(zmq::sockopt::heartbeat_timeout, kLinkTimeoutMs);
  // The monitor is attached before connecting, so that the first handshake is counted too.
  static std::atomic<uint64_t> monitors{0};
  const std::string address = "inproc://ecgq-dealer-monitor-" + std::to_string(++monitors);
  if (zmq_socket_monitor(socket_.handle(), address.c_str(),
                         ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0) {
    throw zmq::error_t();
  }
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(address);
  socket_.connect(endpoint);
}

void Dealer::read_monitor() {
  while (true) {
    zmq::message_t event;
    if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return;
    zmq::message_t address;
    if (event.more()) (void)monitor_.recv(address, zmq::recv_flags::dontwait);
    uint16_t id = 0;
    if (event.size() >= sizeof id) std::memcpy(&id, event.data(), sizeof id);
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      ++handshakes_;
      if (handshakes_ > 1) spdlog::info("event=broker_reconnected broker={}", endpoint_);
    } else if (id == ZMQ_EVENT_DISCONNECTED) {
      spdlog::info("event=broker_disconnected broker={}", endpoint_);
    }
  }
}

bool Dealer::try_send(const mdp::Frames& frames) {
  try {
    return mdp::send_frames(socket_, frames, zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    // A signal (Ctrl-C) interrupted the first part: nothing was queued, the caller retries.
    if (e.num() != EINTR) throw;
    return false;
  }
}

std::optional<mdp::Frames> Dealer::receive(std::chrono::milliseconds wait) {
  try {
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, wait);
    if ((items[1].revents & ZMQ_POLLIN) != 0) read_monitor();
    if ((items[0].revents & ZMQ_POLLIN) == 0) return std::nullopt;
    return mdp::recv_frames(socket_, zmq::recv_flags::dontwait);
  } catch (const zmq::error_t& e) {
    // A signal (Ctrl-C) interrupts the wait; the caller's loop checks for it.
    if (e.num() == EINTR) return std::nullopt;
    throw;
  }
}

bool Dealer::wait_writable(std::chrono::milliseconds wait) {
  try {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLOUT, 0};
    zmq::poll(&item, 1, wait);
    return (item.revents & ZMQ_POLLOUT) != 0;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return false;
    throw;
  }
}

}  // namespace ecgq::client
