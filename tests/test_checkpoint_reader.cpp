// Long file: the zip and pickle builders that every case of the reader shares.
// The torch-free checkpoint reader against the tiny reference checkpoints and against archives
// built here byte by byte (every opcode path, layouts torch writes, and hostile inputs).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/process.hpp"
#include "model/checkpoint.hpp"

using namespace ecgq;
using namespace ecgq::ckpt;
using namespace std::string_literals;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put_le(std::string& out, uint64_t v, int n) {
  for (int k = 0; k < n; ++k) out += char((v >> (8 * k)) & 0xFF);
}

// A minimal ZIP writer laid out like torch's (local sizes 0, 64-byte aligned data, ZIP64 EOCD).
struct ZipWriter {
  struct Entry {
    std::string name;
    uint64_t size;
    uint64_t offset;
    uint16_t method;
  };
  std::string out;
  std::vector<Entry> entries;

  void add(const std::string& name, const std::string& data, uint16_t method = 0) {
    Entry e{name, data.size(), out.size(), method};
    const size_t header_end = out.size() + 30 + name.size() + 4;
    const size_t pad = (64 - header_end % 64) % 64;
    put_le(out, 0x04034b50, 4);
    put_le(out, 0, 2);
    put_le(out, 0x0808, 2);
    put_le(out, method, 2);
    put_le(out, 0, 4);
    put_le(out, 0, 4);  // crc
    put_le(out, 0, 4);  // sizes are 0: they live in the central directory
    put_le(out, 0, 4);
    put_le(out, name.size(), 2);
    put_le(out, 4 + pad, 2);
    out += name;
    put_le(out, 0x4246, 2);  // "FB" padding field
    put_le(out, pad, 2);
    out += std::string(pad, 'Z');
    out += data;
    entries.push_back(e);
  }
  std::string finish(bool zip64 = true) {
    const uint64_t cd_offset = out.size();
    for (const Entry& e : entries) {
      put_le(out, 0x02014b50, 4);
      put_le(out, 0, 2);
      put_le(out, 0, 2);
      put_le(out, 0x0808, 2);
      put_le(out, e.method, 2);
      put_le(out, 0, 4);
      put_le(out, 0, 4);
      put_le(out, e.size, 4);
      put_le(out, e.size, 4);
      put_le(out, e.name.size(), 2);
      put_le(out, 0, 2);
      put_le(out, 0, 2);
      put_le(out, 0, 2);
      put_le(out, 0, 2);
      put_le(out, 0, 4);
      put_le(out, e.offset, 4);
      out += e.name;
    }
    const uint64_t cd_size = out.size() - cd_offset;
    if (zip64) {
      const uint64_t rec = out.size();
      put_le(out, 0x06064b50, 4);
      put_le(out, 44, 8);
      put_le(out, 0x2d, 2);
      put_le(out, 0x2d, 2);
      put_le(out, 0, 4);
      put_le(out, 0, 4);
      put_le(out, entries.size(), 8);
      put_le(out, entries.size(), 8);
      put_le(out, cd_size, 8);
      put_le(out, cd_offset, 8);
      put_le(out, 0x07064b50, 4);
      put_le(out, 0, 4);
      put_le(out, rec, 8);
      put_le(out, 1, 4);
    }
    put_le(out, 0x06054b50, 4);
    put_le(out, 0, 4);
    put_le(out, zip64 ? 0xFFFF : entries.size(), 2);
    put_le(out, zip64 ? 0xFFFF : entries.size(), 2);
    put_le(out, zip64 ? 0xFFFFFFFF : cd_size, 4);
    put_le(out, zip64 ? 0xFFFFFFFF : cd_offset, 4);
    put_le(out, 0, 2);
    return out;
  }
};

// Emits pickle opcodes.
struct Pickle {
  std::string b;
  Pickle& op(uint8_t c) {
    b += char(c);
    return *this;
  }
  Pickle& raw(const std::string& s) {
    b += s;
    return *this;
  }
  Pickle& str(const std::string& s) {
    op('X');
    put_le(b, s.size(), 4);
    return raw(s);
  }
  Pickle& i(int64_t v) {
    if (v >= 0 && v < 256) return op('K').raw(std::string(1, char(v)));
    if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      put_le(b, uint64_t(v), 4);
      return *this;
    }
    op(0x8a).op(8);
    put_le(b, uint64_t(v), 8);
    return *this;
  }
  Pickle& glob(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  Pickle& ints(const std::vector<int64_t>& v) {
    op('(');
    for (int64_t x : v) i(x);
    return op('t');
  }
  Pickle& ordered_dict() { return glob("collections", "OrderedDict").op(')').op('R'); }
  // _rebuild_tensor_v2((storage pid), offset, size, stride, False, OrderedDict())
  Pickle& tensor(const std::string& cls, const std::string& key, int64_t numel, int64_t offset,
                 const std::vector<int64_t>& shape, const std::vector<int64_t>& stride) {
    glob("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").glob("torch", cls).str(key).str("cpu").i(numel).op('t').op('Q');
    i(offset).ints(shape).ints(stride).op(0x89);
    ordered_dict();
    return op('t').op('R');
  }
};

struct TensorSpec {
  std::string name, cls, key;
  int64_t numel, offset;
  std::vector<int64_t> shape, stride;
};

