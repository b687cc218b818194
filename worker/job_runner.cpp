#include "worker/job_runner.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <optional>

namespace ecgq {

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
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

}  // namespace

void JobRunner::finish(schema::Result& result, const JobContext& context) const {
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
  finish(result, context);
  return result;
}

schema::Result JobRunner::run(const std::string& body, Model* model, const JobContext& context,
                              const Status& load_error) const {
  schema::Result result;
  try {
    auto job = schema::decode_job(body);
    if (!job) return error(body, context, job.status());
    result.id = job->id;
    result.meta = job->meta;
    if (job->dispatch) {
      result.attempts = job->dispatch->attempt;
      result.timings.queued_ms = job->dispatch->queued_ms;
    }
    Status failure = load_error;
    if (failure.ok() && model == nullptr)
      failure =
          Status("model_error", "the model is not loaded (checkpoint " + context.model.name + ")",
                 "checkpoint");
    if (failure.ok()) {
      auto computed = compute(job.value(), *model, context, result);
      if (computed) {
        result = std::move(computed.value());
      } else {
        failure = computed.status();
      }
    }
    if (!failure.ok()) {
      result.status = "error";
      result.error =
          schema::ErrorInfo{failure.code(), failure.message(), failure.field(), std::nullopt};
    }
  } catch (const std::exception& e) {
    result.status = "error";
    result.error = schema::ErrorInfo{"internal", std::string("worker exception: ") + e.what(), "",
                                     std::nullopt};
  } catch (...) {
    result.status = "error";
    result.error =
        schema::ErrorInfo{"internal", "worker exception of unknown type", "", std::nullopt};
  }
  finish(result, context);
  return result;
}

