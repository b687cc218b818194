#include "worker/batch_runner.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

#include "common/time.hpp"

namespace ecgq {

namespace {

// Appends rows [first, first + count) of a [batch, width] array to `out`; false when `values`
// does not split into `batch` rows.
bool append_rows(std::vector<float>& out, const std::vector<float>& values, int64_t batch,
                 int64_t first, int64_t count) {
  if (values.empty()) return true;
  if (batch <= 0 || static_cast<int64_t>(values.size()) % batch != 0) return false;
  const int64_t width = static_cast<int64_t>(values.size()) / batch;
  out.insert(out.end(), values.begin() + first * width, values.begin() + (first + count) * width);
  return true;
}

bool same_options(const RunOptions& a, const RunOptions& b) {
  return a.saliency == b.saliency && a.encoder_out == b.encoder_out;
}

}  // namespace

std::vector<PassReport> BatchRunner::run_passes(const std::vector<PreparedJob*>& jobs, Model& model,
                                                const JobDone& done) const {
  std::vector<PassReport> passes;
  auto report = [&](size_t i) {
    if (jobs[i]->reported) return;
    jobs[i]->reported = true;
    if (done) done(i);
  };
  for (size_t i = 0; i < jobs.size(); ++i)
    if (jobs[i]->failed) report(i);

  // Groups of jobs with equal RunOptions, in order of first appearance.
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i]->failed) continue;
    auto g = std::find_if(groups.begin(), groups.end(), [&](const std::vector<size_t>& group) {
      return same_options(jobs[group.front()]->run_options, jobs[i]->run_options);
    });
    if (g == groups.end())
      groups.push_back({i});
    else
      g->push_back(i);
  }

  for (const auto& group : groups) {
    size_t next = 0;       // position in `group` of the job whose segments come next
    int64_t next_seg = 0;  // its first segment not yet in a pass
    for (;;) {
      std::vector<Slice> slices;
      int64_t rows = 0;
      while (rows < max_batch_ && next < group.size()) {
        const size_t i = group[next];
        PreparedJob& job = *jobs[i];
        if (job.failed) {
          report(i);
          ++next;
          next_seg = 0;
          continue;
        }
        if (Status st = job.deadline_status("while running"); !st.ok()) {
          job.fail(st);
          report(i);
          ++next;
          next_seg = 0;
          continue;
        }
        const int64_t take = std::min(max_batch_ - rows, job.n_segments - next_seg);
        slices.push_back({i, next_seg, take});
        rows += take;
        next_seg += take;
        if (next_seg >= job.n_segments) {
          ++next;
          next_seg = 0;
        }
      }
      if (slices.empty()) break;
      passes.push_back(run_pass(jobs, slices, rows, model));
      for (const Slice& s : slices) {
        const PreparedJob& job = *jobs[s.index];
        if (job.failed || s.start + s.count >= job.n_segments) report(s.index);
      }
    }
  }
  return passes;
}

