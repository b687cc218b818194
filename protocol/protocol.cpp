#include "protocol/protocol.hpp"

#include <algorithm>
#include <iterator>

namespace ecgq::mdp {

namespace {
Status malformed(const std::string& what) {
  return Status(ErrorCode::BadFrame, what, "frames");
}
}  // namespace

Expected<PeerKind> peer_kind(const Frames& frames) {
  if (frames.empty()) return malformed("empty message");
  if (frames[0] == kClientHeader) return PeerKind::Client;
  if (frames[0] == kWorkerHeader) return PeerKind::Worker;
  return malformed("frame 0 must be \"MDPC02\" or \"MDPW02\", got " +
                   std::to_string(frames[0].size()) + " bytes");
}

Expected<ClientMessage> parse_client(const Frames& frames) {
  if (frames.size() < 3) return malformed("client message needs at least 3 frames (header, command, service)");
  if (frames[0] != kClientHeader) return malformed("frame 0 must be \"MDPC02\"");
  if (frames[1].size() != 1) return malformed("frame 1 (command) must be one byte");
  const auto c = static_cast<uint8_t>(frames[1][0]);
  if (c < 0x01 || c > 0x03) return malformed("unknown client command 0x" + std::to_string(c));
  ClientMessage m{static_cast<ClientCommand>(c), frames[2], {}};
  m.body.assign(frames.begin() + 3, frames.end());
  return m;
}

Expected<ClientMessage> parse_client(Frames&& frames) {
  // Validate the three head frames on a copy of them, then move the body.
  const Frames head(frames.begin(), frames.begin() + std::min<size_t>(frames.size(), 3));
  auto m = parse_client(head);
  if (!m) return m;
  m->body.assign(std::make_move_iterator(frames.begin() + 3),
                 std::make_move_iterator(frames.end()));
  return m;
}

Expected<WorkerMessage> parse_worker(const Frames& frames) {
  if (frames.size() < 2) return malformed("worker message needs at least 2 frames (header, command)");
  if (frames[0] != kWorkerHeader) return malformed("frame 0 must be \"MDPW02\"");
  if (frames[1].size() != 1) return malformed("frame 1 (command) must be one byte");
  const auto c = static_cast<uint8_t>(frames[1][0]);
  WorkerMessage m{static_cast<WorkerCommand>(c), {}, {}, {}};
  switch (m.command) {
    case WorkerCommand::Ready:
      if (frames.size() < 3) return malformed("READY needs a service frame");
      if (frames[2].empty()) return malformed("READY service name is empty");
      m.service = frames[2];
      m.body.assign(frames.begin() + 3, frames.end());
      return m;
    case WorkerCommand::Request:
    case WorkerCommand::Partial:
    case WorkerCommand::Final:
      if (frames.size() < 4) return malformed(std::string(command_name(m.command)) +
                                              " needs client address and empty frames");
      if (!frames[3].empty()) return malformed("frame 3 must be the empty separator");
      m.reply_to = frames[2];
      m.body.assign(frames.begin() + 4, frames.end());
      return m;
    case WorkerCommand::Heartbeat:
      m.body.assign(frames.begin() + 2, frames.end());
      return m;
    case WorkerCommand::Disconnect:
      return m;
  }
  return malformed("unknown worker command byte " + std::to_string(c));
}

Frames client_frames(ClientCommand command, const std::string& service, Frames body) {
  Frames f{kClientHeader, std::string(1, static_cast<char>(command)), service};
  for (auto& b : body) f.push_back(std::move(b));
  return f;
}

Frames ready_frames(const std::string& service, const std::string& metadata) {
  Frames f{kWorkerHeader, std::string(1, static_cast<char>(WorkerCommand::Ready)), service};
  if (!metadata.empty()) f.push_back(metadata);
  return f;
}

Frames worker_reply_frames(WorkerCommand command, const std::string& reply_to, Frames body) {
  Frames f{kWorkerHeader, std::string(1, static_cast<char>(command)), reply_to, std::string()};
  for (auto& b : body) f.push_back(std::move(b));
  return f;
}

Frames heartbeat_frames(const std::string& status) {
  Frames f{kWorkerHeader, std::string(1, static_cast<char>(WorkerCommand::Heartbeat))};
  if (!status.empty()) f.push_back(status);
  return f;
}

Frames disconnect_frames() {
  return {kWorkerHeader, std::string(1, static_cast<char>(WorkerCommand::Disconnect))};
}

const char* command_name(WorkerCommand c) {
  switch (c) {
    case WorkerCommand::Ready: return "READY";
    case WorkerCommand::Request: return "REQUEST";
    case WorkerCommand::Partial: return "PARTIAL";
    case WorkerCommand::Final: return "FINAL";
    case WorkerCommand::Heartbeat: return "HEARTBEAT";
    case WorkerCommand::Disconnect: return "DISCONNECT";
  }
  return "UNKNOWN";
}

const char* command_name(ClientCommand c) {
  switch (c) {
    case ClientCommand::Request: return "REQUEST";
    case ClientCommand::Partial: return "PARTIAL";
    case ClientCommand::Final: return "FINAL";
  }
  return "UNKNOWN";
}

}  // namespace ecgq::mdp
