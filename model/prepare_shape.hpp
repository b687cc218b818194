// A new input shape's oneDNN primitives, created at once on every thread of the pool. Only the
// model's implementation includes this.
#pragma once

#include <cstdint>
#include <vector>

#include "model/attention_products.hpp"
#include "model/packed_conv.hpp"
#include "model/packed_layer.hpp"

namespace ecgq {

// What of a packed model runs on oneDNN primitives made per input shape.
struct ShapeParts {
  const PackedConv* pos_conv = nullptr;         // the positional conv, when packed
  const AttentionProducts* products = nullptr;  // the attention products, when on oneDNN
  const PackedLayer* unsplit = nullptr;         // one layer without split weights, if any
  const PackedLayer* split = nullptr;           // one layer with them, if any
  bool bf16 = false;                            // bf16 projections (q/k/v bf16 in unsplit layers)
};

// Creates the primitives of [b, t] inputs (embedding width e) that do not exist yet: the
// positional conv's, the attention products' and the projections' (one layer of each kind:
// projections of the same shape and options share theirs), largest first, pulled by every
// thread of the intra-op pool. A first 8-segment pass otherwise created them one after another
// on the calling thread as it met them (~20 ms of JIT), the other threads waiting.
void prepare_shape(const ShapeParts& parts, int64_t b, int64_t t, int64_t e);

}  // namespace ecgq