// data.pkl of a fairseq-like checkpoint: {'cfg': {'model': <cfg>}, 'model': OrderedDict, ...}.
std::string checkpoint_pickle(const std::vector<TensorSpec>& tensors,
                              const std::string& cfg_items = "") {
  Pickle p;
  p.op(0x80).op(2).op('}').op('(');
  p.str("args").op('N');
  p.str("cfg").op('}').str("model").op('}').op('(').str("_name").str("tiny");
  p.raw(cfg_items).op('u').op('s');
  p.str("model").ordered_dict().op('(');
  for (const TensorSpec& t : tensors) {
    p.str(t.name).tensor(t.cls, t.key, t.numel, t.offset, t.shape, t.stride);
  }
  p.op('u');
  p.op('}').str("_metadata").ordered_dict().op('s').op('b');  // BUILD {'_metadata': ...}
  p.str("last_optimizer_state").op('}').str("state").op('}').op('s');
  return p.op('u').op('.').b;
}

std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// A whole archive; `storages` maps key -> bytes.
std::string archive(const std::string& pkl, const std::map<std::string, std::string>& storages,
                    const std::string& prefix = "archive", bool zip64 = true) {
  ZipWriter z;
  z.add(prefix + "/data.pkl", pkl);
  for (const auto& [k, v] : storages) z.add(prefix + "/data/" + k, v);
  z.add(prefix + "/version", "3\n");
  return z.finish(zip64);
}

std::string simple_archive(const std::string& prefix = "archive", bool zip64 = true) {
  std::vector<float> data(12);
  for (int k = 0; k < 12; ++k) data[size_t(k)] = float(k);
  return archive(checkpoint_pickle({{"w", "FloatStorage", "0", 12, 0, {3, 4}, {4, 1}}}),
                 {{"0", f32_bytes(data)}}, prefix, zip64);
}

// Reads a C-order little-endian float32 .npy file.
std::vector<float> load_npy_f32(const std::string& path, std::vector<size_t>* shape) {
  std::string raw = slurp(path);
  EXPECT_EQ(raw.substr(1, 5), "NUMPY");
  const size_t header_len = uint8_t(raw[8]) | (uint8_t(raw[9]) << 8);
  const std::string header = raw.substr(10, header_len);
  EXPECT_NE(header.find("'<f4'"), std::string::npos) << header;
  const size_t open = header.find('(', header.find("shape"));
  const size_t close = header.find(')', open);
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  shape->clear();
  for (std::string d; std::getline(dims, d, ',');) {
    if (d.find_first_not_of(' ') != std::string::npos) shape->push_back(std::stoul(d));
  }
  std::vector<float> out((raw.size() - 10 - header_len) / 4);
  std::memcpy(out.data(), raw.data() + 10 + header_len, out.size() * 4);
  return out;
}

const TensorInfo& tensor(const Checkpoint& cp, const std::string& name) {
  for (const TensorInfo& t : cp.tensors) {
    if (t.name == name) return t;
  }
  throw std::runtime_error("no tensor " + name);
}

std::vector<float> read_f32(const Checkpoint& cp, const std::string& name) {
  const TensorInfo& t = tensor(cp, name);
  std::vector<float> v(tensor_numel(t));
  Status s = read_tensor(cp, t, v.data());
  EXPECT_TRUE(s.ok()) << s.to_string();
  return v;
}

// The error message of reading `bytes`, which must fail.
std::string error_of(const std::string& bytes) {
  auto cp = read_checkpoint_bytes(bytes);
  EXPECT_FALSE(cp.ok());
  return cp.ok() ? std::string("<no error>") : cp.status().message();
}

#define EXPECT_ERROR(bytes, fragment)                                         \
  do {                                                                        \
    const std::string msg_ = error_of(bytes);                                 \
    EXPECT_NE(msg_.find(fragment), std::string::npos) << "message: " << msg_; \
  } while (0)

// ---------------------------------------------------------------- reference checkpoints

