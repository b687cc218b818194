#include "worker/model_tools.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "common/time.hpp"
#include "model/model.hpp"
#include "records/npy.hpp"

namespace ecgq {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// Segments per forward pass, so that a large input file does not need one huge activation.
constexpr int64_t kChunk = 16;

// Prints one line "ecgq-worker <tool>: <reason>" (first line of the reason only).
int fail(const std::string& tool, const std::string& reason, int code = kExitFailure) {
  std::string line = reason.substr(0, reason.find('\n'));
  std::cerr << "ecgq-worker " << tool << ": " << line << "\n";
  return code;
}

// Parses `app`; returns -1 to continue, or the exit code to return.
int parse(CLI::App& app, int argc, char** argv, const std::string& tool) {
  app.set_version_flag("--version", std::string("ecgq-worker ") + ECGQ_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    std::cout << "ecgq-worker " << ECGQ_VERSION << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    return fail(tool, std::string(e.what()) + " (see ecgq-worker " + tool + " --help)", kExitUsage);
  }
  return -1;
}

// "VmHWM" / "VmRSS" of this process in kB, or -1.
int64_t proc_status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size() + 1, field + ":") == 0) {
      return std::stoll(line.substr(field.size() + 1));
    }
  }
  return -1;
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > (n < 0 ? 1 : 0); i -= 3) s.insert(i, ",");
  return s;
}

// --precision and --bf16-split-layers, shared by infer and inspect.
struct PrecisionFlags {
  std::string precision = "fp32";
  CLI::Option* option = nullptr;  // --precision, to tell a given value from the default
  int split_layers = -1;
};

// Sizes the thread pools once (0 = every CPU the process may use; `choice` receives the line the
// command prints when it succeeds: a failure stays one line on stderr) and loads.
Expected<std::unique_ptr<Model>> load(std::string* choice, int threads, const std::string& path,
                                      const std::string& kind, const PrecisionFlags& precision) {
  *choice = configure_threads(threads);
  LoadOptions options;
  options.model_kind = kind;
  options.precision = precision.precision;
  options.precision_set = precision.option != nullptr && precision.option->count() > 0;
  options.bf16_split_layers = precision.split_layers;
  return load_model(path, options);
}

// The exit of a failed load: a setting that contradicts the file (bad_config) is bad usage.
int load_failed(const std::string& tool, const Status& s) {
  return fail(tool, s.message(), s.is(ErrorCode::BadConfig) ? kExitUsage : kExitFailure);
}

void add_precision_options(CLI::App& app, PrecisionFlags& flags) {
  flags.option = app.add_option("--precision", flags.precision,
                                "fp32, or bf16 (projections in bfloat16; needs AVX-512 BF16 or "
                                "AMX); a model file runs at its own")
                     ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--bf16-split-layers", flags.split_layers,
                 "bf16: last layers with hi+lo weights (more accurate, slower; -1 = default)")
      ->check(CLI::Range(-1, 1000));
}

// Validates the model input file: float32 (or float64) [N, leads, samples] or [leads, samples].
Expected<std::vector<float>> read_input(const std::string& path, const ModelInfo& info,
                                        int64_t* n) {
  auto a = read_npy(path);
  if (!a.ok()) return a.status();
  if (a->dtype != "f32" && a->dtype != "f64")
    return Status(
        "bad_input",
        path + ": dtype " + a->dtype + " is not float32 (expected preprocessed float32 [N, " +
            std::to_string(info.in_leads) + ", " + std::to_string(info.segment_samples) + "])",
        "input");
  std::vector<int64_t> shape = a->shape;
  if (shape.size() == 2) shape.insert(shape.begin(), 1);
  if (shape.size() != 3 || shape[1] != info.in_leads || shape[2] != info.segment_samples ||
      shape[0] < 1)
    return Status(ErrorCode::BadInput,
                  path + ": shape " + a->shape_string() + " is not [N, " +
                      std::to_string(info.in_leads) + ", " + std::to_string(info.segment_samples) +
                      "] with N >= 1",
                  "input");
  *n = shape[0];
  return a->to_float();
}

// Appends `part` (rows of `row` floats) to `all`.
void append(std::vector<float>* all, const std::vector<float>& part) {
  all->insert(all->end(), part.begin(), part.end());
}

}  // namespace

