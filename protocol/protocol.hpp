// Majordomo 0.2 (ZeroMQ RFC 18) frame layouts, exactly as the RFC writes them, plus parsing.
// On the broker's ROUTER socket every message is preceded by the peer identity frame; the
// functions here work on the frames after it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq::mdp {

// Protocol header of clients (frame 0 of every client message).
inline constexpr const char* kClientHeader = "MDPC02";
// Protocol header of workers (frame 0 of every worker message).
inline constexpr const char* kWorkerHeader = "MDPW02";

// Client command bytes (frame 1 of client messages).
enum class ClientCommand : uint8_t { Request = 0x01, Partial = 0x02, Final = 0x03 };
// Worker command bytes (frame 1 of worker messages).
enum class WorkerCommand : uint8_t {
  Ready = 0x01,
  Request = 0x02,
  Partial = 0x03,
  Final = 0x04,
  Heartbeat = 0x05,
  Disconnect = 0x06,
};

// A message as a list of frames (binary-safe strings).
using Frames = std::vector<std::string>;

// Which kind of peer sent a message, told apart by the header frame.
enum class PeerKind { Client, Worker };

// A client message: REQUEST from a client, or PARTIAL/FINAL to one.
struct ClientMessage {
  ClientCommand command;
  std::string service;
  Frames body;  // frames 3+; one msgpack frame for ecgq bodies
};

// A worker message in either direction.
struct WorkerMessage {
  WorkerCommand command;
  std::string service;        // READY only
  std::string reply_to;       // REQUEST/PARTIAL/FINAL: the opaque client address frame
  Frames body;                // REQUEST/PARTIAL/FINAL: frames 4+; READY: optional metadata frame(s);
                              // HEARTBEAT: optional status frame
};

// The peer kind of a message, or an error when frame 0 is neither header.
Expected<PeerKind> peer_kind(const Frames& frames);
// Parses a client message; errors name the frame that is wrong.
Expected<ClientMessage> parse_client(const Frames& frames);
// The same, moving the service and body out of `frames` when they parse (a 100 MiB body is not
// copied); on an error `frames` is left as it was.
Expected<ClientMessage> parse_client(Frames&& frames);
// Parses a worker message; errors name the frame that is wrong.
Expected<WorkerMessage> parse_worker(const Frames& frames);

// Builds the frames of a client message.
Frames client_frames(ClientCommand command, const std::string& service, Frames body);
// Builds READY with an optional msgpack metadata frame (ecgq extension; empty = strict RFC).
Frames ready_frames(const std::string& service, const std::string& metadata = {});
// Builds REQUEST, PARTIAL or FINAL carrying `reply_to` and an empty separator frame.
Frames worker_reply_frames(WorkerCommand command, const std::string& reply_to, Frames body);
// Builds HEARTBEAT with an optional msgpack status frame (ecgq extension; empty = strict RFC).
Frames heartbeat_frames(const std::string& status = {});
// Builds DISCONNECT.
Frames disconnect_frames();

// A printable name for a command byte, for logs.
const char* command_name(WorkerCommand c);
const char* command_name(ClientCommand c);

}  // namespace ecgq::mdp
