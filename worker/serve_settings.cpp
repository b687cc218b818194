#include "worker/serve_settings.hpp"

#include "hub/hub_settings.hpp"

namespace ecgq {

const SettingsTable<ServeSettings>& serve_settings_table() {
  using S = ServeSettings;
  static const SettingsTable<S> table =
      SettingsTable<S>()
          .text("broker", "tcp://127.0.0.1:5555", "broker endpoint to connect to", &S::broker)
          .text("curve_cert", "", "own CURVE secret certificate (ecgq keygen); \"\" = plaintext",
                &S::curve_cert)
          .text("broker_key", "",
                "the broker's CURVE public certificate file or Z85 key (with curve_cert)",
                &S::broker_key)
          .text("service", "ecg-fm", "service name to register for", &S::service)
          .text("checkpoint", "",
                "checkpoint reference: a local path or hf://OWNER/REPO/PATH[@REV]", &S::checkpoint)
          .text("model_kind", "auto", "checkpoint kind: auto, ecgfm or torchscript", &S::model_kind)
          .text("precision", "fp32", "inference precision: fp32 or bf16", &S::precision)
          .integer(
              "bf16_split_layers", "-1",
              "bf16: last layers with hi+lo weights, more accurate and slower (-1 = default 6)",
              &S::bf16_split_layers)
          .duration("idle_timeout", "15m", "idle time after which the model is unloaded (asleep)",
                    &S::idle_timeout)
          .boolean("warm_on_start", "true", "load the model right after registering",
                   &S::warm_on_start)
          .duration("model_retry", "30s",
                    "delay before a failed model load is retried (doubles, up to 8x)",
                    &S::model_retry)
          .boolean("exit_on_load_failure", "false",
                   "exit with status 1 when the model cannot be loaded, instead of retrying",
                   &S::exit_on_load_failure)
          .integer("capacity", "2", "jobs the broker may hand this worker at once", &S::capacity)
          .integer("max_batch", "4", "5 s segments per forward pass (from one or several jobs)",
                   &S::max_batch)
          .integer("max_batch_delay_ms", "0",
                   "how long a batch waits for more jobs, in ms (0 = take what is queued, never "
                   "wait)",
                   &S::max_batch_delay_ms)
          .integer("threads", "0",
                   "inference threads (0 = every CPU this process may use: affinity mask, cgroup "
                   "CPU quota)",
                   &S::threads)
          .duration("heartbeat_interval", "2500ms", "MDP heartbeat interval (same as the broker's)",
                    &S::heartbeat_interval)
          .integer("heartbeat_liveness", "3", "silent heartbeat intervals before reconnecting",
                   &S::heartbeat_liveness)
          .duration("reconnect_min", "250ms", "first reconnect delay (doubles on each failure)",
                    &S::reconnect_min)
          .duration("reconnect_max", "30s", "largest reconnect delay", &S::reconnect_max)
          .number("max_record_seconds", "3600", "longest record accepted, in seconds",
                  &S::max_record_seconds)
          .text("cache_dir", "",
                "checkpoint cache for hf:// references (\"\" = HF_HUB_CACHE/HF_HOME)",
                &S::cache_dir)
          .text("worker_id", "", "worker id in results and READY (\"\" = hostname-pid)",
                &S::worker_id)
          .text("log_level", "info", "trace, debug, info, warn or error", &S::log_level);
  return table;
}

ServeSettings::ServeSettings() {
  serve_settings_table().read_defaults(*this);
}

void declare_serve_settings(Settings& settings) {
  serve_settings_table().declare(settings);
  declare_hub_settings(settings);
}

}  // namespace ecgq