void check_reference(const std::string& stem) {
  auto cp = read_checkpoint(test::data_path("ecgfm/" + stem + ".pt"));
  ASSERT_TRUE(cp.ok()) << cp.status().to_string();
  EXPECT_EQ(cp->archive_prefix, "archive");
  const auto keys =
      nlohmann::json::parse(slurp(test::data_path("ecgfm/" + stem + "__state_dict_keys.json")));
  ASSERT_EQ(cp->tensors.size(), keys.size());
  for (size_t k = 0; k < keys.size(); ++k) {
    const TensorInfo& t = cp->tensors[k];
    EXPECT_EQ(t.name, keys[k][0].get<std::string>());
    EXPECT_EQ(t.shape, keys[k][1].get<std::vector<int64_t>>()) << t.name;
    EXPECT_EQ(keys[k][2].get<std::string>(), "float32");
    EXPECT_EQ(t.dtype, DType::F32);
    EXPECT_TRUE(is_contiguous(t)) << t.name;
    ASSERT_EQ(cp->storages.count(t.storage_key), 1u);
    EXPECT_EQ(cp->storages.at(t.storage_key).file_offset % 64, 0u);
  }
  const auto cfg = nlohmann::json::parse(slurp(test::data_path("ecgfm/" + stem + "__cfg.json")));
  size_t compared = 0;
  for (const auto& [key, value] : cfg["model"].items()) {
    ASSERT_EQ(cp->model_cfg.count(key), 1u) << key;
    const CfgValue& got = cp->model_cfg.at(key);
    if (value.is_string()) {
      EXPECT_EQ(std::get<std::string>(got), value.get<std::string>()) << key;
    } else if (value.is_boolean()) {
      EXPECT_EQ(std::get<bool>(got), value.get<bool>()) << key;
    } else if (value.is_number_integer()) {
      EXPECT_EQ(std::get<int64_t>(got), value.get<int64_t>()) << key;
    } else if (value.is_number_float()) {
      EXPECT_EQ(std::get<double>(got), value.get<double>()) << key;
    } else if (value.is_null()) {
      EXPECT_TRUE(std::holds_alternative<std::monostate>(got)) << key;
    } else {
      EXPECT_TRUE(std::holds_alternative<std::string>(got)) << key;  // containers as repr
    }
    ++compared;
  }
  EXPECT_EQ(compared, cp->model_cfg.size());
  EXPECT_EQ(std::get<int64_t>(cp->model_cfg.at("encoder_attention_heads")), 4);
  EXPECT_EQ(std::get<std::string>(cp->model_cfg.at("conv_feature_layers")), "[(32, 2, 2)] * 4");
  const std::vector<std::string> skipped = {"args",       "criterion",   "optimizer_history",
                                            "task_state", "extra_state", "last_optimizer_state"};
  for (const std::string& s : skipped) {
    EXPECT_NE(std::find(cp->skipped.begin(), cp->skipped.end(), s), cp->skipped.end()) << s;
  }
  // The optimizer's two moments are never read: at least twice the model's bytes are skipped.
  uint64_t model_bytes = 0;
  for (const auto& [k, s] : cp->storages) model_bytes += s.numel * dtype_size(s.dtype);
  EXPECT_GE(cp->skipped_storage_bytes, 2 * model_bytes);
  EXPECT_LT(model_bytes + cp->skipped_storage_bytes, cp->file_size);
}

TEST(CheckpointReference, TinyPretrainedKeysShapesCfg) {
  check_reference("tiny_pretrained");
  auto cp = read_checkpoint(test::data_path("ecgfm/tiny_pretrained.pt"));
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(std::get<std::string>(cp->model_cfg.at("_name")), "wav2vec2_cmsc");
  EXPECT_EQ(std::get<std::string>(cp->model_cfg.at("latent_temp")), "[2.0, 0.5, 0.999995]");
}

TEST(CheckpointReference, TinyFinetunedKeysShapesCfg) {
  check_reference("tiny_finetuned");
  auto cp = read_checkpoint(test::data_path("ecgfm/tiny_finetuned.pt"));
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(std::get<std::string>(cp->model_cfg.at("_name")), "ecg_transformer_classifier");
  EXPECT_EQ(std::get<int64_t>(cp->model_cfg.at("num_labels")), 17);
}

// logits = emb_pooled @ proj.weight^T + proj.bias, computed from the bytes read_tensor returns.
TEST(CheckpointReference, FinetunedHeadReproducesLogits) {
  auto cp = read_checkpoint(test::data_path("ecgfm/tiny_finetuned.pt"));
  ASSERT_TRUE(cp.ok()) << cp.status().to_string();
  std::vector<size_t> es, ls;
  auto emb = load_npy_f32(test::data_path("ecgfm/tiny_finetuned__emb_pooled.npy"), &es);
  auto logits = load_npy_f32(test::data_path("ecgfm/tiny_finetuned__logits.npy"), &ls);
  auto w = read_f32(*cp, "proj.weight");
  auto b = read_f32(*cp, "proj.bias");
  ASSERT_EQ(es, (std::vector<size_t>{2, 64}));
  ASSERT_EQ(w.size(), 17u * 64);
  for (size_t r = 0; r < 2; ++r) {
    for (size_t o = 0; o < 17; ++o) {
      double acc = b[o];
      for (size_t k = 0; k < 64; ++k) acc += double(emb[r * 64 + k]) * w[o * 64 + k];
      EXPECT_NEAR(acc, logits[r * 17 + o], 2e-5) << r << "," << o;
    }
  }
}

// feat_layer_norm_out = LN(conv3_out^T) and post_extract_proj_out = Linear(that): checks the
// bytes of layer_norm.* and post_extract_proj.* in the pretrained file.
TEST(CheckpointReference, PretrainedLayerNormAndProjection) {
  auto cp = read_checkpoint(test::data_path("ecgfm/tiny_pretrained.pt"));
  ASSERT_TRUE(cp.ok()) << cp.status().to_string();
  std::vector<size_t> s1, s2, s3;
  auto conv3 = load_npy_f32(test::data_path("ecgfm/tiny_pretrained__conv3_out.npy"), &s1);
  auto ln = load_npy_f32(test::data_path("ecgfm/tiny_pretrained__feat_layer_norm_out.npy"), &s2);
  auto proj =
      load_npy_f32(test::data_path("ecgfm/tiny_pretrained__post_extract_proj_out.npy"), &s3);
  auto g = read_f32(*cp, "layer_norm.weight");
  auto beta = read_f32(*cp, "layer_norm.bias");
  auto w = read_f32(*cp, "post_extract_proj.weight");
  auto pb = read_f32(*cp, "post_extract_proj.bias");
  const size_t C = 32, T = 156, E = 64;
  double worst_ln = 0, worst_proj = 0;
  for (size_t bt = 0; bt < 2; ++bt) {
    for (size_t t = 0; t < T; ++t) {
      double mean = 0, var = 0;
      for (size_t c = 0; c < C; ++c) mean += conv3[(bt * C + c) * T + t];
      mean /= C;
      for (size_t c = 0; c < C; ++c) var += std::pow(conv3[(bt * C + c) * T + t] - mean, 2);
      var /= C;
      std::vector<double> y(C);
      for (size_t c = 0; c < C; ++c) {
        y[c] = (conv3[(bt * C + c) * T + t] - mean) / std::sqrt(var + 1e-5) * g[c] + beta[c];
        worst_ln = std::max(worst_ln, std::abs(y[c] - ln[(bt * T + t) * C + c]));
      }
      for (size_t e = 0; e < E; ++e) {
        double acc = pb[e];
        for (size_t c = 0; c < C; ++c) acc += ln[(bt * T + t) * C + c] * double(w[e * C + c]);
        worst_proj = std::max(worst_proj, std::abs(acc - proj[(bt * T + t) * E + e]));
      }
    }
  }
  EXPECT_LT(worst_ln, 2e-5);
  EXPECT_LT(worst_proj, 2e-5);
}

