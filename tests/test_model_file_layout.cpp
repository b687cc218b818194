// A model file's layers stored in the packed layout the kernels use (model/ecgfm_export.cpp,
// PackedLinear::adopt): the layout's text round trip, in-place use when this CPU wants the same
// layout, repacking when it wants another (or a format 2 file's split operand), and a clear
// refusal of a layout that does not fit.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "model/dnnl_cpu.hpp"
#include "model/ecgfm_model.hpp"
#include "model/model.hpp"
#include "model/model_export.hpp"
#include "model/model_file.hpp"
#include "tests/ecgfm_reference_data.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using test::max_abs_diff;
using test::ref_floats;
using test::ref_path;

TEST(ModelFileLayout, ALayoutsTextGivesBackTheSameLayoutAndNothingElseParses) {
  for (const dnnl::memory::desc& d : {dnnl::memory::desc({768, 2304}, dt::bf16, tag::BA16a64b2a),
                                      dnnl::memory::desc({1536, 768}, dt::bf16, tag::BA16a32b2a),
                                      dnnl::memory::desc({768, 3072}, dt::f32, tag::ba),
                                      dnnl::memory::desc({8, 24}, dt::f32, tag::ab)}) {
    const std::string text = DnnlCpu::layout_text(d);
    EXPECT_EQ(text.find(' '), std::string::npos) << text;
    auto back = DnnlCpu::layout_from_text(text);
    ASSERT_TRUE(back.has_value()) << text;
    EXPECT_TRUE(*back == d) << text;
  }
  const std::string good = DnnlCpu::layout_text(dnnl::memory::desc({8, 24}, dt::f32, tag::ab));
  for (std::string bad : {std::string(), std::string("blocked;"), std::string("plain;t=3"),
                          good + ";z=1", good.substr(0, good.size() - 1) + "1"}) {
    EXPECT_FALSE(DnnlCpu::layout_from_text(bad).has_value()) << "'" << bad << "'";
  }
  std::string negative = good;
  negative.replace(negative.find(";d=8"), 4, ";d=-8");
  EXPECT_FALSE(DnnlCpu::layout_from_text(negative).has_value()) << negative;
}

// The tiny checkpoint exported at `precision` with `layout` ("packed" or "plain") into `path`.
void export_tiny(const std::string& precision, bool packed, const std::string& path) {
  ExportOptions e;
  e.precision = precision;
  e.packed_layout = packed;
  auto report = export_checkpoint(ref_path("tiny_finetuned.pt"), e, path);
  ASSERT_TRUE(report.ok()) << report.status().to_string();
  if (packed) {
    EXPECT_GT(report->packed_layers, 0) << "oneDNN packed no layer on this CPU";
    EXPECT_FALSE(report->packed_for.empty());
  } else {
    EXPECT_EQ(report->packed_layers, 0);
  }
}

// Loads `path` and runs both reference segments: the architecture line and the probabilities.
std::pair<std::string, std::vector<float>> run_file(const std::string& path) {
  auto model = load_model(path, LoadOptions{});
  if (!model.ok()) return {"load failed: " + model.status().to_string(), {}};
  const std::vector<float> x = ref_floats("input.npy");
  auto out = (*model)->run(x.data(), 2, RunOptions{});
  if (!out.ok()) return {"run failed: " + out.status().to_string(), {}};
  return {(*model)->info().architecture, out->probs};
}

// Copies model file `from` to `to`, each packed tensor passed through `change` (entry, bytes).
using Change = std::function<void(mfile::TensorEntry&, std::vector<uint8_t>&)>;
void rewrite(const std::string& from, const std::string& to, const Change& change) {
  auto image = mfile::read_model_file(from);
  ASSERT_TRUE(image.ok()) << image.status().to_string();
  std::vector<std::vector<uint8_t>> bytes;
  bytes.reserve((*image)->contents().tensors.size());
  std::vector<mfile::TensorSource> sources;
  for (mfile::TensorEntry e : (*image)->contents().tensors) {
    const auto* p = static_cast<const uint8_t*>((*image)->tensor_data(e));
    bytes.emplace_back(p, p + e.bytes);
    if (!e.layout.empty()) change(e, bytes.back());
    sources.push_back({e, bytes.back().data()});
  }
  ASSERT_TRUE(mfile::write_model_file(to, (*image)->contents(), sources).ok());
}

