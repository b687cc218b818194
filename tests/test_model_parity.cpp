// The native ECG-FM model against the upstream reference activations in tests/data/ecgfm/.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "model/checkpoint.hpp"
#include "model/ecgfm_model.hpp"
#include "model/model.hpp"
#include "records/npy.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

std::string ref_path(const std::string& name) {
  return test::data_path("ecgfm/" + name);
}

NpyArray load_ref(const std::string& name) {
  auto a = read_npy(ref_path(name));
  EXPECT_TRUE(a.ok()) << a.status().to_string();
  return a.ok() ? a.value() : NpyArray{};
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

nlohmann::json load_json(const std::string& name) {
  std::ifstream in(ref_path(name));
  return nlohmann::json::parse(in);
}

struct ParityCase {
  std::string model;
  bool classifier;
};

// The case's name as gtest (and so ctest's discovered test name) prints it: without this, gtest
// prints the struct's raw bytes, pointers included, and the ctest name changes on every run.
void PrintTo(const ParityCase& c, std::ostream* os) {
  *os << c.model;
}

class ModelParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(ModelParity, EveryStageMatchesUpstream) {
  const ParityCase& pc = GetParam();
  configure_threads(2);
  auto model = load_model(ref_path(pc.model + ".pt"), LoadOptions{});
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  NpyArray input = load_ref("input.npy");
  ASSERT_EQ(input.shape, (std::vector<int64_t>{2, 12, 2500}));
  std::vector<float> x = input.to_float();

  RunOptions opts;
  opts.encoder_out = true;
  opts.saliency = pc.classifier;
  ActivationCapture cap;
  auto out = run_ecgfm_with_capture(*model.value(), x.data(), 2, opts, &cap);
  ASSERT_TRUE(out.ok()) << out.status().to_string();

  std::vector<std::string> stages = {"conv0_out",           "conv1_out",
                                     "conv2_out",           "conv3_out",
                                     "feat_layer_norm_out", "post_extract_proj_out",
                                     "conv_pos_out",        "encoder_in_layer_norm_out",
                                     "layer0_out",          "layer1_out",
                                     "encoder_out",         "emb_pooled"};
  if (pc.classifier) {
    stages.push_back("logits");
    stages.push_back("probs");
    stages.push_back("saliency_last_layer");
  }
  for (const auto& stage : stages) {
    NpyArray expect = load_ref(pc.model + "__" + stage + ".npy");
    ASSERT_TRUE(cap.count(stage)) << "stage not captured: " << stage;
    const CapturedTensor& got = cap[stage];
    EXPECT_EQ(got.shape, expect.shape) << stage;
    double diff = max_abs_diff(got.data, expect.to_float());
    double tol = stage == "saliency_last_layer" ? 1e-5 : 2e-5;
    std::cout << "  " << pc.model << " " << stage << " max_abs_diff=" << diff << "\n";
    EXPECT_LE(diff, tol) << stage;
  }

  // The public outputs are the captured stages.
  EXPECT_EQ(out->batch, 2);
  EXPECT_EQ(out->frames, 156);
  EXPECT_EQ(out->embed_dim, 64);
  EXPECT_EQ(out->embedding, cap["emb_pooled"].data);
  EXPECT_EQ(out->encoder_out, cap["encoder_out"].data);
  if (pc.classifier) {
    EXPECT_EQ(out->logits, cap["logits"].data);
    EXPECT_EQ(out->probs, cap["probs"].data);
    EXPECT_EQ(out->saliency, cap["saliency_last_layer"].data);
  } else {
    EXPECT_TRUE(out->logits.empty());
    EXPECT_TRUE(out->probs.empty());
  }

  // Without the optional outputs, nothing else changes.
  auto plain = (*model)->run(x.data(), 2, RunOptions{});
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->encoder_out.empty());
  EXPECT_TRUE(plain->saliency.empty());
  EXPECT_LE(max_abs_diff(plain->embedding, out->embedding), 1e-6);

  // A single segment gives the same result as its row in a batch.
  auto one = (*model)->run(x.data() + 12 * 2500, 1, RunOptions{});
  ASSERT_TRUE(one.ok());
  std::vector<float> row1(out->embedding.begin() + 64, out->embedding.end());
  EXPECT_LE(max_abs_diff(one->embedding, row1), 2e-5);
}

