// What /health, /v2/health/ready and / say about the service, read from the broker's mmi.status.
#pragma once

#include <string>
#include <vector>

#include "client/json_output.hpp"
#include "common/duration.hpp"
#include "gateway/broker_link.hpp"

namespace ecgq::gateway {

// The service as the gateway sees it.
struct ServiceView {
  bool ready = false;         // the service can answer a request now (asleep workers count)
  std::string reason;         // why not, when not ready
  bool model_loaded = false;  // a worker has its model in memory (warm or busy)
  client::Json workers;       // {state: count} over every state mmi.status names, zeros included
  int64_t queued = 0;         // jobs queued at the broker for the service
  int64_t in_flight = 0;      // jobs running on its workers
  client::Json model;         // {kind, name, sha256, precision} of the first worker that has one
  double status_age_ms = -1;  // age of the mmi.status it is read from (-1: none yet)
  std::vector<std::string> labels;  // label names, when a worker's model in mmi.status has them
                                    // (READY carrying label names is planned, issue 13)
};

// Reads `snapshot` for `service`; a status older than `stale_after` means the broker is not
// answering.
ServiceView service_view(const StatusSnapshot& snapshot, const std::string& service,
                         Millis stale_after);

}  // namespace ecgq::gateway