TEST(CheckpointReference, ReadStorageBoundsAreChecked) {
  auto cp = read_checkpoint(test::data_path("ecgfm/tiny_finetuned.pt"));
  ASSERT_TRUE(cp.ok());
  const TensorInfo& t = tensor(*cp, "proj.bias");
  float buf[17];
  EXPECT_TRUE(read_storage(*cp, t.storage_key, 0, 68, buf).ok());
  Status s = read_storage(*cp, t.storage_key, 4, 68, buf);
  EXPECT_NE(s.message().find("out of range"), std::string::npos) << s.to_string();
  s = read_storage(*cp, t.storage_key, UINT64_MAX - 2, 8, buf);
  EXPECT_NE(s.message().find("out of range"), std::string::npos) << s.to_string();
  s = read_storage(*cp, "no-such-key", 0, 4, buf);
  EXPECT_NE(s.message().find("not used by any model tensor"), std::string::npos);
  EXPECT_FALSE(read_checkpoint("/nonexistent/x.pt").ok());
}

// zlib's CRC-32 of a byte range (the Python side uses zlib.crc32).
uint32_t crc32(const unsigned char* p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t k = 0; k < n; ++k) {
    crc ^= p[k];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// Every tensor of the tiny reference checkpoints and of small files torch writes in other
// layouts (path-saved stem prefix, protocol 4/5, f16/i64/bool, shared storages, transposed views)
// reads back byte-identical to torch.load(...)[name].contiguous().
TEST(CheckpointReference, EveryTensorByteMatchesTorch) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  test::TempDir dir;
  const std::string py = dir.file("hash.py");
  std::ofstream(py) << R"(import glob, importlib.util, sys, torch, zlib
spec = importlib.util.spec_from_file_location("make", sys.argv[1])
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)
make.main(sys.argv[2])
for f in sorted(glob.glob(sys.argv[2] + '/*.pt')) + sys.argv[3:]:
    for k, t in torch.load(f)['model'].items():
        print(f, k, zlib.crc32(t.contiguous().numpy().tobytes()))
)";
  const std::string cmd = "/usr/bin/python3 " + py + " " +
                          test::source("scripts/make_test_checkpoints.py") + " " + dir.path() +
                          " " + test::data_path("ecgfm/tiny_pretrained.pt") + " " +
                          test::data_path("ecgfm/tiny_finetuned.pt");
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::map<std::string, std::vector<std::pair<std::string, uint64_t>>> expected;
  char line[4096];
  while (fgets(line, sizeof line, pipe)) {
    std::istringstream in(line);
    std::string file, name;
    uint64_t hash = 0;
    in >> file >> name >> hash;
    expected[file].emplace_back(name, hash);
  }
  ASSERT_EQ(pclose(pipe), 0);
  ASSERT_EQ(expected.size(), 6u);
  size_t compared = 0;
  for (const auto& [file, tensors] : expected) {
    auto cp = read_checkpoint(file);
    ASSERT_TRUE(cp.ok()) << cp.status().to_string();
    ASSERT_EQ(cp->tensors.size(), tensors.size()) << file;
    for (size_t k = 0; k < tensors.size(); ++k) {
      const TensorInfo& t = cp->tensors[k];
      EXPECT_EQ(t.name, tensors[k].first);
      std::vector<unsigned char> buf(tensor_numel(t) * dtype_size(t.dtype));
      ASSERT_TRUE(read_tensor(*cp, t, buf.data()).ok());
      EXPECT_EQ(crc32(buf.data(), buf.size()), tensors[k].second) << file << " " << t.name;
      ++compared;
    }
  }
  EXPECT_GT(compared, 55u + 49u);
  auto stem = read_checkpoint(dir.file("by_path.pt"));
  ASSERT_TRUE(stem.ok());
  EXPECT_EQ(stem->archive_prefix, "by_path");
  EXPECT_EQ(tensor(*stem, "half").dtype, DType::F16);
  EXPECT_EQ(tensor(*stem, "flag").dtype, DType::Bool);
  EXPECT_FALSE(is_contiguous(tensor(*stem, "transposed")));
  EXPECT_EQ(std::get<std::string>(stem->model_cfg.at("latent_temp")), "[2.0, 0.5]");
}

// ---------------------------------------------------------------- archives built here

