#include "protocol/worker_state.hpp"

namespace ecgq {

namespace {

// The one table of names, in enum order.
constexpr const char* kNames[] = {"cold", "warming", "warm", "asleep", "waking", "failed"};
constexpr int kCount = static_cast<int>(sizeof kNames / sizeof kNames[0]);

}  // namespace

const char* state_name(WorkerState state) {
  return kNames[static_cast<int>(state)];
}

std::optional<WorkerState> parse_worker_state(std::string_view name) {
  for (int i = 0; i < kCount; ++i)
    if (name == kNames[i]) return static_cast<WorkerState>(i);
  return std::nullopt;
}

}  // namespace ecgq
