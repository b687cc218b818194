// Socket helpers shared by the ZeroMQ benchmarks (bench_broker, bench_scaleout).
#pragma once

#include <cstdlib>
#include <string>
#include <zmq.hpp>

#include "protocol/protocol.hpp"
#include "protocol/zmq_frames.hpp"

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

// One multipart message, or no frames when none is there (dontwait).
inline mdp::Frames recv_frames(zmq::socket_t& s, zmq::recv_flags flags = zmq::recv_flags::none) {
  return mdp::recv_frames(s, flags).value_or(mdp::Frames{});
}

// Sends `frames` as one multipart message.
using mdp::send_frames;

}  // namespace ecgq::bench