TEST(CheckpointBuilt, ArchivePrefixStemPrefixAndPlainEocd) {
  for (const std::string prefix : {"archive", "my_model.v2"}) {
    for (bool zip64 : {true, false}) {
      auto cp = read_checkpoint_bytes(simple_archive(prefix, zip64));
      ASSERT_TRUE(cp.ok()) << cp.status().to_string();
      EXPECT_EQ(cp->archive_prefix, prefix);
      ASSERT_EQ(cp->tensors.size(), 1u);
      EXPECT_EQ(cp->tensors[0].shape, (std::vector<int64_t>{3, 4}));
      EXPECT_EQ(std::get<std::string>(cp->model_cfg.at("_name")), "tiny");
      EXPECT_EQ(cp->skipped, (std::vector<std::string>{"args", "last_optimizer_state"}));
      auto v = read_f32(*cp, "w");
      EXPECT_EQ(v[11], 11.0f);
    }
  }
}

TEST(CheckpointBuilt, SharedStoragesOffsetsAndStrides) {
  std::vector<float> data(24);
  for (int k = 0; k < 24; ++k) data[size_t(k)] = float(k);
  std::vector<TensorSpec> specs = {
      {"full", "FloatStorage", "7", 24, 0, {4, 6}, {6, 1}},
      {"tail", "FloatStorage", "7", 24, 12, {2, 6}, {6, 1}},  // rows 2..3
      {"transposed", "FloatStorage", "7", 24, 0, {6, 4}, {1, 6}},
      {"column", "FloatStorage", "7", 24, 2, {4}, {6}},  // column 2
      {"empty", "FloatStorage", "7", 24, 24, {0, 3}, {3, 1}},
      {"ids", "LongStorage", "8", 3, 0, {3}, {1}},
  };
  std::string ids;
  put_le(ids, 5, 8);
  put_le(ids, uint64_t(-2), 8);
  put_le(ids, 1ull << 40, 8);
  auto cp = read_checkpoint_bytes(
      archive(checkpoint_pickle(specs), {{"7", f32_bytes(data)}, {"8", ids}, {"9", "unused"}}));
  ASSERT_TRUE(cp.ok()) << cp.status().to_string();
  EXPECT_EQ(cp->storages.size(), 2u);
  EXPECT_EQ(cp->skipped_storage_bytes, 6u);
  EXPECT_EQ(tensor(*cp, "tail").storage_offset, 12);
  EXPECT_EQ(read_f32(*cp, "tail")[0], 12.0f);
  EXPECT_FALSE(is_contiguous(tensor(*cp, "transposed")));
  auto tr = read_f32(*cp, "transposed");
  EXPECT_EQ(tr[1], 6.0f);  // [0][1] = storage[6]
  EXPECT_EQ(tr[4], 1.0f);  // [1][0] = storage[1]
  EXPECT_EQ(read_f32(*cp, "column"), (std::vector<float>{2, 8, 14, 20}));
  EXPECT_TRUE(read_f32(*cp, "empty").empty());
  const TensorInfo& t = tensor(*cp, "ids");
  EXPECT_EQ(t.dtype, DType::I64);
  int64_t got[3];
  ASSERT_TRUE(read_tensor(*cp, t, got).ok());
  EXPECT_EQ(got[1], -2);
  EXPECT_EQ(got[2], int64_t(1) << 40);
}

