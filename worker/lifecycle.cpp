#include "worker/lifecycle.hpp"

#include <spdlog/spdlog.h>

#include <vector>

#include "common/memory.hpp"
#include "common/sha256.hpp"
#include "common/time.hpp"
#include "model/model_export.hpp"
#include "worker/output_plan.hpp"

namespace ecgq {

Expected<ResolvedCheckpoint> resolve_with_environment(const std::string& reference) {
  if (reference.empty())
    return Status("model_error", "no checkpoint configured (set --checkpoint)", "checkpoint");
  return resolve_checkpoint(reference, hub_options_with_environment(HubOptions{}));
}

ModelLifecycle::ModelLifecycle(LifecycleOptions options, ModelLoader loader,
                               CheckpointResolver resolver)
    : options_(std::move(options)),
      loader_(std::move(loader)),
      resolver_(resolver ? std::move(resolver) : CheckpointResolver(resolve_with_environment)) {
  // "auto" is not a kind: the kind is known once the checkpoint is read.
  if (options_.load.model_kind != "auto") identity_.kind = options_.load.model_kind;
  identity_.name = options_.checkpoint;
  identity_.precision = options_.load.precision;
}

ModelLifecycle::~ModelLifecycle() = default;

Expected<WarmReport> ModelLifecycle::load(WorkerState from, bool warm_up_pass) {
  if (model_) return last_warm();
  const auto start = SteadyClock::now();
  spdlog::info("event=model_loading checkpoint={} from={}", options_.checkpoint, state_name(from));
  WarmReport report;
  auto fail = [&](const std::string& reason) -> Status {
    model_.reset();
    release_free_memory();
    return record_failure(reason);
  };
  try {
    auto resolved = resolver_(options_.checkpoint);
    if (!resolved) return fail(resolved.status().code() + ": " + resolved.status().message());
    report.download_ms = resolved->download_ms;
    const auto load_start = SteadyClock::now();
    auto loaded = loader_(resolved->path, options_.load);
    if (!loaded) return fail(loaded.status().message());
    if (!loaded.value()) return fail("the loader returned no model");
    model_ = std::move(loaded.value());
    report.load_ms = ms_since(load_start);

    // An export names the checkpoint it was made from: it is that model.
    std::string digest = model_->info().source_sha256;
    if (digest.empty()) digest = resolved->sha256;
    if (digest.empty() && identity().sha256.empty()) {
      // Once per process: hashing a 1 GB checkpoint on every wake would lengthen cold starts.
      auto hashed = sha256_file(resolved->path);
      if (hashed)
        digest = hashed.value();
      else
        spdlog::warn("event=checkpoint_hash_failed reason=\"{}\"", hashed.status().message());
    }

    const ModelInfo& info = model_->info();
    if (warm_up_pass) {
      const auto warmup_start = SteadyClock::now();
      std::vector<float> zeros(static_cast<size_t>(info.in_leads * info.segment_samples), 0.0f);
      auto out = model_->run(zeros.data(), 1, RunOptions{});
      if (!out) return fail("warm-up forward pass failed: " + out.status().message());
      report.warmup_ms = ms_since(warmup_start);
    }
    report.total_ms = ms_since(start);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      identity_.kind = info.kind;
      identity_.precision = info.precision;
      if (!digest.empty()) identity_.sha256 = digest;
      identity_.outputs = OutputPlan::available(info);
      identity_.labels = info.labels;
      last_warm_ = report;
      failure_.clear();
    }
    spdlog::info(
        "event=model_warm checkpoint={} kind={} variant={} labels={} parameters={} precision={} "
        "download_ms={:.0f} load_ms={:.0f} warmup_ms={:.0f} rss_bytes={}",
        options_.checkpoint, info.kind, info.variant, info.labels.size(), info.parameters,
        info.precision, report.download_ms, report.load_ms, report.warmup_ms, resident_bytes());
    return report;
  } catch (const std::exception& e) {
    return fail(std::string("exception: ") + e.what());
  }
}

Status ModelLifecycle::preflight() {
  spdlog::info("event=model_preflight checkpoint={}", options_.checkpoint);
  auto resolved = resolver_(options_.checkpoint);
  if (!resolved)
    return record_failure(resolved.status().code() + ": " + resolved.status().message());
  // A model file names the checkpoint it came from and its precision before it is loaded.
  const ModelFileIdentity file = peek_model_file_identity(resolved->path);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!resolved->sha256.empty()) identity_.sha256 = resolved->sha256;
  if (!file.source_sha256.empty()) identity_.sha256 = file.source_sha256;
  if (!file.precision.empty()) identity_.precision = file.precision;
  failure_.clear();
  return Status::Ok();
}

Status ModelLifecycle::record_failure(const std::string& reason) {
  spdlog::error("event=model_load_failed checkpoint={} reason=\"{}\"", options_.checkpoint, reason);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    failure_ = reason;
  }
  return Status("model_error", "cannot load checkpoint " + options_.checkpoint + ": " + reason,
                "checkpoint");
}

std::string ModelLifecycle::failure() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

SleepReport ModelLifecycle::unload() {
  SleepReport report;
  report.rss_before = resident_bytes();
  model_.reset();
  release_free_memory();
  report.rss_after = resident_bytes();
  spdlog::info("event=model_asleep checkpoint={} rss_before={} rss_after={} freed={}",
               options_.checkpoint, report.rss_before, report.rss_after,
               report.rss_before - report.rss_after);
  return report;
}

schema::ModelIdentity ModelLifecycle::identity() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return identity_;
}

WarmReport ModelLifecycle::last_warm() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_warm_;
}

}  // namespace ecgq
