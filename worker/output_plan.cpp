#include "worker/output_plan.hpp"

#include <algorithm>

namespace ecgq {

Expected<OutputPlan> OutputPlan::make(const std::vector<std::string>& asked, const ModelInfo& info,
                                      const std::string& model_name) {
  const bool classifier = !info.labels.empty();
  std::vector<std::string> names = asked;
  if (names.empty()) {
    if (classifier) names.push_back("probs");
    if (info.embed_dim > 0) names.push_back("embedding");
  }
  for (const auto& out : names) {
    if ((out == "probs" || out == "logits") && !classifier)
      return Status("unsupported_output",
                    "output '" + out + "' needs a classifier head; model " + model_name + " (" +
                        info.kind + " " + info.variant + ") has none",
                    "outputs");
    if (out == "embedding" && info.embed_dim <= 0)
      return Status("unsupported_output",
                    "output 'embedding' is not available from model " + model_name, "outputs");
  }
  return OutputPlan(std::move(names));
}

std::vector<std::string> OutputPlan::available(const ModelInfo& info) {
  std::vector<std::string> outputs;
  if (!info.labels.empty()) outputs.insert(outputs.end(), {"probs", "logits"});
  if (info.embed_dim > 0) outputs.push_back("embedding");
  outputs.push_back("segments");
  if (info.kind == "ecgfm") outputs.push_back("saliency");
  return outputs;
}

Status OutputPlan::saliency_unavailable(const std::string& model_name,
                                        const std::string& model_kind) {
  return Status(
      "unsupported_output",
      "output 'saliency' is not available from model " + model_name + " (" + model_kind + ")",
      "outputs");
}

bool OutputPlan::wants(const std::string& name) const {
  return std::find(names_.begin(), names_.end(), name) != names_.end();
}

RunOptions OutputPlan::run_options() const {
  RunOptions options;
  options.saliency = wants("saliency");
  return options;
}

}  // namespace ecgq