Expected<schema::Result> JobRunner::compute(const schema::Job& job, Model& model,
                                            const JobContext& context,
                                            schema::Result result) const {
  const ModelInfo& info = model.info();
  const bool classifier = !info.labels.empty();

  std::vector<std::string> wanted = job.outputs;
  if (wanted.empty()) {
    if (classifier) wanted.push_back("probs");
    if (info.embed_dim > 0) wanted.push_back("embedding");
  }
  for (const auto& name : wanted) {
    if (!contains(schema::kOutputNames, name))
      return Status(
          "bad_request",
          "unknown output '" + name + "'; expected probs, logits, embedding, segments or saliency",
          "outputs");
    if ((name == "probs" || name == "logits") && !classifier)
      return Status("unsupported_output",
                    "output '" + name + "' needs a classifier head; model " + context.model.name +
                        " (" + info.kind + " " + info.variant + ") has none",
                    "outputs");
    if (name == "embedding" && info.embed_dim <= 0)
      return Status("unsupported_output",
                    "output 'embedding' is not available from model " + context.model.name,
                    "outputs");
  }
  const bool want_probs = contains(wanted, "probs");
  const bool want_logits = contains(wanted, "logits");
  const bool want_embedding = contains(wanted, "embedding");
  const bool want_segments = contains(wanted, "segments");
  const bool want_saliency = contains(wanted, "saliency");

  // deadline_ms counts from the broker's receipt; queued_ms of it were spent before dispatch.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (job.deadline_ms) {
    const double left_ms = static_cast<double>(*job.deadline_ms) - result.timings.queued_ms;
    deadline = context.received + std::chrono::microseconds(static_cast<int64_t>(left_ms * 1000));
  }
  auto past_deadline = [&](const char* stage) -> Status {
    if (!deadline || std::chrono::steady_clock::now() < *deadline) return Status::Ok();
    return Status("deadline_exceeded",
                  "deadline_ms=" + std::to_string(*job.deadline_ms) + " ran out " + stage +
                      " (queued " + std::to_string(static_cast<int64_t>(result.timings.queued_ms)) +
                      " ms, " + std::to_string(static_cast<int64_t>(ms_since(context.received))) +
                      " ms on the worker)",
                  "deadline_ms");
  };
  if (Status st = past_deadline("before the job started"); !st.ok()) return st;

  const auto pre_start = std::chrono::steady_clock::now();
  auto raw = raw_from_job(job);
  if (!raw) return raw.status();
  auto pre = preprocess_ecg(raw.value(), options_.limits);
  if (!pre) return pre.status();
  result.timings.preprocess_ms = ms_since(pre_start);
  const int64_t n = pre->n_segments;
  const int64_t seg_size = info.in_leads * info.segment_samples;
  if (n <= 0 || seg_size <= 0 || static_cast<int64_t>(pre->segments.size()) != n * seg_size)
    return Status("model_error",
                  "model " + context.model.name + " expects [" + std::to_string(info.in_leads) +
                      ", " + std::to_string(info.segment_samples) +
                      "] segments; preprocessing produced " + std::to_string(pre->segments.size()) +
                      " values for " + std::to_string(n) + " segments",
                  "checkpoint");

  const auto infer_start = std::chrono::steady_clock::now();
  RunOptions run_options;
  run_options.saliency = want_saliency;
  const int64_t max_batch = std::max<int64_t>(1, options_.max_batch);
  const int64_t labels = static_cast<int64_t>(info.labels.size());
  std::vector<float> seg_probs, seg_logits, seg_embed, seg_saliency;
  int64_t embed_dim = 0;
  int64_t frames = 0;
  for (int64_t start = 0; start < n; start += max_batch) {
    if (Status st = past_deadline("while running"); !st.ok()) return st;
    const int64_t count = std::min(max_batch, n - start);
    auto out = model.run(pre->segments.data() + start * seg_size, count, run_options);
    if (!out) return Status("model_error", "forward pass failed: " + out.status().message(), "");
    if (out->batch != count)
      return Status("internal", "model returned " + std::to_string(out->batch) + " rows for " +
                                    std::to_string(count) + " segments");
    embed_dim = out->embed_dim;
    frames = out->frames;
    if (classifier && (static_cast<int64_t>(out->probs.size()) != count * labels ||
                       static_cast<int64_t>(out->logits.size()) != count * labels))
      return Status("internal", "model returned probs/logits of the wrong size");
    seg_probs.insert(seg_probs.end(), out->probs.begin(), out->probs.end());
    seg_logits.insert(seg_logits.end(), out->logits.begin(), out->logits.end());
    seg_embed.insert(seg_embed.end(), out->embedding.begin(), out->embedding.end());
    if (want_saliency) {
      if (frames <= 0 || static_cast<int64_t>(out->saliency.size()) != count * frames * frames)
        return Status("unsupported_output",
                      "output 'saliency' is not available from model " + context.model.name + " (" +
                          info.kind + ")",
                      "outputs");
      // The ECG-FM quickstart's saliency: last-layer attention, max over keys for each frame.
      for (int64_t b = 0; b < count; ++b)
        for (int64_t q = 0; q < frames; ++q) {
          const float* row = out->saliency.data() + (b * frames + q) * frames;
          seg_saliency.push_back(*std::max_element(row, row + frames));
        }
    }
  }
  result.timings.infer_ms = ms_since(infer_start);

  result.labels = info.labels;
  result.n_segments = n;
  result.derived_leads = pre->derived_leads;
  result.ignored_channels = pre->ignored_channels;
  result.model = context.model;
  if (want_probs) result.probs = aggregate_probs(info.labels, seg_probs, n);
  if (want_logits) result.logits = mean_over_segments(seg_logits, n);
  if (want_embedding) result.embedding = mean_over_segments(seg_embed, n);
  if (want_segments) {
    if (classifier) result.segment_probs = f32_array(seg_probs, n, labels);
    if (embed_dim > 0) result.segment_embeddings = f32_array(seg_embed, n, embed_dim);
  }
  if (want_saliency) result.saliency = f32_array(seg_saliency, n, frames);
  return result;
}

}  // namespace ecgq
