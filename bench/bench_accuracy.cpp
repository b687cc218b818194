// bench_accuracy: how far a bf16 (or int8) model moves the outputs of the fp32 model, on the
// reference input and on real records read and preprocessed exactly as the worker does.
//
//   bench_accuracy --checkpoint PT [--input X.npy] [--records DIR] [--threads N]
//                  [--precision bf16] [--baseline fp32] [--chunk N] [--bf16-split-layers N]
//
// Loads the checkpoint twice in one process (--baseline, then --precision), runs both on the same
// segments and prints one key=value line per input on stdout:
//   input=NAME status=ok segments=N max_dprob_seg=.. max_dprob_record=.. max_dlogit=..
//       max_dembed=.. max_rel_dembed=.. one_minus_cos_max=.. one_minus_cos_record=.. cos_min_seg=..
//       cos_mean_seg=.. cos_record=..
//   input=NAME status=rejected error=CODE message="..."   (the worker would reject the record)
// max_rel_dembed: the largest ||Δ embedding|| / ||embedding|| over segments. dprob: |Δ| of the
// per-segment probabilities, and of the per-record aggregate a job result
// carries (aggregate_probs); cos: cosine similarity of the embeddings per segment and of the
// per-record mean embedding. Classifier-free checkpoints print only the embedding figures.
// Records: every *.hea file in --records (sorted), read with read_record -> job_from_record ->
// raw_from_job -> preprocess_ecg (worker/job_runner.cpp's path). bench/model_bench.py drives it.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "records/ecg_record.hpp"
#include "records/npy.hpp"
#include "records/preprocess.hpp"

namespace {

namespace fs = std::filesystem;

int usage(const std::string& why) {
  std::cerr << "bench_accuracy: " << why
            << "\nusage: bench_accuracy --checkpoint PT [--input X.npy] [--records DIR] "
               "[--threads N] [--precision bf16] [--baseline fp32] [--chunk N]\n"
               "       [--bf16-split-layers N]\n";
  return 2;
}

// Outputs of all segments of one input, concatenated.
struct Outputs {
  std::vector<float> probs, logits, embedding;
  int64_t embed_dim = 0;
};

ecgq::Expected<Outputs> run_all(ecgq::Model& model, const std::vector<float>& x, int64_t n,
                                int64_t chunk) {
  const int64_t seg = model.info().in_leads * model.info().segment_samples;
  Outputs all;
  ecgq::RunOptions options;
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t m = std::min(chunk, n - i);
    auto out = model.run(x.data() + i * seg, m, options);
    if (!out.ok()) return out.status();
    all.embed_dim = out->embed_dim;
    all.probs.insert(all.probs.end(), out->probs.begin(), out->probs.end());
    all.logits.insert(all.logits.end(), out->logits.begin(), out->logits.end());
    all.embedding.insert(all.embedding.end(), out->embedding.begin(), out->embedding.end());
  }
  return all;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

double cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

// ||b - a|| / ||a|| over n floats (0 when both are zero).
double relative_error(const float* a, const float* b, int64_t n) {
  double dd = 0, aa = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(b[i]) - a[i];
    dd += d * d;
    aa += static_cast<double>(a[i]) * a[i];
  }
  return aa > 0 ? std::sqrt(dd / aa) : (dd > 0 ? 1.0 : 0.0);
}

// One line comparing reference (`ref`) and candidate (`cand`) outputs for `n` segments.
std::string compare(const Outputs& ref, const Outputs& cand, int64_t n,
                    const std::vector<std::string>& labels) {
  std::ostringstream os;
  os.precision(4);
  os << std::scientific << "status=ok segments=" << n;
  if (!ref.probs.empty()) {
    os << " max_dprob_seg=" << max_abs_diff(ref.probs, cand.probs) << " max_dprob_record="
       << max_abs_diff(ecgq::aggregate_probs(labels, ref.probs, n),
                       ecgq::aggregate_probs(labels, cand.probs, n))
       << " max_dlogit=" << max_abs_diff(ref.logits, cand.logits);
  }
  const int64_t e = ref.embed_dim;
  double cmin = 1, csum = 0, rel = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float *r = ref.embedding.data() + i * e, *c = cand.embedding.data() + i * e;
    const double cos = cosine(r, c, e);
    cmin = std::min(cmin, cos);
    csum += cos;
    rel = std::max(rel, relative_error(r, c, e));
  }
  auto rm = ecgq::mean_over_segments(ref.embedding, n);
  auto cm = ecgq::mean_over_segments(cand.embedding, n);
  const double crec = cosine(rm.data(), cm.data(), e);
  os << " max_dembed=" << max_abs_diff(ref.embedding, cand.embedding) << " max_rel_dembed=" << rel
     << " one_minus_cos_max=" << 1.0 - cmin << " one_minus_cos_record=" << 1.0 - crec << std::fixed
     << std::setprecision(7) << " cos_min_seg=" << cmin << " cos_mean_seg=" << csum / n
     << " cos_record=" << crec;
  return os.str();
}