// A cfg that goes through every opcode the machine implements.
// Long function: one pickle built op by op through every opcode, then every value checked.
TEST(CheckpointBuilt, EveryOpcodePath) {
  Pickle c;
  auto key = [&](const std::string& k) -> Pickle& {
    return c.op(0x8c).op(uint8_t(k.size())).raw(k);
  };
  key("u8").op(0x8d);
  put_le(c.b, 3, 8);
  c.raw("abc");
  key("i1").i(7);
  key("i2").op('M').raw(std::string("\x2c\x01", 2));  // 300
  key("i4").i(-5);
  key("long1").i(int64_t(1) << 40);
  key("long1_neg").op(0x8a).op(1).op(0xFF);
  key("long1_zero").op(0x8a).op(0);
  key("long4").op(0x8b);
  put_le(c.b, 9, 4);
  put_le(c.b, 42, 8);
  c.op(0);
  key("big").op(0x8a).op(9);
  put_le(c.b, 0, 8);
  c.op(1);
  key("text_int").raw("I42\n");
  key("text_true").raw("I01\n");
  key("text_long").raw("L-123L\n");
  key("text_float").raw("F0.25\n");
  key("f").op('G').raw(std::string("\x3f\xb9\x99\x99\x99\x99\x99\x9a", 8));  // 0.1 big-endian
  key("t").op(0x88);
  key("n").op('N');
  key("list").op(']').i(1).op('a').op('(').i(2).i(3).op('e');
  key("list_op").op('(').i(1).op('l');
  key("tuple").op('(').i(1).i(2).op('t');
  key("tuple1").i(1).op(0x85);
  key("tuple3").i(1).i(2).i(3).op(0x87);
  key("tuple2_empty").op(')').op(')').op(0x86);
  key("dict").op('}').str("k").i(1).op('s');
  key("dict_op").op('(').str("a").op('N').op('d');
  key("set").op(0x8f).op('(').i(4).op(0x90);
  key("frozen").op('(').op(0x91);
  key("bytes").op('C').op(2).raw("ab").op('B');
  put_le(c.b, 1, 4);
  c.raw("c").op(0x86).op(0x8e);
  put_le(c.b, 0, 8);
  c.op(0x96);
  put_le(c.b, 0, 8);
  c.op(0x86).op(0x86);
  key("binstring").op('T');
  put_le(c.b, 2, 4);
  c.raw("hi");
  key("short_binstring").op('U').op(2).raw("yo");
  key("string").raw("S'q'\n");
  key("unicode").raw("Vraw\n");
  key("memo1").str("shared").op('q').op(3);
  key("memo1_get").op('h').op(3);
  key("memo4").i(9).op('r');
  put_le(c.b, 70000, 4);
  key("memo4_get").op('j');
  put_le(c.b, 70000, 4);
  key("memo_text").i(8).raw("p5\n").op('0').raw("g5\n");
  key("memoize").i(6).op(0x94).op('0').raw("g3\n");
  key("dup").i(5).op('2').op('0');
  key("pop_mark").i(1).op('(').i(2).i(3).op('1');
  key("pop_to_mark").i(2).op('(').op('0');
  key("opaque").glob("foo", "Bar").op(')').op('R').op('}').op('b');
  key("newobj").glob("foo", "Bar").op(')').op(0x81).str("x").i(1).op('s');
  key("newobj_ex").glob("foo", "Bar").op(')').op('}').op(0x92);
  key("stack_global").str("foo").str("Baz").op(0x93);
  key("od").glob("collections", "OrderedDict").op(']').str("x").i(1).op(0x86);
  c.op('a').op(0x85).op('R');
  key("inst").op('(').i(1).raw("ifoo\nQux\n");
  key("obj").op('(').glob("foo", "Qux").i(1).op('o');
  key("persid").str("other").op(0x85).op('Q');
  key("persid_text").raw("Pabc\n");
  key("nested").op(']').op('(').op(']').op(')').op('}').op(0x8f).op('e');
  key("quote").str("it's");
  // Protocol 4 framing around the whole pickle; the frame length is only checked for range.
  std::string pkl = checkpoint_pickle({}, c.b);
  std::string framed = std::string("\x80\x04\x95", 3);
  put_le(framed, pkl.size() - 2, 8);
  framed += pkl.substr(2);
  auto cp = read_checkpoint_bytes(archive(framed, {}));
  ASSERT_TRUE(cp.ok()) << cp.status().to_string();
  const auto& m = cp->model_cfg;
  auto S = [&](const std::string& k) { return std::get<std::string>(m.at(k)); };
  auto I = [&](const std::string& k) { return std::get<int64_t>(m.at(k)); };
  EXPECT_EQ(S("u8"), "abc");
  EXPECT_EQ(I("i1"), 7);
  EXPECT_EQ(I("i2"), 300);
  EXPECT_EQ(I("i4"), -5);
  EXPECT_EQ(I("long1"), int64_t(1) << 40);
  EXPECT_EQ(I("long1_neg"), -1);
  EXPECT_EQ(I("long1_zero"), 0);
  EXPECT_EQ(I("long4"), 42);
  EXPECT_EQ(S("big"), "<int beyond int64>");
  EXPECT_EQ(I("text_int"), 42);
  EXPECT_EQ(std::get<bool>(m.at("text_true")), true);
  EXPECT_EQ(I("text_long"), -123);
  EXPECT_EQ(std::get<double>(m.at("text_float")), 0.25);
  EXPECT_EQ(std::get<double>(m.at("f")), 0.1);
  EXPECT_EQ(std::get<bool>(m.at("t")), true);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(m.at("n")));
  EXPECT_EQ(S("list"), "[1, 2, 3]");
  EXPECT_EQ(S("list_op"), "[1]");
  EXPECT_EQ(S("tuple"), "(1, 2)");
  EXPECT_EQ(S("tuple1"), "(1,)");
  EXPECT_EQ(S("tuple3"), "(1, 2, 3)");
  EXPECT_EQ(S("tuple2_empty"), "((), ())");
  EXPECT_EQ(S("dict"), "{'k': 1}");
  EXPECT_EQ(S("dict_op"), "{'a': None}");
  EXPECT_EQ(S("set"), "{4}");
  EXPECT_EQ(S("frozen"), "set()");
  EXPECT_EQ(S("bytes"), "((b'ab', b'c'), (b'', b''))");
  EXPECT_EQ(S("binstring"), "hi");
  EXPECT_EQ(S("short_binstring"), "yo");
  EXPECT_EQ(S("string"), "q");
  EXPECT_EQ(S("unicode"), "raw");
  EXPECT_EQ(S("memo1_get"), "shared");
  EXPECT_EQ(I("memo4_get"), 9);
  EXPECT_EQ(I("memo_text"), 8);
  EXPECT_EQ(I("memoize"), 6);
  EXPECT_EQ(I("dup"), 5);
  EXPECT_EQ(I("pop_mark"), 1);
  EXPECT_EQ(I("pop_to_mark"), 2);
  EXPECT_EQ(S("opaque"), "<foo.Bar(...)>");
  EXPECT_EQ(S("newobj"), "<instance of global foo.Bar>");
  EXPECT_EQ(S("newobj_ex"), "<instance of global foo.Bar>");
  EXPECT_EQ(S("stack_global"), "<global foo.Baz>");
  EXPECT_EQ(S("od"), "{'x': 1}");
  EXPECT_EQ(S("inst"), "<instance (INST) of foo.Qux>");
  EXPECT_EQ(S("obj"), "<instance (OBJ) of global foo.Qux>");
  EXPECT_EQ(S("persid"), "<persistent id ('other',)>");
  EXPECT_EQ(S("persid_text"), "<text persistent id>");
  EXPECT_EQ(S("nested"), "[[], (), {}, set()]");
  EXPECT_EQ(S("quote"), "it's");
}

