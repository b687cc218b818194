// The msgpack bodies of ecgq jobs, results and progress messages (schema version 1).
// docs/protocol.md documents every field; keep the two in step.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.hpp"

namespace ecgq::schema {

// The schema version written in the `v` field of every body.
inline constexpr int kVersion = 1;

// A typed little-endian array: {dtype: "f32"|"f64"|"i16", shape: [..], data: bin}.
struct TypedArray {
  std::string dtype;           // "f32", "f64" or "i16"
  std::vector<int64_t> shape;  // row-major
  std::string data;            // raw little-endian bytes, product(shape) * itemsize long
};

// What the broker adds to a job when it hands it to a worker (key `dispatch`).
struct DispatchInfo {
  int64_t attempt = 1;   // 1 for the first dispatch, +1 for each re-dispatch after a lost worker
  double queued_ms = 0;  // time the job spent queued in the broker before this dispatch
};

// One ECG job as a producer sends it.
struct Job {
  std::string id;                    // client-chosen; the broker assigns one when empty
  TypedArray ecg;                    // shape [leads, samples]
  double fs = 0;                     // sample rate in Hz
  std::vector<std::string> leads;    // one name per row of `ecg`
  std::vector<double> gain;          // ADC units per physical unit: none, one for all, or per lead
  std::vector<double> baseline;      // ADC baseline: none, one for all, or per lead
  std::string units;                 // physical units ("mV", "uV"); "" = mV
  std::vector<std::string> outputs;  // wanted outputs (see kOutputNames); empty = model default
  std::optional<int64_t> deadline_ms;         // budget from the broker's receipt of the job
  std::optional<int64_t> wait_for_worker_ms;  // how long to wait for a worker of its service
  std::string model_sha256;   // only a worker with this model may run it ("" = any); 64 hex digits
  std::string missing_leads;  // "zero": leads that cannot be read or derived are zeros (listed in
                              // the result's masked_leads); "" or "refuse": missing_leads error
  std::string meta;           // raw msgpack of `meta`, echoed verbatim in the result
  std::optional<DispatchInfo> dispatch;  // set by the broker only
};

// The largest deadline_ms and wait_for_worker_ms (30 days): beyond it a clock would overflow.
inline constexpr int64_t kMaxJobBudgetMs = int64_t{30} * 24 * 3600 * 1000;

// What a job may say of leads that cannot be read or derived (missing_leads).
inline const std::vector<std::string> kMissingLeadsPolicies = {"refuse", "zero"};

// Output names a job may ask for.
inline const std::vector<std::string> kOutputNames = {"probs", "logits", "embedding", "segments",
                                                      "saliency"};

// The error part of a result.
struct ErrorInfo {
  std::string code;                       // see the error table in docs/protocol.md
  std::string message;                    // what went wrong, for humans
  std::string field;                      // the job field it is about, or ""
  std::optional<int64_t> retry_after_ms;  // queue_full only
};

// Where the time of one job went, in milliseconds.
struct Timings {
  double queued_ms = 0;      // waiting in the broker
  double wake_ms = 0;        // waiting for the worker to warm (cold start), 0 when warm
  double download_ms = 0;    // part of wake: fetching the checkpoint into the cache
  double load_ms = 0;        // part of wake: reading the checkpoint and building the model
  double preprocess_ms = 0;  // decoding, lead mapping, resampling, z-score, segmenting
  double infer_ms = 0;       // forward passes
  double total_ms = 0;       // broker receipt to result
};

// Every timing by its wire name, in wire order: encoding, decoding and the CLI's JSON share it.
inline constexpr std::pair<const char*, double Timings::*> kTimingFields[] = {
    {"queued_ms", &Timings::queued_ms},
    {"wake_ms", &Timings::wake_ms},
    {"download_ms", &Timings::download_ms},
    {"load_ms", &Timings::load_ms},
    {"preprocess_ms", &Timings::preprocess_ms},
    {"infer_ms", &Timings::infer_ms},
    {"total_ms", &Timings::total_ms}};

// Which model produced a result.
struct ModelIdentity {
  std::string kind;       // "ecgfm" or "torchscript"
  std::string name;       // checkpoint reference (path or hf:// URI)
  std::string sha256;     // sha256 of the checkpoint file
  std::string precision;  // "fp32" or "bf16"
  // READY metadata and mmi.status only (results carry their own labels): what the model can
  // give and its label names, known once it has loaded.
  std::vector<std::string> outputs;  // of kOutputNames
  std::vector<std::string> labels;   // in model order; empty without a classifier head
};

// One result as a producer receives it (FINAL body).
struct Result {
  std::string id;
  std::string status = "ok";                // "ok" or "error"
  std::optional<ErrorInfo> error;           // set when status == "error"
  std::vector<std::string> labels;          // label names, in model order
  std::vector<float> probs;                 // per record, aggregated over segments (one per label)
  std::vector<float> logits;                // per record, mean over segments
  std::vector<float> embedding;             // per record, mean over segments
  std::optional<TypedArray> segment_probs;  // [segments, labels] when "segments" asked
  std::optional<TypedArray> segment_embeddings;  // [segments, E] when "segments" asked
  std::optional<TypedArray> saliency;            // [segments, T] when "saliency" asked
  int64_t n_segments = 0;
  std::vector<std::string> derived_leads;     // leads computed from I and II
  std::vector<std::string> ignored_channels;  // input channels not used
  std::vector<std::string> masked_leads;      // leads given to the model as zeros (missing_leads:
                                              // zero), in model order
  ModelIdentity model;
  std::string worker_id;
  int64_t attempts = 1;
  bool cold_start = false;
  bool cached = false;         // served from the broker's result cache, not computed for this job
  int64_t batch_segments = 0;  // segments in the largest forward pass that ran this job (0: none)
  int64_t batch_jobs = 0;      // jobs that shared that forward pass (1 = this job alone)
  Timings timings;
  std::string meta;  // raw msgpack echoed from the job
};

// A progress report (PARTIAL body): event is "queued", "waking" or "running".
struct Progress {
  std::string id;
  std::string event;
  int64_t position = -1;  // queued: jobs ahead of this one in its service queue
  std::string worker_id;  // waking/running
};

// Bytes per element of a dtype name, or 0 when the name is unknown.
size_t dtype_size(const std::string& dtype);

// Encodes a job (with `dispatch` only when set).
std::string encode_job(const Job& job);
// Decodes and validates a job; errors carry code bad_request/bad_shape/unsupported_dtype and the
// field.
Expected<Job> decode_job(const std::string& body);

// What the broker needs from a job body without decoding the samples.
struct JobEnvelope {
  std::string id;  // "" when the client did not set one
  std::optional<int64_t> deadline_ms;
  std::string model_sha256;  // "" when the job runs on any model of its service
};
// Validates a job body as decode_job does (shape against data size included) but copies nothing
// big.
Expected<JobEnvelope> peek_job(const std::string& body);
// Appends `dispatch` (and `id` when `assigned_id` is not empty) to an encoded job map without
// re-encoding the rest; later keys win when a decoder sees a key twice.
std::string add_dispatch(const std::string& body, const DispatchInfo& dispatch,
                         const std::string& assigned_id = {});

// Encodes a result.
std::string encode_result(const Result& result);
// Decodes a result.
Expected<Result> decode_result(const std::string& body);
// A complete error result body.
std::string error_result(const std::string& id, const std::string& code, const std::string& message,
                         const std::string& field = {},
                         std::optional<int64_t> retry_after_ms = std::nullopt,
                         int64_t attempts = 0);

// Encodes a progress report.
std::string encode_progress(const Progress& progress);
// Decodes a progress report.
Expected<Progress> decode_progress(const std::string& body);

}  // namespace ecgq::schema
