#include "hub/hub_settings.hpp"

namespace ecgq {

const SettingsTable<HubOptions>& hub_settings_table() {
  using O = HubOptions;
  static const SettingsTable<O> table =
      SettingsTable<O>()
          .boolean("hub_recheck", "true",
                   "re-check a cached hf:// branch revision with one HEAD when the model loads",
                   &O::recheck)
          .boolean("hub_offline", "false",
                   "hf:// references use the cache only (as HF_HUB_OFFLINE=1)", &O::offline)
          .duration("hub_connect_timeout", "10s", "connect timeout for the hub",
                    &O::connect_timeout)
          .duration("hub_stall_timeout", "30s",
                    "a hub download that stalls this long fails (resumable)", &O::stall_timeout)
          .integer("hub_download_attempts", "3",
                   "download attempts, each resuming the previous one", &O::download_attempts)
          .duration("hub_progress_interval", "5s", "how often a running download logs its progress",
                    &O::progress_interval);
  return table;
}

HubOptions::HubOptions() {
  hub_settings_table().read_defaults(*this);
}

void declare_hub_settings(Settings& s) {
  hub_settings_table().declare(s);
}

Expected<HubOptions> hub_options_from_settings(const Settings& s) {
  HubOptions o;
  if (s.has("cache_dir")) o.cache_dir = s.text("cache_dir");
  RETURN_IF_ERROR(hub_settings_table().read(s, o));
  if (o.download_attempts < 1) {
    return Status(ErrorCode::BadConfig, "setting hub_download_attempts must be at least 1",
                  "hub_download_attempts");
  }
  return hub_options_with_environment(o);
}

}  // namespace ecgq
