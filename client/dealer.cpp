#include "client/dealer.hpp"

#include <cerrno>

#include "protocol/zmq_frames.hpp"

namespace ecgq::client {

Dealer::Dealer(zmq::context_t& context, const std::string& endpoint, const curve::ClientKeys* keys)
    : socket_(context, zmq::socket_type::dealer), endpoint_(endpoint) {
  socket_.set(zmq::sockopt::linger, 0);
  if (keys != nullptr) curve::apply_client_keys(socket_, *keys);
  // Large ECGs are single frames; the broker enforces its own limit and answers clearly.
  socket_.set(zmq::sockopt::sndhwm, 10000);
  socket_.set(zmq::sockopt::rcvhwm, 10000);
  socket_.connect(endpoint);
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
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, wait);
    if ((item.revents & ZMQ_POLLIN) == 0) return std::nullopt;
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
