// The compact model file's container (model/model_file.hpp) on files written in a temp dir: a
// round trip keeps every byte and the table of contents; contents that a valid checksum covers
// but that do not add up (sizes, dtypes, precision) are refused by name; the checksum is the
// same however the bytes are fed and sees a single flipped bit. Damaged files through the real
// CLI: cli.export_refusals.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <numeric>
#include <vector>

#include "model/model_file.hpp"
#include "tests/support/process.hpp"

namespace ecgq::mfile {
namespace {

// A small table of contents with two tensors: 17 floats and a 3x5 bf16 matrix.
struct Sample {
  std::vector<float> bias = std::vector<float>(17);
  std::vector<uint16_t> weight = std::vector<uint16_t>(15);
  Contents contents;
  std::vector<TensorSource> tensors;

  Sample() {
    std::iota(bias.begin(), bias.end(), 1.0f);
    std::iota(weight.begin(), weight.end(), uint16_t{100});
    contents.precision = "bf16";
    contents.source_sha256 = std::string(64, 'a');
    contents.source_name = "hf://owner/repo/model.pt";
    contents.fields = {{"arch.layers", "2"}, {"arch.prefix", ""}, {"note", "two words"}};
    contents.labels = {"Sinus rhythm", "Atrial fibrillation"};
    tensors.push_back({{"head_b", "f32", {17}, 0, 17 * 4}, bias.data()});
    tensors.push_back({{"layer0.qkv_w", "bf16", {3, 5}, 0, 15 * 2}, weight.data()});
  }
};

TEST(ModelFile, ARoundTripKeepsTheBytesAndTheTableOfContents) {
  test::TempDir dir;
  Sample s;
  ASSERT_TRUE(write_model_file(dir.file("m.ecgq"), s.contents, s.tensors).ok());
  EXPECT_TRUE(has_magic(dir.file("m.ecgq")));
  auto image = read_model_file(dir.file("m.ecgq"));
  ASSERT_TRUE(image.ok()) << image.status().to_string();
  const Contents& c = (*image)->contents();
  EXPECT_EQ(c.precision, "bf16");
  EXPECT_EQ(c.source_sha256, s.contents.source_sha256);
  EXPECT_EQ(c.source_name, s.contents.source_name);
  EXPECT_EQ(c.fields, s.contents.fields);
  EXPECT_EQ(c.labels, s.contents.labels);
  ASSERT_EQ(c.tensors.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const TensorEntry& e = c.tensors[i];
    EXPECT_EQ(e.offset % kPage, 0u) << e.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*image)->tensor_data(e)) % kPage, 0u) << e.name;
    EXPECT_EQ(std::memcmp((*image)->tensor_data(e), s.tensors[i].data, e.bytes), 0) << e.name;
  }
  EXPECT_EQ(c.find("layer0.qkv_w")->shape, (std::vector<int64_t>{3, 5}));
  // Releasing one tensor's pages (the model holds its own copy) leaves the other as it was.
  (*image)->release(c.tensors[0]);
  EXPECT_EQ(static_cast<const float*>((*image)->tensor_data(c.tensors[0]))[16], 0.0f);
  EXPECT_EQ(std::memcmp((*image)->tensor_data(c.tensors[1]), s.tensors[1].data, 30), 0);
  auto peeked = peek_model_file(dir.file("m.ecgq"));
  ASSERT_TRUE(peeked.ok());
  EXPECT_EQ(peeked->labels, s.contents.labels);
}

TEST(ModelFile, AStreamedReadHandsEachTensorOverInFileOrderAndChecksTheSumAtTheEnd) {
  test::TempDir dir;
  Sample s;
  ASSERT_TRUE(write_model_file(dir.file("m.ecgq"), s.contents, s.tensors).ok());
  std::vector<std::string> seen;
  bool damaged = false;
  auto start = [&](const Contents& c) {
    EXPECT_EQ(c.labels, s.contents.labels);
    return Status::Ok();
  };
  auto tensor = [&](const TensorEntry& e, const void* bytes) {
    const TensorSource& want = e.name == "head_b" ? s.tensors[0] : s.tensors[1];
    EXPECT_EQ(std::memcmp(bytes, want.data, e.bytes) != 0, damaged && e.name == "layer0.qkv_w");
    seen.push_back(e.name);
    return Status::Ok();
  };
  ASSERT_TRUE(stream_model_file(dir.file("m.ecgq"), start, tensor).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"head_b", "layer0.qkv_w"}));
  // One bit of the second tensor flipped: every tensor is handed over, then the sum refuses it.
  std::fstream f(dir.file("m.ecgq"), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(2 * kPage));  // layer0.qkv_w[0] = 100
  f.put(static_cast<char>(100 ^ 1));
  f.close();
  seen.clear();
  damaged = true;
  const Status st = stream_model_file(dir.file("m.ecgq"), start, tensor);
  EXPECT_NE(st.message().find("checksum mismatch"), std::string::npos) << st.to_string();
  EXPECT_EQ(seen.size(), 2u);
}

