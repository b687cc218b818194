// ecgq-gateway: HTTP in front of an ecgq broker. Exit codes: 0 ok, 1 failure, 2 bad usage.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <thread>

#include "common/cli_exit.hpp"
#include "common/logging.hpp"
#include "common/settings.hpp"
#include "gateway/config.hpp"
#include "gateway/gateway.hpp"

namespace {

volatile std::sig_atomic_t g_stop = 0;

extern "C" void on_signal(int) {
  g_stop = 1;
}

// Idle connections are descriptors: take the hard limit, max_connections bounds the rest.
void raise_descriptor_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

static int run_gateway(int argc, char** argv) {
  using namespace ecgq;
  Settings settings;
  gateway::declare_settings(settings);
  CLI::App app{
      "ecgq-gateway: HTTP (ECG-FM API, Open Inference Protocol, OpenAPI, Prometheus "
      "metrics) in front of an ecgq broker"};
  std::string config_file;
  app.add_option("--config", config_file, "YAML file of settings (see config/gateway.yaml)");
  app.set_version_flag("--version", std::string("ecgq-gateway ") + ECGQ_VERSION);
  settings.add_flags(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return parse_error_exit(app, e, "ecgq-gateway");
  }
  if (!config_file.empty()) {
    if (Status s = settings.merge_yaml_file(config_file); !s.ok()) {
      std::cerr << "ecgq-gateway: " << s.to_string() << "\n";
      return 2;
    }
  }
  settings.merge_environment();
  if (Status s = settings.apply_flags(); !s.ok()) {
    std::cerr << "ecgq-gateway: " << s.to_string() << "\n";
    return 2;
  }
  auto config = gateway::load_config(settings);
  if (!config) {
    std::cerr << "ecgq-gateway: " << config.status().to_string() << "\n";
    return 2;
  }
  gateway::TokenTable tokens;
  if (!config->tokens_file.empty()) {
    auto loaded = gateway::TokenTable::load(config->tokens_file);
    if (!loaded) {
      std::cerr << "ecgq-gateway: " << loaded.status().to_string() << "\n";
      return 2;
    }
    tokens = std::move(*loaded);
  }
  if (!config->loopback() && tokens.empty() && !config->allow_insecure) {
    std::cerr << "ecgq-gateway: binding " << config->bind_host
              << " (not loopback) without --tokens lets anyone on the network submit ECGs; give "
                 "--tokens FILE, or set allow_insecure: true to accept that\n";
    return 2;
  }
  init_logging("gateway", config->log_level);
  if (!config->loopback() && tokens.empty())
    spdlog::warn(
        "event=insecure_bind bind={} reason=\"no tokens: anyone who reaches it may use "
        "it (allow_insecure)\"",
        config->bind_host);
  if (!config->loopback() && !tokens.empty() && !config->tls())
    spdlog::warn(
        "event=plaintext_tokens bind={} reason=\"bearer tokens over plain HTTP: use "
        "--tls-cert/--tls-key or a TLS proxy\"",
        config->bind_host);
  raise_descriptor_limit();

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  gateway::Gateway gw(*config, std::move(tokens));
  if (Status s = gw.start(); !s.ok()) {
    spdlog::error("event=start_failed reason=\"{}\"", s.to_string());
    return 1;
  }
  spdlog::info("event=listening version={} bind={}:{} tls={} broker={} service={} tokens={}",
               ECGQ_VERSION, config->bind_host, gw.port(), config->tls(), config->broker,
               config->service, config->tokens_file.empty() ? "off" : "on");
  while (g_stop == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  spdlog::info("event=stopping");
  gw.stop();
  spdlog::info("event=exit code=0");
  return 0;
}

int main(int argc, char** argv) {
  // Nothing reaches std::terminate: an unexpected exception is a runtime failure with its reason.
  try {
    return run_gateway(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ecgq-gateway: " << e.what() << "\n";
    return 1;
  }
}
