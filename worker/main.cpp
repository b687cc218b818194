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

#include "hub/hub_cache.hpp"
#include "hub/hub_settings.hpp"
#include "common/logging.hpp"
#include "common/settings.hpp"
#include "model/ecgfm_model.hpp"
#include "worker/fetch_command.hpp"
#include "model/model.hpp"
#include "worker/model_tools.hpp"
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
    "  ecgq-worker fetch REF      fill the checkpoint cache and print \"SHA256  PATH\"\n"
    "  ecgq-worker --version\n"
    "\n"
    "`ecgq-worker COMMAND --help` lists the options of a command. Exit codes: 0 ok, 1 failure,\n"
    "2 bad usage or configuration.\n";

// Every serve setting with its default; config/worker.yaml mirrors this list.
void declare_settings(Settings& s) {
  s.declare("broker", "tcp://127.0.0.1:5555", "broker endpoint to connect to");
  s.declare("service", "ecg-fm", "service name to register for");
  s.declare("checkpoint", "", "checkpoint reference: a local path or hf://OWNER/REPO/PATH[@REV]");
  s.declare("model_kind", "auto", "checkpoint kind: auto, ecgfm or torchscript");
  s.declare("precision", "fp32", "inference precision: fp32 or bf16");
  s.declare("bf16_split_layers", "-1",
            "bf16: last layers with hi+lo weights, more accurate and slower (-1 = default 6)");
  s.declare("idle_timeout", "15m", "idle time after which the model is unloaded (asleep)");
  s.declare("warm_on_start", "true", "load the model right after registering");
  s.declare("capacity", "2", "jobs the broker may hand this worker at once");
  s.declare("max_batch", "4", "5 s segments per forward pass (from one or several jobs)");
  s.declare("max_batch_delay_ms", "0",
            "how long a batch waits for more jobs, in ms (0 = take what is queued, never wait)");
  s.declare("threads", "0", "intra-op threads for inference (0 = automatic)");
  s.declare("heartbeat_interval", "2500ms", "MDP heartbeat interval (same as the broker's)");
  s.declare("heartbeat_liveness", "3", "silent heartbeat intervals before reconnecting");
  s.declare("reconnect_min", "250ms", "first reconnect delay (doubles on each failure)");
  s.declare("reconnect_max", "30s", "largest reconnect delay");
  s.declare("max_record_seconds", "3600", "longest record accepted, in seconds");
  s.declare("cache_dir", "", "checkpoint cache for hf:// references (\"\" = HF_HUB_CACHE/HF_HOME)");
  s.declare("worker_id", "", "worker id in results and READY (\"\" = hostname-pid)");
  s.declare("log_level", "info", "trace, debug, info, warn or error");
}

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

// Reads the typed settings of serve; a bad value is a usage error naming the key.
struct ServeConfig {
  WorkerServiceOptions service;
  LifecycleOptions lifecycle;
  JobRunnerOptions runner;
  std::string cache_dir;
};

