#include "worker/job_runner.hpp"

#include <algorithm>
#include <cstring>
#include <exception>

#include "worker/batch_runner.hpp"

namespace ecgq {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A [rows, cols] float32 TypedArray.
schema::TypedArray f32_array(const std::vector<float>& values, int64_t rows, int64_t cols) {
  schema::TypedArray a;
  a.dtype = "f32";
  a.shape = {rows, cols};
  a.data.resize(values.size() * sizeof(float));
  if (!values.empty()) std::memcpy(&a.data[0], values.data(), a.data.size());
  return a;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
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
  if (!deadline || Clock::now() < *deadline) return Status::Ok();
  return Status("deadline_exceeded",
                "deadline_ms=" + std::to_string(deadline_ms) + " ran out " + stage + " (queued " +
                    std::to_string(static_cast<int64_t>(result.timings.queued_ms)) + " ms, " +
                    std::to_string(static_cast<int64_t>(ms_since(context.received))) +
                    " ms on the worker)",
                "deadline_ms");
}

bool PreparedJob::wants(const std::string& name) const {
  return contains(wanted, name);
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

schema::Result JobRunner::error(const std::string& body, const JobContext& context,
                                const Status& status) const {
  schema::Result result;
  auto envelope = schema::peek_job(body);
  if (envelope) result.id = envelope->id;
  result.status = "error";
  result.error = schema::ErrorInfo{status.code(), status.message(), status.field(), std::nullopt};
  stamp(result, context);
  return result;
}

schema::Result JobRunner::run(const std::string& body, Model* model, const JobContext& context,
                              const Status& load_error) const {
  PreparedJob job = prepare(body, model, context, load_error);
  if (!job.failed && model != nullptr) BatchRunner(max_batch()).run({&job}, *model);
  return finish(job);
}

PreparedJob JobRunner::prepare(const std::string& body, Model* model, const JobContext& context,
                               const Status& load_error) const {
  PreparedJob job;
  job.context = context;
  try {
    auto decoded = schema::decode_job(body);
    if (!decoded) {
      auto envelope = schema::peek_job(body);
      if (envelope) job.result.id = envelope->id;
      job.fail(decoded.status());
      return job;
    }
    job.result.id = decoded->id;
    job.result.meta = decoded->meta;
    if (decoded->dispatch) {
      job.result.attempts = decoded->dispatch->attempt;
      job.result.timings.queued_ms = decoded->dispatch->queued_ms;
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
    if (Status st = validate(job, *model, decoded.value()); !st.ok()) job.fail(st);
  } catch (const std::exception& e) {
    job.fail(exception_status(e.what()));
  } catch (...) {
    job.fail(Status("internal", "worker exception of unknown type", ""));
  }
  return job;
}

Status JobRunner::validate(PreparedJob& job, const Model& model, const schema::Job& decoded) const {
  const ModelInfo& info = model.info();
  const bool classifier = !info.labels.empty();
  const std::string& name = job.context.model.name;

  job.wanted = decoded.outputs;
  if (job.wanted.empty()) {
    if (classifier) job.wanted.push_back("probs");
    if (info.embed_dim > 0) job.wanted.push_back("embedding");
  }
  for (const auto& out : job.wanted) {
    if (!contains(schema::kOutputNames, out))
      return Status(
          "bad_request",
          "unknown output '" + out + "'; expected probs, logits, embedding, segments or saliency",
          "outputs");
    if ((out == "probs" || out == "logits") && !classifier)
      return Status("unsupported_output",
                    "output '" + out + "' needs a classifier head; model " + name + " (" +
                        info.kind + " " + info.variant + ") has none",
                    "outputs");
    if (out == "embedding" && info.embed_dim <= 0)
      return Status("unsupported_output", "output 'embedding' is not available from model " + name,
                    "outputs");
  }
  job.labels = info.labels;
  job.run_options.saliency = job.wants("saliency");

  // deadline_ms counts from the broker's receipt; queued_ms of it were spent before dispatch.
  if (decoded.deadline_ms) {
    job.deadline_ms = *decoded.deadline_ms;
    const double left_ms = static_cast<double>(job.deadline_ms) - job.result.timings.queued_ms;
    job.deadline =
        job.context.received + std::chrono::microseconds(static_cast<int64_t>(left_ms * 1000));
  }
  if (Status st = job.deadline_status("before the job started"); !st.ok()) return st;

  const auto pre_start = Clock::now();
  auto raw = raw_from_job(decoded);
  if (!raw) return raw.status();
  auto pre = preprocess_ecg(raw.value(), options_.limits);
  if (!pre) return pre.status();
  job.result.timings.preprocess_ms = ms_since(pre_start);
  const int64_t n = pre->n_segments;
  const int64_t seg_size = info.in_leads * info.segment_samples;
  if (n <= 0 || seg_size <= 0 || static_cast<int64_t>(pre->segments.size()) != n * seg_size)
    return Status("model_error",
                  "model " + name + " expects [" + std::to_string(info.in_leads) + ", " +
                      std::to_string(info.segment_samples) + "] segments; preprocessing produced " +
                      std::to_string(pre->segments.size()) + " values for " + std::to_string(n) +
                      " segments",
                  "checkpoint");
  job.n_segments = n;
  job.segment_size = seg_size;
  job.segments = std::move(pre->segments);
  job.derived_leads = std::move(pre->derived_leads);
  job.ignored_channels = std::move(pre->ignored_channels);
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
      result.model = job.context.model;
      if (job.wants("probs")) result.probs = aggregate_probs(job.labels, job.seg_probs, n);
      if (job.wants("logits")) result.logits = mean_over_segments(job.seg_logits, n);
      if (job.wants("embedding")) result.embedding = mean_over_segments(job.seg_embed, n);
      if (job.wants("segments")) {
        if (labels > 0) result.segment_probs = f32_array(job.seg_probs, n, labels);
        if (job.embed_dim > 0)
          result.segment_embeddings = f32_array(job.seg_embed, n, job.embed_dim);
      }
      if (job.wants("saliency")) result.saliency = f32_array(job.seg_saliency, n, job.frames);
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
