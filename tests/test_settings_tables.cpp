// Each program's settings are written once, in its settings table: config/*.yaml must list
// exactly the declared keys at the declared defaults, `--help` must show every key, and every
// default must parse as its type.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <set>

#include "broker/config.hpp"
#include "common/settings.hpp"
#include "gateway/config.hpp"
#include "hub/hub_settings.hpp"
#include "tests/support/process.hpp"
#include "worker/serve_settings.hpp"

namespace ecgq {
namespace {

using namespace std::chrono_literals;

struct Program {
  const char* name;
  const char* yaml;
  std::vector<std::string> help_command;
  void (*declare)(Settings&);
};

std::vector<Program> programs() {
  return {
      {"ecgq-broker",
       "config/broker.yaml",
       {test::bin("ecgq-broker"), "--help"},
       &broker::declare_settings},
      {"ecgq-worker serve",
       "config/worker.yaml",
       {test::bin("ecgq-worker"), "serve", "--help"},
       &declare_serve_settings},
  };
}

std::string flag_of(const std::string& key) {
  std::string f = "--";
  for (char c : key) f += c == '_' ? '-' : c;
  return f;
}

TEST(SettingsTables, ConfigFilesListExactlyTheDeclaredKeysAtTheirDefaults) {
  for (const Program& p : programs()) {
    SCOPED_TRACE(p.name);
    Settings declared;
    p.declare(declared);
    const YAML::Node root = YAML::LoadFile(test::source(p.yaml));
    ASSERT_TRUE(root.IsMap());
    std::set<std::string> in_file;
    for (const auto& item : root) in_file.insert(item.first.as<std::string>());
    const std::set<std::string> keys(declared.keys().begin(), declared.keys().end());
    EXPECT_EQ(in_file, keys) << p.yaml << " and the settings table list different keys";

    Settings from_file;
    p.declare(from_file);
    ASSERT_TRUE(from_file.merge_yaml_file(test::source(p.yaml)).ok());
    for (const std::string& key : declared.keys())
      EXPECT_EQ(from_file.text(key), declared.text(key)) << p.yaml << ": " << key;
  }
}

TEST(SettingsTables, HelpShowsEveryKeyWithItsDefault) {
  for (const Program& p : programs()) {
    SCOPED_TRACE(p.name);
    Settings declared;
    p.declare(declared);
    auto help = test::run_command(p.help_command, 30s);
    ASSERT_EQ(help.exit_code, 0) << help.err;
    for (const std::string& key : declared.keys()) {
      const size_t at = help.out.find(flag_of(key) + " ");
      ASSERT_NE(at, std::string::npos) << key << " missing from --help:\n" << help.out;
      // The option's block: its line and the wrapped help lines under it, up to the next option.
      const size_t next = help.out.find("\n  -", at);
      const std::string block = help.out.substr(at, next == std::string::npos ? next : next - at);
      EXPECT_NE(block.find("(default: " + declared.text(key) + ")"), std::string::npos) << block;
    }
  }
}

TEST(SettingsTables, EveryDefaultParsesAsItsType) {
  {
    Settings s;
    broker::declare_settings(s);
    broker::BrokerConfig read;
    EXPECT_TRUE(broker::settings_table().read(s, read).ok());
    auto c = broker::load_config(s);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
  }
  {
    Settings s;
    declare_serve_settings(s);
    ServeSettings v;
    EXPECT_TRUE(serve_settings_table().read(s, v).ok());
    EXPECT_TRUE(hub_options_from_settings(s).ok());
  }
}

TEST(SettingsTables, DefaultConstructedConfigsHoldTheTableDefaults) {
  const broker::BrokerConfig b;
  EXPECT_EQ(b.bind, "tcp://127.0.0.1:5555");
  EXPECT_EQ(b.heartbeat_interval, Millis(2500));
  EXPECT_EQ(b.service_wait, Millis(60000));
  EXPECT_EQ(b.max_message_bytes, int64_t{128} << 20);
  EXPECT_EQ(b.ecgq_services, (std::vector<std::string>{"ecg-fm"}));
  EXPECT_EQ(b.result_cache_ttl, Millis(3600000));
  const HubOptions h;
  EXPECT_TRUE(h.recheck);
  EXPECT_FALSE(h.offline);
  EXPECT_EQ(h.stall_timeout, Millis(30000));
  EXPECT_EQ(h.download_attempts, 3);
  const ServeSettings w;
  EXPECT_EQ(w.broker, "tcp://127.0.0.1:5555");
  EXPECT_EQ(w.idle_timeout, Millis(15 * 60 * 1000));
  EXPECT_EQ(w.bf16_split_layers, -1);
  EXPECT_TRUE(w.warm_on_start);
  EXPECT_EQ(w.max_record_seconds, 3600);
}

TEST(SettingsTables, AMalformedValueNamesItsKeyAndOrigin) {
  Settings s;
  broker::declare_settings(s);
  ASSERT_TRUE(s.set("max_message_bytes", "lots", "flag --max-message-bytes").ok());
  auto c = broker::load_config(s);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), "bad_config");
  EXPECT_EQ(c.status().field(), "max_message_bytes");
  EXPECT_NE(c.status().message().find("flag --max-message-bytes"), std::string::npos);
}

}  // namespace
}  // namespace ecgq
