// compose.yaml must parse with a real Compose implementation and keep the worker scalable.
#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/support/process.hpp"

using namespace ecgq::test;

namespace {
std::string compose_tool() {
  for (const char* p : {"/usr/bin/docker-compose", "/usr/local/bin/docker-compose"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}
}  // namespace

TEST(Compose, ParsesAndWorkerIsScalable) {
  const std::string tool = compose_tool();
  if (tool.empty()) GTEST_SKIP() << "docker-compose not installed (scripts/install-deps installs it)";
  auto r = run_command({tool, "-f", source("compose.yaml"), "config"}, std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A fixed container name would break `docker compose up --scale worker=N`.
  EXPECT_EQ(r.out.find("container_name"), std::string::npos);
  EXPECT_NE(r.out.find("model-cache"), std::string::npos);
  EXPECT_NE(r.out.find("healthcheck"), std::string::npos);
  EXPECT_NE(r.out.find("ecgq-worker"), std::string::npos);
}
