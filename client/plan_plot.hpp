// `ecgq plan --sweep ... --plot FILE`: an SVG of latency p99 and worker-hours awake against the
// swept setting, the trade the planner exists to show.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.hpp"
#include "planner/plan.hpp"

namespace ecgq::client {

// Writes the SVG to `path`: one point per (setting label, result), in sweep order.
Status write_plan_plot(const std::string& path, const std::string& sweep_key,
                       const std::vector<std::pair<std::string, planner::PlanResult>>& rows);

}  // namespace ecgq::client
