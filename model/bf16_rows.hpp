// The input of a split bf16 projection, [x | x] in bf16: one pass over x instead of two ATen
// copies. Only the model's implementation includes this.
#pragma once

#include <ATen/core/Tensor.h>

namespace ecgq {

// [rows, 2K] bf16 holding bf16(x) twice per row, from x [rows, K] (fp32, rounded to nearest even
// as ATen rounds, or already bf16; any row stride, contiguous rows).
at::Tensor duplicate_rows_bf16(const at::Tensor& x);

}  // namespace ecgq