TEST(CheckpointBuilt, SelfReferenceAndDeepNestingAreHarmless) {
  Pickle c;
  c.str("cyclic").op(']').op('q').op(1).op('h').op(1).op('a');  // l = []; l.append(l)
  c.str("deep");
  for (int k = 0; k < 200000; ++k) c.op(']');
  for (int k = 0; k < 199999; ++k) c.op('a');
  auto cp = read_checkpoint_bytes(archive(checkpoint_pickle({}, c.b), {}));
  ASSERT_TRUE(cp.ok()) << cp.status().to_string();
  EXPECT_NE(std::get<std::string>(cp->model_cfg.at("cyclic")).find("[[[["), std::string::npos);
  EXPECT_NE(std::get<std::string>(cp->model_cfg.at("deep")).find("..."), std::string::npos);
}

// ---------------------------------------------------------------- hostile archives

TEST(CheckpointHostile, NotAZip) {
  EXPECT_ERROR("", "too small for a ZIP archive");
  EXPECT_ERROR(std::string(100, 'x'), "end-of-central-directory record not found");
  EXPECT_ERROR(std::string("\x80\x02}q\x00.", 6) + std::string(30, '\0'), "legacy non-zip");
  std::string wrong_magic = simple_archive();
  wrong_magic[0] = 'Q';  // the local header of data.pkl
  EXPECT_ERROR(wrong_magic, "bad signature");
}

TEST(CheckpointHostile, CompressedRecord) {
  ZipWriter z;
  z.add("archive/data.pkl", checkpoint_pickle({}));
  z.add("archive/data/0", "xxxx", 8);
  EXPECT_ERROR(z.finish(), "record 'archive/data/0' uses compression method 8");
}

TEST(CheckpointHostile, PrefixProblems) {
  ZipWriter none;
  none.add("data.pkl", checkpoint_pickle({}));
  EXPECT_ERROR(none.finish(), "no '<prefix>/data.pkl' record");
  ZipWriter two;
  two.add("a/data.pkl", checkpoint_pickle({}));
  two.add("b/data.pkl", checkpoint_pickle({}));
  EXPECT_ERROR(two.finish(), "expected exactly one");
  ZipWriter dup;
  dup.add("a/data.pkl", checkpoint_pickle({}));
  dup.add("a/data.pkl", checkpoint_pickle({}));
  EXPECT_ERROR(dup.finish(), "duplicate record name");
  ZipWriter big_endian;
  big_endian.add("a/data.pkl", checkpoint_pickle({}));
  big_endian.add("a/byteorder", "big");
  EXPECT_ERROR(big_endian.finish(), "only little-endian");
}

