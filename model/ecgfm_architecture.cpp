// Architecture derivation for the native ECG-FM model: torch-free, so it is cheap to compile
// and to test at full size from key lists alone.
#include <cctype>
#include <map>
#include <set>
#include <sstream>

#include "model/ecgfm_model.hpp"

namespace ecgq {
namespace {

Status bad_ckpt(const std::string& what) {
  return Status(ErrorCode::BadCheckpoint, what, "checkpoint");
}

// Recursive-descent parser for "TERM (+ TERM)*", TERM = "[(d, k, s), ...] [* n]".
class ConvSpecParser {
 public:
  explicit ConvSpecParser(const std::string& s) : s_(s) {}

  Expected<std::vector<ConvLayerSpec>> parse() {
    std::vector<ConvLayerSpec> out;
    do {
      std::vector<ConvLayerSpec> term;
      if (!list(&term)) return error();
      if (eat('*')) {
        int64_t n = 0;
        if (!integer(&n) || n < 0 || n > 1000) return error();
        std::vector<ConvLayerSpec> rep;
        for (int64_t i = 0; i < n; ++i) rep.insert(rep.end(), term.begin(), term.end());
        term = rep;
      }
      out.insert(out.end(), term.begin(), term.end());
    } while (eat('+'));
    skip();
    if (i_ != s_.size()) return error();
    if (out.empty())
      return Status(ErrorCode::BadCheckpoint, "conv_feature_layers '" + s_ + "' has no layers");
    return out;
  }

 private:
  Status error() const {
    return bad_ckpt("cannot parse conv_feature_layers '" + s_ + "' near position " +
                    std::to_string(i_) + " (expected e.g. \"[(256, 2, 2)] * 4\")");
  }
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool integer(int64_t* v) {
    skip();
    size_t start = i_;
    *v = 0;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_])) && i_ - start < 9)
      *v = *v * 10 + (s_[i_++] - '0');
    return i_ > start;
  }
  bool tuple(ConvLayerSpec* c) {
    if (!eat('(')) return false;
    if (!integer(&c->dim) || !eat(',') || !integer(&c->kernel) || !eat(',') || !integer(&c->stride))
      return false;
    eat(',');
    return eat(')') && c->dim > 0 && c->kernel > 0 && c->stride > 0;
  }
  bool list(std::vector<ConvLayerSpec>* out) {
    if (!eat('[')) return false;
    while (!eat(']')) {
      ConvLayerSpec c;
      if (!tuple(&c)) return false;
      out->push_back(c);
      if (!eat(',') && (skip(), i_ >= s_.size() || s_[i_] != ']')) return false;
    }
    return true;
  }

  const std::string& s_;
  size_t i_ = 0;
};

template <typename T>
bool cfg_get(const ckpt::Checkpoint& c, const std::string& key, T* out) {
  auto it = c.model_cfg.find(key);
  if (it == c.model_cfg.end() || !std::holds_alternative<T>(it->second)) return false;
  *out = std::get<T>(it->second);
  return true;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Tensors of the pretraining model that inference never uses.
const std::vector<std::string> kPretrainingOnly = {"mask_emb", "quantizer.", "project_q.",
                                                   "final_proj.", "target_glu."};

}  // namespace

const std::vector<std::string>& ecgfm_labels() {
  static const std::vector<std::string> labels = {"Poor data quality",
                                                  "Sinus rhythm",
                                                  "Premature ventricular contraction",
                                                  "Tachycardia",
                                                  "Ventricular tachycardia",
                                                  "Supraventricular tachycardia with aberrancy",
                                                  "Atrial fibrillation",
                                                  "Atrial flutter",
                                                  "Bradycardia",
                                                  "Accessory pathway conduction",
                                                  "Atrioventricular block",
                                                  "1st degree atrioventricular block",
                                                  "Bifascicular block",
                                                  "Right bundle branch block",
                                                  "Left bundle branch block",
                                                  "Infarction",
                                                  "Electronic pacemaker"};
  return labels;
}

Expected<std::vector<ConvLayerSpec>> parse_conv_feature_layers(const std::string& text) {
  return ConvSpecParser(text).parse();
}

