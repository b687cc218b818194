// Socket helpers shared by the ZeroMQ benchmarks (bench_broker, bench_scaleout).
#pragma once

#include <cstdlib>
#include <iterator>
#include <string>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "protocol/protocol.hpp"

namespace ecgq::bench {

// A TCP port on 127.0.0.1 that was free a moment ago.
inline int free_port() {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  s.bind("tcp://127.0.0.1:*");
  const std::string ep = s.get(zmq::sockopt::last_endpoint);
  return std::atoi(ep.substr(ep.rfind(':') + 1).c_str());
}

// One multipart message, or no frames when none is there (dontwait) or the receive failed.
inline mdp::Frames recv_frames(zmq::socket_t& s, zmq::recv_flags flags = zmq::recv_flags::none) {
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(s, std::back_inserter(parts), flags)) return {};
  mdp::Frames out;
  for (auto& p : parts) out.emplace_back(p.to_string());
  return out;
}

// Sends `frames` as one multipart message.
inline void send_frames(zmq::socket_t& s, const mdp::Frames& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    s.send(zmq::buffer(frames[i]),
           i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

}  // namespace ecgq::bench
