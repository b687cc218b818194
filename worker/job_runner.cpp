#include "worker/job_runner.hpp"

#include <cstring>
#include <exception>

#include "common/time.hpp"
#include "worker/batch_runner.hpp"

namespace ecgq {

namespace {

// A [rows, cols] float32 TypedArray.
schema::TypedArray f32_array(const std::vector<float>& values, int64_t rows, int64_t cols) {
  schema::TypedArray a;
  a.dtype = "f32";
  a.shape = {rows, cols};
  a.data.resize(values.size() * sizeof(float));
  if (!values.empty()) std::memcpy(&a.data[0], values.data(), a.data.size());
  return a;
}

Status exception_status(const char* what) {
  return Status("internal", std::string("worker exception: ") + what, "");
}

}  // namespace

void PreparedJob::fail(const Status& status) {
  if (failed) return;
  failed = true;
  result.status = "error";
  result.error = schema::ErrorInfo{status.code(), status.message(), status.field(), std::nullopt};
}

Status PreparedJob::deadline_status(const char* stage) const {
  if (!deadline || SteadyClock::now() < *deadline) return Status::Ok();
  return Status("deadline_exceeded",
                "deadline_ms=" + std::to_string(deadline_ms) + " ran out " + stage + " (queued " +
                    std::to_string(static_cast<int64_t>(result.timings.queued_ms)) + " ms, " +
                    std::to_string(static_cast<int64_t>(ms_since(context.received))) +
                    " ms on the worker)",
                "deadline_ms");
}

void JobRunner::stamp(schema::Result& result, const JobContext& context) const {
  result.worker_id = options_.worker_id;
  if (result.model.name.empty()) result.model = context.model;
  result.cold_start = context.cold_start;
  result.timings.wake_ms = context.wake_ms;
  result.timings.download_ms = context.download_ms;
  result.timings.load_ms = context.load_ms;
  result.timings.total_ms = result.timings.queued_ms + ms_since(context.received);
}

schema::Result JobRunner::run(Expected<schema::DecodedJob> job, Model* model,
                              const JobContext& context, const Status& load_error) const {
  PreparedJob prepared = prepare(std::move(job), model, context, load_error);
  if (!prepared.failed && model != nullptr)
    BatchRunner(max_batch()).run_passes({&prepared}, *model);
  return finish(prepared);
}

PreparedJob JobRunner::prepare(Expected<schema::DecodedJob> decoded, Model* model,
                               const JobContext& context, const Status& load_error) const {
  PreparedJob job;
  job.context = context;
  try {
    if (!decoded) {
      job.fail(decoded.status());
      return job;
    }
    const schema::Job& fields = decoded->fields();
    job.result.id = fields.id;
    job.result.meta = fields.meta;
    if (fields.dispatch) {
      job.result.attempts = fields.dispatch->attempt;
      job.result.timings.queued_ms = fields.dispatch->queued_ms;
    }
    if (!load_error.ok()) {
      job.fail(load_error);
      return job;
    }
    if (model == nullptr) {
      job.fail(Status("model_error",
                      "the model is not loaded (checkpoint " + context.model.name + ")",
                      "checkpoint"));
      return job;
    }
    // The broker dispatches a pinned job only to a worker of that model; this is the last check.
    if (!fields.model_sha256.empty() && fields.model_sha256 != context.model.sha256) {
      job.fail(Status("model_unavailable",
                      "the job pins model " + fields.model_sha256 + "; this worker runs " +
                          (context.model.sha256.empty() ? "?" : context.model.sha256),
                      "model_sha256"));
      return job;
    }
    Status st = plan(job, *model, fields);
    if (st.ok()) st = preprocess(job, model->info(), decoded.value());
    if (!st.ok()) job.fail(st);
  } catch (const std::exception& e) {
    job.fail(exception_status(e.what()));
  } catch (...) {
    job.fail(Status("internal", "worker exception of unknown type", ""));
  }
  return job;
}

Status JobRunner::plan(PreparedJob& job, const Model& model, const schema::Job& fields) const {
  const ModelInfo& info = model.info();
  auto outputs = OutputPlan::make(fields.outputs, info, job.context.model.name);
  if (!outputs) return outputs.status();
  job.outputs = std::move(outputs.value());
  job.run_options = job.outputs.run_options();
  job.labels = info.labels;

  // deadline_ms counts from the broker's receipt; queued_ms of it were spent before dispatch.
  if (fields.deadline_ms) {
    job.deadline_ms = *fields.deadline_ms;
    const double left_ms = static_cast<double>(job.deadline_ms) - job.result.timings.queued_ms;
    job.deadline =
        job.context.received + std::chrono::microseconds(static_cast<int64_t>(left_ms * 1000));
  }
  return job.deadline_status("before the job started");
}

Status JobRunner::preprocess(PreparedJob& job, const ModelInfo& info,
                             schema::DecodedJob& decoded) const {
  const auto pre_start = SteadyClock::now();
  auto raw = raw_from_job(decoded);
  // The samples are physical values in `raw` now: the body (up to 128 MiB) goes before
  // preprocessing allocates its own buffers.
  decoded.release_samples();
  if (!raw) return raw.status();
  auto pre = preprocess_ecg(std::move(raw.value()), options_.limits);
  if (!pre) return pre.status();
  job.result.timings.preprocess_ms = ms_since(pre_start);
  const int64_t n = pre->n_segments;
  const int64_t seg_size = info.in_leads * info.segment_samples;
  if (n <= 0 || seg_size <= 0 || static_cast<int64_t>(pre->segments.size()) != n * seg_size)
    return Status("model_error",
                  "model " + job.context.model.name + " expects [" + std::to_string(info.in_leads) +
                      ", " + std::to_string(info.segment_samples) +
                      "] segments; preprocessing produced " + std::to_string(pre->segments.size()) +
                      " values for " + std::to_string(n) + " segments",
                  "checkpoint");
  job.n_segments = n;
  job.segment_size = seg_size;
  job.segments = std::move(pre->segments);
  job.derived_leads = std::move(pre->derived_leads);
  job.ignored_channels = std::move(pre->ignored_channels);
  job.masked_leads = std::move(pre->masked_leads);
  return Status::Ok();
}

schema::Result JobRunner::finish(PreparedJob& job) const {
  schema::Result& result = job.result;
  try {
    if (!job.failed && job.segments_done != job.n_segments)
      job.fail(Status("internal", "forward passes covered " + std::to_string(job.segments_done) +
                                      " of " + std::to_string(job.n_segments) + " segments"));
    if (!job.failed) {
      const int64_t n = job.n_segments;
      const int64_t labels = static_cast<int64_t>(job.labels.size());
      result.labels = job.labels;
      result.n_segments = n;
      result.derived_leads = job.derived_leads;
      result.ignored_channels = job.ignored_channels;
      result.masked_leads = job.masked_leads;
      result.model = job.context.model;
      if (job.outputs.wants("probs")) result.probs = aggregate_probs(job.labels, job.seg_probs, n);
      if (job.outputs.wants("logits")) result.logits = mean_over_segments(job.seg_logits, n);
      if (job.outputs.wants("embedding")) result.embedding = mean_over_segments(job.seg_embed, n);
      if (job.outputs.wants("segments")) {
        if (labels > 0) result.segment_probs = f32_array(job.seg_probs, n, labels);
        if (job.embed_dim > 0)
          result.segment_embeddings = f32_array(job.seg_embed, n, job.embed_dim);
      }
      if (job.outputs.wants("saliency"))
        result.saliency = f32_array(job.seg_saliency, n, job.frames);
    }
  } catch (const std::exception& e) {
    job.fail(exception_status(e.what()));
  } catch (...) {
    job.fail(Status("internal", "worker exception of unknown type", ""));
  }
  if (job.failed) {
    // An error carries no outputs, only what identifies the job and where its time went.
    result.labels.clear();
    result.probs.clear();
    result.logits.clear();
    result.embedding.clear();
    result.segment_probs.reset();
    result.segment_embeddings.reset();
    result.saliency.reset();
    result.n_segments = 0;
  }
  stamp(result, job.context);
  return result;
}

}  // namespace ecgq