TEST(ModelFileLayout, PackedLayersLoadInPlaceOrRepackedWithThePlainFilesOutputs) {
  configure_threads(2);
  test::TempDir dir;
  for (const std::string precision : {"fp32", "bf16"}) {
    if (precision == "bf16" && cpu_bf16_support().empty()) continue;
    const std::string plain = dir.path() + "/plain." + precision,
                      packed = dir.path() + "/packed." + precision,
                      other = dir.path() + "/other." + precision;
    export_tiny(precision, false, plain);
    export_tiny(precision, true, packed);
    const auto [plain_arch, want] = run_file(plain);
    ASSERT_FALSE(want.empty()) << plain_arch;
    EXPECT_EQ(plain_arch.find("stored packed"), std::string::npos) << plain_arch;

    const auto [arch, probs] = run_file(packed);
    EXPECT_NE(arch.find("layers stored packed for "), std::string::npos) << arch;
    EXPECT_EQ(arch.find("repacked"), std::string::npos) << arch;
    EXPECT_EQ(max_abs_diff(probs, want), 0.0) << precision << ": " << arch;

    // Another CPU's layout (here: the plain transposed one, as a blocked layout): repacked; and
    // (bf16) a format 2 file's split projections, one [hi; lo] operand of twice the depth (the
    // two terms' plain forms one after the other): repacked as two products, same outputs.
    for (const bool format2 : {false, true}) {
      if (format2 && precision != "bf16") continue;
      rewrite(packed, other, [format2](mfile::TensorEntry& e, std::vector<uint8_t>& b) {
        const bool pair = e.layout.rfind("pair;", 0) == 0;
        auto stored = DnnlCpu::layout_from_text(pair ? e.layout.substr(5) : e.layout);
        ASSERT_TRUE(stored.has_value()) << e.layout;
        dnnl::memory::desc flat(stored->dims(), stored->data_type(),
                                stored->dims().size() == 2 ? tag::ab : tag::abcd);
        const int terms = pair ? 2 : 1;
        std::vector<uint8_t> out(flat.get_size() * terms);
        for (int t = 0; t < terms; ++t) {
          dnnl::memory from(*stored, DnnlCpu::get().engine(), b.data() + t * stored->get_size());
          DnnlCpu::pack(from, flat, out.data() + t * flat.get_size());
        }
        b = out;
        e.bytes = out.size();
        e.shape = {static_cast<int64_t>(out.size())};
        if (pair && format2) {
          auto dims = flat.dims();
          dims[0] *= 2;
          e.layout = DnnlCpu::layout_text(dnnl::memory::desc(dims, flat.data_type(), tag::ab));
        } else {
          e.layout = (pair ? "pair;" : "") + DnnlCpu::layout_text(flat);
        }
      });
      const auto [other_arch, other_probs] = run_file(other);
      EXPECT_NE(other_arch.find("stored layout repacked for this CPU"), std::string::npos)
          << other_arch;
      EXPECT_EQ(max_abs_diff(other_probs, want), 0.0)
          << precision << (format2 ? " format 2: " : ": ") << other_arch;
    }
  }
}

TEST(ModelFileLayout, ALayoutThatDoesNotFitItsBytesIsRefusedByName) {
  test::TempDir dir;
  const std::string packed = dir.path() + "/packed", bad = dir.path() + "/bad";
  export_tiny("fp32", true, packed);
  rewrite(packed, bad, [](mfile::TensorEntry& e, std::vector<uint8_t>&) {
    if (e.name != "layer0.qkv_packed") return;
    // The layout of a matrix twice as wide: more bytes than the entry has.
    auto stored = DnnlCpu::layout_from_text(e.layout);
    ASSERT_TRUE(stored.has_value());
    auto dims = stored->dims();
    dims[1] *= 2;
    e.layout = DnnlCpu::layout_text(dnnl::memory::desc(dims, stored->data_type(), tag::ab));
  });
  const auto [why, probs] = run_file(bad);
  EXPECT_TRUE(probs.empty());
  EXPECT_NE(why.find("do not match their layout"), std::string::npos) << why;
  EXPECT_NE(why.find("layer 0"), std::string::npos) << why;
  EXPECT_NE(why.find(bad), std::string::npos) << why;
}

