#include "protocol/zmq_frames.hpp"

#include <algorithm>
#include <iterator>
#include <vector>
#include <zmq_addon.hpp>

namespace ecgq::mdp {

namespace {

// The ZAP User-Id of the connection `parts` came over (the last frame came over the wire: a
// ROUTER's first frame is its own routing id, which carries no connection metadata).
std::string user_id_of(std::vector<zmq::message_t>& parts) {
  const char* uid = parts.empty() ? nullptr : zmq_msg_gets(parts.back().handle(), "User-Id");
  return uid ? uid : "";
}

}  // namespace

Frames copy_frames(const std::vector<zmq::message_t>& parts) {
  Frames frames;
  frames.reserve(parts.size());
  for (const auto& p : parts) frames.emplace_back(static_cast<const char*>(p.data()), p.size());
  return frames;
}

std::optional<Frames> recv_frames(zmq::socket_t& socket, zmq::recv_flags flags,
                                  std::string* user_id) {
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(socket, std::back_inserter(parts), flags)) return std::nullopt;
  if (user_id) *user_id = user_id_of(parts);
  return copy_frames(parts);
}

std::optional<SplitMessage> recv_split(zmq::socket_t& socket, size_t head_frames,
                                       zmq::recv_flags flags, std::string* user_id) {
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(socket, std::back_inserter(parts), flags)) return std::nullopt;
  if (user_id) *user_id = user_id_of(parts);
  SplitMessage message;
  const size_t head = std::min(head_frames, parts.size());
  message.head.reserve(head);
  for (size_t i = 0; i < head; ++i)
    message.head.emplace_back(static_cast<const char*>(parts[i].data()), parts[i].size());
  message.tail.reserve(parts.size() - head);
  for (size_t i = head; i < parts.size(); ++i) message.tail.push_back(std::move(parts[i]));
  return message;
}

bool send_frames(zmq::socket_t& socket, const Frames& frames, zmq::send_flags flags) {
  std::vector<zmq::const_buffer> parts;
  parts.reserve(frames.size());
  for (const auto& f : frames) parts.emplace_back(f.data(), f.size());
  return zmq::send_multipart(socket, parts, flags).has_value();
}

}  // namespace ecgq::mdp
