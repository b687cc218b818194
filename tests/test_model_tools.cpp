// `ecgq-worker infer` and `ecgq-worker inspect` as real processes on the reference checkpoints.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "records/npy.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 120s;
const char* const kPython = "/usr/bin/python3";

std::string worker() {
  return test::bin("ecgq-worker");
}
std::string ref_path(const std::string& name) {
  return test::data_path("ecgfm/" + name);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string describe(const test::CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// Max abs diff between an output file and a reference file; +inf on a shape mismatch.
double diff_npy(const std::string& got_path, const std::string& ref_name) {
  auto got = read_npy(got_path);
  auto want = read_npy(ref_path(ref_name));
  EXPECT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_TRUE(want.ok()) << want.status().to_string();
  if (!got.ok() || !want.ok() || got->shape != want->shape) return INFINITY;
  EXPECT_EQ(got->dtype, "f32");
  auto a = got->to_float(), b = want->to_float();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

// Exactly one non-empty line on stderr.
void expect_one_line(const std::string& err) {
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(err.find('\n'), err.size() - 1) << err;
}

class ModelTools : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(worker())) GTEST_SKIP() << "ecgq-worker not built: " << worker();
  }
};

TEST_F(ModelTools, InferClassifierWritesEveryOutputMatchingUpstream) {
  test::TempDir dir;
  const std::string out = dir.file("out/nested");
  auto r = test::run_command(
      {worker(), "infer", "--checkpoint", ref_path("tiny_finetuned.pt"), "--input",
       ref_path("input.npy"), "--out", out, "--threads", "1", "--saliency"},
      kTimeout);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_LE(diff_npy(out + "/encoder_out.npy", "tiny_finetuned__encoder_out.npy"), 2e-5);
  EXPECT_LE(diff_npy(out + "/embedding.npy", "tiny_finetuned__emb_pooled.npy"), 2e-5);
  EXPECT_LE(diff_npy(out + "/logits.npy", "tiny_finetuned__logits.npy"), 2e-5);
  EXPECT_LE(diff_npy(out + "/probs.npy", "tiny_finetuned__probs.npy"), 2e-5);
  EXPECT_LE(diff_npy(out + "/saliency.npy", "tiny_finetuned__saliency_last_layer.npy"), 1e-5);
  std::string labels = read_text(out + "/labels.txt");
  EXPECT_EQ(labels.rfind("Poor data quality\nSinus rhythm\n", 0), 0u) << labels;
  EXPECT_EQ(std::count(labels.begin(), labels.end(), '\n'), 17);
  EXPECT_NE(labels.find("\nElectronic pacemaker\n"), std::string::npos);
}

TEST_F(ModelTools, InferPretrainedWritesEmbeddingsOnly) {
  test::TempDir dir;
  auto r = test::run_command({worker(), "infer", "--checkpoint", ref_path("tiny_pretrained.pt"),
                              "--input", ref_path("input.npy"), "--out", dir.path()},
                             kTimeout);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_LE(diff_npy(dir.file("encoder_out.npy"), "tiny_pretrained__encoder_out.npy"), 2e-5);
  EXPECT_LE(diff_npy(dir.file("embedding.npy"), "tiny_pretrained__emb_pooled.npy"), 2e-5);
  for (const char* absent : {"logits.npy", "probs.npy", "labels.txt", "saliency.npy"})
    EXPECT_FALSE(std::filesystem::exists(dir.file(absent))) << absent;
}

