// The state of a worker's model, as the worker reports it (READY metadata, heartbeat status)
// and as the broker tracks it: one enum for both processes.
#pragma once

#include <optional>
#include <string_view>

namespace ecgq {

// Where a worker's model is in its life: COLD -> WARMING -> WARM -> ASLEEP -> WAKING -> WARM.
// Waking is a warming that a job started (the broker marks an asleep worker waking when it sends
// it a job; the worker reports warming while it loads).
enum class WorkerState { Cold, Warming, Warm, Asleep, Waking };

// The wire name of a state: "cold", "warming", "warm", "asleep" or "waking".
const char* state_name(WorkerState state);

// The state a wire name spells, or nullopt for anything else.
std::optional<WorkerState> parse_worker_state(std::string_view name);

// True while a worker is loading its model (warming or waking): it cannot run jobs yet.
inline bool is_loading(WorkerState state) {
  return state == WorkerState::Warming || state == WorkerState::Waking;
}

}  // namespace ecgq
