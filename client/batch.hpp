// Submitting a stream of records through a bounded window and collecting one outcome per record.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "client/client.hpp"
#include "client/job_source.hpp"

namespace ecgq::client {

// How a batch runs.
struct BatchOptions {
  size_t window = 64;                 // jobs outstanding at most (ordered: plus held results)
  bool ordered = false;               // hand out outcomes in input order
  std::function<bool()> interrupted;  // polled often; true cancels queued jobs and stops
  Millis cancel_wait{2000};           // how long to wait for mmi.cancel's reply
};

// The outcome of one record.
struct Outcome {
  std::string path;
  schema::Result result;  // local failures are error results with attempts 0
};

// What happened overall.
struct BatchSummary {
  int64_t records = 0;                // outcomes handed out
  int64_t ok = 0;                     // with status ok
  int64_t failed = 0;                 // with status error
  bool interrupted = false;           // stopped by `interrupted`
  Status fatal;                       // broker_unreachable and the like: the batch stopped early
  std::optional<CancelReply> cancel;  // the broker's answer to the interrupt's mmi.cancel
};

// Pulls records from `next` only while the window has room, submits them through `client` and
// calls `on_outcome` once per record (local errors included) and `on_progress` for PARTIALs.
// When the broker goes silent, every outstanding record gets an error outcome with the fatal
// code and the batch stops.
BatchSummary run_batch(
    Client& client, const std::function<std::optional<Submission>()>& next,
    const BatchOptions& options, const std::function<void(const Outcome&)>& on_outcome,
    const std::function<void(const std::string& path, const schema::Progress&)>& on_progress = {});

}  // namespace ecgq::client
