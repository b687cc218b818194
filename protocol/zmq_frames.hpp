// The one conversion between ZeroMQ multipart messages and mdp::Frames, for every socket owner
// (broker loop, worker I/O thread, client DEALER, tests, benchmarks).
#pragma once

#include <optional>
#include <zmq.hpp>

#include "protocol/protocol.hpp"

namespace ecgq::mdp {

// Receives one whole multipart message; nullopt when none is there (EAGAIN with dontwait).
// Errors other than EAGAIN are thrown as zmq::error_t (EINTR included: callers decide).
std::optional<Frames> recv_frames(zmq::socket_t& socket,
                                  zmq::recv_flags flags = zmq::recv_flags::none);

// Sends `frames` as one multipart message; false when the first frame cannot be queued now
// (EAGAIN with dontwait: no peer or high-water mark). Once the first frame is queued, the rest
// follow (libzmq queues a started message whole).
bool send_frames(zmq::socket_t& socket, const Frames& frames,
                 zmq::send_flags flags = zmq::send_flags::none);

}  // namespace ecgq::mdp
