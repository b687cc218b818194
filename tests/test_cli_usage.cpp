// Command lines that never abort: bad endpoints and unknown commands are usage errors (exit 2,
// one line naming the problem), non-UTF-8 bytes in paths reach JSON and CSV escaped, and the
// text helpers behind both.
#include <gtest/gtest.h>

#include <fstream>

#include "common/text.hpp"
#include "protocol/endpoint.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

using namespace std::chrono_literals;
using mdp::EndpointUse;

TEST(Text, ValidUtf8IsKeptAndInvalidBytesAreEscaped) {
  EXPECT_EQ(escape_invalid_utf8("plain/path.hea"), "plain/path.hea");
  EXPECT_EQ(escape_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\x93"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\x93");
  EXPECT_EQ(escape_invalid_utf8("a\xffz"), "a\\xFFz");
  EXPECT_EQ(escape_invalid_utf8("\xc3"), "\\xC3");                             // cut-off sequence
  EXPECT_EQ(escape_invalid_utf8("\xc0\xaf"), "\\xC0\\xAF");                    // overlong '/'
  EXPECT_EQ(escape_invalid_utf8("\xed\xa0\x80"), "\\xED\\xA0\\x80");           // a surrogate
  EXPECT_EQ(escape_invalid_utf8("\xf4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");  // past U+10FFFF
}

TEST(Text, LoggableIsOneShortLine) {
  EXPECT_EQ(loggable("job-1"), "job-1");
  EXPECT_EQ(loggable("a\nb\t\"c\"\\\x01\xff"), "a\\nb\\t\\\"c\\\"\\\\\\x01\\xFF");
  const std::string big(1 << 20, 'x');
  const std::string shown = loggable(big, 16);
  EXPECT_EQ(shown, std::string(16, 'x') + "...(+1048560 bytes)");
}

TEST(Endpoint, AcceptsWhatZeroMqTakesAndNamesTheExpectedForm) {
  EXPECT_TRUE(mdp::check_endpoint("tcp://127.0.0.1:5555", EndpointUse::Connect, "--broker").ok());
  EXPECT_TRUE(
      mdp::check_endpoint("tcp://broker.example:5555", EndpointUse::Connect, "--broker").ok());
  EXPECT_TRUE(mdp::check_endpoint("ipc:///tmp/b.sock", EndpointUse::Connect, "--broker").ok());
  EXPECT_TRUE(mdp::check_endpoint("tcp://*:5555", EndpointUse::Bind, "--bind").ok());
  EXPECT_TRUE(mdp::check_endpoint("tcp://127.0.0.1:*", EndpointUse::Bind, "--bind").ok());
  for (const char* bad : {"foo", "127.0.0.1:5555", "http://x:80", "tcp://host", "tcp://:5555",
                          "tcp://h:0", "tcp://h:65536", "tcp://h:55x", "ipc://"}) {
    auto s = mdp::check_endpoint(bad, EndpointUse::Connect, "--broker");
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.code(), "bad_usage");
    EXPECT_NE(s.message().find("expected tcp://HOST:PORT"), std::string::npos) << s.message();
    EXPECT_EQ(s.field(), "--broker");
  }
  EXPECT_FALSE(mdp::check_endpoint("tcp://*:5555", EndpointUse::Connect, "--broker").ok());
}

