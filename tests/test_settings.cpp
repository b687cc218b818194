#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/duration.hpp"
#include "common/settings.hpp"
#include "tests/support/process.hpp"

using namespace ecgq;

TEST(Duration, ParsesUnits) {
  EXPECT_EQ(parse_duration("300ms")->count(), 300);
  EXPECT_EQ(parse_duration("2.5s")->count(), 2500);
  EXPECT_EQ(parse_duration("15m")->count(), 900000);
  EXPECT_EQ(parse_duration("1h")->count(), 3600000);
  EXPECT_FALSE(parse_duration("15").ok());
  EXPECT_FALSE(parse_duration("s").ok());
  EXPECT_FALSE(parse_duration("5 parsecs").ok());
  EXPECT_EQ(format_duration(Millis(900000)), "15m");
}

TEST(Settings, FileThenEnvThenFlag) {
  test::TempDir dir;
  {
    std::ofstream(dir.file("c.yaml")) << "idle_timeout: 5m\nservices: [a, b]\n";
  }
  Settings s;
  s.declare("idle_timeout", "15m", "idle time before sleeping");
  s.declare("services", "x", "services");
  ASSERT_TRUE(s.merge_yaml_file(dir.file("c.yaml")).ok());
  EXPECT_EQ(s.duration("idle_timeout")->count(), 300000);
  EXPECT_EQ(s.list("services"), (std::vector<std::string>{"a", "b"}));
  ::setenv("ECGQ_IDLE_TIMEOUT", "1s", 1);
  s.merge_environment();
  ::unsetenv("ECGQ_IDLE_TIMEOUT");
  EXPECT_EQ(s.duration("idle_timeout")->count(), 1000);
  EXPECT_EQ(s.origin("idle_timeout"), "ECGQ_IDLE_TIMEOUT");
  ASSERT_TRUE(s.set("idle_timeout", "bogus", "flag --idle-timeout").ok());
  auto bad = s.duration("idle_timeout");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().field(), "idle_timeout");
  EXPECT_NE(bad.status().message().find("flag --idle-timeout"), std::string::npos);
}

TEST(Settings, UnknownYamlKeyIsAnError) {
  test::TempDir dir;
  { std::ofstream(dir.file("c.yaml")) << "idle_timout: 5m\n"; }
  Settings s;
  s.declare("idle_timeout", "15m", "");
  auto st = s.merge_yaml_file(dir.file("c.yaml"));
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.field(), "idle_timout");
}
