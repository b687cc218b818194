#include "hub/hub_settings.hpp"

#include <algorithm>

namespace ecgq {

void declare_hub_settings(Settings& s) {
  s.declare("hub_recheck", "true",
            "re-check a cached hf:// branch revision with one HEAD when the model loads");
  s.declare("hub_offline", "false", "hf:// references use the cache only (as HF_HUB_OFFLINE=1)");
  s.declare("hub_connect_timeout", "10s", "connect timeout for the hub");
  s.declare("hub_stall_timeout", "30s", "a hub download that stalls this long fails (resumable)");
  s.declare("hub_download_attempts", "3", "download attempts, each resuming the previous one");
  s.declare("hub_progress_interval", "5s", "how often a running download logs its progress");
}

Expected<HubOptions> hub_options_from_settings(const Settings& s) {
  HubOptions o;
  const auto& keys = s.keys();
  if (std::find(keys.begin(), keys.end(), "cache_dir") != keys.end()) {
    o.cache_dir = s.text("cache_dir");
  }
  auto recheck = s.boolean("hub_recheck");
  if (!recheck) return recheck.status();
  o.recheck = *recheck;
  auto offline = s.boolean("hub_offline");
  if (!offline) return offline.status();
  o.offline = *offline;
  auto connect = s.duration("hub_connect_timeout");
  if (!connect) return connect.status();
  o.connect_timeout = *connect;
  auto stall = s.duration("hub_stall_timeout");
  if (!stall) return stall.status();
  o.stall_timeout = *stall;
  auto interval = s.duration("hub_progress_interval");
  if (!interval) return interval.status();
  o.progress_interval = *interval;
  auto attempts = s.integer("hub_download_attempts");
  if (!attempts) return attempts.status();
  if (*attempts < 1) {
    return Status("bad_config", "setting hub_download_attempts must be at least 1",
                  "hub_download_attempts");
  }
  o.download_attempts = static_cast<int>(*attempts);
  return hub_options_with_environment(o);
}

}  // namespace ecgq
