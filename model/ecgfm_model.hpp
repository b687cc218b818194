// The native ECG-FM model (fairseq-signals wav2vec2_cmsc / ecg_transformer_classifier) on
// LibTorch; see ../shared/docs/ecgfm-model.md sections 1-3. Torch-free header: the
// implementation lives in ecgfm_model.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "model/checkpoint.hpp"
#include "model/model.hpp"

namespace ecgq {

// The 17 labels of mimic_iv_ecg_finetuned.pt in logit order (spec section 5).
const std::vector<std::string>& ecgfm_labels();

// One conv block of the feature extractor: Conv1d(out=dim, kernel, stride).
struct ConvLayerSpec {
  int64_t dim = 0;
  int64_t kernel = 0;
  int64_t stride = 0;
};

// Parses fairseq's conv_feature_layers expression, e.g. "[(256, 2, 2)] * 4 + [(512, 3, 1)]".
Expected<std::vector<ConvLayerSpec>> parse_conv_feature_layers(const std::string& text);

// Everything the forward pass needs to know, derived from tensor shapes and cfg["model"].
struct EcgfmArchitecture {
  std::string model_name;           // cfg["model"]["_name"]
  std::string variant;              // "pretrained" or "classifier"
  std::string prefix;               // key prefix of the encoder ("encoder." or "")
  int64_t in_d = 12;                // input leads
  std::vector<ConvLayerSpec> conv;  // feature extractor blocks
  std::string extractor_mode;       // "default" (GroupNorm on block 0) or "layer_norm"
  bool conv_bias = false;           // conv blocks have biases
  bool post_extract_proj = false;   // Linear(conv dim -> E) present
  int64_t embed_dim = 0;            // E
  int64_t ffn_dim = 0;
  int64_t heads = 0;
  int64_t layers = 0;
  bool layer_norm_first = false;  // pre-LN layers + final LayerNorm when true
  int64_t conv_pos = 0;           // pos-conv kernel
  int64_t conv_pos_groups = 0;
  std::string pos_g_key;             // weight-norm scale tensor (weight_g or ...original0)
  std::string pos_v_key;             // weight-norm direction tensor (weight_v or ...original1)
  int64_t num_labels = 0;            // 0 for the pretrained encoder
  int64_t parameters = 0;            // elements of the tensors inference uses
  std::vector<std::string> skipped;  // ignored tensors (grouped) and checkpoint parts

  // One line for logs and `inspect`.
  std::string summary() const;
};

// Derives the architecture and checks every needed tensor is present with the right shape.
Expected<EcgfmArchitecture> derive_architecture(const ckpt::Checkpoint& checkpoint);

// The bf16 matrix instructions this CPU offers ("amx_bf16", "avx512_bf16", both comma-joined, or
// "" when none or when the environment sets ECGQ_DISABLE_BF16=1).
std::string cpu_bf16_support();

// bf16 split layers when LoadOptions leaves the choice (docs/performance.md: bf16 accuracy).
inline constexpr int64_t kDefaultBf16SplitLayers = 6;

// Ok when bf16 inference runs at bf16 speed here; else an unsupported_model error saying why.
Status bf16_supported();

// The error for `precision: int8`: not offered (docs/performance.md, int8), a BadConfig naming
// the setting and the precisions there are.
Status int8_refused();

// Ok when `precision` may load here: fp32; bf16 when bf16_supported(); int8 only for the
// measurement (ECGQ_INT8_EXPERIMENT=1). Else the error saying why.
Status precision_offered(const std::string& precision);

// The error for an int8 load with packing switched off (int8 has no ATen path).
Status int8_needs_packing();

// Builds the native model from a parsed checkpoint, reading only the tensors it uses straight
// into their final buffers.
Expected<std::unique_ptr<Model>> load_ecgfm(const ckpt::Checkpoint& checkpoint,
                                            const LoadOptions& options);

// A captured intermediate activation (float32, row-major).
struct CapturedTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
// Stage name ("conv0_out", "feat_layer_norm_out", "layer1_out", ...; the REF file suffixes) to
// its activation.
using ActivationCapture = std::map<std::string, CapturedTensor>;

// Model::run that also records every intermediate stage (parity tests, debugging); `model`
// must come from load_ecgfm.
Expected<ModelOutput> run_ecgfm_with_capture(Model& model, const float* x, int64_t n,
                                             const RunOptions& options, ActivationCapture* capture);

}  // namespace ecgq
