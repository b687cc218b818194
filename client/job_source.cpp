#include "client/job_source.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "common/text.hpp"
#include "records/ecg_record.hpp"

namespace ecgq::client {

namespace {

// float64 records above this are sent as float32.
constexpr size_t kShrinkF64Bytes = size_t{64} << 20;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Expected<schema::Job> job_from_path(const std::string& path, const InputOptions& options) {
  ReadOptions read;
  read.fs = options.fs;
  // .npy carries no sample rate; ECG-FM's native 500 Hz is the documented default, said once
  // per process so that a 250 Hz array is not taken for 500 Hz without a word.
  if (read.fs <= 0 && ends_with(path, ".npy")) {
    read.fs = 500;
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      spdlog::warn(
          "event=fs_assumed path={} fs=500 reason=\".npy files carry no sample rate; "
          "give --fs if yours differs (said once)\"",
          loggable(path));
  }
  read.leads = options.leads;
  read.units = options.units;
  auto record = read_record(path, read);
  if (!record) return record.status();
  if (options.max_record_seconds > 0 && record->duration_s() > options.max_record_seconds) {
    char buf[160];
    std::snprintf(buf, sizeof buf, ": the record lasts %.1f s, more than max_record_seconds %.0f",
                  record->duration_s(), options.max_record_seconds);
    return Status(ErrorCode::TooLong, path + buf, "ecg");
  }
  auto job = job_from_record(*record);
  if (!job) return job.status();
  // float64 samples (CSV, f64 .npy) carry no more than float32 does for an ECG; halving a large
  // record keeps it under the broker's message limit (30 min at 1000 Hz is 86.4 MB as float32).
  if (job->ecg.dtype == "f64" && job->ecg.data.size() > kShrinkF64Bytes) {
    const auto* f64 = reinterpret_cast<const double*>(job->ecg.data.data());
    std::vector<float> f32(f64, f64 + job->ecg.data.size() / sizeof(double));
    job->ecg.dtype = "f32";
    job->ecg.data.assign(reinterpret_cast<const char*>(f32.data()), f32.size() * sizeof(float));
  }
  job->outputs = options.outputs;
  job->deadline_ms = options.deadline_ms;
  job->model_sha256 = options.model_sha256;
  if (options.missing_leads == "zero") job->missing_leads = options.missing_leads;
  return job;
}

JobSource::JobSource(std::vector<std::string> roots, InputOptions options)
    : roots_(std::move(roots)), options_(std::move(options)) {}

std::optional<Submission> JobSource::next() {
  while (true) {
    if (walk_) {
      if (auto path = walk_->next()) {
        if (skip_ && skip_(*path)) {
          ++passed_over_;
          continue;
        }
        return Submission{*path, job_from_path(*path, options_)};
      }
      skipped_done_ += walk_->skipped();
      walk_.reset();
    }
    if (next_root_ >= roots_.size()) return std::nullopt;
    const std::string root = roots_[next_root_++];
    std::error_code ec;
    if (!std::filesystem::exists(root, ec)) {
      return Submission{root,
                        Status(ErrorCode::NotFound, "no such file or directory: " + root, "path")};
    }
    walk_.emplace(std::vector<std::string>{root});
  }
}

int64_t JobSource::skipped_files() const {
  return skipped_done_ + (walk_ ? walk_->skipped() : 0);
}

}  // namespace ecgq::client
