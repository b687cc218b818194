#include "protocol/zmq_frames.hpp"

#include <iterator>
#include <vector>
#include <zmq_addon.hpp>

namespace ecgq::mdp {

std::optional<Frames> recv_frames(zmq::socket_t& socket, zmq::recv_flags flags) {
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(socket, std::back_inserter(parts), flags)) return std::nullopt;
  Frames frames;
  frames.reserve(parts.size());
  for (auto& p : parts) frames.emplace_back(static_cast<const char*>(p.data()), p.size());
  return frames;
}

bool send_frames(zmq::socket_t& socket, const Frames& frames, zmq::send_flags flags) {
  std::vector<zmq::const_buffer> parts;
  parts.reserve(frames.size());
  for (const auto& f : frames) parts.emplace_back(f.data(), f.size());
  return zmq::send_multipart(socket, parts, flags).has_value();
}

}  // namespace ecgq::mdp
