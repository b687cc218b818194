// ECG-FM input preprocessing (../shared/docs/ecgfm-model.md section 4) and segment aggregation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "protocol/decoded_job.hpp"
#include "protocol/schema.hpp"

namespace ecgq {

// The 12 lead names in model order.
inline const std::vector<std::string> kModelLeads = {"I",  "II", "III", "aVR", "aVL", "aVF",
                                                     "V1", "V2", "V3",  "V4",  "V5",  "V6"};

// A record in physical units, lead-major: samples[l * n_samples + t].
struct RawEcg {
  std::vector<double> samples;
  int64_t n_leads = 0;
  int64_t n_samples = 0;
  double fs = 0;
  std::vector<std::string> leads;
  bool zero_missing_leads = false;  // the job's missing_leads is "zero": give leads that cannot be
                                    // read or derived as zeros instead of refusing the record
};

// Model input for one record.
struct Preprocessed {
  std::vector<float> segments;  // [n_segments, 12, 2500]
  int64_t n_segments = 0;
  std::vector<std::string> derived_leads;     // leads computed from I and II
  std::vector<std::string> ignored_channels;  // input channels not used (with reason)
  std::vector<std::string> masked_leads;      // model leads given as zeros (zero_missing_leads)
};

// Limits a worker applies to records.
struct PreprocessLimits {
  double max_record_seconds = 3600;
};

// Converts a job built in memory (from a record file) into physical units: validates dtype,
// shape, data size, lead count, fs, gain and baseline as the job decoder does, then units and
// finiteness (bad_samples names lead and index).
Expected<RawEcg> raw_from_job(const schema::Job& job);
// Converts a decoded job into physical units, reading the samples where they arrived; checks only
// what the decoder does not (units, finiteness).
Expected<RawEcg> raw_from_job(const schema::DecodedJob& job);

// Lead mapping, derived limb leads, linear resampling to 500 Hz, per-lead z-score over the whole
// record (float64), 5 s segments; errors: missing_leads (unless raw.zero_missing_leads and some
// lead is there), too_short, too_long, bad_samples.
Expected<Preprocessed> preprocess_ecg(const RawEcg& raw, const PreprocessLimits& limits);
// The same for a record given away: its sample buffer becomes the working buffer when its
// channels are the 12 model leads in order (no copy of the samples).
Expected<Preprocessed> preprocess_ecg(RawEcg&& raw, const PreprocessLimits& limits);

// The stage before segmenting: the 12 model leads (mapped, derived), resampled to 500 Hz and
// standardised, lead-major float64 [12, N']; preprocess_ecg cuts this into segments. `info`
// (optional) receives derived_leads and ignored_channels. Same errors as preprocess_ecg.
Expected<std::vector<double>> standardized_500hz(const RawEcg& raw, const PreprocessLimits& limits,
                                                 Preprocessed* info = nullptr);
// The same for a record given away (its buffer is reused as preprocess_ecg's is).
Expected<std::vector<double>> standardized_500hz(RawEcg&& raw, const PreprocessLimits& limits,
                                                 Preprocessed* info = nullptr);

// Per-record aggregation of per-segment probabilities: max for the labels ECG-FM aggregates with
// max, mean for the others. `seg_probs` is [n_segments, labels.size()].
std::vector<float> aggregate_probs(const std::vector<std::string>& labels,
                                   const std::vector<float>& seg_probs, int64_t n_segments);

// Mean over segments of a [n_segments, width] array.
std::vector<float> mean_over_segments(const std::vector<float>& values, int64_t n_segments);

}  // namespace ecgq
