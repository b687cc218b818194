// How fast a service's backlog drains: a moving average of the time between completions while
// the service had work, which is what retry_after_ms promises a refused client.
#pragma once

#include "common/time.hpp"

namespace ecgq::broker {

// Moving average (weight 0.1 per sample) of the interval between a service's completions,
// counting only intervals that started with work still queued or in flight (idle gaps are not
// a slow drain).
class DrainRate {
 public:
  // Records a completion at `now`; `work_left` is whether jobs remain queued or in flight.
  void completed(SteadyClock::time_point now, bool work_left);
  // The average busy interval between completions in ms; 0 before the first busy interval.
  double interval_ms() const { return interval_ms_; }

 private:
  SteadyClock::time_point last_{};
  bool counted_ = false;  // the interval from last_ to the next completion is a busy one
  double interval_ms_ = 0;
};

}  // namespace ecgq::broker
