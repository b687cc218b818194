// spdlog set-up shared by every binary: one line per event, key=value fields.
#pragma once

#include <string>

namespace ecgq {

// Configures the default logger for `component` ("broker", "worker", "ecgq") at `level`
// (trace, debug, info, warn, error); logs go to stderr so stdout stays for results.
void init_logging(const std::string& component, const std::string& level);

}  // namespace ecgq
