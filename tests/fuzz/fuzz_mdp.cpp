// libFuzzer target: Majordomo frame parsing on both sides (the broker parses client and worker
// messages, the client and worker parse what the broker sends). The input is split into frames
// at each 0xFF 0x00 pair, so mutations reach every frame position. Any split must parse or give
// a clean error; a parsed message must rebuild into frames that parse to the same thing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/protocol.hpp"

namespace {

ecgq::mdp::Frames split(const uint8_t* data, size_t size) {
  ecgq::mdp::Frames frames(1);
  for (size_t i = 0; i < size; ++i) {
    if (i + 1 < size && data[i] == 0xFF && data[i + 1] == 0x00) {
      frames.emplace_back();
      ++i;
      continue;
    }
    frames.back() += static_cast<char>(data[i]);
  }
  return frames;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecgq::mdp;
  const Frames frames = split(data, size);
  (void)peer_kind(frames);
  if (auto c = parse_client(frames); c.ok()) {
    auto again = parse_client(client_frames(c->command, c->service, c->body));
    if (!again.ok() || again->service != c->service || again->body != c->body) __builtin_trap();
  }
  if (auto w = parse_worker(frames); w.ok()) {
    (void)command_name(w->command);
  }
  return 0;
}
