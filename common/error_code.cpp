#include "common/error_code.hpp"

#include <algorithm>
#include <cstddef>
#include <iterator>

namespace ecgq {

namespace {

using E = ErrorCode;

// The table, in enum order (checked below). Meanings are Markdown:
// docs/protocol.md section 6 is this table. A constant array, so that a Status made while other
// files are statically initialised finds it filled.
constexpr ErrorCodeInfo kTable[] = {
    {E::BadFrame, "bad_frame", "broker",
     "the MDP frames are malformed (wrong header, command, frame count)", "no — fix the client"},
    {E::BadRequest, "bad_request", "broker, worker",
     "body is not a valid job: not msgpack, wrong type, missing/unknown field (`field` says which)",
     "no"},
    {E::BadShape, "bad_shape", "broker, worker",
     "`ecg.shape` / `ecg.data` size / per-lead list lengths disagree", "no"},
    {E::UnsupportedDtype, "unsupported_dtype", "broker, worker",
     "`ecg.dtype` not `f32`/`f64`/`i16`", "no"},
    {E::MessageTooLarge, "message_too_large", "broker (client library locally)",
     "body over `max_message_bytes`", "no — send less"},
    {E::QueueFull, "queue_full", "broker", "`max_queue`, `max_queue_per_client`, `max_queued_bytes` or `max_services` reached (the message names it); also a worker's READY for a service beyond `max_services` (with DISCONNECT)",
     "yes, after `retry_after_ms`"},
    {E::NoWorker, "no_worker", "broker, client library",
     "no worker took the job within `service_wait` (or its `wait_for_worker_ms`); from the client "
     "library: the service has no worker and is not one the broker serves (`field` is `service`)",
     "yes, once workers exist"},
    {E::DeadlineExceeded, "deadline_exceeded", "broker, worker",
     "`deadline_ms` ran out (queued or running: broker; before/while running: worker)",
     "yes, with a larger budget"},
    {E::WorkerLost, "worker_lost", "broker",
     "the job's worker died, or did not finish it within `max_job_time`, `max_attempts` times",
     "the broker retries it on another worker; after `max_attempts`: maybe — the input may crash "
     "workers"},
    {E::ShuttingDown, "shutting_down", "broker, worker", "the broker (or worker) is stopping",
     "yes, elsewhere / later"},
    {E::Cancelled, "cancelled", "broker", "removed by `mmi.cancel`", "n/a"},
    {E::JournalFull, "journal_full", "broker",
     "the durable journal reached `journal_max_bytes` (docs/durability.md)",
     "yes, once results expire"},
    {E::JournalUnavailable, "journal_unavailable", "broker",
     "the journal cannot be written (disk full, I/O error): the job was not accepted",
     "yes, later"},
    {E::MissingLeads, "missing_leads", "worker",
     "the record lacks leads the model needs (and cannot derive them)", "no"},
    {E::TooShort, "too_short", "worker", "record shorter than one model segment", "no"},
    {E::TooLong, "too_long", "worker", "record longer than the worker's `max_record_seconds`",
     "no — split it"},
    {E::BadSamples, "bad_samples", "worker",
     "NaN/Inf or out-of-range samples (message names lead and index)", "no"},
    {E::UnsupportedOutput, "unsupported_output", "worker",
     "an output this model cannot produce (e.g. `saliency` from a TorchScript model)",
     "no — on this model"},
    {E::ModelError, "model_error", "worker", "the model failed to load or to run",
     "the broker retries it on another worker (up to `max_attempts`)"},
    {E::ModelUnavailable, "model_unavailable", "broker, worker",
     "the job pins `model_sha256` and no worker of its service runs that model",
     "yes, once such a worker serves"},
    {E::ModelMismatch, "model_mismatch", "broker (to a worker, with DISCONNECT)",
     "the worker's model (sha256, kind, outputs) or precision is not the one its service serves; "
     "the message names both",
     "worker: after `model_retry`, admitted once `ecgq rollout` names its model"},
    {E::ModelRetired, "model_retired", "broker (to a worker, with DISCONNECT)",
     "a rollout replaced the worker's model and its jobs are done: it leaves", "n/a"},
    {E::Internal, "internal", "worker, broker", "a bug",
     "from a worker, the broker retries it on another worker (up to `max_attempts`)"},

    {E::BrokerUnreachable, "broker_unreachable", "client library",
     "no reply from the broker within the client's `--timeout`", "yes, once the broker is up"},
    {E::BadResult, "bad_result", "client library, broker",
     "a result or `mmi.*` reply is not what the protocol says (the broker: a worker's FINAL that "
     "does not decode or names another job)",
     "from a worker, the broker retries it on another worker (up to `max_attempts`)"},
    {E::Unsupported, "unsupported", "client library",
     "the broker answers `501` to the `mmi.*` service asked for", "no — on this broker"},
    {E::IoError, "io_error", "CLI, worker",
     "a local file cannot be read or written (output, resume file, checkpoint, cache)",
     "maybe — fix the file"},
    {E::NotFound, "not_found", "record readers", "a record file does not exist or cannot be opened",
     "no"},
    {E::UnsupportedFormat, "unsupported_format", "record readers",
     "not a record format ecgq reads (a directory, MATLAB v5/v7, an unknown extension)",
     "no — convert it"},
    {E::UnsupportedRecord, "unsupported_record", "record readers",
     "a WFDB record ecgq does not read (multi-segment, signal format, samples per frame)",
     "no — convert it"},
    {E::BadRecord, "bad_record", "record readers",
     "a record file is malformed or truncated (message names the file and where)", "no"},
    {E::BadNpy, "bad_npy", "record readers", "an `.npy` file is malformed", "no"},
    {E::BadConfig, "bad_config", "broker, worker, CLI",
     "a setting, flag or config file value is invalid (`field` names the key); exit status 2",
     "no — fix the setting"},
    {E::BadUsage, "bad_usage", "broker, worker, CLI",
     "a command-line value is malformed (an endpoint that is not tcp://, ipc:// or inproc://); "
     "exit status 2",
     "no — fix the command"},
    {E::BindFailed, "bind_failed", "broker", "the broker cannot bind `bind` or `worker_bind`",
     "yes, once the endpoint is free"},
    {E::JournalCorrupt, "journal_corrupt", "broker",
     "the journal file fails its checks when the broker starts", "no — restore or move it"},
    {E::BadCertificate, "bad_certificate", "broker, worker, CLI",
     "a CURVE certificate file is missing, unreadable or malformed", "no — fix the file"},
    {E::CurveUnavailable, "curve_unavailable", "broker, worker, CLI",
     "this libzmq was built without CURVE", "no — on this build"},
    {E::BadCheckpoint, "bad_checkpoint", "worker",
     "the checkpoint file is malformed (zip, pickle or tensor records)", "no"},
    {E::UnsupportedModel, "unsupported_model", "worker",
     "a checkpoint of an architecture or output ecgq does not run", "no"},
    {E::BadInput, "bad_input", "worker",
     "model input of the wrong shape (`ecgq-worker infer`, no segments)", "no"},
    {E::BadReference, "bad_reference", "worker",
     "a checkpoint reference that is neither a path nor `hf://OWNER/REPO/PATH[@REV]`", "no"},
    {E::CheckpointNotFound, "checkpoint_not_found", "worker",
     "a local checkpoint path does not exist or is not a regular file", "no"},
    {E::HubOffline, "hub_offline", "worker",
     "offline (`hub_offline`, `HF_HUB_OFFLINE=1`) and the `hf://` checkpoint is not cached",
     "yes, online"},
    {E::HubUnreachable, "hub_unreachable", "worker", "the hub cannot be reached", "yes, later"},
    {E::HubTimeout, "hub_timeout", "worker",
     "a hub download made no progress for `hub_stall_timeout`", "yes (the download resumes)"},
    {E::HubInterrupted, "hub_interrupted", "worker",
     "the connection to the hub was lost mid-transfer", "yes (the download resumes)"},
    {E::HubAuth, "hub_auth", "worker",
     "HTTP 401/403 from the hub: no `HF_TOKEN`, or one that cannot read the repository",
     "no — set `HF_TOKEN`"},
    {E::HubNotFound, "hub_not_found", "worker",
     "HTTP 404 from the hub: no such repository, revision or file", "no"},
    {E::HubHttp, "hub_http", "worker", "any other HTTP failure from the hub or its download host",
     "maybe"},
    {E::HubChecksumMismatch, "hub_checksum_mismatch", "worker",
     "downloaded bytes do not match the hub's checksum", "yes"},
    {E::DiskFull, "disk_full", "worker", "no space left for the checkpoint cache",
     "yes, after freeing space"},
    {E::CacheReadonly, "cache_readonly", "worker",
     "the checkpoint cache cannot be written (read-only or not permitted)",
     "no — make it writable or prefill it"},
    {E::Unauthorized, "unauthorized", "gateway", "no bearer token, or an unknown one (HTTP 401)",
     "no — send a token"},
    {E::Forbidden, "forbidden", "gateway", "the job belongs to another token (HTTP 403)", "no"},
    {E::NoSuchRoute, "no_such_route", "gateway", "no such HTTP path (HTTP 404)", "no"},
    {E::NoSuchJob, "no_such_job", "gateway", "no job with this id (HTTP 404)", "no"},
    {E::NoSuchModel, "no_such_model", "gateway",
     "no model of this name in the /v2 paths (HTTP 404)", "no"},
    {E::MethodNotAllowed, "method_not_allowed", "gateway",
     "the path does not take this HTTP method (HTTP 405, with Allow)", "no"},
    {E::BodyTooLarge, "body_too_large", "gateway",
     "the request body is over `max_body_bytes` (HTTP 413)", "no — send less"},
    {E::UnsupportedMediaType, "unsupported_media_type", "gateway",
     "a body that is neither multipart/form-data nor application/json (HTTP 415)", "no"},
    {E::Busy, "busy", "gateway",
     "`max_in_flight` jobs pending or `max_stored_jobs` records unfinished (HTTP 503)",
     "yes, after Retry-After"},
    {E::TooManyConnections, "too_many_connections", "gateway",
     "`max_connections` connections open (HTTP 503)", "yes, later"},
    {E::Timeout, "timeout", "gateway",
     "no result within `request_timeout` for a job without a deadline (HTTP 504)",
     "yes, with a larger budget"},
};

constexpr bool in_enum_order() {
  for (size_t i = 0; i < std::size(kTable); ++i)
    if (static_cast<size_t>(kTable[i].code) != i) return false;
  return true;
}
static_assert(std::size(kTable) == static_cast<size_t>(ErrorCode::Timeout) + 1,
              "one row per ErrorCode");
static_assert(in_enum_order(), "rows in ErrorCode order, so that a code indexes its row");

}  // namespace

const std::vector<ErrorCodeInfo>& error_code_table() {
  static const std::vector<ErrorCodeInfo> table(std::begin(kTable), std::end(kTable));
  return table;
}

const ErrorCodeInfo& error_code_info(ErrorCode code) {
  return kTable[static_cast<size_t>(code)];
}

const char* error_code_name(ErrorCode code) {
  return error_code_info(code).name;
}

std::optional<ErrorCode> parse_error_code(std::string_view name) {
  for (const ErrorCodeInfo& row : kTable)
    if (name == row.name) return row.code;
  return std::nullopt;
}

bool is_worker_fault(std::string_view name) {
  // The rows whose `retry` column says the broker retries them on another worker.
  static constexpr ErrorCode kWorkerFaults[] = {E::WorkerLost, E::ModelError, E::Internal,
                                                E::BadResult};
  const auto code = parse_error_code(name);
  return code && std::find(std::begin(kWorkerFaults), std::end(kWorkerFaults), *code) !=
                     std::end(kWorkerFaults);
}

}  // namespace ecgq