// Writes `s` after `edit`, reads it back and returns the error message ("" when it loaded).
std::string refusal(Sample s, const std::function<void(Sample&)>& edit) {
  test::TempDir dir;
  edit(s);
  EXPECT_TRUE(write_model_file(dir.file("m.ecgq"), s.contents, s.tensors).ok());
  auto image = read_model_file(dir.file("m.ecgq"));
  if (image.ok()) return "";
  EXPECT_EQ(image.status().code(), "bad_checkpoint");
  return image.status().message();
}

TEST(ModelFile, ContentsThatDoNotAddUpAreRefusedByName) {
  const Sample s;
  EXPECT_NE(refusal(s, [](Sample& x) { x.tensors[0].entry.shape = {18}; })
                .find("tensor head_b: 68 bytes for shape [18] of f32"),
            std::string::npos);
  EXPECT_NE(refusal(s, [](Sample& x) { x.tensors[1].entry.dtype = "f16"; })
                .find("tensor layer0.qkv_w: dtype f16"),
            std::string::npos);
  EXPECT_NE(refusal(s, [](Sample& x) { x.contents.precision = "int4"; })
                .find("precision 'int4' is not fp32 or bf16"),
            std::string::npos);
  EXPECT_EQ(refusal(s, [](Sample&) {}), "");
}

TEST(ModelFile, ALineBreakInALabelIsNotWritten) {
  test::TempDir dir;
  Sample s;
  s.contents.labels.push_back("two\nlines");
  EXPECT_FALSE(write_model_file(dir.file("m.ecgq"), s.contents, s.tensors).ok());
}

TEST(ModelFile, TheChecksumIsTheSameHoweverTheBytesComeAndSeesOneBit) {
  std::vector<uint8_t> bytes(4096 + 13);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 31 + 7);
  Checksum whole;
  whole.update(bytes.data(), bytes.size());
  Checksum parts;
  parts.update(bytes.data(), 1024);
  parts.update(bytes.data() + 1024, 2048);
  parts.update(bytes.data() + 3072, bytes.size() - 3072);
  EXPECT_EQ(whole.hex(), parts.hex());
  EXPECT_EQ(whole.hex().size(), 32u);
  bytes[4100] ^= 0x10;
  Checksum flipped;
  flipped.update(bytes.data(), bytes.size());
  EXPECT_NE(flipped.hex(), whole.hex());
}

TEST(ModelFile, PiecesSummedApartAndJoinedGiveTheWholeFilesSum) {
  std::vector<uint8_t> bytes(3 * 4096 + 45);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 131 + (i >> 7));
  Checksum whole;
  whole.update(bytes.data(), bytes.size());
  for (size_t cut : {size_t{32}, size_t{4096}, size_t{8192 - 64}}) {
    Checksum first, second = Checksum::continuation(), third = Checksum::continuation();
    first.update(bytes.data(), cut);
    second.update(bytes.data() + cut, 4096);
    third.update(bytes.data() + cut + 4096, bytes.size() - cut - 4096);
    second.join(third, bytes.size() - cut - 4096);
    first.join(second, bytes.size() - cut);
    EXPECT_EQ(first.hex(), whole.hex()) << "cut at " << cut;
  }
}

TEST(ModelFile, AFileWithoutTheMagicIsNotAModelFile) {
  test::TempDir dir;
  std::ofstream(dir.file("x.pt")) << "PK\x03\x04 not a model file";
  EXPECT_FALSE(has_magic(dir.file("x.pt")));
  EXPECT_FALSE(has_magic(dir.file("missing")));
  auto image = read_model_file(dir.file("x.pt"));
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("does not start with the magic ECGQMODL"),
            std::string::npos)
      << image.status().message();
}

}  // namespace
}  // namespace ecgq::mfile
