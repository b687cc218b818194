// ecgq-broker: the Majordomo 0.2 broker of ecgq. Exit codes: 0 ok, 1 failure, 2 bad usage.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "broker/broker.hpp"
#include "broker/config.hpp"
#include "common/cli_exit.hpp"
#include "common/logging.hpp"
#include "common/settings.hpp"

namespace {

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_reload = 0;

extern "C" void on_signal(int) {
  g_stop = 1;
}

// SIGHUP: read the CURVE allow-lists again.
extern "C" void on_hangup(int) {
  g_reload = 1;
}


int run(int argc, char** argv) {
  using namespace ecgq;
  Settings settings;
  broker::declare_settings(settings);

  CLI::App app{"ecgq-broker: Majordomo 0.2 job broker for ecgq workers and producers"};
  std::string config_file;
  app.add_option("--config", config_file, "YAML file of settings (see config/broker.yaml)");
  app.set_version_flag("--version", std::string("ecgq-broker ") + ECGQ_VERSION);
  settings.add_flags(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return parse_error_exit(app, e, "ecgq-broker");
  }
  if (!config_file.empty()) {
    if (Status s = settings.merge_yaml_file(config_file); !s.ok()) {
      std::cerr << "ecgq-broker: " << s.to_string() << "\n";
      return 2;
    }
  }
  settings.merge_environment();
  if (Status s = settings.apply_flags(); !s.ok()) {
    std::cerr << "ecgq-broker: " << s.to_string() << "\n";
    return 2;
  }
  auto config = broker::load_config(settings);
  if (!config) {
    std::cerr << "ecgq-broker: " << config.status().to_string() << "\n";
    return 2;
  }
  init_logging("broker", config->log_level);
  spdlog::info(
      "event=starting version={} heartbeat_interval_ms={} liveness={} max_queue={} "
      "max_attempts={} ecgq_services={}",
      ECGQ_VERSION, config->heartbeat_interval.count(), config->heartbeat_liveness,
      config->max_queue, config->max_attempts, settings.text("ecgq_services"));
  spdlog::info("event=result_cache enabled={} max_entries={} max_bytes={} ttl_ms={}",
               config->result_cache_entries > 0, config->result_cache_entries,
               config->result_cache_bytes, config->result_cache_ttl.count());

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_hangup;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  // A file-size limit (or a full quota) must fail the journal's write, not kill the broker.
  std::signal(SIGXFSZ, SIG_IGN);

  broker::Broker b(*config);
  if (Status s = b.load_curve(); !s.ok()) {
    std::cerr << "ecgq-broker: " << s.to_string() << "\n";
    return 2;
  }
  if (Status s = b.bind(); !s.ok()) {
    spdlog::error("event=bind_failed reason=\"{}\"", s.to_string());
    return 1;
  }
  if (Status s = b.open_journal(); !s.ok()) {
    spdlog::error("event=journal_failed reason=\"{}\"", s.to_string());
    return 1;
  }
  const int rc = b.run([] { return g_stop != 0; },
                       [] {
                         if (g_reload == 0) return false;
                         g_reload = 0;
                         spdlog::info("event=reload signal=SIGHUP");
                         return true;
                       });
  spdlog::info("event=exit code={}", rc);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // Nothing reaches std::terminate: an unexpected exception is a runtime failure with its reason.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ecgq-broker: " << e.what() << "\n";
    return 1;
  }
}