Status read_config(const Settings& s, ServeConfig& c) {
  auto millis = [&](const char* key, Millis& out) -> Status {
    auto v = s.duration(key);
    if (!v) return v.status();
    out = v.value();
    return Status::Ok();
  };
  auto integer = [&](const char* key, int64_t min, int64_t& out) -> Status {
    auto v = s.integer(key);
    if (!v) return v.status();
    if (v.value() < min)
      return Status("bad_config",
                    "setting " + std::string(key) + " = " + s.text(key) + " (from " +
                        s.origin(key) + "): expected at least " + std::to_string(min),
                    key);
    out = v.value();
    return Status::Ok();
  };
  Status st;
  c.service.broker = s.text("broker");
  c.service.service = s.text("service");
  c.service.worker_id = s.text("worker_id");
  if (c.service.broker.empty()) return Status("bad_config", "setting broker is empty", "broker");
  if (c.service.service.empty()) return Status("bad_config", "setting service is empty", "service");
  if (c.service.service.rfind("mmi.", 0) == 0)
    return Status("bad_config", "service names starting with mmi. are reserved for the broker",
                  "service");
  if (!(st = integer("capacity", 1, c.service.capacity)).ok()) return st;
  if (!(st = integer("heartbeat_liveness", 1, c.service.heartbeat_liveness)).ok()) return st;
  if (!(st = millis("heartbeat_interval", c.service.heartbeat_interval)).ok()) return st;
  if (!(st = millis("reconnect_min", c.service.reconnect_min)).ok()) return st;
  if (!(st = millis("reconnect_max", c.service.reconnect_max)).ok()) return st;
  if (!(st = millis("idle_timeout", c.service.idle_timeout)).ok()) return st;
  if (c.service.heartbeat_interval.count() <= 0)
    return Status("bad_config", "setting heartbeat_interval must be positive",
                  "heartbeat_interval");
  if (c.service.reconnect_max < c.service.reconnect_min)
    c.service.reconnect_max = c.service.reconnect_min;
  auto warm = s.boolean("warm_on_start");
  if (!warm) return warm.status();
  c.service.warm_on_start = warm.value();

  c.lifecycle.checkpoint = s.text("checkpoint");
  if (c.lifecycle.checkpoint.empty())
    return Status("bad_config",
                  "serve needs a checkpoint: --checkpoint PATH or hf://OWNER/REPO/PATH",
                  "checkpoint");
  const std::string kind = s.text("model_kind");
  if (kind != "auto" && kind != "ecgfm" && kind != "torchscript")
    return Status("bad_config",
                  "setting model_kind = '" + kind + "': expected auto, ecgfm or torchscript",
                  "model_kind");
  const std::string precision = s.text("precision");
  if (precision != "fp32" && precision != "bf16")
    return Status("bad_config", "setting precision = '" + precision + "': expected fp32 or bf16",
                  "precision");
  // Refused here rather than at warm-up: a worker that can never load should not register.
  if (precision == "bf16") {
    if (Status bf16 = bf16_supported(); !bf16.ok()) return bf16;
  }
  c.lifecycle.load.model_kind = kind;
  c.lifecycle.load.precision = precision;
  int64_t split_layers = 0;
  if (!(st = integer("bf16_split_layers", -1, split_layers)).ok()) return st;
  c.lifecycle.load.bf16_split_layers = static_cast<int>(std::min<int64_t>(split_layers, 1000));
  int64_t threads = 0;
  if (!(st = integer("threads", 0, threads)).ok()) return st;
  c.lifecycle.load.intra_op_threads = static_cast<int>(threads);

  if (!(st = integer("max_batch", 1, c.runner.max_batch)).ok()) return st;
  int64_t delay_ms = 0;
  if (!(st = integer("max_batch_delay_ms", 0, delay_ms)).ok()) return st;
  // Bounds that catch typos (a batch of 80000 segments needs ~10 GB; a minute of waiting is never
  // what batching means).
  if (c.runner.max_batch > kMaxBatchLimit)
    return Status("bad_config",
                  "setting max_batch = " + s.text("max_batch") + " (from " + s.origin("max_batch") +
                      "): expected at most " + std::to_string(kMaxBatchLimit) + " segments",
                  "max_batch");
  if (delay_ms > kMaxBatchDelayLimitMs)
    return Status("bad_config",
                  "setting max_batch_delay_ms = " + s.text("max_batch_delay_ms") + " (from " +
                      s.origin("max_batch_delay_ms") + "): expected at most " +
                      std::to_string(kMaxBatchDelayLimitMs) + " ms",
                  "max_batch_delay_ms");
  c.service.max_batch_delay = Millis(delay_ms);
  auto seconds = s.number("max_record_seconds");
  if (!seconds) return seconds.status();
  if (seconds.value() <= 0)
    return Status("bad_config", "setting max_record_seconds must be positive",
                  "max_record_seconds");
  c.runner.limits.max_record_seconds = seconds.value();
  c.cache_dir = s.text("cache_dir");
  return Status::Ok();
}

int serve_command(int argc, char** argv) {
  Settings settings;
  declare_settings(settings);
  declare_hub_settings(settings);
  CLI::App app{"ecgq-worker serve: register with a broker and run ECG-FM jobs",
               "ecgq-worker serve"};
  std::string config_file;
  app.add_option("--config", config_file, "YAML file of settings (see config/worker.yaml)");
  settings.add_flags(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (!config_file.empty()) {
    Status st = settings.merge_yaml_file(config_file);
    if (!st.ok()) {
      std::cerr << "ecgq-worker: " << st.message() << "\n";
      return kExitUsage;
    }
  }
  settings.merge_environment();
  settings.apply_flags();
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
  if (config.lifecycle.load.intra_op_threads > 0)
    configure_threads(config.lifecycle.load.intra_op_threads);

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
    return st.code() == "bad_config" ? kExitUsage : kExitFailure;
  }
  spdlog::info("event=exit jobs_done={}", service.counters().jobs_done.load());
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
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
  } catch (const std::exception& e) {
    std::cerr << "ecgq-worker: " << e.what() << "\n";
    return kExitFailure;
  }
  std::cerr << "ecgq-worker: unknown command '" << command << "'\n\n" << kUsage;
  return kExitUsage;
}