INSTANTIATE_TEST_SUITE_P(Tiny, ModelParity,
                         ::testing::Values(ParityCase{"tiny_finetuned", true},
                                           ParityCase{"tiny_pretrained", false}),
                         [](const auto& info) { return info.param.model; });

TEST(ModelInfo, DescribesTheTinyClassifier) {
  auto model = load_model(ref_path("tiny_finetuned.pt"), LoadOptions{});
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const ModelInfo& info = (*model)->info();
  EXPECT_EQ(info.kind, "ecgfm");
  EXPECT_EQ(info.variant, "classifier");
  EXPECT_EQ(info.labels, ecgfm_labels());
  EXPECT_EQ(info.labels.front(), "Poor data quality");
  EXPECT_EQ(info.labels.back(), "Electronic pacemaker");
  EXPECT_EQ(info.embed_dim, 64);
  EXPECT_EQ(info.parameters, 93793);
  EXPECT_EQ(info.in_leads, 12);
  EXPECT_NE(info.architecture.find("2 layers, E=64, FFN=128, 4 heads, post-LN"), std::string::npos)
      << info.architecture;
}

TEST(ModelInfo, PretrainedSkipsPretrainingOnlyTensors) {
  auto model = load_model(ref_path("tiny_pretrained.pt"), LoadOptions{});
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const ModelInfo& info = (*model)->info();
  EXPECT_EQ(info.variant, "pretrained");
  EXPECT_TRUE(info.labels.empty());
  EXPECT_EQ(info.parameters, 92688);  // 278,224 minus mask_emb, quantizer, project_q, final_proj
  std::string skipped;
  for (const auto& s : info.skipped) skipped += s + ";";
  for (const char* part : {"mask_emb", "quantizer.*", "project_q.*", "final_proj.*"})
    EXPECT_NE(skipped.find(part), std::string::npos) << part << " not in " << skipped;
}

// A checkpoint description built from a reference key list (no tensor bytes).
ckpt::Checkpoint from_key_list(const std::string& model) {
  ckpt::Checkpoint c;
  c.path = model;
  const nlohmann::json keys = load_json(model + "__state_dict_keys.json");
  for (const auto& item : keys) {
    ckpt::TensorInfo t;
    t.name = item[0].get<std::string>();
    t.shape = item[1].get<std::vector<int64_t>>();
    t.stride.assign(t.shape.size(), 1);
    for (size_t d = t.shape.size(); d-- > 1;) t.stride[d - 1] = t.stride[d] * t.shape[d];
    t.storage_key = t.name;
    c.tensors.push_back(t);
  }
  const nlohmann::json cfg = load_json(model + "__cfg.json");
  for (const auto& [k, v] : cfg.at("model").items()) {
    if (v.is_boolean())
      c.model_cfg[k] = v.get<bool>();
    else if (v.is_number_integer())
      c.model_cfg[k] = v.get<int64_t>();
    else if (v.is_number())
      c.model_cfg[k] = v.get<double>();
    else if (v.is_string())
      c.model_cfg[k] = v.get<std::string>();
  }
  return c;
}

TEST(Architecture, DerivedAtFullSize) {
  auto ft = derive_architecture(from_key_list("full_finetuned"));
  ASSERT_TRUE(ft.ok()) << ft.status().to_string();
  EXPECT_EQ(ft->variant, "classifier");
  EXPECT_EQ(ft->prefix, "encoder.");
  EXPECT_EQ(ft->layers, 12);
  EXPECT_EQ(ft->embed_dim, 768);
  EXPECT_EQ(ft->ffn_dim, 3072);
  EXPECT_EQ(ft->heads, 12);
  EXPECT_EQ(ft->conv_pos, 128);
  EXPECT_EQ(ft->conv_pos_groups, 16);
  EXPECT_EQ(ft->num_labels, 17);
  EXPECT_FALSE(ft->layer_norm_first);
  ASSERT_EQ(ft->conv.size(), 4u);
  for (const auto& c : ft->conv) {
    EXPECT_EQ(c.dim, 256);
    EXPECT_EQ(c.kernel, 2);
    EXPECT_EQ(c.stride, 2);
  }
  EXPECT_EQ(ft->parameters, 90386321);

  auto pt = derive_architecture(from_key_list("full_pretrained"));
  ASSERT_TRUE(pt.ok()) << pt.status().to_string();
  EXPECT_EQ(pt->variant, "pretrained");
  EXPECT_EQ(pt->prefix, "");
  EXPECT_EQ(pt->num_labels, 0);
  // 90,883,072 minus mask_emb, quantizer.*, project_q.*, final_proj.* (509,824).
  EXPECT_EQ(pt->parameters, 90373248);
}