std::string EcgfmArchitecture::summary() const {
  std::ostringstream os;
  if (!model_name.empty()) os << model_name << ": ";
  os << layers << " layers, E=" << embed_dim << ", FFN=" << ffn_dim << ", " << heads << " heads, "
     << (layer_norm_first ? "pre-LN" : "post-LN") << ", conv [";
  for (size_t i = 0; i < conv.size(); ++i)
    os << (i ? " " : "") << "(" << conv[i].dim << "," << conv[i].kernel << "," << conv[i].stride
       << ")";
  os << "] " << (extractor_mode == "default" ? "GroupNorm@0" : "LayerNorm")
     << ", pos-conv k=" << conv_pos << " g=" << conv_pos_groups;
  if (num_labels > 0) os << ", " << num_labels << " labels";
  return os.str();
}

namespace {

// Derives the architecture part by part from a checkpoint's tensor shapes and cfg, noting each
// tensor it accounts for.
class ArchitectureReader {
 public:
  explicit ArchitectureReader(const ckpt::Checkpoint& c) : c_(c) {
    for (const auto& t : c.tensors) by_name_[t.name] = &t;
  }

  Expected<EcgfmArchitecture> read() {
    EcgfmArchitecture a;
    RETURN_IF_ERROR(variant(a));
    ASSIGN_OR_RETURN(const int64_t conv_dim, feature_extractor(a));
    RETURN_IF_ERROR(encoder_input(a, conv_dim));
    RETURN_IF_ERROR(positional_conv(a));
    RETURN_IF_ERROR(layers(a));
    RETURN_IF_ERROR(cfg_settings(a));
    RETURN_IF_ERROR(head(a));
    RETURN_IF_ERROR(account_for_the_rest(a));
    return a;
  }

 private:
  bool has(const std::string& name) const { return by_name_.count(name) > 0; }

  // Looks a tensor up, checks its rank (and optionally its shape) and marks it used.
  Expected<std::vector<int64_t>> need(const std::string& name, size_t rank,
                                      const std::vector<int64_t>& expect = {}) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return bad_ckpt("missing tensor '" + name + "' in checkpoint model");
    const auto& shape = it->second->shape;
    if (shape.size() != rank || (!expect.empty() && shape != expect))
      return bad_ckpt("tensor '" + name + "' has shape " + shape_str(shape) + ", expected " +
                      (expect.empty() ? std::to_string(rank) + " dimensions" : shape_str(expect)));
    used_.insert(name);
    return shape;
  }

  // The model kind from cfg._name (or the presence of a classification head).
  Status variant(EcgfmArchitecture& a) {
    cfg_get(c_, "_name", &a.model_name);
    if (a.model_name == "ecg_transformer_classifier" ||
        (a.model_name.empty() && has("proj.weight"))) {
      a.variant = "classifier";
      a.prefix = "encoder.";
    } else if (a.model_name == "wav2vec2_cmsc" || a.model_name == "wav2vec2" ||
               a.model_name == "ecg_transformer" || a.model_name.empty()) {
      a.variant = "pretrained";
      a.prefix = "";
    } else {
      return Status(ErrorCode::UnsupportedModel,
                    "cfg.model._name '" + a.model_name +
                        "' is not an ECG-FM model (expected wav2vec2_cmsc or "
                        "ecg_transformer_classifier)",
                    "checkpoint");
    }
    return Status::Ok();
  }

