// The one conversion between ZeroMQ multipart messages and mdp::Frames, for every socket owner
// (broker loop, worker I/O thread, client DEALER, tests, benchmarks).
#pragma once

#include <cstddef>
#include <optional>
#include <vector>
#include <zmq.hpp>

#include "protocol/protocol.hpp"

namespace ecgq::mdp {

// Receives one whole multipart message; nullopt when none is there (EAGAIN with dontwait).
// Errors other than EAGAIN are thrown as zmq::error_t (EINTR included: callers decide).
// `user_id`, when given, receives the ZAP User-Id of the sending connection (the peer's CURVE
// public key in Z85 with the broker's ZAP handler; "" without security).
std::optional<Frames> recv_frames(zmq::socket_t& socket,
                                  zmq::recv_flags flags = zmq::recv_flags::none,
                                  std::string* user_id = nullptr);

// A multipart message whose first frames are copied into strings and whose later frames stay in
// their ZeroMQ buffers.
struct SplitMessage {
  Frames head;                       // the first frames, as recv_frames() gives them
  std::vector<zmq::message_t> tail;  // the rest, not copied
};

// Receives one whole multipart message, copying only its first `head_frames` frames: a worker's
// REQUEST body (frame 4, up to 128 MiB) is decoded where it arrived instead of copied, and the
// broker copies a large body off its loop. nullopt, errors and `user_id` as recv_frames().
std::optional<SplitMessage> recv_split(zmq::socket_t& socket, size_t head_frames,
                                       zmq::recv_flags flags = zmq::recv_flags::none,
                                       std::string* user_id = nullptr);

// The frames of `parts`, copied into strings.
Frames copy_frames(const std::vector<zmq::message_t>& parts);

// Sends `frames` as one multipart message; false when the first frame cannot be queued now
// (EAGAIN with dontwait: no peer or high-water mark). Once the first frame is queued, the rest
// follow (libzmq queues a started message whole).
bool send_frames(zmq::socket_t& socket, const Frames& frames,
                 zmq::send_flags flags = zmq::send_flags::none);

}  // namespace ecgq::mdp