PassReport BatchRunner::run_pass(const std::vector<PreparedJob*>& jobs,
                                 const std::vector<Slice>& slices, int64_t rows,
                                 Model& model) const {
  PassReport pass;
  pass.segments = rows;
  pass.jobs = static_cast<int64_t>(slices.size());
  auto fail_all = [&](const Status& st) {
    pass.ok = false;
    for (const Slice& s : slices) jobs[s.index]->fail(st);
  };
  const PreparedJob& first = *jobs[slices.front().index];
  std::string ids;
  for (const Slice& s : slices) ids += (ids.empty() ? "" : ",") + jobs[s.index]->result.id;
  try {
    // One job's consecutive segments are already contiguous; several jobs' are copied together.
    const int64_t seg_size = first.segment_size;
    std::vector<float> joined;
    const float* x = first.segments.data() + slices.front().start * seg_size;
    if (slices.size() > 1) {
      joined.reserve(static_cast<size_t>(rows * seg_size));
      for (const Slice& s : slices) {
        const PreparedJob& job = *jobs[s.index];
        if (job.segment_size != seg_size)
          throw std::runtime_error("jobs of one pass have different segment sizes");
        const float* from = job.segments.data() + s.start * seg_size;
        joined.insert(joined.end(), from, from + s.count * seg_size);
      }
      x = joined.data();
    }
    const auto start = SteadyClock::now();
    auto out = model.run(x, rows, first.run_options);
    pass.ms = ms_since(start);
    spdlog::info(
        "event=batch segments={} jobs={} job={} job_ids={} saliency={} pass_ms={:.1f} ok={}", rows,
        pass.jobs, first.result.id, ids, first.run_options.saliency, pass.ms, out.ok());
    if (!out) {
      fail_all(Status("model_error", "forward pass failed: " + out.status().message(), ""));
      return pass;
    }
    if (Status st = scatter(jobs, slices, pass, out.value(), model); !st.ok()) fail_all(st);
  } catch (const std::exception& e) {
    spdlog::warn("event=batch_failed segments={} jobs={} job={} job_ids={} reason=\"{}\"", rows,
                 pass.jobs, first.result.id, ids, e.what());
    fail_all(Status("internal", std::string("worker exception: ") + e.what(), ""));
  } catch (...) {
    spdlog::warn("event=batch_failed segments={} jobs={} job={} job_ids={}", rows, pass.jobs,
                 first.result.id, ids);
    fail_all(Status("internal", "worker exception of unknown type", ""));
  }
  return pass;
}

Status BatchRunner::scatter(const std::vector<PreparedJob*>& jobs, const std::vector<Slice>& slices,
                            const PassReport& pass, const ModelOutput& out, const Model& model) {
  const PreparedJob& first = *jobs[slices.front().index];
  const int64_t rows = pass.segments;
  const int64_t labels = static_cast<int64_t>(first.labels.size());
  if (out.batch != rows)
    return Status("internal", "model returned " + std::to_string(out.batch) + " rows for " +
                                  std::to_string(rows) + " segments");
  if (labels > 0 && (static_cast<int64_t>(out.probs.size()) != rows * labels ||
                     static_cast<int64_t>(out.logits.size()) != rows * labels))
    return Status("internal", "model returned probs/logits of the wrong size");
  const int64_t frames = out.frames;
  if (first.run_options.saliency &&
      (frames <= 0 || static_cast<int64_t>(out.saliency.size()) != rows * frames * frames))
    return OutputPlan::saliency_unavailable(first.context.model.name, model.info().kind);
  int64_t row = 0;
  for (const Slice& s : slices) {
    PreparedJob& job = *jobs[s.index];
    if (!append_rows(job.seg_probs, out.probs, rows, row, s.count) ||
        !append_rows(job.seg_logits, out.logits, rows, row, s.count) ||
        !append_rows(job.seg_embed, out.embedding, rows, row, s.count))
      return Status("internal",
                    "model outputs do not split into " + std::to_string(rows) + " rows");
    if (job.run_options.saliency) {
      // The ECG-FM quickstart's saliency: last-layer attention, max over keys for each frame.
      for (int64_t b = row; b < row + s.count; ++b)
        for (int64_t q = 0; q < frames; ++q) {
          const float* keys = out.saliency.data() + (b * frames + q) * frames;
          job.seg_saliency.push_back(*std::max_element(keys, keys + frames));
        }
    }
    job.embed_dim = out.embed_dim;
    job.frames = frames;
    job.segments_done += s.count;
    job.result.timings.infer_ms += pass.ms;
    // Ties go to the pass shared with more jobs: it says more about what batching did.
    if (rows > job.result.batch_segments ||
        (rows == job.result.batch_segments && pass.jobs > job.result.batch_jobs)) {
      job.result.batch_segments = rows;
      job.result.batch_jobs = pass.jobs;
    }
    row += s.count;
  }
  return Status::Ok();
}

}  // namespace ecgq