  // Feature extractor: shapes give channels and kernels, cfg gives strides. Returns the output
  // channels of the last conv block.
  Expected<int64_t> feature_extractor(EcgfmArchitecture& a) {
    std::string conv_text = "[(256, 2, 2)] * 4";
    cfg_get(c_, "conv_feature_layers", &conv_text);
    ASSIGN_OR_RETURN(auto spec, parse_conv_feature_layers(conv_text));
    a.extractor_mode = "default";
    cfg_get(c_, "extractor_mode", &a.extractor_mode);
    if (a.extractor_mode != "default" && a.extractor_mode != "layer_norm")
      return Status(ErrorCode::UnsupportedModel,
                    "extractor_mode '" + a.extractor_mode + "' is not supported", "checkpoint");
    const std::string fe = a.prefix + "feature_extractor.conv_layers.";
    size_t n_conv = 0;
    while (has(fe + std::to_string(n_conv) + ".0.weight")) ++n_conv;
    if (n_conv == 0) return bad_ckpt("missing tensor '" + fe + "0.0.weight' in checkpoint model");
    if (n_conv != spec.size())
      return bad_ckpt("checkpoint has " + std::to_string(n_conv) +
                      " conv blocks but conv_feature_layers '" + conv_text + "' describes " +
                      std::to_string(spec.size()));
    a.conv_bias = has(fe + "0.0.bias");
    int64_t in = 0;
    for (size_t i = 0; i < n_conv; ++i) {
      const std::string b = fe + std::to_string(i);
      ASSIGN_OR_RETURN(const auto w, need(b + ".0.weight", 3));
      if (i == 0) in = a.in_d = w[1];
      if (w[1] != in || w[0] != spec[i].dim || w[2] != spec[i].kernel)
        return bad_ckpt("tensor '" + b + ".0.weight' has shape " + shape_str(w) +
                        ", which disagrees with conv_feature_layers '" + conv_text + "'");
      a.conv.push_back({w[0], w[2], spec[i].stride});
      if (a.conv_bias) RETURN_IF_ERROR(need(b + ".0.bias", 1, {w[0]}));
      if (a.extractor_mode == "default" && i == 0) {
        RETURN_IF_ERROR(need(b + ".2.weight", 1, {w[0]}));
        RETURN_IF_ERROR(need(b + ".2.bias", 1, {w[0]}));
      } else if (a.extractor_mode == "layer_norm") {
        RETURN_IF_ERROR(need(b + ".2.1.weight", 1, {w[0]}));
        RETURN_IF_ERROR(need(b + ".2.1.bias", 1, {w[0]}));
      }
      in = w[0];
    }
    return in;
  }

  // The conv output's layer norm and projection to the transformer's width.
  Status encoder_input(EcgfmArchitecture& a, int64_t conv_dim) {
    const std::string& p = a.prefix;
    const int64_t C = conv_dim;
    RETURN_IF_ERROR(need(p + "layer_norm.weight", 1, {C}));
    RETURN_IF_ERROR(need(p + "layer_norm.bias", 1, {C}));
    ASSIGN_OR_RETURN(const auto q0, need(p + "encoder.layers.0.self_attn.q_proj.weight", 2));
    a.embed_dim = q0[0];
    const int64_t E = a.embed_dim;
    a.post_extract_proj = has(p + "post_extract_proj.weight");
    if (a.post_extract_proj) {
      RETURN_IF_ERROR(need(p + "post_extract_proj.weight", 2, {E, C}));
      RETURN_IF_ERROR(need(p + "post_extract_proj.bias", 1, {E}));
    } else if (C != E) {
      return bad_ckpt("missing tensor '" + p + "post_extract_proj.weight' (conv dim " +
                      std::to_string(C) + " != embed dim " + std::to_string(E) + ")");
    }
    return Status::Ok();
  }

  // Positional conv, either weight-norm spelling, and the encoder's layer norm.
  Status positional_conv(EcgfmArchitecture& a) {
    const int64_t E = a.embed_dim;
    const std::string pc = a.prefix + "conv_pos.pos_conv.0.";
    if (has(pc + "weight_g")) {
      a.pos_g_key = pc + "weight_g";
      a.pos_v_key = pc + "weight_v";
    } else {
      a.pos_g_key = pc + "parametrizations.weight.original0";
      a.pos_v_key = pc + "parametrizations.weight.original1";
    }
    ASSIGN_OR_RETURN(const auto pv, need(a.pos_v_key, 3));
    if (pv[0] != E || pv[1] <= 0 || E % pv[1] != 0)
      return bad_ckpt("tensor '" + a.pos_v_key + "' has shape " + shape_str(pv) + ", expected [" +
                      std::to_string(E) + ", E/groups, kernel]");
    a.conv_pos = pv[2];
    a.conv_pos_groups = E / pv[1];
    RETURN_IF_ERROR(need(a.pos_g_key, 3, {1, 1, a.conv_pos}));
    RETURN_IF_ERROR(need(pc + "bias", 1, {E}));
    const std::string enc = a.prefix + "encoder.";
    RETURN_IF_ERROR(need(enc + "layer_norm.weight", 1, {E}));
    RETURN_IF_ERROR(need(enc + "layer_norm.bias", 1, {E}));
    return Status::Ok();
  }