int infer_command(int argc, char** argv) {
  const std::string tool = "infer";
  CLI::App app("Run a checkpoint on preprocessed ECG segments (float32 [N, 12, 2500] .npy)",
               "ecgq-worker infer");
  std::string checkpoint, input, out_dir, kind = "auto", choice;
  int threads = 0;
  bool saliency = false;
  app.add_option(
         "--checkpoint", checkpoint,
         "checkpoint file (fairseq-signals ECG-FM, ecgq-worker export model file or TorchScript)")
      ->required();
  app.add_option("--input", input, "preprocessed segments, float32 [N, 12, 2500] .npy")->required();
  app.add_option("--out", out_dir, "output directory (created)")->required();
  app.add_option("--threads", threads,
                 "threads (0 = every CPU this process may use: affinity, cgroup quota)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--model-kind", kind, "auto, ecgfm or torchscript")
      ->check(CLI::IsMember({"auto", "ecgfm", "torchscript"}));
  app.add_flag("--saliency", saliency, "also write saliency.npy [N, T, T] (last layer attention)");
  PrecisionFlags precision;
  add_precision_options(app, precision);
  if (int rc = parse(app, argc, argv, tool); rc >= 0) return rc;

  auto t0 = SteadyClock::now();
  auto model = load(&choice, threads, checkpoint, kind, precision);
  if (!model.ok()) return load_failed(tool, model.status());
  double load_ms = ms_since(t0);
  const ModelInfo& info = (*model)->info();

  int64_t n = 0;
  auto x = read_input(input, info, &n);
  if (!x.ok()) return fail(tool, x.status().message());

  RunOptions options;
  options.encoder_out = true;
  options.saliency = saliency;
  ModelOutput all;
  auto t1 = SteadyClock::now();
  const int64_t seg = info.in_leads * info.segment_samples;
  for (int64_t i = 0; i < n; i += kChunk) {
    int64_t m = std::min(kChunk, n - i);
    auto out = (*model)->run(x->data() + i * seg, m, options);
    if (!out.ok()) return fail(tool, out.status().message());
    all.frames = out->frames;
    all.embed_dim = out->embed_dim;
    append(&all.embedding, out->embedding);
    append(&all.logits, out->logits);
    append(&all.probs, out->probs);
    append(&all.encoder_out, out->encoder_out);
    append(&all.saliency, out->saliency);
  }
  double infer_ms = ms_since(t1);

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return fail(tool, "cannot create output directory " + out_dir + ": " + ec.message());
  auto write = [&](const std::string& name, const std::vector<float>& v,
                   std::vector<int64_t> shape) -> Status {
    if (v.empty()) return Status::Ok();
    return write_npy_f32(out_dir + "/" + name, v.data(), shape);
  };
  const int64_t L = static_cast<int64_t>(info.labels.size());
  const int64_t T = all.frames, E = all.embed_dim;
  for (const Status& s :
       {write("encoder_out.npy", all.encoder_out, {n, T, E}),
        write("embedding.npy", all.embedding, {n, E}), write("logits.npy", all.logits, {n, L}),
        write("probs.npy", all.probs, {n, L}), write("saliency.npy", all.saliency, {n, T, T})}) {
    if (!s.ok()) return fail(tool, s.message());
  }
  if (!all.logits.empty()) {
    std::ofstream labels(out_dir + "/labels.txt");
    for (const auto& l : info.labels) labels << l << "\n";
    if (!labels) return fail(tool, "cannot write " + out_dir + "/labels.txt");
  }
  std::cerr << "ecgq-worker infer: threads: " << choice << "\n";
  std::printf("%s %s %s: %lld segments -> %s (load %.1f ms, infer %.1f ms)\n", info.kind.c_str(),
              info.variant.c_str(), info.precision.c_str(), static_cast<long long>(n),
              out_dir.c_str(), load_ms, infer_ms);
  end_one_shot_command(kExitOk);
}

int inspect_command(int argc, char** argv) {
  const std::string tool = "inspect";
  CLI::App app("Describe a checkpoint: what it is, its size, what loading it costs",
               "ecgq-worker inspect");
  std::string checkpoint, kind = "auto";
  int threads = 0;
  app.add_option(
         "--checkpoint", checkpoint,
         "checkpoint file (fairseq-signals ECG-FM, ecgq-worker export model file or TorchScript)")
      ->required();
  app.add_option("--threads", threads,
                 "threads (0 = every CPU this process may use: affinity, cgroup quota)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--model-kind", kind, "auto, ecgfm or torchscript")
      ->check(CLI::IsMember({"auto", "ecgfm", "torchscript"}));
  PrecisionFlags precision;
  add_precision_options(app, precision);
  if (int rc = parse(app, argc, argv, tool); rc >= 0) return rc;

  int64_t rss_before_kb = proc_status_kb("VmRSS");
  auto t0 = SteadyClock::now();
  std::string choice;
  auto model = load(&choice, threads, checkpoint, kind, precision);
  if (!model.ok()) return load_failed(tool, model.status());
  double load_ms = ms_since(t0);
  const ModelInfo& info = (*model)->info();

  std::ostringstream os;
  os << "checkpoint:   " << checkpoint << "\n"
     << "kind:         " << info.kind << "\n"
     << "variant:      " << info.variant << "\n"
     << "architecture: " << info.architecture << "\n"
     << "parameters:   " << with_commas(info.parameters) << "\n"
     << "precision:    " << info.precision << "\n"
     << (info.source_sha256.empty() ? "" : "source:       sha256 " + info.source_sha256 + "\n")
     << "input:        [N, " << info.in_leads << ", " << info.segment_samples << "] float32\n"
     << "embed_dim:    " << info.embed_dim << "\n"
     << "labels:       " << info.labels.size() << "\n";
  for (size_t i = 0; i < info.labels.size(); ++i)
    os << "  " << (i < 10 ? " " : "") << i << " " << info.labels[i] << "\n";
  os << "skipped:      " << (info.skipped.empty() ? "none" : "") << "\n";
  for (const auto& s : info.skipped) os << "  " << s << "\n";
  char buf[128];
  std::snprintf(buf, sizeof buf, "%.1f", load_ms);
  os << "load_ms:      " << buf << "\n";
  int64_t hwm = proc_status_kb("VmHWM"), rss = proc_status_kb("VmRSS");
  std::snprintf(buf, sizeof buf, "%.1f MiB (rss before load %.1f MiB, after %.1f MiB)",
                hwm / 1024.0, rss_before_kb / 1024.0, rss / 1024.0);
  os << "peak_rss:     " << buf << "\n";
  std::cerr << "ecgq-worker inspect: threads: " << choice << "\n";
  std::cout << os.str();
  end_one_shot_command(kExitOk);
}

void end_one_shot_command(int exit_code) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  if (auto logger = spdlog::default_logger()) logger->flush();
  ::_exit(exit_code);
}

}  // namespace ecgq