TEST(CheckpointHostile, TruncatedAnywhere) {
  const std::string full = simple_archive();
  ASSERT_TRUE(read_checkpoint_bytes(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    auto cp = read_checkpoint_bytes(full.substr(0, n));
    ASSERT_FALSE(cp.ok()) << n;
    EXPECT_FALSE(cp.status().message().empty());
  }
  // The real file cut at every record boundary and at many other places.
  const std::string real = slurp(test::data_path("ecgfm/tiny_finetuned.pt"));
  for (size_t n = 4099; n < real.size(); n += 4099) {
    EXPECT_ERROR(real.substr(0, n), "not found");
  }
}

TEST(CheckpointHostile, PickleTruncatedAtEveryByte) {
  const std::string pkl = checkpoint_pickle({{"w", "FloatStorage", "0", 2, 0, {2}, {1}}});
  for (size_t n = 0; n + 1 < pkl.size(); ++n) {
    EXPECT_ERROR(archive(pkl.substr(0, n), {{"0", f32_bytes({1, 2})}}), "truncated");
  }
}

TEST(CheckpointHostile, RealPickleTruncated) {
  const std::string real = slurp(test::data_path("ecgfm/tiny_finetuned.pt"));
  // data.pkl starts at the first 64-byte boundary after its local header (see the layout test).
  const uint64_t size = 25139;
  const std::string pkl = real.substr(64, size);
  ASSERT_EQ(uint8_t(pkl[0]), 0x80);
  ASSERT_EQ(pkl.back(), '.');
  for (size_t n = 0; n < pkl.size(); n += 97)
    EXPECT_ERROR(archive(pkl.substr(0, n), {}), "truncated");
}

TEST(CheckpointHostile, AbsurdSizes) {
  const std::string four = f32_bytes({1, 2, 3, 4});
  EXPECT_ERROR(
      archive(checkpoint_pickle({{"w", "FloatStorage", "0", int64_t(1) << 60, 0, {4}, {1}}}),
              {{"0", four}}),
      "declares 1152921504606846976 f32 elements but record 'archive/data/0' holds 16 bytes");
  EXPECT_ERROR(
      archive(checkpoint_pickle(
                  {{"w", "FloatStorage", "0", 4, 0, {int64_t(1) << 40, int64_t(1) << 40}, {1, 1}}}),
              {{"0", four}}),
      "shape overflows 64 bits");
  EXPECT_ERROR(
      archive(checkpoint_pickle({{"w", "FloatStorage", "0", 4, 0, {2, 3}, {3, 1}}}), {{"0", four}}),
      "reaches element 5 but storage '0' has only 4 elements");
  EXPECT_ERROR(
      archive(checkpoint_pickle({{"w", "FloatStorage", "0", 4, 3, {2}, {1}}}), {{"0", four}}),
      "reaches element 4");
  EXPECT_ERROR(
      archive(checkpoint_pickle({{"w", "FloatStorage", "0", 4, 0, {2}, {int64_t(1) << 62}}}),
              {{"0", four}}),
      "reaches element 4611686018427387904");
  EXPECT_ERROR(
      archive(checkpoint_pickle({{"w", "FloatStorage", "1", 4, 0, {4}, {1}}}), {{"0", four}}),
      "record 'archive/data/1' does not exist");
  EXPECT_ERROR(archive(checkpoint_pickle({{"w", "FloatStorage", "0", 4, 0, {4}, {1}},
                                          {"v", "LongStorage", "0", 2, 0, {2}, {1}}}),
                       {{"0", four}}),
               "declared twice");
  std::string long_str = std::string(1, 'X');
  put_le(long_str, 0xFFFFFFF0, 4);
  EXPECT_ERROR(archive(std::string("\x80\x02", 2) + long_str, {}),
               "length 4294967280 exceeds the 0 bytes left");
  std::string long8 = std::string("\x80\x02\x8d", 3);
  put_le(long8, uint64_t(1) << 62, 8);
  EXPECT_ERROR(archive(long8, {}), "exceeds the 0 bytes left");
  EXPECT_ERROR(
      archive(checkpoint_pickle({{"w", "FloatStorage", "0", 4, 0, {1 << 20, 1 << 20}, {0, 0}}}),
              {{"0", four}}),
      "has 1099511627776 elements, more than the");
  std::vector<int64_t> many(65, 1);
  EXPECT_ERROR(
      archive(checkpoint_pickle({{"w", "FloatStorage", "0", 4, 0, many, many}}), {{"0", four}}),
      "has 65 dimensions; the limit is 64");
}

TEST(CheckpointHostile, BadOpcodesAndStack) {
  auto pkl = [](const std::string& body) { return archive(std::string("\x80\x02", 2) + body, {}); };
  EXPECT_ERROR(pkl("\xff"s), "byte 2 (file offset 66): opcode 0xff: not a pickle opcode");
  EXPECT_ERROR(pkl("a"s), "opcode 0x61 'a' APPEND: stack underflow");
  EXPECT_ERROR(pkl("h\x07"s), "BINGET: memo key 7 was never stored");
  EXPECT_ERROR(pkl("K\x01K\x02u"s), "SETITEMS: no MARK on the stack");
  EXPECT_ERROR(pkl("K\x01(K\x02K\x03u"s), "target is a int, expected a dict");
  EXPECT_ERROR(pkl("](K\x01u"s), "target is a list, expected a dict");
  EXPECT_ERROR(pkl("}(K\x01u"s), "odd number of items");
  EXPECT_ERROR(pkl("(a."s), "APPEND: stack underflow");
  EXPECT_ERROR(pkl("\x82\x01"s), "EXT1: not supported");
  EXPECT_ERROR(pkl("]."s), "holds a list, expected the checkpoint dict");
  EXPECT_ERROR(pkl("}."s), "no 'model' entry");
  EXPECT_ERROR(archive("\x80\x06}.", {}), "unsupported pickle protocol 6");
  EXPECT_ERROR(pkl("I12x\n"s), "is not an int64 decimal");
  EXPECT_ERROR(pkl("\x8b\xff\xff\xff\xff"s), "negative byte count");
  EXPECT_ERROR(pkl("\x95\xff\xff\xff\xff\x00\x00\x00\x00"s), "FRAME: frame of");
  std::string huge_global = "c" + std::string(2000, 'm') + "\nx\n";
  EXPECT_ERROR(pkl(huge_global), "global name longer than 1024");
  // A tensor whose arguments are malformed, and model entries that are not tensors.
  EXPECT_ERROR(pkl("ctorch._utils\n_rebuild_tensor_v2\n(K\x01t"
                   "R"),
               "_rebuild_tensor_v2 expects (storage, offset, size, stride, ...)");
  Pickle p;
  p.op(0x80).op(2).op('}').str("model").op('}').str("x").i(3).op('s').op('s').op('.');
  EXPECT_ERROR(archive(p.b, {}), "model['x'] is a int, expected a tensor");
  Pickle q;
  q.op(0x80).op(2).op('}').str("model").op('}').str("x");
  q.op('(')
      .str("storage")
      .glob("torch", "FloatStorage")
      .str("0")
      .str("cpu")
      .op('N')
      .op('t')
      .op('Q');
  EXPECT_ERROR(archive(q.b, {}), "storage '0' numel is None");
  Pickle r;
  r.op(0x80).op(2).op('}').str("model").op('}').str("x");
  r.glob("torch._utils", "_rebuild_tensor_v2").op('(');
  r.op('(')
      .str("storage")
      .glob("torch", "ComplexFloatStorage")
      .str("0")
      .str("cpu")
      .i(1)
      .op('t')
      .op('Q');
  r.i(0).ints({1}).ints({1}).op(0x89).op('N').op('t').op('R').op('s').op('s').op('.');
  EXPECT_ERROR(
      archive(r.b, {}),
      "is a object (tensor on a object (storage of unsupported class torch.ComplexFloatStorage))");
}

}  // namespace