TEST_F(ModelTools, InspectDescribesTheCheckpoint) {
  auto r = test::run_command({worker(), "inspect", "--checkpoint", ref_path("tiny_finetuned.pt")},
                             kTimeout);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const char* part :
       {"kind:         ecgfm", "variant:      classifier", "93,793", "ecg_transformer_classifier",
        "2 layers, E=64", "Sinus rhythm", "last_optimizer_state", "load_ms:", "peak_rss:"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " missing in\n" << r.out;

  auto p = test::run_command({worker(), "inspect", "--checkpoint", ref_path("tiny_pretrained.pt")},
                             kTimeout);
  ASSERT_EQ(p.exit_code, 0) << describe(p);
  for (const char* part : {"variant:      pretrained", "92,688", "quantizer.*", "mask_emb"})
    EXPECT_NE(p.out.find(part), std::string::npos) << part << " missing in\n" << p.out;
}

TEST_F(ModelTools, BadUsageExitsTwo) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"infer"},
        {"infer", "--checkpoint", "x.pt", "--input", "x.npy"},
        {"inspect"},
        {"inspect", "--checkpoint", "x.pt", "--bogus"},
        {"infer", "--checkpoint", "x.pt", "--input", "x.npy", "--out", "d", "--threads", "-3"}}) {
    args.insert(args.begin(), worker());
    auto r = test::run_command(args, kTimeout);
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    expect_one_line(r.err);
  }
}

TEST_F(ModelTools, BadCheckpointsExitOneWithOneLine) {
  test::TempDir dir;
  std::ofstream(dir.file("junk.pt")) << "not a checkpoint at all";
  std::ifstream in(ref_path("tiny_finetuned.pt"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir.file("cut.pt"), std::ios::binary) << bytes.substr(0, bytes.size() - 5000);
  for (const std::string& ckpt :
       {dir.file("junk.pt"), dir.file("cut.pt"), dir.file("missing.pt"), ref_path("input.npy")}) {
    for (const char* tool : {"inspect", "infer"}) {
      if (std::string(tool) == "infer" && ckpt != dir.file("cut.pt")) continue;
      std::vector<std::string> args = {worker(), tool, "--checkpoint", ckpt};
      if (std::string(tool) == "infer")
        args.insert(args.end(), {"--input", ref_path("input.npy"), "--out", dir.file("o")});
      auto r = test::run_command(args, kTimeout);
      EXPECT_EQ(r.exit_code, 1) << describe(r);
      expect_one_line(r.err);
      EXPECT_NE(r.err.find(ckpt), std::string::npos) << r.err;
    }
  }
}

TEST_F(ModelTools, BadInputIsRejectedWithItsShapeOrDtype) {
  test::TempDir dir;
  std::vector<float> short_x(2 * 12 * 1000, 0.f);
  ASSERT_TRUE(write_npy_f32(dir.file("short.npy"), short_x.data(), {2, 12, 1000}).ok());
  auto r = test::run_command({worker(), "infer", "--checkpoint", ref_path("tiny_finetuned.pt"),
                              "--input", dir.file("short.npy"), "--out", dir.file("o")},
                             kTimeout);
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  expect_one_line(r.err);
  EXPECT_NE(r.err.find("[2, 12, 1000]"), std::string::npos) << r.err;

  // The float64 reference segments are not model input: int16 is refused by dtype.
  std::string i16("\x93NUMPY\x01\x00", 8);
  std::string header = "{'descr': '<i2', 'fortran_order': False, 'shape': (12, 2500), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  i16 += static_cast<char>(header.size());
  i16 += '\0';
  i16 += header + std::string(12 * 2500 * 2, '\0');
  std::ofstream(dir.file("i16.npy"), std::ios::binary) << i16;
  auto d = test::run_command({worker(), "infer", "--checkpoint", ref_path("tiny_finetuned.pt"),
                              "--input", dir.file("i16.npy"), "--out", dir.file("o")},
                             kTimeout);
  EXPECT_EQ(d.exit_code, 1) << describe(d);
  EXPECT_NE(d.err.find("i16"), std::string::npos) << d.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("o/embedding.npy")));
}

// TorchScript modules, generated once with the system PyTorch when it is there.
class TorchScriptTools : public ModelTools {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kPython)) return;
    dir_ = new test::TempDir();
    // TorchScript compiles from source files, so the generator is a file, not `python -c`.
    const std::string py = dir_->file("make.py");
    std::ofstream(py) << R"(import sys, torch
from typing import Dict

