// TorchScript modules as Models.
//
// Output mapping (decided here, documented for model authors):
//   * a dict of tensors: keys "logits" [N, L], "probs" [N, L], "embedding" [N, E],
//     "encoder_out" [N, T, E] and "saliency" [N, T, T] are used by name, other keys are ignored;
//     probs alone gives logits = log(p / (1 - p)); encoder_out without embedding is pooled like
//     ECG-FM (count-nonzero mean over T);
//   * a plain tensor: [N, L] is logits (probs = sigmoid), [N, T, E] is encoder_out;
//   * a tuple or list of tensors: each element is read like a plain tensor, except that a
//     second 2-D tensor is the embedding.
// Labels come from a `labels` attribute (List[str]) when the module has one, else the ECG-FM
// labels when L == 17, else label_0..label_{L-1}. A probe forward on zeros at load time fills
// ModelInfo (labels, embed_dim). A `source_sha256` attribute (str, 64 lowercase hex digits)
// names the checkpoint an export was made from (ModelInfo::source_sha256).
#include "model/torchscript_model.hpp"

#include <torch/script.h>

#include "model/ecgfm_model.hpp"

namespace ecgq {
namespace {

struct Outputs {
  at::Tensor logits, probs, embedding, encoder_out, saliency;
};

Status output_error(const std::string& why) {
  return Status(ErrorCode::UnsupportedModel, "TorchScript output " + why, "checkpoint");
}

Expected<Outputs> map_outputs(const c10::IValue& v, int64_t n) {
  Outputs o;
  auto plain = [&](const at::Tensor& t, bool second) -> Status {
    if (t.dim() == 2 && second)
      o.embedding = t;
    else if (t.dim() == 2)
      o.logits = t;
    else if (t.dim() == 3)
      o.encoder_out = t;
    else
      return output_error("tensor has " + std::to_string(t.dim()) +
                          " dimensions (expected 2 or 3)");
    return Status::Ok();
  };
  if (v.isTensor()) {
    RETURN_IF_ERROR(plain(v.toTensor(), false));
  } else if (v.isTuple() || v.isList()) {
    std::vector<c10::IValue> items;
    if (v.isTuple())
      items = v.toTupleRef().elements().vec();
    else
      for (const auto& e : v.toListRef()) items.push_back(e);
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].isTensor())
        return output_error("tuple element " + std::to_string(i) + " is not a tensor");
      RETURN_IF_ERROR(plain(items[i].toTensor(), i > 0));
    }
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) {
      if (!kv.key().isString() || !kv.value().isTensor()) continue;
      const std::string k = kv.key().toStringRef();
      const at::Tensor t = kv.value().toTensor();
      if (k == "logits")
        o.logits = t;
      else if (k == "probs")
        o.probs = t;
      else if (k == "embedding")
        o.embedding = t;
      else if (k == "encoder_out")
        o.encoder_out = t;
      else if (k == "saliency")
        o.saliency = t;
    }
  } else {
    return output_error("is " + v.tagKind() + " (expected a tensor, tuple or dict of tensors)");
  }
  for (at::Tensor* t : {&o.logits, &o.probs, &o.embedding, &o.encoder_out, &o.saliency}) {
    if (!t->defined()) continue;
    if (t->size(0) != n)
      return output_error("has batch " + std::to_string(t->size(0)) + " for " + std::to_string(n) +
                          " inputs");
    *t = t->to(at::kFloat).contiguous();
  }
  if (!o.logits.defined() && o.probs.defined()) o.logits = at::logit(o.probs);
  if (o.logits.defined() && !o.probs.defined()) o.probs = at::sigmoid(o.logits);
  if (!o.embedding.defined() && o.encoder_out.defined())
    o.embedding = o.encoder_out.sum(1) / o.encoder_out.ne(0).sum(1);
  if (!o.logits.defined() && !o.embedding.defined())
    return output_error("has neither logits/probs nor an embedding/encoder_out");
  return o;
}