  // The transformer layers: how many, and the FFN width.
  Status layers(EcgfmArchitecture& a) {
    const int64_t E = a.embed_dim;
    const std::string enc = a.prefix + "encoder.";
    while (has(enc + "layers." + std::to_string(a.layers) + ".fc1.weight")) ++a.layers;
    ASSIGN_OR_RETURN(const auto fc1, need(enc + "layers.0.fc1.weight", 2));
    a.ffn_dim = fc1[0];
    for (int64_t l = 0; l < a.layers; ++l) {
      const std::string b = enc + "layers." + std::to_string(l) + ".";
      for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
        RETURN_IF_ERROR(need(b + "self_attn." + proj + ".weight", 2, {E, E}));
        RETURN_IF_ERROR(need(b + "self_attn." + proj + ".bias", 1, {E}));
      }
      for (const char* ln : {"self_attn_layer_norm", "final_layer_norm"}) {
        RETURN_IF_ERROR(need(b + ln + ".weight", 1, {E}));
        RETURN_IF_ERROR(need(b + ln + ".bias", 1, {E}));
      }
      RETURN_IF_ERROR(need(b + "fc1.weight", 2, {a.ffn_dim, E}));
      RETURN_IF_ERROR(need(b + "fc1.bias", 1, {a.ffn_dim}));
      RETURN_IF_ERROR(need(b + "fc2.weight", 2, {E, a.ffn_dim}));
      RETURN_IF_ERROR(need(b + "fc2.bias", 1, {E}));
    }
    return Status::Ok();
  }

  // Settings that the shapes cannot tell.
  Status cfg_settings(EcgfmArchitecture& a) {
    a.heads = 12;
    cfg_get(c_, "encoder_attention_heads", &a.heads);
    if (a.heads <= 0 || a.embed_dim % a.heads != 0)
      return bad_ckpt("encoder_attention_heads " + std::to_string(a.heads) +
                      " does not divide the embed dim " + std::to_string(a.embed_dim));
    cfg_get(c_, "layer_norm_first", &a.layer_norm_first);
    int64_t cfg_layers = 0;
    if (cfg_get(c_, "encoder_layers", &cfg_layers) && cfg_layers != a.layers)
      return bad_ckpt("cfg.model.encoder_layers is " + std::to_string(cfg_layers) +
                      " but the checkpoint has " + std::to_string(a.layers) + " layers");
    return Status::Ok();
  }

  // The classification head of a fine-tuned model.
  Status head(EcgfmArchitecture& a) {
    if (a.variant != "classifier") return Status::Ok();
    ASSIGN_OR_RETURN(const auto pw, need("proj.weight", 2));
    if (pw[1] != a.embed_dim)
      return bad_ckpt("tensor 'proj.weight' has shape " + shape_str(pw) + ", expected [labels, " +
                      std::to_string(a.embed_dim) + "]");
    a.num_labels = pw[0];
    RETURN_IF_ERROR(need("proj.bias", 1, {a.num_labels}));
    return Status::Ok();
  }

  // Counts the parameters used; everything else must be a known pretraining-only part: anything
  // unknown means the file is not the model we implement.
  Status account_for_the_rest(EcgfmArchitecture& a) {
    std::map<std::string, int> skipped_groups;
    for (const auto& t : c_.tensors) {
      if (used_.count(t.name)) {
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        a.parameters += n;
        continue;
      }
      bool known = false;
      for (const auto& k : kPretrainingOnly) {
        if (t.name.compare(0, k.size(), k) == 0) {
          skipped_groups[k.back() == '.' ? k + "*" : k]++;
          known = true;
        }
      }
      if (!known)
        return Status(ErrorCode::UnsupportedModel,
                      "unexpected tensor '" + t.name + "' " + shape_str(t.shape) + " for a " +
                          (a.model_name.empty() ? a.variant : a.model_name) + " model",
                      "checkpoint");
    }
    for (const auto& [group, n] : skipped_groups)
      a.skipped.push_back("model." + group + " (" + std::to_string(n) + " tensor" +
                          (n == 1 ? "" : "s") + ")");
    for (const auto& s : c_.skipped) a.skipped.push_back(s);
    return Status::Ok();
  }

  const ckpt::Checkpoint& c_;
  std::map<std::string, const ckpt::TensorInfo*> by_name_;
  std::set<std::string> used_;
};

}  // namespace

Expected<EcgfmArchitecture> derive_architecture(const ckpt::Checkpoint& c) {
  return ArchitectureReader(c).read();
}

}  // namespace ecgq
