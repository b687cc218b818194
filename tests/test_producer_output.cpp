// The producer's output pieces without a cluster: CSV rows, the streamed embeddings .npy, resume
// files with a cut-off last line, and the progress bar / plain lines.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "client/csv_output.hpp"
#include "client/npy_rows.hpp"
#include "client/progress.hpp"
#include "client/resume.hpp"
#include "records/npy.hpp"
#include "tests/support/process.hpp"

namespace ecgq::test {
namespace {

using client::CsvWriter;

schema::Result ok_result(std::vector<float> probs) {
  schema::Result r;
  r.labels = {"A", "B, with comma", "C"};
  r.probs = std::move(probs);
  return r;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ProducerCsv, HeaderWaitsForLabelsThenRowsKeepTheirOrder) {
  std::ostringstream out;
  CsvWriter csv(out, false);
  schema::Result err;
  err.status = "error";
  err.error = schema::ErrorInfo{"not_found", "gone", "path", std::nullopt};
  csv.write("missing.npy", err);
  EXPECT_EQ(out.str(), "");  // held until the labels are known
  csv.write("a,b.npy", ok_result({0.9f, 0.5f, 0.1f}));
  csv.finish();
  EXPECT_EQ(out.str(),
            "path,id,status,error_code,error_message,n_segments,model_sha256,precision,cached,A,"
            "\"B, with comma\",C,top_labels\n"
            "missing.npy,,error,not_found,gone,,,,,,,,\n"
            "\"a,b.npy\",,ok,,,,,,false,0.9,0.5,0.1,\"A;B, with comma\"\n");
}

TEST(ProducerCsv, PerSegmentRowsFollowTheRecordRow) {
  std::ostringstream out;
  CsvWriter csv(out, true);
  schema::Result r = ok_result({0.2f, 0.7f, 0.3f});
  const std::vector<float> seg = {0.1f, 0.6f, 0.3f, 0.3f, 0.8f, 0.2f};
  r.segment_probs = schema::TypedArray{};
  r.segment_probs->dtype = "f32";
  r.segment_probs->shape = {2, 3};
  r.segment_probs->data.assign(reinterpret_cast<const char*>(seg.data()), seg.size() * 4);
  csv.write("r.npy", r);
  csv.finish();
  EXPECT_EQ(out.str(),
            "path,segment,id,status,error_code,error_message,n_segments,model_sha256,precision,"
            "cached,A,\"B, with comma\",C,top_labels\n"
            "r.npy,,,ok,,,,,,false,0.2,0.7,0.3,\"B, with comma\"\n"
            "r.npy,0,,ok,,,,,,false,0.1,0.6,0.3,\"B, with comma\"\n"
            "r.npy,1,,ok,,,,,,false,0.3,0.8,0.2,\"B, with comma\"\n");
}

TEST(ProducerCsv, NoLabelsAtAllStillWritesAHeader) {
  std::ostringstream out;
  CsvWriter csv(out, false);
  csv.finish();
  EXPECT_EQ(out.str(),
            "path,id,status,error_code,error_message,n_segments,model_sha256,precision,cached,"
            "top_labels\n");
}

TEST(ProducerCsv, SnakeNamesAndTheJobsFacts) {
  std::ostringstream out;
  CsvWriter csv(out, false, true);
  schema::Result r = ok_result({0.9f, 0.5f, 0.1f});
  r.id = "job-1";
  r.n_segments = 2;
  r.model.sha256 = "ab12";
  r.model.precision = "bf16";
  r.cached = true;
  csv.write("x.npy", r);
  csv.finish();
  EXPECT_EQ(out.str(),
            "path,id,status,error_code,error_message,n_segments,model_sha256,precision,cached,a,"
            "b_with_comma,c,top_labels\n"
            "x.npy,job-1,ok,,,2,ab12,bf16,true,0.9,0.5,0.1,\"A;B, with comma\"\n");
  EXPECT_EQ(client::snake_case("Supraventricular tachycardia (SVT) / aberrancy"),
            "supraventricular_tachycardia_svt_aberrancy");
}

TEST(ProducerNpyRows, RowsStreamAndTheHeaderIsPatched) {
  TempDir dir;
  const std::string path = dir.file("e.npy");
  client::NpyRowWriter w;
  ASSERT_TRUE(w.open(path).ok());
  ASSERT_TRUE(w.append({1, 2, 3}).ok());
  ASSERT_TRUE(w.append({4, 5, 6}).ok());
  EXPECT_EQ(w.append({7, 8}).code(), "bad_shape");
  ASSERT_TRUE(w.close().ok());
  auto a = read_npy(path);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->dtype, "f32");
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->to_float(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(std::filesystem::file_size(path), 128u + 24u);
  // The header is the size NumPy aligns to (a multiple of 64) and ends with a newline.
  const std::string h = client::npy_f32_header(123456789, 768);
  EXPECT_EQ(h.size(), 128u);
  EXPECT_EQ(h.back(), '\n');
}

TEST(ProducerNpyRows, NoRowsIsAnEmptyArray) {
  TempDir dir;
  client::NpyRowWriter w;
  ASSERT_TRUE(w.open(dir.file("e.npy")).ok());
  ASSERT_TRUE(w.close().ok());
  auto a = read_npy(dir.file("e.npy"));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{0, 0}));
}

