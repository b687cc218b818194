// precision bf16: accuracy against the fp32 upstream reference, the hi+lo split layers, the CPU
// check, and the precision a result reports when a real worker serves in bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "model/ecgfm_model.hpp"
#include "model/model.hpp"
#include "records/npy.hpp"
#include "tests/ecgfm_reference_data.hpp"
#include "tests/support/process.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq {
namespace {

using namespace std::chrono_literals;
using test::bin;

using test::max_abs_diff;
using test::ref_floats;
using test::ref_path;

// Smallest cosine similarity between matching rows of two [rows, dim] matrices.
double min_row_cosine(const std::vector<float>& a, const std::vector<float>& b, size_t dim) {
  if (a.size() != b.size() || a.empty() || a.size() % dim != 0) return -2;
  double worst = 1;
  for (size_t r = 0; r < a.size() / dim; ++r) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = r * dim; i < (r + 1) * dim; ++i) {
      ab += double(a[i]) * b[i];
      aa += double(a[i]) * a[i];
      bb += double(b[i]) * b[i];
    }
    worst = std::min(worst, ab / std::sqrt(aa * bb));
  }
  return worst;
}

// ECGQ_DISABLE_BF16 for the lifetime of the object.
class Bf16Disabled {
 public:
  Bf16Disabled() { setenv("ECGQ_DISABLE_BF16", "1", 1); }
  ~Bf16Disabled() { unsetenv("ECGQ_DISABLE_BF16"); }
};

#define ECGQ_REQUIRE_BF16()                                                         \
  if (cpu_bf16_support().empty())                                                   \
  GTEST_SKIP() << "this CPU has no AVX-512 BF16 or AMX-BF16; bf16 is refused here " \
                  "(covered by RefusedWithoutCpuSupport)"

Expected<ModelOutput> run_tiny(const std::string& precision, int split_layers) {
  LoadOptions o;
  o.precision = precision;
  o.bf16_split_layers = split_layers;
  auto model = load_model(ref_path("tiny_finetuned.pt"), o);
  if (!model.ok()) return model.status();
  EXPECT_EQ((*model)->info().precision, precision);
  std::vector<float> x = ref_floats("input.npy");
  return (*model)->run(x.data(), 2, RunOptions{});
}

TEST(ModelBf16, CloseToTheFp32ReferenceAndSplitLayersCloser) {
  ECGQ_REQUIRE_BF16();
  configure_threads(2);
  const std::vector<float> ref_probs = ref_floats("tiny_finetuned__probs.npy");
  const std::vector<float> ref_emb = ref_floats("tiny_finetuned__emb_pooled.npy");

  auto plain = run_tiny("bf16", 0);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  const double plain_diff = max_abs_diff(plain->probs, ref_probs);
  EXPECT_LE(plain_diff, 5e-4);
  EXPECT_GT(plain_diff, 0) << "bf16 gave bit-identical fp32 results: not running in bf16";
  EXPECT_GE(min_row_cosine(plain->embedding, ref_emb, 64), 0.999);

  // Every layer split: the weights are nearly exact, only the activations are rounded.
  auto split = run_tiny("bf16", 1000);
  ASSERT_TRUE(split.ok()) << split.status().to_string();
  const double split_diff = max_abs_diff(split->probs, ref_probs);
  EXPECT_LT(split_diff, plain_diff);
  EXPECT_GE(min_row_cosine(split->embedding, ref_emb, 64), 0.9999);
  std::cout << "  tiny_finetuned bf16 max|dprob| split0=" << plain_diff
            << " split_all=" << split_diff << "\n";
}

