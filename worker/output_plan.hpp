// The outputs one job gets from one model: the one place on the worker that knows what each
// output needs from the model.
#pragma once

#include <string>
#include <vector>

#include "common/status.hpp"
#include "model/model.hpp"

namespace ecgq {

// The outputs a job asked for (or the model's default), checked against what the model can give.
// Output names are not checked here: the job decoder refuses unknown names before a job gets here.
class OutputPlan {
 public:
  // No outputs (a job that failed before its plan was made).
  OutputPlan() = default;

  // The plan for `asked` on a model described by `info` and named `model_name`: probs and
  // logits need a classifier head, embedding an encoder output; an empty list means probs (with a
  // head) and embedding. unsupported_output (field outputs) names the first output it cannot give.
  static Expected<OutputPlan> make(const std::vector<std::string>& asked, const ModelInfo& info,
                                   const std::string& model_name);

  // The outputs a model described by `info` can give, in kOutputNames order (READY reports them):
  // probs and logits with a classifier head, embedding with an encoder output, segments always,
  // saliency from the native ECG-FM model (a TorchScript model may not return attention).
  static std::vector<std::string> available(const ModelInfo& info);

  // unsupported_output for 'saliency' when a forward pass came back without attention: only a
  // pass tells (a TorchScript model may not return it).
  static Status saliency_unavailable(const std::string& model_name, const std::string& model_kind);

  // Whether `name` is among the outputs to put in the result.
  bool wants(const std::string& name) const;
  // What the forward passes must compute for this plan.
  RunOptions run_options() const;
  // The outputs, in the order asked.
  const std::vector<std::string>& names() const { return names_; }

 private:
  explicit OutputPlan(std::vector<std::string> names) : names_(std::move(names)) {}

  std::vector<std::string> names_;
};

}  // namespace ecgq