TEST(ProducerResume, OkPathsAreDoneAndACutOffLastLineIsRemoved) {
  TempDir dir;
  const std::string path = dir.file("r.jsonl");
  {
    std::ofstream out(path);
    out << R"({"path":"a","status":"ok"})" << '\n'
        << R"({"path":"b","status":"error"})" << '\n'
        << "garbage\n\n"
        << R"({"path":"c","status":"ok"})" << '\n'
        << R"({"path":"d","sta)";
  }
  auto s = client::load_resume(path, false);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->done_paths, (std::unordered_set<std::string>{"a", "c"}));
  EXPECT_EQ(s->bad_lines, 1);
  EXPECT_TRUE(s->truncated_tail);
  const std::string text = read_text(path);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find("\"d\""), std::string::npos);
  // Loading again changes nothing.
  auto again = client::load_resume(path, false);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->truncated_tail);
  EXPECT_EQ(read_text(path), text);
}

TEST(ProducerResume, MissingFileIsEmpty) {
  TempDir dir;
  auto s = client::load_resume(dir.file("none.jsonl"), false);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->done_paths.empty());
}

// One row per record whatever the history: a later ok replaces an error, an ok is never
// replaced, permanent input errors stay done (unless --retry-errors), other errors are re-sent.
TEST(ProducerResume, OneRowPerRecordAndPermanentErrorsAreNotResent) {
  TempDir dir;
  const std::string path = dir.file("r.jsonl");
  const auto row = [](const std::string& p, const std::string& code) {
    return code.empty()
               ? R"({"path":")" + p + R"(","status":"ok"})"
               : R"({"path":")" + p + R"(","status":"error","error":{"code":")" + code + R"("}})";
  };
  const auto write = [&] {
    std::ofstream out(path);
    out << row("a", "no_worker") << '\n'           // retried later, then ok
        << row("b", "missing_leads") << '\n'       // permanent
        << row("c", "") << '\n'                    // ok
        << row("a", "") << '\n'                    // a's later ok replaces its error
        << row("c", "deadline_exceeded") << '\n'   // never replaces an ok
        << row("d", "broker_unreachable") << '\n'  // re-sent
        << row("e", "too_short") << '\n';          // permanent
  };
  write();
  auto s = client::load_resume(path, false);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->done_paths, (std::unordered_set<std::string>{"a", "b", "c", "e"}));
  EXPECT_EQ(s->ok, 2);
  EXPECT_EQ(s->permanent_errors, 2);
  EXPECT_EQ(s->to_retry, 1);
  EXPECT_EQ(read_text(path), row("a", "") + "\n" + row("b", "missing_leads") + "\n" + row("c", "") +
                                 "\n" + row("e", "too_short") + "\n");

  write();
  auto retry = client::load_resume(path, true);
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->done_paths, (std::unordered_set<std::string>{"a", "c"}));
  EXPECT_EQ(retry->to_retry, 3);
  EXPECT_EQ(read_text(path), row("a", "") + "\n" + row("c", "") + "\n");
}

std::string progress_text(bool tty, const client::ProgressCounts& c) {
  FILE* f = std::tmpfile();
  {
    client::ProgressReporter p(f, tty, std::chrono::hours(1));
    p.update(c);  // not due yet
    p.update(c, true);
  }
  std::rewind(f);
  std::string s;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) s.append(buf, n);
  std::fclose(f);
  return s;
}

TEST(ProducerProgress, BarOnATerminalAndPlainLinesOtherwise) {
  const std::string bar = progress_text(true, {50, 3, 200});
  EXPECT_EQ(bar.rfind("\r\033[K[", 0), 0u) << bar;
  EXPECT_NE(bar.find("] 50/200 "), std::string::npos) << bar;
  EXPECT_NE(bar.find("/s ETA "), std::string::npos) << bar;
  EXPECT_NE(bar.find("failed 3"), std::string::npos) << bar;
  EXPECT_EQ(bar.find('\n'), std::string::npos) << bar;

  const std::string line = progress_text(false, {50, 3, 0});
  EXPECT_EQ(line.rfind("ecgq: progress 50/? done, 3 failed, ", 0), 0u) << line;
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
}

}  // namespace
}  // namespace ecgq::test
