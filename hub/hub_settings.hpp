// The hub_* settings a service declares to configure resolve_checkpoint() from YAML, ECGQ_*
// environment variables and flags.
#pragma once

#include "common/settings.hpp"
#include "common/settings_table.hpp"
#include "common/status.hpp"
#include "hub/hub_cache.hpp"

namespace ecgq {

// The hub_* settings: key, default, type and help of each, bound to its HubOptions field.
const SettingsTable<HubOptions>& hub_settings_table();

// Declares hub_recheck, hub_offline, hub_connect_timeout, hub_stall_timeout,
// hub_download_attempts and hub_progress_interval with their defaults.
void declare_hub_settings(Settings& settings);

// HubOptions from the settings declared by declare_hub_settings() (plus "cache_dir" when the
// service declared it), completed from the HF_* environment; bad_config names a bad key.
Expected<HubOptions> hub_options_from_settings(const Settings& settings);

}  // namespace ecgq