TEST(ModelFileLayout, AMappedModelOutlivesItsFileBeingTruncatedOrRewritten) {
  // The lease holds a writer back until the worker has copied the mapping: truncating the file
  // (which would make the mapped pages SIGBUS) and writing zeros over it change nothing the
  // loaded model sees.
  configure_threads(2);
  test::TempDir dir;
  const std::string path = dir.path() + "/model";
  export_tiny("fp32", true, path);
  auto model = load_model(path, LoadOptions{});
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  ASSERT_NE((*model)->info().architecture.find(", mapped"), std::string::npos)
      << (*model)->info().architecture;
  const std::vector<float> x = ref_floats("input.npy");
  auto before = (*model)->run(x.data(), 2, RunOptions{});
  ASSERT_TRUE(before.ok());
  // Another process truncates the file (waiting for this process to give the lease up), then
  // fills it with zeros of its old size.
  const auto size = std::filesystem::file_size(path);
  const test::CommandResult writer = test::truncate_and_zero_fill(path, std::chrono::seconds(30));
  EXPECT_EQ(writer.exit_code, 0) << writer.err;
  EXPECT_EQ(std::filesystem::file_size(path), size);
  auto after = (*model)->run(x.data(), 2, RunOptions{});
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_EQ(max_abs_diff(after->probs, before->probs), 0.0);
  // A new load of the zeroed file is refused by its checksum.
  auto again = load_model(path, LoadOptions{});
  EXPECT_FALSE(again.ok());
}

TEST(ModelFileLayout, AnUnchangedFileIsNotSummedAgainAndAChangedOneIs) {
  // A worker waking maps the file it verified before: unchanged (same inode, size, times), its
  // checksum stands. The first loads may verify again while the file's change time is within two
  // ticks of the clock that stamps it; each load takes milliseconds, so a bounded number of them
  // lets the export's time age past that.
  configure_threads(2);
  test::TempDir dir;
  const std::string path = dir.path() + "/model";
  export_tiny("fp32", true, path);
  const auto [first_arch, want] = run_file(path);
  ASSERT_FALSE(want.empty()) << first_arch;
  EXPECT_EQ(first_arch.find("checksum as verified"), std::string::npos) << first_arch;
  std::string arch;
  std::vector<float> probs;
  for (int load = 0; load < 200 && arch.find("checksum as verified") == std::string::npos; ++load)
    std::tie(arch, probs) = run_file(path);
  EXPECT_NE(arch.find(", mapped (checksum as verified at an earlier load)"), std::string::npos)
      << arch;
  EXPECT_EQ(max_abs_diff(probs, want), 0.0);
  // One byte of a weight changed in place (same size): its change time moved, so the next load
  // sums the file again and refuses it.
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  uint8_t byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, 8192), 1);
  byte ^= 0x01;
  ASSERT_EQ(::pwrite(fd, &byte, 1, 8192), 1);
  ::close(fd);
  const auto [why, none] = run_file(path);
  EXPECT_TRUE(none.empty()) << why;
  EXPECT_NE(why.find("checksum mismatch"), std::string::npos) << why;
}

TEST(ModelFileLayout, AFileOpenForWritingIsReadNotMappedAndSaysWhy) {
  test::TempDir dir;
  const std::string path = dir.path() + "/model";
  export_tiny("fp32", true, path);
  const int writer = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(writer, 0);
  auto model = load_model(path, LoadOptions{});
  ::close(writer);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const std::string arch = (*model)->info().architecture;
  EXPECT_NE(arch.find("read (not mapped: no read lease"), std::string::npos) << arch;
  EXPECT_NE(arch.find("open for writing"), std::string::npos) << arch;
}

}  // namespace
}  // namespace ecgq
