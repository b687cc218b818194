// ecgq-worker: serves ECG-FM jobs from an ecgq broker, and offline tools (infer, inspect, fetch).
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "common/cli_exit.hpp"
#include "common/logging.hpp"
#include "common/settings.hpp"
#include "common/text.hpp"
#include "hub/hub_cache.hpp"
#include "hub/hub_settings.hpp"
#include "model/ecgfm_model.hpp"
#include "model/model.hpp"
#include "protocol/curve.hpp"
#include "protocol/endpoint.hpp"
#include "worker/export_command.hpp"
#include "worker/fetch_command.hpp"
#include "worker/model_tools.hpp"
#include "worker/serve_settings.hpp"
#include "worker/worker_service.hpp"

namespace {

using namespace ecgq;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int64_t kMaxBatchLimit = 1024;
constexpr int64_t kMaxBatchDelayLimitMs = 60000;

const char* const kUsage =
    "ecgq-worker " ECGQ_VERSION
    " - runs ECG-FM inference for an ecgq broker\n"
    "\n"
    "Usage:\n"
    "  ecgq-worker serve [--config FILE] --checkpoint REF [--broker tcp://HOST:5555]\n"
    "                    [--service ecg-fm] [--idle-timeout 15m] [...]\n"
    "  ecgq-worker infer --checkpoint PATH --input X.npy --out DIR   run segments offline\n"
    "  ecgq-worker inspect --checkpoint PATH                         describe a checkpoint\n"
    "  ecgq-worker export --checkpoint REF --precision bf16 --out FILE  compact model file\n"
    "  ecgq-worker fetch REF      fill the checkpoint cache and print \"SHA256  PATH\"\n"
    "  ecgq-worker --version\n"
    "\n"
    "`ecgq-worker COMMAND --help` lists the options of a command. Exit codes: 0 ok, 1 failure,\n"
    "2 bad usage or configuration.\n";

std::atomic<WorkerService*> g_service{nullptr};

extern "C" void on_stop_signal(int) {
  if (WorkerService* s = g_service.load()) s->request_stop();
}

void install_signal_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// The options of serve, from its settings.
struct ServeConfig {
  WorkerServiceOptions service;
  LifecycleOptions lifecycle;
  JobRunnerOptions runner;
  std::string cache_dir;
};

// Range errors show the value unquoted: "setting max_batch = 0 (from flag --max-batch): ...".
constexpr bool kUnquoted = false;

// The checks of the values that the types alone do not make.
Status check_ranges(const Settings& s, const ServeSettings& v) {
  if (v.broker.empty()) return Status(ErrorCode::BadConfig, "setting broker is empty", "broker");
  if (v.service.empty()) return Status(ErrorCode::BadConfig, "setting service is empty", "service");
  if (v.service.rfind("mmi.", 0) == 0)
    return Status(ErrorCode::BadConfig,
                  "service names starting with mmi. are reserved for the broker", "service");
  RETURN_IF_ERROR(s.check_minimums({{"capacity", v.capacity, 1},
                                    {"heartbeat_liveness", v.heartbeat_liveness, 1},
                                    {"bf16_split_layers", v.bf16_split_layers, -1},
                                    {"threads", v.threads, 0},
                                    {"max_batch", v.max_batch, 1},
                                    {"max_batch_delay_ms", v.max_batch_delay_ms, 0}},
                                   "at least ", kUnquoted));
  if (v.heartbeat_interval.count() <= 0)
    return Status(ErrorCode::BadConfig, "setting heartbeat_interval must be positive",
                  "heartbeat_interval");
  if (v.model_retry.count() <= 0)
    return Status(ErrorCode::BadConfig, "setting model_retry must be positive", "model_retry");
  if (v.checkpoint.empty())
    return Status(ErrorCode::BadConfig,
                  "serve needs a checkpoint: --checkpoint PATH or hf://OWNER/REPO/PATH",
                  "checkpoint");
  if (v.model_kind != "auto" && v.model_kind != "ecgfm" && v.model_kind != "torchscript")
    return Status(
        ErrorCode::BadConfig,
        "setting model_kind = '" + v.model_kind + "': expected auto, ecgfm or torchscript",
        "model_kind");
  if (v.precision == "int8") return int8_refused();
  if (v.precision != "fp32" && v.precision != "bf16")
    return Status(ErrorCode::BadConfig,
                  "setting precision = '" + v.precision + "': expected fp32 or bf16", "precision");
  RETURN_IF_ERROR(mdp::check_endpoint(v.broker, mdp::EndpointUse::Connect, "--broker"));
  // Bounds that catch typos (a batch of 80000 segments needs ~10 GB; a minute of waiting is never
  // what batching means).
  if (v.max_batch > kMaxBatchLimit)
    return s.invalid("max_batch", "at most " + std::to_string(kMaxBatchLimit) + " segments",
                     kUnquoted);
  if (v.max_batch_delay_ms > kMaxBatchDelayLimitMs)
    return s.invalid("max_batch_delay_ms",
                     "at most " + std::to_string(kMaxBatchDelayLimitMs) + " ms", kUnquoted);
  if (v.max_record_seconds <= 0)
    return Status(ErrorCode::BadConfig, "setting max_record_seconds must be positive",
                  "max_record_seconds");
  return Status::Ok();
}

// Reads the typed settings of serve; a bad value is a usage error naming the key.
Status read_config(const Settings& s, ServeConfig& c) {
  ServeSettings v;
  RETURN_IF_ERROR(serve_settings_table().read(s, v));
  RETURN_IF_ERROR(check_ranges(s, v));
  // Refused here rather than at warm-up: a worker that can never load should not register.
  if (v.precision == "bf16") RETURN_IF_ERROR(bf16_supported());
  c.service.broker = v.broker;
  ASSIGN_OR_RETURN(c.service.curve, curve::load_client_keys(v.curve_cert, v.broker_key));
  c.service.service = v.service;
  c.service.worker_id = v.worker_id;
  c.service.capacity = v.capacity;
  c.service.heartbeat_liveness = v.heartbeat_liveness;
  c.service.heartbeat_interval = v.heartbeat_interval;
  c.service.reconnect_min = v.reconnect_min;
  c.service.reconnect_max = std::max(v.reconnect_max, v.reconnect_min);
  c.service.idle_timeout = v.idle_timeout;
  c.service.warm_on_start = v.warm_on_start;
  c.service.model_retry = v.model_retry;
  c.service.exit_on_load_failure = v.exit_on_load_failure;
  c.service.max_batch_delay = Millis(v.max_batch_delay_ms);
  c.lifecycle.checkpoint = v.checkpoint;
  c.lifecycle.load.model_kind = v.model_kind;
  c.lifecycle.load.precision = v.precision;
  c.lifecycle.load.precision_set = s.origin("precision") != "default";
  c.lifecycle.load.bf16_split_layers =
      static_cast<int>(std::min<int64_t>(v.bf16_split_layers, 1000));
  c.lifecycle.load.intra_op_threads = static_cast<int>(v.threads);
  c.runner.max_batch = v.max_batch;
  c.runner.limits.max_record_seconds = v.max_record_seconds;
  c.cache_dir = v.cache_dir;
  return Status::Ok();
}

int serve_command(int argc, char** argv) {
  Settings settings;
  declare_serve_settings(settings);
  CLI::App app{"ecgq-worker serve: register with a broker and run ECG-FM jobs",
               "ecgq-worker serve"};
  std::string config_file;
  app.add_option("--config", config_file, "YAML file of settings (see config/worker.yaml)");
  app.set_version_flag("--version", std::string("ecgq-worker ") + ECGQ_VERSION);
  settings.add_flags(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return parse_error_exit(app, e, "ecgq-worker serve");
  }
  if (!config_file.empty()) {
    Status st = settings.merge_yaml_file(config_file);
    if (!st.ok()) {
      std::cerr << "ecgq-worker: " << st.message() << "\n";
      return kExitUsage;
    }
  }
  settings.merge_environment();
  if (Status flags = settings.apply_flags(); !flags.ok()) {
    std::cerr << "ecgq-worker: " << flags.message() << "\n";
    return kExitUsage;
  }
  init_logging("worker", settings.text("log_level"));

  ServeConfig config;
  Status st = read_config(settings, config);
  if (!st.ok()) {
    std::cerr << "ecgq-worker: " << st.message() << "\n";
    return kExitUsage;
  }
  auto hub_options = hub_options_from_settings(settings);
  if (!hub_options.ok()) {
    std::cerr << "ecgq-worker: " << hub_options.status().message() << "\n";
    return kExitUsage;
  }
  const HubOptions hub = *hub_options;
  CheckpointResolver resolver = [hub](const std::string& ref) {
    return resolve_checkpoint(ref, hub);
  };
  // Once, before the model: 0 = every CPU this process may use (affinity, cgroup quota).
  const std::string threads = configure_threads(config.lifecycle.load.intra_op_threads);
  spdlog::info("event=threads threads=\"{}\"", threads);

  WorkerService service(config.service, config.lifecycle, load_model, resolver, config.runner);
  spdlog::info(
      "event=start version={} worker_id={} broker={} service={} checkpoint={} model_kind={} "
      "precision={} capacity={} max_batch={} max_batch_delay_ms={} idle_timeout={} "
      "warm_on_start={} heartbeat_interval={} liveness={}",
      ECGQ_VERSION, service.worker_id(), config.service.broker, config.service.service,
      config.lifecycle.checkpoint, config.lifecycle.load.model_kind,
      config.lifecycle.load.precision, config.service.capacity, config.runner.max_batch,
      config.service.max_batch_delay.count(), format_duration(config.service.idle_timeout),
      config.service.warm_on_start, format_duration(config.service.heartbeat_interval),
      config.service.heartbeat_liveness);
  g_service.store(&service);
  install_signal_handlers();
  st = service.run();
  g_service.store(nullptr);
  if (!st.ok()) {
    spdlog::error("event=exit reason=\"{}\"", st.to_string());
    return st.is(ErrorCode::BadConfig) ? kExitUsage : kExitFailure;
  }
  spdlog::info("event=exit jobs_done={}", service.counters().jobs_done.load());
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "ecgq-worker: a command is required (serve, fetch, infer, inspect or export; see "
                 "ecgq-worker --help)\n";
    return kExitUsage;
  }
  const std::string command = argv[1];
  try {
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return kExitOk;
    }
    if (command == "--version" || command == "-V") {
      std::cout << "ecgq-worker " << ECGQ_VERSION << "\n";
      return kExitOk;
    }
    if (command == "serve") return serve_command(argc - 1, argv + 1);
    if (command == "fetch") return fetch_command(argc - 1, argv + 1);
    if (command == "infer") return infer_command(argc - 1, argv + 1);
    if (command == "inspect") return inspect_command(argc - 1, argv + 1);
    if (command == "export") return export_command(argc - 1, argv + 1);
  } catch (const std::exception& e) {
    std::cerr << "ecgq-worker: " << e.what() << "\n";
    return kExitFailure;
  }
  std::cerr << "ecgq-worker: unknown command '" << escape_invalid_utf8(command)
            << "' (expected serve, fetch, infer, inspect or export; see ecgq-worker --help)\n";
  return kExitUsage;
}
