// ECG-FM preprocessing, written to reproduce fairseq-signals scripts/preprocess/ecg/preprocess.py
// (`resample`, `lead_std_divide`, `preprocess_mat`, `segment_mat`) with numpy/scipy semantics.
#include "records/preprocess.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

#include "records/lead_names.hpp"
#include "records/units.hpp"

namespace ecgq {

namespace {

constexpr double kTargetFs = 500.0;
constexpr int64_t kSegment = 2500;

std::string format_seconds(double s) {
  std::ostringstream os;
  os.precision(s < 100 ? 3 : 6);
  os << s;
  return os.str();
}

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

// numpy's pairwise summation (umath loops: blocks of 8 unrolled, 128-element leaves); the outer
// reduction walks 8192-element buffers as numpy's buffered iterator does. Matching numpy's
// summation order keeps the z-score within an ulp or so of upstream.
double pairwise_sum(const double* a, int64_t n) {
  if (n < 8) {
    double res = 0.;
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

double numpy_sum(const double* a, int64_t n) {
  double res = 0.;
  for (int64_t off = 0; off < n; off += 8192)
    res += pairwise_sum(a + off, std::min<int64_t>(8192, n - off));
  return res;
}

// Output length of upstream `resample`: int(N * (500 / fs)); identity at 500 Hz.
int64_t resampled_length(int64_t n, double fs) {
  if (fs == kTargetFs) return n;
  return static_cast<int64_t>(static_cast<double>(n) * (kTargetFs / fs));
}

// scipy interp1d(linspace(0, N'-1, N), x, 'linear')(arange(N')) for one lead, as
// interp1d._call_linear computes it (searchsorted left, indices clipped to [1, N-1]).
void resample_lead(const double* x, int64_t n, int64_t n_out, double* y) {
  // numpy.linspace: xp[j] = j * step + 0.0, with the endpoint set exactly.
  const double step = static_cast<double>(n_out - 1) / static_cast<double>(n - 1);
  auto xp = [&](int64_t j) { return j == n - 1 ? static_cast<double>(n_out - 1) : j * step + 0.0; };
  int64_t idx = 0;  // first j with xp[j] >= t
  for (int64_t t = 0; t < n_out; ++t) {
    const double xt = static_cast<double>(t);
    while (idx < n && xp(idx) < xt) ++idx;
    const int64_t hi = std::clamp<int64_t>(idx, 1, n - 1);
    const int64_t lo = hi - 1;
    const double x_lo = xp(lo), x_hi = xp(hi);
    const double slope = (x[hi] - x[lo]) / (x_hi - x_lo);
    y[t] = slope * (xt - x_lo) + x[lo];
  }
}

// preprocess_mat's standardisation: subtract the mean, divide by the population std; a constant
// lead becomes zeros (constant_lead_strategy='zero').
void standardize_lead(double* x, int64_t n) {
  const double mean = numpy_sum(x, n) / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) x[i] -= mean;
  // np.std of the centred lead: its own mean (almost, not exactly, 0) is subtracted again.
  const double mean2 = numpy_sum(x, n) / static_cast<double>(n);
  std::vector<double> sq(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - mean2;
    sq[i] = d * d;
  }
  const double std = std::sqrt(numpy_sum(sq.data(), n) / static_cast<double>(n));
  if (std == 0) {
    std::fill(x, x + n, 0.0);
    return;
  }
  for (int64_t i = 0; i < n; ++i) x[i] /= std;
}

Status check_finite(const double* x, int64_t n, const std::string& lead) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      return Status(ErrorCode::BadSamples,
                    "lead " + lead + " sample " + std::to_string(i) + " is " +
                        (std::isnan(x[i]) ? "NaN" : "infinite"),
                    "ecg");
  return Status::Ok();
}

// Element `i` of a little-endian buffer of T, as double.
template <typename T>
double load(const char* data, int64_t i) {
  T v;
  std::memcpy(&v, data + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return static_cast<double>(v);
}

// Per-lead value of a none/one/per-lead parameter vector.
Status check_per_lead(const std::vector<double>& values, int64_t n_leads, const char* field) {
  if (values.size() > 1 && static_cast<int64_t>(values.size()) != n_leads)
    return Status(ErrorCode::BadShape,
                  std::string(field) + " has " + std::to_string(values.size()) +
                      " values; expected none, one for all leads, or one per lead (" +
                      std::to_string(n_leads) + ")",
                  field);
  for (double v : values)
    if (!std::isfinite(v))
      return Status(ErrorCode::BadRequest, std::string(field) + " values must be finite numbers",
                    field);
  return Status::Ok();
}

double per_lead(const std::vector<double>& values, int64_t lead, double fallback) {
  if (values.empty()) return fallback;
  return values.size() == 1 ? values[0] : values[static_cast<size_t>(lead)];
}

// What the job decoder checks (schema.cpp, decode_job_in_place), for a Job built in memory (from
// a record file) that met no decoder; a DecodedJob skips this.
Status check_job_fields(const schema::Job& job) {
  const auto& a = job.ecg;
  if (schema::dtype_size(a.dtype) == 0)
    return Status(ErrorCode::UnsupportedDtype,
                  "ecg dtype '" + a.dtype + "' is not supported; expected f32, f64 or i16",
                  "ecg.dtype");
  if (a.shape.size() != 2)
    return Status(
        "bad_shape",
        "ecg must be 2-D [leads, samples]; got " + std::to_string(a.shape.size()) + " dimensions",
        "ecg.shape");
  const int64_t n_leads = a.shape[0], n_samples = a.shape[1];
  if (n_leads <= 0 || n_samples <= 0)
    return Status(ErrorCode::BadShape, "ecg shape must be positive [leads, samples]", "ecg.shape");
  const size_t bytes = static_cast<size_t>(n_leads * n_samples) * schema::dtype_size(a.dtype);
  if (a.data.size() != bytes)
    return Status(ErrorCode::BadShape,
                  "ecg data has " + std::to_string(a.data.size()) + " bytes; shape [" +
                      std::to_string(n_leads) + ", " + std::to_string(n_samples) + "] of " +
                      a.dtype + " needs " + std::to_string(bytes),
                  "ecg.data");
  if (static_cast<int64_t>(job.leads.size()) != n_leads)
    return Status(ErrorCode::BadRequest,
                  "leads names " + std::to_string(job.leads.size()) + " channels but ecg has " +
                      std::to_string(n_leads) + " rows",
                  "leads");
  if (!std::isfinite(job.fs) || job.fs <= 0)
    return Status(ErrorCode::BadRequest, "fs must be a positive sample rate in Hz", "fs");
  RETURN_IF_ERROR(check_per_lead(job.gain, n_leads, "gain"));
  RETURN_IF_ERROR(check_per_lead(job.baseline, n_leads, "baseline"));
  for (double g : job.gain)
    if (g == 0)
      return Status(ErrorCode::BadRequest, "gain must not be 0 (ADC units per mV)", "gain");
  return Status::Ok();
}

// The factor that turns a job's values into mV (the units table of records/units.hpp, shared
// with the record readers), or bad_request naming `units`.
Expected<double> job_unit_scale(const std::string& units) {
  const double mv = millivolts_per_unit(units);
  if (!std::isfinite(mv))
    return Status(ErrorCode::BadRequest,
                  "units '" + units + "' not supported; expected " + voltage_units_list(), "units");
  return mv;
}

// The physical values of a job whose fields passed the decoder's checks, read from `samples`
// (the ecg bytes, wherever they are: inside a received body or in job.ecg.data).
Expected<RawEcg> to_physical(const schema::Job& job, std::string_view samples) {
  ASSIGN_OR_RETURN(auto unit_scale, job_unit_scale(job.units));
  const auto& a = job.ecg;
  const int64_t n_leads = a.shape[0], n_samples = a.shape[1];
  if (samples.size() != static_cast<size_t>(n_leads * n_samples) * schema::dtype_size(a.dtype))
    return Status(ErrorCode::Internal, "the job's samples were released before preprocessing",
                  "ecg");
  RawEcg raw;
  raw.n_leads = n_leads;
  raw.n_samples = n_samples;
  raw.fs = job.fs;
  raw.leads = job.leads;
  raw.zero_missing_leads = job.missing_leads == "zero";
  raw.samples.resize(static_cast<size_t>(n_leads * n_samples));
  const char* data = samples.data();
  double (*element)(const char*, int64_t) = a.dtype == "f32"   ? &load<float>
                                            : a.dtype == "f64" ? &load<double>
                                                               : &load<int16_t>;
  for (int64_t l = 0; l < n_leads; ++l) {
    const double gain = per_lead(job.gain, l, 1.0);
    const double base = per_lead(job.baseline, l, 0.0);
    double* out = raw.samples.data() + l * n_samples;
    for (int64_t t = 0; t < n_samples; ++t) {
      const double v = element(data, l * n_samples + t);
      if (!std::isfinite(v))
        return Status(ErrorCode::BadSamples,
                      "lead " + job.leads[l] + " sample " + std::to_string(t) + " is " +
                          (std::isnan(v) ? "NaN" : "infinite"),
                      "ecg");
      out[t] = (v - base) / gain * unit_scale;
    }
    // Finite inputs can still overflow once divided by a tiny gain.
    RETURN_IF_ERROR(check_finite(out, n_samples, job.leads[l]));
  }
  return raw;
}

// The record's length at 500 Hz, or too_long/too_short (and the checks a RawEcg built by hand
// may fail).
Expected<int64_t> checked_length_500hz(const RawEcg& raw, const PreprocessLimits& limits) {
  const int64_t n = raw.n_samples;
  if (raw.n_leads != static_cast<int64_t>(raw.leads.size()) ||
      raw.samples.size() != static_cast<size_t>(raw.n_leads * n))
    return Status(ErrorCode::BadShape, "lead names and sample array disagree", "leads");
  if (!std::isfinite(raw.fs) || raw.fs <= 0)
    return Status(ErrorCode::BadRequest, "fs must be a positive sample rate in Hz", "fs");
  const double seconds = static_cast<double>(n) / raw.fs;
  if (limits.max_record_seconds > 0 && seconds > limits.max_record_seconds)
    return Status(ErrorCode::TooLong,
                  "record is " + format_seconds(seconds) + " s long; the limit is " +
                      format_seconds(limits.max_record_seconds) + " s",
                  "ecg");
  const int64_t n_out = resampled_length(n, raw.fs);
  if (n < 2 || n_out < kSegment)
    return Status(ErrorCode::TooShort,
                  "record is " + format_seconds(seconds) + " s long (" + std::to_string(n_out) +
                      " samples at 500 Hz); ECG-FM needs at least 5 s (2500 samples at 500 Hz)",
                  "ecg");
  return n_out;
}

// Channel of each model lead (-1: absent); the first channel of each lead wins, the others are
// reported in out.ignored_channels.
std::array<int64_t, 12> map_channels(const RawEcg& raw, Preprocessed& out) {
  std::array<int64_t, 12> source;
  source.fill(-1);
  for (int64_t c = 0; c < raw.n_leads; ++c) {
    const std::string& name = raw.leads[c];
    const int idx = model_lead_index(name);
    if (idx < 0) {
      out.ignored_channels.push_back(name + ": " + unused_channel_reason(name));
    } else if (source[idx] >= 0) {
      out.ignored_channels.push_back(name + ": duplicate of lead " + kModelLeads[idx] +
                                     " (channel " + std::to_string(source[idx]) + " is used)");
    } else {
      source[idx] = c;
    }
  }
  return source;
}

// The lead-major 12 x n buffer in model order (rows of absent leads zero). When the record holds
// exactly the 12 model leads in model order and `adoptable` is its own sample buffer, that buffer
// is taken over instead of copied (the common case: a 128 MiB job is not copied once more).
Expected<std::vector<double>> model_order_leads(const RawEcg& raw,
                                                const std::array<int64_t, 12>& source,
                                                std::vector<double>* adoptable) {
  const int64_t n = raw.n_samples;
  for (int i = 0; i < 12; ++i)
    if (source[i] >= 0)
      RETURN_IF_ERROR(check_finite(raw.samples.data() + source[i] * n, n, raw.leads[source[i]]));
  bool in_model_order = adoptable != nullptr && raw.n_leads == 12;
  for (int i = 0; i < 12 && in_model_order; ++i) in_model_order = source[i] == i;
  if (in_model_order) return std::move(*adoptable);
  std::vector<double> leads(static_cast<size_t>(12 * n));
  for (int i = 0; i < 12; ++i) {
    if (source[i] < 0) continue;
    const double* src = raw.samples.data() + source[i] * n;
    std::copy(src, src + n, leads.data() + static_cast<int64_t>(i) * n);
  }
  return leads;
}

// Derives the limb leads that are missing from those present (Einthoven: III = II - I, so any two
// of I, II, III give the third; the augmented leads follow from I and II); missing_leads when
// some lead can be neither read nor derived, unless `zero_missing` (those rows stay zero, as in
// ECG-FM's random lead masking, and are listed in masked_leads) and some lead was read.
Status derive_missing_leads(std::vector<double>& leads, int64_t n,
                            const std::array<int64_t, 12>& source, bool zero_missing,
                            Preprocessed& out) {
  auto row = [&](int i) { return leads.data() + static_cast<int64_t>(i) * n; };
  bool have[12];
  for (int i = 0; i < 12; ++i) have[i] = source[i] >= 0;
  auto derive = [&](int target, auto fn) {
    double* dst = row(target);
    for (int64_t t = 0; t < n; ++t) dst[t] = fn(t);
    have[target] = true;
    out.derived_leads.push_back(kModelLeads[target]);
  };
  if (!have[0] && have[1] && have[2]) derive(0, [&](int64_t t) { return row(1)[t] - row(2)[t]; });
  if (!have[1] && have[0] && have[2]) derive(1, [&](int64_t t) { return row(0)[t] + row(2)[t]; });
  if (have[0] && have[1]) {
    const double* I = row(0);
    const double* II = row(1);
    if (!have[2]) derive(2, [&](int64_t t) { return II[t] - I[t]; });
    if (!have[3]) derive(3, [&](int64_t t) { return -(I[t] + II[t]) / 2; });
    if (!have[4]) derive(4, [&](int64_t t) { return I[t] - II[t] / 2; });
    if (!have[5]) derive(5, [&](int64_t t) { return II[t] - I[t] / 2; });
  }
  std::vector<std::string> missing;
  for (int i = 0; i < 12; ++i)
    if (!have[i]) missing.push_back(kModelLeads[i]);
  if (missing.empty()) return Status::Ok();
  std::vector<std::string> present;
  for (int i = 0; i < 12; ++i)
    if (source[i] >= 0) present.push_back(kModelLeads[i]);
  if (zero_missing && !present.empty()) {
    out.masked_leads = std::move(missing);
    return Status::Ok();
  }
  return Status(ErrorCode::MissingLeads,
                "missing lead" + std::string(missing.size() > 1 ? "s " : " ") + join(missing) +
                    "; ECG-FM needs all 12 leads (I, II, III, aVR, aVL, aVF, V1-V6; III, aVR, "
                    "aVL and aVF can be derived from I and II); recognised: " +
                    (present.empty() ? std::string("none") : join(present)),
                "leads");
}

// standardized_500hz for both overloads; `adoptable` (may be null) is raw's own sample buffer
// when the caller gave the record away.
Expected<std::vector<double>> standardize(const RawEcg& raw, std::vector<double>* adoptable,
                                          const PreprocessLimits& limits, Preprocessed* info) {
  ASSIGN_OR_RETURN(auto n_out, checked_length_500hz(raw, limits));
  const int64_t n = raw.n_samples;
  Preprocessed local;
  Preprocessed& out = info ? *info : local;
  const std::array<int64_t, 12> source = map_channels(raw, out);
  // Model order before resampling: the derivations are linear, so deriving before or after linear
  // interpolation gives the same values.
  ASSIGN_OR_RETURN(auto leads, model_order_leads(raw, source, adoptable));
  RETURN_IF_ERROR(derive_missing_leads(leads, n, source, raw.zero_missing_leads, out));

  // Resample to 500 Hz, then standardise each lead over the whole record.
  const int64_t m = n_out;
  std::vector<double> resampled;
  if (m != n) {
    resampled.resize(static_cast<size_t>(12 * m));
    for (int i = 0; i < 12; ++i)
      resample_lead(leads.data() + i * n, n, m, resampled.data() + i * m);
  } else {
    resampled.swap(leads);
  }
  for (int i = 0; i < 12; ++i) standardize_lead(resampled.data() + i * m, m);
  return resampled;
}

// Cuts standardised [12, N'] values into float32 [n_segments, 12, 2500] segments.
void cut_segments(const std::vector<double>& resampled, Preprocessed& out) {
  const int64_t n_out = static_cast<int64_t>(resampled.size()) / 12;
  out.n_segments = n_out / kSegment;
  out.segments.resize(static_cast<size_t>(out.n_segments * 12 * kSegment));
  for (int64_t s = 0; s < out.n_segments; ++s)
    for (int i = 0; i < 12; ++i) {
      const double* src = resampled.data() + i * n_out + s * kSegment;
      float* dst = out.segments.data() + (s * 12 + i) * kSegment;
      for (int64_t t = 0; t < kSegment; ++t) dst[t] = static_cast<float>(src[t]);
    }
}

}  // namespace

Expected<RawEcg> raw_from_job(const schema::Job& job) {
  RETURN_IF_ERROR(check_job_fields(job));
  return to_physical(job, job.ecg.data);
}

Expected<RawEcg> raw_from_job(const schema::DecodedJob& job) {
  return to_physical(job.fields(), job.samples());
}

Expected<std::vector<double>> standardized_500hz(const RawEcg& raw, const PreprocessLimits& limits,
                                                 Preprocessed* info) {
  return standardize(raw, nullptr, limits, info);
}

Expected<std::vector<double>> standardized_500hz(RawEcg&& raw, const PreprocessLimits& limits,
                                                 Preprocessed* info) {
  return standardize(raw, &raw.samples, limits, info);
}

Expected<Preprocessed> preprocess_ecg(const RawEcg& raw, const PreprocessLimits& limits) {
  Preprocessed out;
  ASSIGN_OR_RETURN(auto z, standardize(raw, nullptr, limits, &out));
  cut_segments(z, out);
  return out;
}

Expected<Preprocessed> preprocess_ecg(RawEcg&& raw, const PreprocessLimits& limits) {
  Preprocessed out;
  ASSIGN_OR_RETURN(auto z, standardize(raw, &raw.samples, limits, &out));
  cut_segments(z, out);
  return out;
}

std::vector<float> aggregate_probs(const std::vector<std::string>& labels,
                                   const std::vector<float>& seg_probs, int64_t n_segments) {
  static const std::set<std::string> kMaxLabels = {
      "Poor data quality", "Premature ventricular contraction", "Ventricular tachycardia",
      "Supraventricular tachycardia with aberrancy", "Electronic pacemaker"};
  const size_t width = labels.size();
  std::vector<float> out(width, 0.0f);
  if (n_segments <= 0 || width == 0 || seg_probs.size() < static_cast<size_t>(n_segments) * width)
    return out;
  for (size_t j = 0; j < width; ++j) {
    const bool use_max = kMaxLabels.count(labels[j]) > 0;
    double acc = use_max ? -INFINITY : 0.0;
    for (int64_t s = 0; s < n_segments; ++s) {
      const double v = seg_probs[static_cast<size_t>(s) * width + j];
      acc = use_max ? std::max(acc, v) : acc + v;
    }
    out[j] = static_cast<float>(use_max ? acc : acc / static_cast<double>(n_segments));
  }
  return out;
}

std::vector<float> mean_over_segments(const std::vector<float>& values, int64_t n_segments) {
  if (n_segments <= 0) return {};
  const size_t width = values.size() / static_cast<size_t>(n_segments);
  std::vector<float> out(width, 0.0f);
  for (size_t j = 0; j < width; ++j) {
    double acc = 0;
    for (int64_t s = 0; s < n_segments; ++s) acc += values[static_cast<size_t>(s) * width + j];
    out[j] = static_cast<float>(acc / static_cast<double>(n_segments));
  }
  return out;
}

}  // namespace ecgq