class DictOut(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(12, 3)
        self.labels = ['a', 'b', 'c']
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        h = x.reshape(x.shape[0], 12, 100, 25).mean(3).transpose(1, 2)
        return {'logits': self.lin(h.mean(1)), 'encoder_out': h}

class PlainOut(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(2)

torch.jit.script(DictOut()).save(sys.argv[1] + '/dict.pt')
export = DictOut()
export.source_sha256 = 'c' * 64
torch.jit.script(export).save(sys.argv[1] + '/export.pt')
torch.jit.script(PlainOut()).save(sys.argv[1] + '/plain.pt')
)";
    auto r = test::run_command({kPython, py, dir_->path()}, kTimeout);
    if (r.exit_code != 0) error_ = describe(r);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ModelTools::SetUp();
    if (IsSkipped()) return;
    if (dir_ == nullptr) GTEST_SKIP() << "no " << kPython;
    ASSERT_TRUE(error_.empty()) << "generating TorchScript modules failed: " << error_;
  }
  static std::string module(const std::string& name) { return dir_->file(name); }

  static test::TempDir* dir_;
  static std::string error_;
};

test::TempDir* TorchScriptTools::dir_ = nullptr;
std::string TorchScriptTools::error_;

TEST_F(TorchScriptTools, DictOutputsAreUsedByName) {
  test::TempDir dir;
  auto i = test::run_command({worker(), "inspect", "--checkpoint", module("dict.pt")}, kTimeout);
  ASSERT_EQ(i.exit_code, 0) << describe(i);
  EXPECT_NE(i.out.find("kind:         torchscript"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("parameters:   39"), std::string::npos) << i.out;
  auto r = test::run_command({worker(), "infer", "--checkpoint", module("dict.pt"), "--input",
                              ref_path("input.npy"), "--out", dir.file("o")},
                             kTimeout);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(read_text(dir.file("o/labels.txt")), "a\nb\nc\n");
  auto probs = read_npy(dir.file("o/probs.npy"));
  ASSERT_TRUE(probs.ok());
  EXPECT_EQ(probs->shape, (std::vector<int64_t>{2, 3}));
  auto enc = read_npy(dir.file("o/encoder_out.npy"));
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(enc->shape, (std::vector<int64_t>{2, 100, 12}));
  auto emb = read_npy(dir.file("o/embedding.npy"));
  ASSERT_TRUE(emb.ok());
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{2, 12}));
}

TEST_F(TorchScriptTools, PlainTensorIsLogits) {
  test::TempDir dir;
  auto r = test::run_command({worker(), "infer", "--checkpoint", module("plain.pt"), "--input",
                              ref_path("input.npy"), "--out", dir.file("o")},
                             kTimeout);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  auto logits = read_npy(dir.file("o/logits.npy"));
  auto probs = read_npy(dir.file("o/probs.npy"));
  ASSERT_TRUE(logits.ok() && probs.ok());
  EXPECT_EQ(logits->shape, (std::vector<int64_t>{2, 12}));
  auto l = logits->to_float(), p = probs->to_float();
  for (size_t k = 0; k < l.size(); ++k) EXPECT_NEAR(p[k], 1 / (1 + std::exp(-l[k])), 1e-6);
  EXPECT_EQ(read_text(dir.file("o/labels.txt")).rfind("label_0\nlabel_1\n", 0), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("o/encoder_out.npy")));
}

TEST_F(TorchScriptTools, AnExportNamesItsSourceCheckpoint) {
  auto i = test::run_command({worker(), "inspect", "--checkpoint", module("export.pt")}, kTimeout);
  ASSERT_EQ(i.exit_code, 0) << describe(i);
  EXPECT_NE(i.out.find("source:       sha256 " + std::string(64, 'c')), std::string::npos) << i.out;
  auto plain =
      test::run_command({worker(), "inspect", "--checkpoint", module("dict.pt")}, kTimeout);
  EXPECT_EQ(plain.out.find("source:"), std::string::npos) << plain.out;
}

}  // namespace
}  // namespace ecgq
