#include "client/dealer.hpp"

#include <cerrno>
#include <zmq_addon.hpp>

namespace ecgq::client {

Dealer::Dealer(zmq::context_t& context, const std::string& endpoint)
    : socket_(context, zmq::socket_type::dealer), endpoint_(endpoint) {
  socket_.set(zmq::sockopt::linger, 0);
  // Large ECGs are single frames; the broker enforces its own limit and answers clearly.
  socket_.set(zmq::sockopt::sndhwm, 10000);
  socket_.set(zmq::sockopt::rcvhwm, 10000);
  socket_.connect(endpoint);
}

bool Dealer::try_send(const mdp::Frames& frames) {
  // Only the first part can see EAGAIN: once it is queued libzmq accepts the rest of the message.
  for (size_t i = 0; i < frames.size(); ++i) {
    auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (i == 0) flags = flags | zmq::send_flags::dontwait;
    try {
      auto sent = socket_.send(zmq::buffer(frames[i]), flags);
      if (!sent) return false;
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      if (i == 0) return false;
      --i;  // retry the interrupted part: the rest of a started message must follow
    }
  }
  return true;
}

std::optional<mdp::Frames> Dealer::receive(std::chrono::milliseconds wait) {
  std::vector<zmq::message_t> parts;
  try {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, wait);
    if ((item.revents & ZMQ_POLLIN) == 0) return std::nullopt;
    auto got = zmq::recv_multipart(socket_, std::back_inserter(parts), zmq::recv_flags::dontwait);
    if (!got) return std::nullopt;
  } catch (const zmq::error_t& e) {
    // A signal (Ctrl-C) interrupts the wait; the caller's loop checks for it.
    if (e.num() == EINTR) return std::nullopt;
    throw;
  }
  mdp::Frames frames;
  frames.reserve(parts.size());
  for (auto& p : parts) frames.emplace_back(p.to_string());
  return frames;
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
