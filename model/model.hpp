// The inference interface the worker uses; torch-free so that most files compile fast.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq {

// What a loaded model is and what it can produce.
struct ModelInfo {
  std::string kind;                 // "ecgfm" or "torchscript"
  std::string variant;              // ecgfm: "pretrained" (wav2vec2_cmsc) or "classifier"
  std::vector<std::string> labels;  // empty for models without a classifier head
  int64_t in_leads = 12;            // input rows
  int64_t segment_samples = 2500;   // input samples per segment
  int64_t embed_dim = 0;            // E of the embedding output (0 when none)
  int64_t parameters = 0;           // parameters in use for inference
  std::string precision = "fp32";   // "fp32" or "bf16"
  // An export's (a TorchScript module with a `source_sha256` attribute): the sha256 of the
  // checkpoint it was made from, which it names instead of its own file's ("" = none).
  std::string source_sha256;
  std::string architecture;  // one line, e.g. "12 layers, E=768, FFN=3072, 12 heads, post-LN"
  std::vector<std::string>
      skipped;  // checkpoint parts not loaded (optimizer state, quantizer, ...)
};

// Which optional outputs a forward pass computes.
struct RunOptions {
  bool encoder_out = false;  // [N, T, E]
  bool saliency = false;     // last layer's head-averaged attention [N, T, T]
};

// Outputs of one forward pass over N segments, all float32 row-major.
struct ModelOutput {
  int64_t batch = 0;
  int64_t frames = 0;              // T
  int64_t embed_dim = 0;           // E
  std::vector<float> embedding;    // [N, E] (count-nonzero mean over T)
  std::vector<float> logits;       // [N, L] (classifiers only)
  std::vector<float> probs;        // [N, L] sigmoid(logits)
  std::vector<float> encoder_out;  // [N, T, E] when asked
  std::vector<float> saliency;     // [N, T, T] when asked
};

// How to load a model.
struct LoadOptions {
  std::string model_kind = "auto";  // "auto", "ecgfm" or "torchscript"
  std::string precision = "fp32";   // "fp32" or "bf16"
  bool precision_set = false;       // the user chose `precision` (a model file refuses another)
  int bf16_split_layers = -1;       // bf16: last layers with hi+lo weights (-1 = measured default)
  int intra_op_threads = 0;         // 0 = keep the plan configure_threads made
  // Pack the projections for oneDNN at load (also off with ECGQ_PACKED_WEIGHTS=0). An export
  // turns it off: it writes the plain weights, which packing leaves behind.
  bool pack_weights = true;
};

// A loaded model; run() may be called from one thread at a time.
class Model {
 public:
  virtual ~Model() = default;
  // What was loaded.
  virtual const ModelInfo& info() const = 0;
  // Runs `n` segments of shape [in_leads, segment_samples] laid out contiguously in `x`.
  virtual Expected<ModelOutput> run(const float* x, int64_t n, const RunOptions& options) = 0;
};

// Loads a checkpoint file (fairseq-signals ECG-FM or TorchScript, detected unless `options`
// says); errors name the file and what is wrong with it.
Expected<std::unique_ptr<Model>> load_model(const std::string& path, const LoadOptions& options);

// Sizes the process's thread pools together (LibTorch intra-op, one inter-op thread, OpenMP,
// OpenBLAS): `intra_op_threads`, or with 0 every CPU the process may use (the affinity mask
// limited by a cgroup CPU quota, common/cpu_budget.hpp). Returns the choice for the start-up
// log, e.g. "2 (affinity 2 CPUs, cgroup quota none)".
std::string configure_threads(int intra_op_threads);

}  // namespace ecgq
