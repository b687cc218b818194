// The one table of ecgq's error codes: every code a result, a reply, a log line or the CLI can
// carry. Status keeps the wire name; docs/protocol.md section 6 is generated from this table
// (tests/test_error_codes.cpp checks that it is current).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace ecgq {

// Every error code, in the order of the table in docs/protocol.md. The first group travels in
// results (broker and worker); the rest are reported by the client library, the CLI, the record
// readers, the checkpoint reader and the hub cache (and can reach a result through the worker),
// and the HTTP gateway's own answers.
enum class ErrorCode {
  // Sent in results by the broker and the workers.
  BadFrame,
  BadRequest,
  BadShape,
  UnsupportedDtype,
  MessageTooLarge,
  QueueFull,
  NoWorker,
  DeadlineExceeded,
  WorkerLost,
  ShuttingDown,
  Cancelled,
  JournalFull,
  JournalUnavailable,
  MissingLeads,
  TooShort,
  TooLong,
  BadSamples,
  UnsupportedOutput,
  ModelError,
  ModelUnavailable,
  ModelMismatch,
  ModelRetired,
  Internal,
  // Client library and CLI.
  BrokerUnreachable,
  BadResult,
  Unsupported,
  IoError,
  // Record readers.
  NotFound,
  UnsupportedFormat,
  UnsupportedRecord,
  BadRecord,
  BadNpy,
  // Settings, command lines and start-up.
  BadConfig,
  BadUsage,
  BindFailed,
  JournalCorrupt,
  // CURVE security.
  BadCertificate,
  CurveUnavailable,
  // Checkpoints and the model.
  BadCheckpoint,
  UnsupportedModel,
  BadInput,
  // Checkpoint references and the hub cache.
  BadReference,
  CheckpointNotFound,
  HubOffline,
  HubUnreachable,
  HubTimeout,
  HubInterrupted,
  HubAuth,
  HubNotFound,
  HubHttp,
  HubChecksumMismatch,
  DiskFull,
  CacheReadonly,
  // The HTTP gateway (docs/gateway.md maps every code to an HTTP status).
  Unauthorized,
  Forbidden,
  NoSuchRoute,
  NoSuchJob,
  NoSuchModel,
  MethodNotAllowed,
  BodyTooLarge,
  UnsupportedMediaType,
  Busy,
  TooManyConnections,
  Timeout,
};

// One row of the table: the wire name, who reports it, what it means, whether retrying helps.
struct ErrorCodeInfo {
  ErrorCode code;
  const char* name;     // the wire name, e.g. "queue_full"
  const char* sent_by;  // "broker", "worker", "client library", ...
  const char* meaning;  // one line (Markdown)
  const char* retry;    // whether sending the same request again can succeed
};

// The wire name of `code` ("queue_full").
const char* error_code_name(ErrorCode code);
// The table row of `code`.
const ErrorCodeInfo& error_code_info(ErrorCode code);
// Every row, in enum order.
const std::vector<ErrorCodeInfo>& error_code_table();
// The code a wire name spells, or nullopt (a code from a newer peer, or a typo).
std::optional<ErrorCode> parse_error_code(std::string_view name);
// True for the worker-side failures (the worker's model, memory or code, not the input): the
// broker retries such a job on another worker up to max_attempts and counts the failure against
// the worker (max_worker_failures). Input errors and unknown codes are never retried.
bool is_worker_fault(std::string_view name);

}  // namespace ecgq
