// The oneDNN kernels beside the projections (model/packed_conv.cpp, model/attention_products.cpp)
// against ATen's fp32 reference on random inputs: each precision within its rounding error, on an
// optimised kernel (not oneDNN's reference one).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "model/attention_products.hpp"
#include "model/ecgfm_model.hpp"
#include "model/packed_conv.hpp"

namespace ecgq {
namespace {

// Largest |a - b| over the elements, relative to the largest |b|.
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b).abs().max().item<double>() / b.abs().max().item<double>();
}

// Mean |a - b|.
double mean_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b).abs().mean().item<double>();
}

// gelu(conv1d(x) + b) with fairseq's padding (SamePad), over [B, T, C] as PackedConv reads it.
at::Tensor reference_conv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                          int64_t groups) {
  const int64_t k = w.size(2);
  at::Tensor y = at::conv1d(x.transpose(1, 2), w, b, {1}, {k / 2}, {1}, groups);
  if (k % 2 == 0) y = y.narrow(2, 0, y.size(2) - 1);
  return at::gelu(y).transpose(1, 2).contiguous();
}

at::Tensor arena_bytes(int64_t bytes) {
  return at::empty({bytes}, at::kByte);
}

TEST(PackedKernels, PositionalConvolutionInEachPrecisionMatchesAten) {
  at::manual_seed(7);
  const int64_t channels = 96, groups = 2, kernel = 16;
  at::Tensor w = at::randn({channels, channels / groups, kernel}) * 0.05;
  at::Tensor b = at::randn({channels}) * 0.1;
  at::Tensor x = at::randn({2, 40, channels});
  const at::Tensor ref = reference_conv(x, w, b, groups);
  using P = PackedConv::Precision;
  std::vector<P> kinds{P::fp32};
  if (!cpu_bf16_support().empty()) kinds.insert(kinds.end(), {P::bf16, P::bf16_split_w});
  double bf16_mean = 0;
  for (P kind : kinds) {
    auto conv = PackedConv::pack(w, b, groups, kind, arena_bytes);
    ASSERT_TRUE(conv.ok()) << conv.status().to_string();
    const std::string impl = (*conv)->implementation();
    EXPECT_EQ(impl.find("ref"), std::string::npos) << impl;
    at::Tensor y = (*conv)->run(x);
    ASSERT_EQ(y.sizes(), ref.sizes());
    const double err = relative_error(y, ref), mean = mean_error(y, ref);
    std::printf("  conv precision %d (%s): max rel err %.3g, mean abs err %.3g\n",
                static_cast<int>(kind), impl.c_str(), err, mean);
    EXPECT_LE(err, kind == P::fp32 ? 1e-5 : 2e-2) << impl;
    if (kind == P::bf16) bf16_mean = mean;
    // hi + lo weights leave only the input's rounding: below plain bf16's error.
    if (kind == P::bf16_split_w) {
      EXPECT_LT(mean, bf16_mean) << impl;
    }
  }
}

// softmax(q k^T / sqrt(D)) v per head of a [B, T, 3E] q/k/v tensor, as [B, T, E]; `probs` gets
// the probabilities [B, H, T, T].
at::Tensor reference_attention(const at::Tensor& qkv, int64_t heads, at::Tensor* probs) {
  const int64_t b = qkv.size(0), t = qkv.size(1), e = qkv.size(2) / 3, d = e / heads;
  auto part = [&](int i) {
    return qkv.narrow(2, i * e, e).reshape({b, t, heads, d}).transpose(1, 2);
  };
  *probs = at::softmax(at::matmul(part(0), part(1).transpose(-2, -1)) / std::sqrt(double(d)), -1);
  return at::matmul(*probs, part(2)).transpose(1, 2).reshape({b, t, e});
}

TEST(PackedKernels, AttentionProductsInFp32AndBf16MatchAten) {
  at::manual_seed(11);
  const int64_t heads = 4;
  at::Tensor qkv = at::randn({2, 37, 3 * 64});
  at::Tensor ref_probs;
  const at::Tensor ref = reference_attention(qkv, heads, &ref_probs);
  AttentionProducts products(heads);
  std::vector<at::ScalarType> types{at::kFloat};
  if (!cpu_bf16_support().empty()) types.push_back(at::kBFloat16);
  for (at::ScalarType type : types) {
    const bool bf16 = type == at::kBFloat16;
    at::Tensor probs;
    at::Tensor o = products.run(qkv.to(type), &probs);
    EXPECT_EQ(o.scalar_type(), type);
    EXPECT_LE(relative_error(o, ref), bf16 ? 3e-2 : 1e-5) << products.implementation();
    EXPECT_LE(relative_error(probs, ref_probs), bf16 ? 3e-2 : 1e-5);
    // Without the probabilities the softmax runs on oneDNN: the same context.
    at::Tensor fast = products.run(qkv.to(type), nullptr);
    EXPECT_LE(relative_error(fast, ref), bf16 ? 3e-2 : 1e-5) << products.implementation();
    const std::string impl = products.implementation();
    std::printf("  attention %s: %s\n", bf16 ? "bf16" : "fp32", impl.c_str());
    EXPECT_EQ(impl.find("ref"), std::string::npos) << impl;
  }
}

}  // namespace
}  // namespace ecgq