std::vector<float> to_vector(const at::Tensor& t) {
  if (!t.defined()) return {};
  at::Tensor c = t.contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

class TorchScriptModel : public Model {
 public:
  explicit TorchScriptModel(torch::jit::Module module) : module_(std::move(module)) {}

  Status probe(const std::string& path) {
    std::vector<float> zeros(12 * 2500, 0.f);
    ASSIGN_OR_RETURN(auto out, forward(zeros.data(), 1));
    info_.kind = "torchscript";
    info_.variant = out.logits.defined() ? "classifier" : "encoder";
    info_.embed_dim = out.embedding.defined() ? out.embedding.size(1) : 0;
    int64_t labels = out.logits.defined() ? out.logits.size(1) : 0;
    if (labels > 0 && module_.hasattr("labels")) {
      c10::IValue l = module_.attr("labels");
      if (l.isList())
        for (const auto& e : l.toListRef())
          if (e.isString()) info_.labels.push_back(e.toStringRef());
      if (static_cast<int64_t>(info_.labels.size()) != labels) info_.labels.clear();
    }
    if (info_.labels.empty() && labels == static_cast<int64_t>(ecgfm_labels().size()))
      info_.labels = ecgfm_labels();
    for (int64_t i = static_cast<int64_t>(info_.labels.size()); i < labels; ++i)
      info_.labels.push_back("label_" + std::to_string(i));
    // An export names its source checkpoint, so results and READY keep the source's sha256.
    if (module_.hasattr("source_sha256") && module_.attr("source_sha256").isString()) {
      const std::string sha = module_.attr("source_sha256").toStringRef();
      if (sha.size() == 64 && sha.find_first_not_of("0123456789abcdef") == std::string::npos)
        info_.source_sha256 = sha;
    }
    for (const auto& p : module_.parameters(true)) info_.parameters += p.numel();
    info_.architecture = "TorchScript " + module_.type()->name()->qualifiedName() +
                         (labels ? ", " + std::to_string(labels) + " outputs" : "") +
                         (info_.embed_dim ? ", E=" + std::to_string(info_.embed_dim) : "");
    (void)path;
    return Status::Ok();
  }

  const ModelInfo& info() const override { return info_; }

  Expected<ModelOutput> run(const float* x, int64_t n, const RunOptions& options) override {
    if (x == nullptr || n <= 0)
      return Status(ErrorCode::BadInput,
                    "need at least one segment (got " + std::to_string(n) + ")");
    auto o = forward(x, n);
    if (!o.ok()) return o.status();
    ModelOutput out;
    out.batch = n;
    out.embedding = to_vector(o->embedding);
    out.embed_dim = o->embedding.defined() ? o->embedding.size(1) : 0;
    out.logits = to_vector(o->logits);
    out.probs = to_vector(o->probs);
    if (o->encoder_out.defined()) out.frames = o->encoder_out.size(1);
    if (options.encoder_out) out.encoder_out = to_vector(o->encoder_out);
    if (options.saliency) {
      if (!o->saliency.defined())
        return Status(ErrorCode::UnsupportedOutput, "this TorchScript model has no saliency output",
                      "outputs");
      out.saliency = to_vector(o->saliency);
    }
    return out;
  }

 private:
  Expected<Outputs> forward(const float* x, int64_t n) {
    try {
      c10::InferenceMode guard;
      at::Tensor in = at::from_blob(const_cast<float*>(x), {n, 12, 2500}, at::kFloat);
      c10::IValue v = module_.forward({in});
      return map_outputs(v, n);
    } catch (const c10::Error& e) {
      return Status(ErrorCode::ModelError,
                    std::string("TorchScript forward failed: ") + e.what_without_backtrace());
    } catch (const std::exception& e) {
      return Status(ErrorCode::ModelError, std::string("TorchScript forward failed: ") + e.what());
    }
  }

  torch::jit::Module module_;
  ModelInfo info_;
};

}  // namespace

Expected<std::unique_ptr<Model>> load_torchscript(const std::string& path,
                                                  const LoadOptions& options) {
  if (options.precision != "fp32")
    return Status(
        "unsupported_model",
        "precision '" + options.precision + "' is not supported for TorchScript models (use fp32)",
        "precision");
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, c10::Device(c10::kCPU));
    module.eval();
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    return Status(ErrorCode::BadCheckpoint,
                  path + ": not a loadable TorchScript archive: " + what.substr(0, what.find('\n')),
                  "checkpoint");
  }
  auto model = std::make_unique<TorchScriptModel>(std::move(module));
  Status s = model->probe(path);
  if (!s.ok()) return s.with_context(path);
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace ecgq
