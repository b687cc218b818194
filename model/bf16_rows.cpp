// duplicate_rows_bf16: fp32 -> bf16 with round-to-nearest-even, written to both halves of a row.
#include "model/bf16_rows.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>

namespace ecgq {
namespace {

// c10::BFloat16's rounding (round to nearest even; NaN -> 0x7FC0), in a loop the compiler
// vectorises for AVX-512 (bf16 precision only runs where AVX-512 BF16 or AMX is, cpu_bf16.cpp).
__attribute__((target("avx512f,avx512bw"))) void round_row(const float* in, uint16_t* a,
                                                           uint16_t* b, int64_t k) {
  for (int64_t i = 0; i < k; ++i) {
    uint32_t u;
    std::memcpy(&u, &in[i], sizeof(u));
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
    const uint16_t h = nan ? uint16_t{0x7FC0} : static_cast<uint16_t>(rounded);
    a[i] = h;
    b[i] = h;
  }
}

// c10::BFloat16's rounding of one value, in the same bits as round_row.
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

at::Tensor duplicate_rows_bf16(const at::Tensor& x) {
  const int64_t rows = x.size(0), k = x.size(1);
  at::Tensor src = x.stride(1) == 1 ? x : x.contiguous();
  at::Tensor both = at::empty({rows, 2 * k}, at::kBFloat16);
  auto* out = static_cast<uint16_t*>(both.data_ptr());
  const int64_t stride = src.stride(0);
  const bool from_bf16 = src.scalar_type() == at::kBFloat16;
  const char* base = static_cast<const char*>(src.data_ptr());
  const int64_t row_bytes = stride * static_cast<int64_t>(src.element_size());
  // ~64 KiB of output per task
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / k), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      uint16_t* a = out + r * 2 * k;
      if (from_bf16) {
        std::memcpy(a, base + r * row_bytes, static_cast<size_t>(k) * 2);
        std::memcpy(a + k, base + r * row_bytes, static_cast<size_t>(k) * 2);
      } else {
        round_row(reinterpret_cast<const float*>(base + r * row_bytes), a, a + k, k);
      }
    }
  });
  return both;
}

}  // namespace ecgq