TEST(CliUsage, BadBrokerEndpointsAndUnknownCommandsExit2WithOneLine) {
  for (const std::string ep : {"foo", "127.0.0.1:27555", "http://127.0.0.1:80"}) {
    auto r = test::run_command({test::bin("ecgq"), "--broker", ep, "status"}, 10s);
    EXPECT_EQ(r.exit_code, 2) << ep << ": " << r.err;
    EXPECT_NE(r.err.find("expected tcp://HOST:PORT"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
  }
  auto r = test::run_command({test::bin("ecgq"), "frobnicate"}, 10s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << r.err;
  auto v = test::run_command({test::bin("ecgq"), "status", "--version"}, 10s);
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("ecgq "), std::string::npos);
}

// Every binary and subcommand, as a command line prefix.
const std::vector<std::vector<std::string>> kCommands = {{"ecgq-broker"},
                                                         {"ecgq-gateway"},
                                                         {"ecgq-worker", "serve"},
                                                         {"ecgq-worker", "fetch"},
                                                         {"ecgq-worker", "infer"},
                                                         {"ecgq-worker", "inspect"},
                                                         {"ecgq", "submit"},
                                                         {"ecgq", "status"},
                                                         {"ecgq", "result"},
                                                         {"ecgq", "keygen"},
                                                         {"ecgq", "plan"},
                                                         {"ecgq-worker"},
                                                         {"ecgq"}};

test::CommandResult run(std::vector<std::string> args, const std::vector<std::string>& extra) {
  args[0] = test::bin(args[0]);
  args.insert(args.end(), extra.begin(), extra.end());
  return test::run_command(args, 20s);
}

std::string shown(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += a + " ";
  return out;
}

// The one line a usage error prints: stderr without its final newline, which has no other.
void expect_one_line(const test::CommandResult& r, const std::string& what) {
  ASSERT_FALSE(r.err.empty()) << what;
  EXPECT_EQ(r.err.back(), '\n') << what;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << what << ": " << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << what << ": " << r.err;
}

TEST(CliUsage, EveryCommandHasHelpAndVersionAndRefusesAnUnknownFlagInOneLine) {
  for (const auto& cmd : kCommands) {
    auto help = run(cmd, {"--help"});
    EXPECT_EQ(help.exit_code, 0) << shown(cmd) << "--help: " << help.err;
    EXPECT_FALSE(help.out.empty()) << shown(cmd) << "--help";
    auto version = run(cmd, {"--version"});
    EXPECT_EQ(version.exit_code, 0) << shown(cmd) << "--version: " << version.err;
    EXPECT_NE(version.out.find(ECGQ_VERSION), std::string::npos) << shown(cmd) << version.out;
    auto bad = run(cmd, {"--no-such-flag"});
    EXPECT_EQ(bad.exit_code, 2) << shown(cmd) << "--no-such-flag: " << bad.err;
    expect_one_line(bad, shown(cmd) + "--no-such-flag");
  }
}

TEST(CliUsage, BadEndpointsAndCommandsAreUsageErrorsNamingTheExpectedForm) {
  const std::vector<std::vector<std::string>> endpoints = {
      {"ecgq-broker", "--bind", "foo"},
      {"ecgq-broker", "--worker-bind", "127.0.0.1:5555"},
      {"ecgq-gateway", "--broker", "http://127.0.0.1:80"},
      {"ecgq-worker", "serve", "--checkpoint", "m.pt", "--broker", "foo"}};
  for (const auto& cmd : endpoints) {
    auto r = run(cmd, {});
    EXPECT_EQ(r.exit_code, 2) << shown(cmd) << r.err;
    EXPECT_NE(r.err.find("tcp://HOST:PORT"), std::string::npos) << shown(cmd) << r.err;
    expect_one_line(r, shown(cmd));
  }
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"ecgq-worker", "frobnicate"}, {"ecgq", "frobnicate"}}) {
    auto r = run(cmd, {});
    EXPECT_EQ(r.exit_code, 2) << shown(cmd) << r.err;
    EXPECT_NE(r.err.find("'frobnicate'"), std::string::npos) << r.err;
    expect_one_line(r, shown(cmd));
  }
  auto none = run({"ecgq-worker"}, {});
  EXPECT_EQ(none.exit_code, 2);
  expect_one_line(none, "ecgq-worker");
}

TEST(CliUsage, NonUtf8PathsAreEscapedInJsonAndCsvNotACrash) {
  test::TempDir dir;
  const std::string name = "rec\xff\xfe.npy";
  std::ofstream(dir.file(name), std::ios::binary) << "not an npy file";
  // The record fails locally (unreadable), so no broker is needed to get its row.
  for (const std::string format : {"jsonl", "csv"}) {
    auto r = test::run_command({test::bin("ecgq"), "--broker", test::free_endpoint(), "--timeout",
                                "2s", "submit", "--format", format, dir.file(name)},
                               30s);
    EXPECT_EQ(r.exit_code, 1) << format << ": " << r.err;
    // JSON writes the escape's backslash as \\ (so a JSON reader gets rec\xFF\xFE.npy back).
    const std::string escaped = format == "csv" ? "rec\\xFF\\xFE.npy" : "rec\\\\xFF\\\\xFE.npy";
    EXPECT_NE(r.out.find(escaped), std::string::npos) << format << ": " << r.out;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace ecgq
