// Record discovery over tests/data/ecg and over synthetic trees.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "records/ecg_record.hpp"
#include "records/record_discovery.hpp"
#include "records/record_format.hpp"
#include "tests/support/process.hpp"

namespace ecgq::client {
namespace {

void touch(const std::string& path, const std::string& text = "x") {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<std::string> relative(const std::vector<std::string>& paths, const std::string& root) {
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(p.substr(root.size() + 1));
  return out;
}

// One extension table (records/record_format.hpp) serves the reader and the walk: a .txt record
// is read when named and never picked up from a directory, where .txt files are notes.
TEST(RecordDiscovery, TxtRecordsAreReadWhenNamedButNotDiscovered) {
  test::TempDir dir;
  const std::string r = dir.path();
  std::string csv = "# fs: 500\nI,II\n";
  for (int t = 0; t < 10; ++t) csv += "0.1,0.2\n";
  touch(r + "/d/ecg.txt", csv);
  touch(r + "/d/ecg.csv", csv);
  int64_t skipped = 0;
  EXPECT_EQ(relative(discover_records({r}, &skipped), r), (std::vector<std::string>{"d/ecg.csv"}));
  EXPECT_EQ(skipped, 1);
  EXPECT_EQ(discover_records({r + "/d/ecg.txt"}), (std::vector<std::string>{r + "/d/ecg.txt"}));
  auto txt = read_record(r + "/d/ecg.txt");
  ASSERT_TRUE(txt.ok()) << txt.status().to_string();
  EXPECT_EQ(txt->format, "csv");
  EXPECT_EQ(txt->n_samples, 10);
  for (const char* ext : {".hea", ".npy", ".csv", ".tsv", ".txt", ".mat"})
    EXPECT_NE(find_record_extension(ext), nullptr) << ext;
  EXPECT_EQ(find_record_extension(".dat"), nullptr);
  EXPECT_EQ(record_extension("a/b.c/REC.CSV"), ".csv");
  EXPECT_EQ(record_extension("dir.x/noext"), "");
  EXPECT_EQ(record_extension(".hidden"), "");
}

TEST(RecordDiscovery, SharedEcgFolderYieldsTheFourteenHeaders) {
  const std::string root = test::data_path("ecg");
  int64_t skipped = -1;
  std::vector<std::string> errors;
  auto found = discover_records({root}, &skipped, &errors);
  EXPECT_EQ(relative(found, root),
            (std::vector<std::string>{"00001_lr.hea", "1.hea", "208.hea", "34.hea", "51.hea",
                                      "E07500.hea", "E07509.hea", "HR06000.hea", "HR06002.hea",
                                      "JS20000.hea", "JS20004.hea", "data_101_6.hea",
                                      "s0010_re.hea", "v102s.hea"}));
  // Everything else: signal files (.dat, .xyz, the six .mat the headers name), annotations,
  // README.md, SHA256SUMS and .gitattributes.
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(root)) entries += e.is_regular_file();
  EXPECT_EQ(skipped, static_cast<int64_t>(entries) - 14);
  EXPECT_TRUE(errors.empty());
}

TEST(RecordDiscovery, MixedTreeInSortedDepthFirstOrder) {
  test::TempDir dir;
  const std::string r = dir.path();
  touch(r + "/b/rec.hea", "rec 1 500 2\nrec.dat 16\n");
  touch(r + "/b/rec.dat");
  touch(r + "/b/rec.atr");
  touch(r + "/b/rec.v1");
  touch(r + "/a/x.npy");
  touch(r + "/a/y.CSV");
  touch(r + "/a/deep/z.tsv");
  touch(r + "/c/named.hea", "named 1 500 2\nnamed.mat 16x\n");  // unparseable header
  touch(r + "/c/named.mat");  // header unparseable -> this .mat counts as header-less
  touch(r + "/c/E1.hea", "E1.mat 1 500 2\nE1.mat 16+24 1000/mV 16 0 0 0 0 I\n");
  touch(r + "/c/E1.mat");
  touch(r + "/c/other.hea", "other 1 500 2\nshared_name.mat 16+24\n");
  touch(r + "/c/shared_name.mat");  // named by a header of another name
  touch(r + "/c/orphan.mat");
  touch(r + "/README.md");
  touch(r + "/SHA256SUMS");
  touch(r + "/RECORDS");
  touch(r + "/.hidden.npy");
  touch(r + "/.git/HEAD.hea");
  auto found = discover_records({r});
  EXPECT_EQ(relative(found, r), (std::vector<std::string>{
                                    "a/deep/z.tsv", "a/x.npy", "a/y.CSV", "b/rec.hea", "c/E1.hea",
                                    "c/named.hea", "c/named.mat", "c/orphan.mat", "c/other.hea"}));
}

TEST(RecordDiscovery, IsLazyAndCounts) {
  test::TempDir dir;
  const std::string r = dir.path();
  touch(r + "/1.npy");
  touch(r + "/1.txt");
  touch(r + "/2.npy");
  touch(r + "/sub/3.npy");
  RecordDiscovery walk({r});
  auto first = walk.next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, r + "/1.npy");
  EXPECT_EQ(walk.found(), 1);
  EXPECT_EQ(walk.skipped(), 0);  // 1.txt not looked at yet
  // Files created after the walk started are seen when their directory is reached.
  touch(r + "/sub/4.npy");
  EXPECT_EQ(walk.next().value(), r + "/2.npy");
  EXPECT_EQ(walk.next().value(), r + "/sub/3.npy");
  EXPECT_EQ(walk.next().value(), r + "/sub/4.npy");
  EXPECT_FALSE(walk.next().has_value());
  EXPECT_FALSE(walk.next().has_value());
  EXPECT_EQ(walk.found(), 4);
  EXPECT_EQ(walk.skipped(), 1);
}

TEST(RecordDiscovery, FileRootsMissingRootsAndSymlinkLoops) {
  test::TempDir dir;
  const std::string r = dir.path();
  touch(r + "/d/a.dat");
  touch(r + "/d/b.npy");
  ASSERT_EQ(::symlink((r + "/d").c_str(), (r + "/d/loop").c_str()), 0);
  int64_t skipped = 0;
  std::vector<std::string> errors;
  auto found = discover_records({r + "/d/a.dat", r + "/missing", r + "/d/"}, &skipped, &errors);
  // An explicit file is always a candidate; read_record decides what it is.
  EXPECT_EQ(found, (std::vector<std::string>{r + "/d/a.dat", r + "/d/b.npy"}));
  EXPECT_EQ(skipped, 1);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("missing does not exist"), std::string::npos);
}

}  // namespace
}  // namespace ecgq::client
