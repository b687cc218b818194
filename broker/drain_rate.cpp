#include "broker/drain_rate.hpp"

#include <chrono>

namespace ecgq::broker {

namespace {
// Weight of the newest interval: about the last ten completions count.
constexpr double kWeight = 0.1;
}  // namespace

void DrainRate::completed(SteadyClock::time_point now, bool work_left) {
  if (counted_) {
    const double dt = std::chrono::duration<double, std::milli>(now - last_).count();
    interval_ms_ = interval_ms_ > 0 ? (1 - kWeight) * interval_ms_ + kWeight * dt : dt;
  }
  last_ = now;
  counted_ = work_left;
}

}  // namespace ecgq::broker
