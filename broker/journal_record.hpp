// What the broker journals: a job as the journal keeps it and the changes the broker core asks
// for (plain data, so the core emits them without knowing about SQLite).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq::broker {

// Where a journaled job is.
enum class JournalState { Queued = 0, Running = 1, Done = 2 };

// One job as the journal keeps it, and as replay returns it.
struct JournaledJob {
  uint64_t seq = 0;              // acceptance order (replay order within a service)
  std::string id;                // the job id clients ask for
  std::string service;           // the service it was submitted to
  std::string submitter;         // who may read it (a CURVE key, or "" without CURVE)
  std::string body;              // the request body frames, packed (pack_frames)
  int64_t received_unix_ms = 0;  // wall-clock receipt, so ages survive a restart
  int64_t deadline_unix_ms = 0;  // 0 = no deadline
  int64_t attempts = 0;          // dispatches so far
  JournalState state = JournalState::Queued;
  std::string result;           // the FINAL body, once done
  int64_t expires_unix_ms = 0;  // when a done job's result may be forgotten
};

// One change to the journal. Accept carries the whole job; the others name it by seq (unique
// in the file: after a replay the broker continues from the largest seq it loaded).
// DeadLetter appends a job that exhausted max_attempts to the dead-letter list.
struct JournalRecord {
  enum class Kind { Accept, Dispatch, Finish, Forget, DeadLetter };
  Kind kind = Kind::Accept;
  JournaledJob job;  // Accept: every field; Dispatch: seq, attempts; Finish: seq, result,
                     // expires_unix_ms; Forget: seq; DeadLetter: result (the encoded letter)
};

// Packs frames into one blob (a msgpack array of bin) and back, for JournaledJob::body.
std::string pack_frames(const std::vector<std::string>& frames);
Expected<std::vector<std::string>> unpack_frames(const std::string& blob);

}  // namespace ecgq::broker