TEST(ModelBf16, AtenFallbackWithoutTheOneDnnEntryPointStaysClose) {
  // ECGQ_BF16_ATEN_LINEAR=1 (with the packed projections off) takes the path used when libdnnl's
  // bf16 x bf16 -> fp32 GEMM is not found (ATen's bf16 linear, product rounded to bf16): still
  // within bf16's error.
  ECGQ_REQUIRE_BINARIES("ecgq-worker");
  ECGQ_REQUIRE_BF16();
  test::TempDir dir;
  auto r = test::run_command(
      {test::bin("ecgq-worker"), "infer", "--checkpoint", ref_path("tiny_finetuned.pt"), "--input",
       ref_path("input.npy"), "--out", dir.file("out"), "--precision", "bf16", "--threads", "1"},
      120s, {{"ECGQ_BF16_ATEN_LINEAR", "1"}, {"ECGQ_PACKED_WEIGHTS", "0"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto probs = read_npy(dir.file("out/probs.npy"));
  ASSERT_TRUE(probs.ok()) << probs.status().to_string();
  const double diff = max_abs_diff(probs->to_float(), ref_floats("tiny_finetuned__probs.npy"));
  EXPECT_LE(diff, 5e-4);
  EXPECT_GT(diff, 0) << "bit-identical to fp32: not running in bf16";
  // And it is another path than the default one (which keeps the product in fp32).
  auto d =
      test::run_command({test::bin("ecgq-worker"), "infer", "--checkpoint",
                         ref_path("tiny_finetuned.pt"), "--input", ref_path("input.npy"), "--out",
                         dir.file("default"), "--precision", "bf16", "--threads", "1"},
                        120s);
  ASSERT_EQ(d.exit_code, 0) << d.err;
  auto default_probs = read_npy(dir.file("default/probs.npy"));
  ASSERT_TRUE(default_probs.ok());
  EXPECT_NE(default_probs->to_float(), probs->to_float());
}

TEST(ModelBf16, RefusedWithoutCpuSupport) {
  Bf16Disabled off;
  EXPECT_TRUE(cpu_bf16_support().empty());
  auto r = run_tiny("bf16", -1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), "unsupported_model");
  EXPECT_EQ(r.status().field(), "precision");
  EXPECT_NE(r.status().message().find("AVX-512 BF16"), std::string::npos) << r.status().message();
  // fp32 is unaffected.
  EXPECT_TRUE(run_tiny("fp32", -1).ok());
}

TEST(ModelBf16, UnknownPrecisionIsABadConfig) {
  auto r = run_tiny("fp8", -1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), "bad_config");
  EXPECT_NE(r.status().message().find("expected fp32 or bf16"), std::string::npos);
}

TEST(ModelBf16, InferCliRefusesClearlyWithoutCpuSupport) {
  ECGQ_REQUIRE_BINARIES("ecgq-worker");
  test::TempDir dir;
  auto r = test::run_command(
      {test::bin("ecgq-worker"), "infer", "--checkpoint", ref_path("tiny_finetuned.pt"), "--input",
       ref_path("input.npy"), "--out", dir.file("out"), "--precision", "bf16"},
      120s, {{"ECGQ_DISABLE_BF16", "1"}});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("precision bf16 needs a CPU with AVX-512 BF16"), std::string::npos) << r.err;
}

TEST(ModelBf16, ServeRefusesToStartWithoutCpuSupport) {
  ECGQ_REQUIRE_BINARIES("ecgq-worker");
  auto r = test::run_command({test::bin("ecgq-worker"), "serve", "--broker", "tcp://127.0.0.1:1",
                              "--checkpoint", ref_path("tiny_finetuned.pt"), "--precision", "bf16"},
                             120s, {{"ECGQ_DISABLE_BF16", "1"}});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("precision bf16 needs a CPU with AVX-512 BF16"), std::string::npos) << r.err;
}

TEST(ModelBf16, WorkerServingBf16SaysSoInEveryResult) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  ECGQ_REQUIRE_BF16();
  test::Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto worker = test::start_worker(broker.endpoint, "wbf16", {"--precision", "bf16"});
  auto c = test::connect(broker.endpoint);
  ASSERT_TRUE(test::wait_workers(*c, {"wbf16"})) << worker->stderr_text();
  auto id = c->submit(test::ecg_job(5000));
  ASSERT_TRUE(id.ok()) << id.status().to_string();
  auto result = test::wait_result(*c, *id);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status, "ok") << (result->error ? result->error->message : "");
  EXPECT_EQ(result->model.precision, "bf16");
  EXPECT_EQ(result->n_segments, 2);
  EXPECT_EQ(result->probs.size(), 17u);
}

}  // namespace
}  // namespace ecgq
