// fold_weight_norm_last_dim: two passes over v, float64 sums per position of the last dimension.
#include "model/weight_norm.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace ecgq {

at::Tensor fold_weight_norm_last_dim(const at::Tensor& v, const at::Tensor& g) {
  const at::Tensor src = v.to(at::kFloat).contiguous();
  const at::Tensor gain = g.to(at::kDouble).contiguous().view(-1);
  const int64_t k = src.size(-1), rows = src.numel() / k;
  TORCH_CHECK(gain.numel() == k, "weight norm: g has ", gain.numel(), " values for ", k,
              " positions");
  const float* in = src.data_ptr<float>();
  std::vector<double> scale(static_cast<size_t>(k), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = in + r * k;
    for (int64_t i = 0; i < k; ++i) scale[i] += static_cast<double>(row[i]) * row[i];
  }
  const double* gains = gain.data_ptr<double>();
  for (int64_t i = 0; i < k; ++i) scale[i] = gains[i] / std::sqrt(scale[i]);
  at::Tensor out = at::empty_like(src);
  float* o = out.data_ptr<float>();
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / k), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t i = 0; i < k; ++i)
        o[r * k + i] = static_cast<float>(static_cast<double>(in[r * k + i]) * scale[i]);
  });
  return out;
}

}  // namespace ecgq