std::string quoted(std::string s) {
  std::replace(s.begin(), s.end(), '"', '\'');
  std::replace(s.begin(), s.end(), '\n', ' ');
  return "\"" + s + "\"";
}

// Preprocessed segments of one record, as the worker computes them.
ecgq::Expected<ecgq::Preprocessed> preprocess_file(const std::string& path) {
  auto record = ecgq::read_record(path);
  if (!record) return record.status();
  auto job = ecgq::job_from_record(*record);
  if (!job) return job.status();
  auto raw = ecgq::raw_from_job(*job);
  if (!raw) return raw.status();
  return ecgq::preprocess_ecg(*raw, ecgq::PreprocessLimits{});
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint, input, records, precision = "bf16", baseline = "fp32";
  int split_layers = -1;
  int threads = 0;
  int64_t chunk = 8;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : std::string(); };
    if (a == "--checkpoint")
      checkpoint = next();
    else if (a == "--input")
      input = next();
    else if (a == "--records")
      records = next();
    else if (a == "--threads")
      threads = std::atoi(next().c_str());
    else if (a == "--precision")
      precision = next();
    else if (a == "--bf16-split-layers")
      split_layers = std::atoi(next().c_str());
    else if (a == "--baseline")
      baseline = next();
    else if (a == "--chunk")
      chunk = std::max(1, std::atoi(next().c_str()));
    else
      return usage("unknown argument '" + a + "'");
  }
  if (checkpoint.empty()) return usage("--checkpoint is required");
  if (input.empty() && records.empty()) return usage("give --input and/or --records");

  ecgq::configure_threads(threads);
  ecgq::LoadOptions options;
  options.intra_op_threads = threads;
  options.precision = baseline;
  auto ref_model = ecgq::load_model(checkpoint, options);
  if (!ref_model) {
    std::cerr << "bench_accuracy: " << baseline << ": " << ref_model.status().to_string() << "\n";
    return 1;
  }
  options.precision = precision;
  options.bf16_split_layers = split_layers;
  auto cand_model = ecgq::load_model(checkpoint, options);
  if (!cand_model) {
    std::cerr << "bench_accuracy: " << precision << ": " << cand_model.status().to_string() << "\n";
    std::cout << "status=unavailable precision=" << precision
              << " error=" << cand_model.status().code()
              << " message=" << quoted(cand_model.status().message()) << std::endl;
    return 3;
  }
  const auto& info = (*ref_model)->info();
  std::cout << "status=loaded baseline=" << baseline << " precision=" << precision
            << " model_precision=" << (*cand_model)->info().precision << " variant=" << info.variant
            << " labels=" << info.labels.size() << " embed_dim=" << info.embed_dim << std::endl;

  // Runs both models on `n` segments and prints the comparison for `name`.
  auto one = [&](const std::string& name, const std::vector<float>& x, int64_t n) -> bool {
    auto ref = run_all(**ref_model, x, n, chunk);
    auto cand = ref ? run_all(**cand_model, x, n, chunk) : ref;
    if (!ref || !cand) {
      const auto& st = ref ? cand.status() : ref.status();
      std::cout << "input=" << name << " status=failed error=" << st.code()
                << " message=" << quoted(st.message()) << std::endl;
      return false;
    }
    std::cout << "input=" << name << " " << compare(*ref, *cand, n, info.labels) << std::endl;
    return true;
  };

  bool ok = true;
  if (!input.empty()) {
    auto a = ecgq::read_npy(input);
    if (!a.ok()) return usage(a.status().to_string());
    if (a->shape.size() != 3) return usage("--input must be [N, 12, 2500]");
    ok &= one(fs::path(input).filename().string(), a->to_float(), a->shape[0]);
  }
  if (!records.empty()) {
    std::vector<std::string> headers;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(records, ec))
      if (entry.path().extension() == ".hea") headers.push_back(entry.path().string());
    if (ec) return usage("--records " + records + ": " + ec.message());
    std::sort(headers.begin(), headers.end());
    for (const auto& h : headers) {
      const std::string name = fs::path(h).stem().string();
      auto pre = preprocess_file(h);
      if (!pre) {
        std::cout << "input=" << name << " status=rejected error=" << pre.status().code()
                  << " message=" << quoted(pre.status().message()) << std::endl;
        continue;
      }
      ok &= one(name, pre->segments, pre->n_segments);
    }
  }
  return ok ? 0 : 1;
}
