// The transformer projections on oneDNN's matmul primitive with weights packed at load
// (model/packed_linear.cpp): the same outputs as the ATen path and upstream, in fp32 and bf16,
// for every batch size (one primitive per row count, a bounded cache of them).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "model/ecgfm_model.hpp"
#include "model/model.hpp"
#include "records/npy.hpp"
#include "tests/ecgfm_reference_data.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

using test::max_abs_diff;
using test::ref_floats;
using test::ref_path;

// ECGQ_PACKED_WEIGHTS=0 for the lifetime of the object (read by each load).
class PackingOff {
 public:
  PackingOff() { setenv("ECGQ_PACKED_WEIGHTS", "0", 1); }
  ~PackingOff() { unsetenv("ECGQ_PACKED_WEIGHTS"); }
};

std::unique_ptr<Model> load_tiny(const std::string& name, const std::string& precision,
                                 int split_layers = -1) {
  LoadOptions o;
  o.precision = precision;
  o.bf16_split_layers = split_layers;
  auto model = load_model(ref_path(name), o);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  return model.ok() ? std::move(model).value() : nullptr;
}

ModelOutput run_all(Model& model, const std::vector<float>& x, int64_t n) {
  RunOptions all;
  all.encoder_out = true;
  all.saliency = true;
  auto out = model.run(x.data(), n, all);
  EXPECT_TRUE(out.ok()) << out.status().to_string();
  return out.ok() ? std::move(out).value() : ModelOutput{};
}

TEST(PackedWeights, Fp32MatchesTheAtenPathAndUpstream) {
  configure_threads(2);
  const std::vector<float> x = ref_floats("input.npy");
  auto packed = load_tiny("tiny_finetuned.pt", "fp32");
  ASSERT_NE(packed, nullptr);
  EXPECT_NE(packed->info().architecture.find("pre-packed"), std::string::npos)
      << packed->info().architecture;
  std::unique_ptr<Model> aten;
  {
    PackingOff off;
    aten = load_tiny("tiny_finetuned.pt", "fp32");
  }
  ASSERT_NE(aten, nullptr);
  EXPECT_EQ(aten->info().architecture.find("pre-packed"), std::string::npos);
  const ModelOutput a = run_all(*packed, x, 2), b = run_all(*aten, x, 2);
  EXPECT_LE(max_abs_diff(a.encoder_out, b.encoder_out), 2e-5);
  EXPECT_LE(max_abs_diff(a.saliency, b.saliency), 1e-5);
  EXPECT_LE(max_abs_diff(a.probs, ref_floats("tiny_finetuned__probs.npy")), 2e-5);
  EXPECT_LE(max_abs_diff(a.encoder_out, ref_floats("tiny_finetuned__encoder_out.npy")), 2e-5);
}

TEST(PackedWeights, PretrainedEncoderMatchesUpstream) {
  configure_threads(2);
  auto packed = load_tiny("tiny_pretrained.pt", "fp32");
  ASSERT_NE(packed, nullptr);
  const ModelOutput a = run_all(*packed, ref_floats("input.npy"), 2);
  EXPECT_LE(max_abs_diff(a.encoder_out, ref_floats("tiny_pretrained__encoder_out.npy")), 2e-5);
}

TEST(PackedWeights, Bf16StaysWithinBf16ErrorWithAndWithoutSplitLayers) {
  if (cpu_bf16_support().empty()) GTEST_SKIP() << "no bf16 on this CPU (bf16 is refused)";
  configure_threads(2);
  const std::vector<float> x = ref_floats("input.npy");
  const std::vector<float> ref = ref_floats("tiny_finetuned__probs.npy");
  for (int split : {0, 1000}) {
    auto packed = load_tiny("tiny_finetuned.pt", "bf16", split);
    ASSERT_NE(packed, nullptr);
    std::unique_ptr<Model> unpacked;
    {
      PackingOff off;
      unpacked = load_tiny("tiny_finetuned.pt", "bf16", split);
    }
    ASSERT_NE(unpacked, nullptr);
    const ModelOutput a = run_all(*packed, x, 2), b = run_all(*unpacked, x, 2);
    const double packed_diff = max_abs_diff(a.probs, ref),
                 unpacked_diff = max_abs_diff(b.probs, ref);
    EXPECT_GT(packed_diff, 0) << "bit-identical to fp32: not running in bf16";
    EXPECT_LE(packed_diff, split == 0 ? 5e-4 : 1e-4) << "split " << split;
    // The same roundings of the projections in both paths (input and weights to bf16, fp32
    // accumulation); the packed path also rounds the positional convolution's input (weights
    // hi + lo) and, in unsplit layers, the attention products' inputs to bf16 (the former
    // adds ~2e-5 here with every layer split, docs/performance.md): close.
    EXPECT_LE(packed_diff, 2 * unpacked_diff + 3e-5) << "split " << split;
  }
}

TEST(PackedWeights, EveryBatchSizeGivesTheRowsOfSingleSegments) {
  // Ten batch sizes: more row counts than the primitive cache keeps (8), so some are evicted
  // and created again.
  configure_threads(2);
  for (const std::string precision : {"fp32", "bf16"}) {
    if (precision == "bf16" && cpu_bf16_support().empty()) continue;
    auto model = load_tiny("tiny_finetuned.pt", precision);
    ASSERT_NE(model, nullptr);
    const std::vector<float> two = ref_floats("input.npy");
    const size_t seg = two.size() / 2;
    const ModelOutput one0 = run_all(*model, std::vector<float>(two.begin(), two.begin() + seg), 1);
    const ModelOutput one1 = run_all(*model, std::vector<float>(two.begin() + seg, two.end()), 1);
    for (int64_t n : {3, 1, 5, 2, 7, 4, 9, 6, 10, 8, 3}) {
      std::vector<float> x;
      for (int64_t i = 0; i < n; ++i)
        x.insert(x.end(), two.begin() + (i % 2) * seg, two.begin() + (i % 2 + 1) * seg);
      const ModelOutput out = run_all(*model, x, n);
      ASSERT_EQ(out.probs.size(), static_cast<size_t>(n) * 17);
      for (int64_t i = 0; i < n; ++i) {
        const std::vector<float>& want = i % 2 == 0 ? one0.probs : one1.probs;
        std::vector<float> got(out.probs.begin() + i * 17, out.probs.begin() + (i + 1) * 17);
        EXPECT_LE(max_abs_diff(got, want), precision == "fp32" ? 1e-6 : 1e-4)
            << precision << " batch " << n << " segment " << i;
      }
    }
  }
}

TEST(PackedWeights, Int8IsRefusedWithAClearError) {
  // int8 is not offered (docs/performance.md, int8): the load and `serve` both say so.
  LoadOptions o;
  o.precision = "int8";
  auto model = load_model(ref_path("tiny_finetuned.pt"), o);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), "bad_config");
  EXPECT_NE(model.status().message().find("precision int8 is not offered"), std::string::npos)
      << model.status().message();
  if (!std::filesystem::exists(test::bin("ecgq-worker"))) GTEST_SKIP() << "ecgq-worker not built";
  auto r = test::run_command({test::bin("ecgq-worker"), "serve", "--checkpoint",
                              ref_path("tiny_finetuned.pt"), "--precision", "int8"},
                             std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("precision int8 is not offered"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ecgq
