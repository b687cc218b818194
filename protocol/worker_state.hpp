// The state of a worker's model, as the worker reports it (READY metadata, heartbeat status)
// and as the broker tracks it: one enum for both processes.
#pragma once

#include <optional>
#include <string_view>

namespace ecgq {

// Where a worker's model is in its life: COLD -> WARMING -> WARM -> ASLEEP -> WAKING -> WARM.
// Waking is a warming that a job started (the broker marks an asleep worker waking when it sends
// it a job; the worker reports warming while it loads). FAILED: the last load failed; the worker
// retries it after model_retry, and the broker sends it no job meanwhile.
enum class WorkerState { Cold, Warming, Warm, Asleep, Waking, Failed };

// The wire name of a state: "cold", "warming", "warm", "asleep", "waking" or "failed".
const char* state_name(WorkerState state);

// The state a wire name spells, or nullopt for anything else.
std::optional<WorkerState> parse_worker_state(std::string_view name);

// True while a worker is loading its model (warming or waking): it cannot run jobs yet.
inline bool is_loading(WorkerState state) {
  return state == WorkerState::Warming || state == WorkerState::Waking;
}

// True when a worker in this state may be sent jobs: every state but failed (a sleeping worker
// wakes for its job).
inline bool can_answer(WorkerState state) {
  return state != WorkerState::Failed;
}

}  // namespace ecgq
