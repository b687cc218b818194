// Folding the positional conv's weight norm at load. Only the model's implementation includes it.
#pragma once

#include <ATen/core/Tensor.h>

namespace ecgq {

// w = v * (g / ||v||), the norm taken over every dimension of `v` but its last (fairseq's
// weight_norm(dim=2) of a [C, C/G, K] conv weight; `g` holds K values), computed in float64 and
// rounded to float32 once. The sums run in one fixed order whatever the thread count, so a model
// file folded in another process holds the same bits as a checkpoint folded here. One pass to sum
// and one to scale, instead of ATen's copies to float64 (50 ms of a load).
at::Tensor fold_weight_norm_last_dim(const at::Tensor& v, const at::Tensor& g);

}  // namespace ecgq
