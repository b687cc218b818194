#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "records/npy.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

// Builds a .npy file by hand so the tests do not depend on numpy.
std::string make_npy(int major, const std::string& dict, const std::string& data) {
  std::string header = dict;
  size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  uint32_t len = static_cast<uint32_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (major != 1) {
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 24) & 0xff);
  }
  return out + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(Npy, ReadsReferenceInputFloat32) {
  auto a = read_npy(test::data_path("ecgfm/input.npy"));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->dtype, "f32");
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 12, 2500}));
  EXPECT_FALSE(a->fortran_order);
  auto f = a->to_float();
  ASSERT_EQ(f.size(), 60000u);
  // Row 0 is torch.randn: roughly zero mean, unit variance.
  double sum = 0, sq = 0;
  for (size_t i = 0; i < 30000; ++i) sum += f[i], sq += double(f[i]) * f[i];
  EXPECT_NEAR(sum / 30000, 0.0, 0.05);
  EXPECT_NEAR(sq / 30000, 1.0, 0.05);
}

TEST(Npy, ReadsReferenceFloat64AndMatchesFloat32Copy) {
  auto seg = read_npy(test::data_path("ecgfm/preproc__expected_segments.npy"));
  auto in = read_npy(test::data_path("ecgfm/input.npy"));
  ASSERT_TRUE(seg.ok() && in.ok());
  EXPECT_EQ(seg->dtype, "f64");
  auto d = seg->to_double();
  auto f = in->to_float();
  // input.npy row 1 == segments[0] cast to float32.
  for (size_t i = 0; i < 30000; ++i) ASSERT_EQ(f[30000 + i], static_cast<float>(d[i])) << i;
}

TEST(Npy, WriteThenReadRoundTrips) {
  test::TempDir dir;
  std::vector<float> v = {1.5f, -2.f, 3.25f, 0.f, 1e-30f, 7.f};
  ASSERT_TRUE(write_npy_f32(dir.file("a.npy"), v.data(), {2, 3}).ok());
  auto a = read_npy(dir.file("a.npy"));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->to_float(), v);
  // Header is 64-byte aligned, as numpy writes it.
  std::ifstream in(dir.file("a.npy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ((bytes.size() - v.size() * 4) % 64, 0u);
  EXPECT_NE(bytes.find("'shape': (2, 3), }"), std::string::npos);
}

TEST(Npy, WritesOneDimensionalAndScalarShapesLikeNumpy) {
  float x[3] = {1, 2, 3};
  std::string one = format_npy_f32(x, {3});
  EXPECT_NE(one.find("'shape': (3,), }"), std::string::npos);
  std::string zero = format_npy_f32(x, {});
  EXPECT_NE(zero.find("'shape': (), }"), std::string::npos);
  auto a = parse_npy(zero);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->numel(), 1);
  EXPECT_EQ(a->to_float(), std::vector<float>{1});
}

TEST(Npy, ReadsEveryIntegerAndBoolDtype) {
  auto i16 = parse_npy(make_npy(1, "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }",
                                raw(std::vector<int16_t>{-3, 0, 32767})));
  ASSERT_TRUE(i16.ok()) << i16.status().to_string();
  EXPECT_EQ(i16->to_double(), (std::vector<double>{-3, 0, 32767}));
  auto i32 = parse_npy(make_npy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
                                raw(std::vector<int32_t>{-100000, 5})));
  ASSERT_TRUE(i32.ok());
  EXPECT_EQ(i32->to_double(), (std::vector<double>{-100000, 5}));
  auto i64 = parse_npy(make_npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
                                raw(std::vector<int64_t>{1LL << 40})));
  ASSERT_TRUE(i64.ok());
  EXPECT_EQ(i64->to_double()[0], std::ldexp(1.0, 40));
  auto u8 = parse_npy(make_npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
                               std::string("\xff\x01", 2)));
  ASSERT_TRUE(u8.ok());
  EXPECT_EQ(u8->to_float(), (std::vector<float>{255, 1}));
  auto b1 = parse_npy(make_npy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }",
                               std::string("\x00\x01", 2)));
  ASSERT_TRUE(b1.ok());
  EXPECT_EQ(b1->dtype, "bool");
  EXPECT_EQ(b1->to_double(), (std::vector<double>{0, 1}));
}

TEST(Npy, FortranOrderIsConvertedToCOrder) {
  // C-order matrix [[1,2,3],[4,5,6]] stored column-major: 1,4,2,5,3,6.
  auto a = parse_npy(make_npy(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
                              raw(std::vector<double>{1, 4, 2, 5, 3, 6})));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_TRUE(a->fortran_order);
  EXPECT_EQ(a->to_double(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(a->to_float(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(Npy, ReadsVersion2And3Headers) {
  for (int major : {2, 3}) {
    auto a = parse_npy(make_npy(major, "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}",
                                raw(std::vector<float>{0.5f, 2})));
    ASSERT_TRUE(a.ok()) << major << ": " << a.status().to_string();
    EXPECT_EQ(a->to_float(), (std::vector<float>{0.5f, 2}));
  }
}

TEST(Npy, RejectsBadFilesWithSpecificMessages) {
  auto expect_error = [](const std::string& bytes, const std::string& fragment) {
    auto a = parse_npy(bytes);
    ASSERT_FALSE(a.ok()) << "expected an error mentioning '" << fragment << "'";
    EXPECT_EQ(a.status().code(), "bad_npy");
    EXPECT_NE(a.status().message().find(fragment), std::string::npos) << a.status().message();
  };
  expect_error("PK\x03\x04 not numpy", "magic");
  expect_error(make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                        raw(std::vector<float>{1, 2})),
               "truncated data");
  expect_error(make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                        raw(std::vector<float>{1, 2})),
               "trailing data");
  expect_error(make_npy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                        raw(std::vector<float>{1})),
               "big-endian");
  expect_error(make_npy(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
                        std::string(8, '\0')),
               "unsupported dtype");
  expect_error(make_npy(1, "{'descr': '<f4', 'shape': (1,), }", std::string(4, '\0')), "lacks");
  std::string v9 = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                            std::string(4, '\0'));
  v9[6] = 9;
  expect_error(v9, "version 9");
  std::string cut = make_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "");
  expect_error(cut.substr(0, 20), "truncated header");
}

TEST(Npy, ReadErrorNamesThePath) {
  auto a = read_npy("/nonexistent/dir/x.npy");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), "io_error");
  EXPECT_NE(a.status().message().find("/nonexistent/dir/x.npy"), std::string::npos);
}

}  // namespace
}  // namespace ecgq
