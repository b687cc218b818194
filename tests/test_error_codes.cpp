// The error-code table (common/error_code.cpp) is the one list of codes: docs/protocol.md section
// 6 is generated from it, Status carries its wire names, and no source spells a code it lacks.
// ECGQ_UPDATE_DOCS=1 rewrites the table in docs/protocol.md instead of failing.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "common/error_code.hpp"
#include "common/settings.hpp"
#include "common/status.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

const char* const kBegin =
    "<!-- error-codes: generated from common/error_code.cpp; "
    "ECGQ_UPDATE_DOCS=1 ctest -R ErrorCodes rewrites it -->\n";
const char* const kEnd = "<!-- /error-codes -->\n";

// The Markdown table of every code, as docs/protocol.md shows it.
std::string markdown_table() {
  std::string out = "| Code | Sent by | Meaning | Retry |\n|---|---|---|---|\n";
  for (const ErrorCodeInfo& e : error_code_table())
    out += std::string("| `") + e.name + "` | " + e.sent_by + " | " + e.meaning + " | " + e.retry +
           " |\n";
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ErrorCodes, TableIsInEnumOrderWithUniqueSnakeCaseNames) {
  const auto& table = error_code_table();
  ASSERT_EQ(table.size(), static_cast<size_t>(ErrorCode::CacheReadonly) + 1);
  std::set<std::string> names;
  for (size_t i = 0; i < table.size(); ++i) {
    const ErrorCodeInfo& e = table[i];
    EXPECT_EQ(static_cast<size_t>(e.code), i) << e.name << " is out of enum order";
    EXPECT_TRUE(names.insert(e.name).second) << e.name << " twice";
    EXPECT_EQ(std::string(e.name).find_first_not_of("abcdefghijklmnopqrstuvwxyz_"),
              std::string::npos)
        << e.name;
    EXPECT_NE(std::string(e.sent_by), "");
    EXPECT_NE(std::string(e.meaning), "");
    EXPECT_NE(std::string(e.retry), "");
    EXPECT_EQ(std::string(e.meaning).find('|'), std::string::npos) << "breaks the Markdown table";
    EXPECT_EQ(parse_error_code(e.name), e.code);
  }
  EXPECT_FALSE(parse_error_code("no_such_code").has_value());
}

TEST(ErrorCodes, StatusCarriesTheWireName) {
  Status s(ErrorCode::QueueFull, "queue full", "service");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), "queue_full");
  EXPECT_TRUE(s.is(ErrorCode::QueueFull));
  EXPECT_FALSE(s.is(ErrorCode::NoWorker));
  EXPECT_EQ(s.to_string(), "queue_full: queue full (field service)");
  EXPECT_EQ(s.with_context("ecg-fm").to_string(), "queue_full: ecg-fm: queue full (field service)");
  // A code from a newer peer passes through unchanged.
  const std::string newer_code = "from_the_future";
  EXPECT_EQ(Status(newer_code, "x").code(), "from_the_future");
  EXPECT_FALSE(Status().is(ErrorCode::Internal));
}

Expected<int> half(int x) {
  if (x % 2) return Status(ErrorCode::BadRequest, "odd", "x");
  return x / 2;
}

Status check_even(int x) {
  RETURN_IF_ERROR(half(x));
  return Status::Ok();
}

Expected<int> quarter(int x) {
  ASSIGN_OR_RETURN(const int h, half(x));
  ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

Status first_error(const Status& a, const Status& b) {
  RETURN_IF_ERROR(a);
  RETURN_IF_ERROR(b);
  return Status::Ok();
}

TEST(ErrorCodes, ReturnIfErrorAndAssignOrReturn) {
  EXPECT_TRUE(check_even(4).ok());
  EXPECT_TRUE(check_even(3).is(ErrorCode::BadRequest));
  EXPECT_EQ(quarter(8).value(), 2);
  EXPECT_EQ(quarter(6).status().message(), "odd");
  EXPECT_EQ(quarter(5).status().field(), "x");
  EXPECT_TRUE(first_error(Status(), Status()).ok());
  EXPECT_TRUE(first_error(Status(), Status(ErrorCode::Internal, "b")).is(ErrorCode::Internal));
  EXPECT_EQ(
      first_error(Status(ErrorCode::NotFound, "a"), Status(ErrorCode::Internal, "b")).message(),
      "a");
}

TEST(ErrorCodes, ProtocolDocListsExactlyTheTable) {
  const std::string path = test::source("docs/protocol.md");
  std::string doc = read_text(path);
  const size_t begin = doc.find(kBegin);
  const size_t end = doc.find(kEnd);
  ASSERT_NE(begin, std::string::npos) << "no generated error table in " << path;
  ASSERT_NE(end, std::string::npos);
  const size_t from = begin + std::string(kBegin).size();
  const std::string current = doc.substr(from, end - from);
  const std::string wanted = markdown_table();
  if (current != wanted && env_flag("ECGQ_UPDATE_DOCS")) {
    doc.replace(from, end - from, wanted);
    std::ofstream(path) << doc;
    return;
  }
  EXPECT_EQ(current, wanted) << "docs/protocol.md is stale: run ECGQ_UPDATE_DOCS=1 ctest -R "
                                "ErrorCodes";
}

TEST(ErrorCodes, NoSourceSpellsACodeTheTableLacks) {
  auto run = test::run_command({test::source("scripts/check-error-codes"), test::source("")},
                               std::chrono::seconds(60));
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
}

}  // namespace
}  // namespace ecgq