TEST(Architecture, AcceptsParametrizationsWeightNormNames) {
  ckpt::Checkpoint c = from_key_list("full_finetuned");
  for (auto& t : c.tensors) {
    auto rename = [&](const std::string& from, const std::string& to) {
      size_t at = t.name.find(from);
      if (at != std::string::npos) t.name.replace(at, from.size(), to);
    };
    rename("weight_g", "parametrizations.weight.original0");
    rename("weight_v", "parametrizations.weight.original1");
  }
  auto a = derive_architecture(c);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->pos_g_key, "encoder.conv_pos.pos_conv.0.parametrizations.weight.original0");
  EXPECT_EQ(a->parameters, 90386321);
}

TEST(Architecture, RejectsBrokenCheckpointsWithSpecificErrors) {
  {
    ckpt::Checkpoint c = from_key_list("tiny_finetuned");
    c.tensors.erase(c.tensors.begin() + 3);  // a layer-0 attention tensor
    auto a = derive_architecture(c);
    ASSERT_FALSE(a.ok());
    EXPECT_NE(a.status().message().find("missing tensor"), std::string::npos)
        << a.status().message();
  }
  {
    ckpt::Checkpoint c = from_key_list("tiny_finetuned");
    for (auto& t : c.tensors)
      if (t.name == "encoder.encoder.layers.1.fc2.weight") t.shape = {64, 99};
    auto a = derive_architecture(c);
    ASSERT_FALSE(a.ok());
    EXPECT_NE(a.status().message().find("encoder.encoder.layers.1.fc2.weight"), std::string::npos)
        << a.status().message();
  }
  {
    ckpt::Checkpoint c = from_key_list("tiny_finetuned");
    c.model_cfg["_name"] = std::string("wav2vec2_ctc");
    auto a = derive_architecture(c);
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.status().code(), "unsupported_model");
  }
  {
    ckpt::Checkpoint c = from_key_list("tiny_finetuned");
    c.model_cfg["encoder_attention_heads"] = int64_t{5};
    EXPECT_FALSE(derive_architecture(c).ok());
  }
  {
    ckpt::Checkpoint c = from_key_list("tiny_finetuned");
    c.model_cfg["conv_feature_layers"] = std::string("[(32, 2, 2)] * 3");
    auto a = derive_architecture(c);
    ASSERT_FALSE(a.ok());
    EXPECT_NE(a.status().message().find("conv blocks"), std::string::npos) << a.status().message();
  }
}

TEST(Architecture, ParsesConvFeatureLayerExpressions) {
  auto a = parse_conv_feature_layers("[(256, 2, 2)] * 4");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size(), 4u);
  auto b = parse_conv_feature_layers("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)]*2");
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  ASSERT_EQ(b->size(), 7u);
  EXPECT_EQ((*b)[0].kernel, 10);
  EXPECT_EQ((*b)[0].stride, 5);
  EXPECT_EQ((*b)[6].kernel, 2);
  auto c = parse_conv_feature_layers("[(64, 3, 1), (32, 2, 2),]");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->size(), 2u);
  EXPECT_FALSE(parse_conv_feature_layers("[(256, 2)] * 4").ok());
  EXPECT_FALSE(parse_conv_feature_layers("__import__('os')").ok());
  EXPECT_FALSE(parse_conv_feature_layers("").ok());
}

TEST(ModelLoad, WeightNormSpellingsGiveTheSameModel) {
  auto c = ckpt::read_checkpoint(ref_path("tiny_finetuned.pt"));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  auto legacy = load_ecgfm(c.value(), LoadOptions{});
  ASSERT_TRUE(legacy.ok()) << legacy.status().to_string();
  for (auto& t : c->tensors) {
    if (t.name.size() > 8 && t.name.compare(t.name.size() - 8, 8, "weight_g") == 0)
      t.name.replace(t.name.size() - 8, 8, "parametrizations.weight.original0");
    else if (t.name.size() > 8 && t.name.compare(t.name.size() - 8, 8, "weight_v") == 0)
      t.name.replace(t.name.size() - 8, 8, "parametrizations.weight.original1");
  }
  auto renamed = load_ecgfm(c.value(), LoadOptions{});
  ASSERT_TRUE(renamed.ok()) << renamed.status().to_string();
  std::vector<float> x = load_ref("input.npy").to_float();
  auto a = (*legacy)->run(x.data(), 2, RunOptions{});
  auto b = (*renamed)->run(x.data(), 2, RunOptions{});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->logits, b->logits);
}

