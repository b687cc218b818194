// The oneDNN kernels beside the projections (model/packed_conv.cpp, model/attention_products.cpp)
// against ATen's fp32 reference on random inputs: each precision within its rounding error, on an
// optimised kernel (not oneDNN's reference one).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "model/attention_products.hpp"
#include "model/bf16_rows.hpp"
#include "model/ecgfm_model.hpp"
#include "model/packed_conv.hpp"
#include "model/weight_norm.hpp"

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

// A model file's convolution runs at the terms it was stored with, whatever bf16 kind the model
// asks for: a file from before 2026-12-04 17:00 stores hi + lo, this build's default one term.
TEST(PackedKernels, AStoredBf16ConvolutionRunsAsItWasStored) {
  if (cpu_bf16_support().empty()) GTEST_SKIP() << "no bf16 on this CPU (bf16 is refused)";
  at::manual_seed(3);
  const int64_t channels = 64, groups = 4, kernel = 8;
  at::Tensor w = at::randn({channels, channels / groups, kernel}) * 0.05;
  at::Tensor b = at::randn({channels}) * 0.1;
  at::Tensor x = at::randn({2, 37, channels});
  using P = PackedConv::Precision;
  std::vector<at::Tensor> outputs;
  for (P stored_as : {P::bf16_split_w, P::bf16}) {
    auto stored = PackedConv::pack(w, b, groups, stored_as, arena_bytes);
    ASSERT_TRUE(stored.ok()) << stored.status().to_string();
    const at::Tensor want = (*stored)->run(x);
    for (P asked : {P::bf16, P::bf16_split_w}) {
      auto adopted = PackedConv::adopt((*stored)->prepacked(), b, groups, asked, arena_bytes);
      ASSERT_TRUE(adopted.ok()) << adopted.status().to_string();
      EXPECT_TRUE(at::equal((*adopted)->run(x), want))
          << "stored " << static_cast<int>(stored_as) << ", asked " << static_cast<int>(asked);
    }
    outputs.push_back(want);
  }
  EXPECT_FALSE(at::equal(outputs[0], outputs[1])) << "the two kinds should round differently";
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

// The load's two hand-written passes give ATen's bits: the split projections' [hi | lo] source
// (with and without a reused buffer, from fp32 and from a model file's bf16 hi + lo, across the
// rounding's tie, NaN and infinity cases) and the positional conv's folded weight norm.
TEST(PackedKernels, SplitWeightSourceAndWeightNormFoldGiveAtensBits) {
  at::manual_seed(5);
  at::Tensor w = at::randn({37, 70});
  float* p = w.data_ptr<float>();
  p[0] = std::nanf("");
  p[1] = INFINITY;
  p[2] = -INFINITY;
  p[3] = 1.00390625f;  // exactly halfway between two bf16 values: rounds to even
  p[4] = 1.01171875f;  // halfway, rounds up to even
  p[5] = 3.4e38f;      // rounds to infinity in bf16
  p[6] = 1e-40f;       // subnormal
  const at::Tensor hi = w.to(at::kBFloat16).to(at::kFloat);
  const at::Tensor expected = at::cat({hi, w - hi}, 1);
  // Same bits, except that any NaN equals any NaN: ATen's vectorised rounding writes bf16 NaN as
  // 0xFFFF, its scalar c10::BFloat16 (which ours follows) as 0x7FC0.
  auto same_bits = [](const at::Tensor& a, const at::Tensor& b) {
    if (a.sizes() != b.sizes()) return false;
    const at::Tensor x = a.contiguous(), y = b.contiguous();
    const float* xs = x.data_ptr<float>();
    const float* ys = y.data_ptr<float>();
    for (int64_t i = 0; i < x.numel(); ++i)
      if (std::memcmp(&xs[i], &ys[i], sizeof(float)) != 0 &&
          !(std::isnan(xs[i]) && std::isnan(ys[i])))
        return false;
    return true;
  };
  EXPECT_TRUE(same_bits(split_weight_source(w, at::Tensor()), expected));
  {
    SplitSourceReuse reuse;
    const at::Tensor big = split_weight_source(at::randn({50, 80}), at::Tensor());
    const at::Tensor again = split_weight_source(w, at::Tensor());
    EXPECT_EQ(again.data_ptr(), big.data_ptr()) << "the scope's buffer is reused";
    EXPECT_TRUE(same_bits(again, expected));
  }
  const at::Tensor from_file = split_weight_source(w.to(at::kBFloat16), (w - hi).to(at::kBFloat16));
  EXPECT_TRUE(same_bits(from_file, at::cat({hi, (w - hi).to(at::kBFloat16).to(at::kFloat)}, 1)));

  const at::Tensor v = at::randn({96, 12, 33}), g = at::rand({1, 1, 33}) + 0.5;
  const at::Tensor folded = at::_weight_norm(v.to(at::kDouble), g.to(at::kDouble), 2);
  EXPECT_TRUE(same_bits(fold_weight_norm_last_dim(v, g), folded.to(at::kFloat)));
}

}  // namespace
}  // namespace ecgq
