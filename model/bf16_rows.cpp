// split_weight_source: a split projection's weights as [hi | lo] rows, for packing.
#include "model/bf16_rows.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>

namespace ecgq {
namespace {

// c10::BFloat16's rounding of one value (round to nearest even; NaN -> 0x7FC0).
inline uint16_t round_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline float widen(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

thread_local SplitSourceReuse* active_reuse = nullptr;

}  // namespace

SplitSourceReuse::SplitSourceReuse() : outer_(active_reuse) {
  active_reuse = this;
}

SplitSourceReuse::~SplitSourceReuse() {
  active_reuse = outer_;
}

at::Tensor split_weight_source(const at::Tensor& w, const at::Tensor& lo) {
  const int64_t n = w.size(0), k = w.size(1);
  at::Tensor src = w.contiguous(), low = lo.defined() ? lo.contiguous() : lo;
  at::Tensor out;
  if (SplitSourceReuse* reuse = active_reuse) {
    if (!reuse->buffer_.defined() || reuse->buffer_.numel() < n * 2 * k)
      reuse->buffer_ = at::empty({n * 2 * k}, at::kFloat);
    out = reuse->buffer_.narrow(0, 0, n * 2 * k).view({n, 2 * k});
  } else {
    out = at::empty({n, 2 * k}, at::kFloat);
  }
  float* o = out.data_ptr<float>();
  const bool from_bf16 = src.scalar_type() == at::kBFloat16;
  at::parallel_for(0, n, std::max<int64_t>(1, 16384 / k), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* hi_row = o + r * 2 * k;
      float* lo_row = hi_row + k;
      if (from_bf16) {
        const auto* h = static_cast<const uint16_t*>(src.data_ptr()) + r * k;
        const auto* l = static_cast<const uint16_t*>(low.data_ptr()) + r * k;
        for (int64_t i = 0; i < k; ++i) {
          hi_row[i] = widen(h[i]);
          lo_row[i] = widen(l[i]);
        }
      } else {
        const float* row = src.data_ptr<float>() + r * k;
        for (int64_t i = 0; i < k; ++i) {
          const float hi = widen(round_bf16(row[i]));
          hi_row[i] = hi;
          lo_row[i] = row[i] - hi;
        }
      }
    }
  });
  return out;
}

}  // namespace ecgq