TEST(ModelLoad, PreLayerNormVariantRuns) {
  // Not exercised by the reference vectors; checks the pre-LN path is wired and differs.
  auto c = ckpt::read_checkpoint(ref_path("tiny_finetuned.pt"));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  c->model_cfg["layer_norm_first"] = true;
  auto model = load_ecgfm(c.value(), LoadOptions{});
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_NE((*model)->info().architecture.find("pre-LN"), std::string::npos);
  std::vector<float> x = load_ref("input.npy").to_float();
  auto out = (*model)->run(x.data(), 2, RunOptions{});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  double diff = max_abs_diff(out->logits, load_ref("tiny_finetuned__logits.npy").to_float());
  EXPECT_GT(diff, 1e-3);
  for (float p : out->probs) EXPECT_TRUE(std::isfinite(p));
}

TEST(ModelLoad, ErrorsNameTheFile) {
  test::TempDir dir;
  std::string junk = dir.file("junk.pt");
  std::ofstream(junk) << "this is not a zip archive";
  auto a = load_model(junk, LoadOptions{});
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find(junk), std::string::npos) << a.status().message();

  auto b = load_model(dir.file("missing.pt"), LoadOptions{});
  ASSERT_FALSE(b.ok());

  // Truncated: the first half of a real checkpoint.
  std::ifstream in(ref_path("tiny_finetuned.pt"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string cut = dir.file("cut.pt");
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  auto c = load_model(cut, LoadOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(cut), std::string::npos) << c.status().message();

  LoadOptions fp8;
  fp8.precision = "fp8";
  auto p = load_model(ref_path("tiny_finetuned.pt"), fp8);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().field(), "precision");
}

// Layout-only rewrites of the tiny checkpoint, made with the system PyTorch when it is there:
// q/k/v chunks of one shared storage (offsets), a column-major out_proj, a permuted pos-conv
// weight_v, and a file saved to a path (record prefix = file stem). Values are unchanged, so
// the reference outputs still apply.
TEST(ModelLoad, StridedAndSharedStoragesGiveTheReferenceOutputs) {
  const char* python = "/usr/bin/python3";
  if (!std::filesystem::exists(python)) GTEST_SKIP() << "no " << python;
  test::TempDir dir;
  const std::string script = dir.file("relayout.py");
  std::ofstream(script) << R"(import sys, torch
ck = torch.load(sys.argv[1], map_location='cpu')
m = ck['model']
for l in range(2):
    p = 'encoder.encoder.layers.%d.self_attn.' % l
    big = torch.cat([m[p + 'q_proj.weight'], m[p + 'k_proj.weight'], m[p + 'v_proj.weight']])
    m[p + 'q_proj.weight'], m[p + 'k_proj.weight'], m[p + 'v_proj.weight'] = big.chunk(3)
    m[p + 'out_proj.weight'] = m[p + 'out_proj.weight'].t().contiguous().t()
k = 'encoder.conv_pos.pos_conv.0.weight_v'
m[k] = m[k].permute(2, 0, 1).contiguous().permute(1, 2, 0)
assert not m[k].is_contiguous()
with open(sys.argv[2], 'wb') as f:
    torch.save(ck, f)
torch.save(ck, sys.argv[3])
)";
  auto r = test::run_command(
      {python, script, ref_path("tiny_finetuned.pt"), dir.file("fobj.pt"), dir.file("bypath.pt")},
      std::chrono::seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<float> x = load_ref("input.npy").to_float();
  for (const char* name : {"fobj.pt", "bypath.pt"}) {
    SCOPED_TRACE(name);
    auto model = load_model(dir.file(name), LoadOptions{});
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    RunOptions opts;
    opts.saliency = true;
    auto out = (*model)->run(x.data(), 2, opts);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    EXPECT_LE(max_abs_diff(out->logits, load_ref("tiny_finetuned__logits.npy").to_float()), 2e-5);
    EXPECT_LE(
        max_abs_diff(out->saliency, load_ref("tiny_finetuned__saliency_last_layer.npy").to_float()),
        1e-5);
  }
}

}  // namespace
}  // namespace ecgq
