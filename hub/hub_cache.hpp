// Resolving a checkpoint reference (local path or hf://OWNER/REPO/PATH[@REVISION]) to a local
// file, through a cache in the huggingface_hub layout shared with Python tools and other workers.
#pragma once

#include <cstdint>
#include <string>

#include "common/duration.hpp"
#include "common/status.hpp"

namespace ecgq {

// How resolve_checkpoint() reaches the hub; empty strings fall back to the HF_* environment.
// The fields that are hub_* settings take their defaults from the settings table
// (hub/hub_settings.cpp).
struct HubOptions {
  // Every hub_* field at its settings-table default.
  HubOptions();

  std::string cache_dir;  // "": HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub
  std::string endpoint;   // "": HF_ENDPOINT, else https://huggingface.co
  std::string token;      // "": HF_TOKEN, else the token file huggingface-cli login wrote
  bool offline = false;   // hub_offline; also forced by HF_HUB_OFFLINE=1
  bool recheck = false;   // hub_recheck: a cached branch/tag revision is re-checked with one HEAD
  Millis connect_timeout{};        // hub_connect_timeout
  Millis metadata_timeout{10000};  // the HEAD request as a whole
  Millis
      stall_timeout{};  // hub_stall_timeout: fewer than low_speed_bytes in this time: hub_timeout
  int64_t low_speed_bytes = 1024;
  Millis progress_interval{};  // hub_progress_interval: how often a download logs its progress
  int download_attempts = 0;   // hub_download_attempts: interrupted or stalled downloads resume
};

// A checkpoint available as a local file.
struct ResolvedCheckpoint {
  std::string path;       // local file (for the hub: the snapshot symlink)
  std::string sha256;     // content hash, 64 lowercase hex
  std::string commit;     // hub commit ("" for a local path)
  std::string reference;  // the reference as given
  uint64_t size = 0;
  double download_ms = 0;   // time spent receiving bytes in this call (0 when cached)
  double verify_ms = 0;     // time spent hashing in this call
  double lock_wait_ms = 0;  // time spent waiting for another process's download
  bool downloaded = false;  // this call downloaded the bytes
};

// The cache directory the environment selects (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/...).
std::string default_hub_cache_dir();

// `options` with every empty field filled from the HF_* environment.
HubOptions hub_options_with_environment(HubOptions options);

// Resolves a local path (hashed once per path+size+mtime in this process) or an hf:// reference
// (downloaded once into the cache, verified, then served from it). Errors: bad_reference,
// checkpoint_not_found, hub_offline, hub_auth, hub_not_found, hub_unreachable, hub_timeout,
// hub_interrupted, hub_checksum_mismatch, disk_full, cache_readonly, io_error.
Expected<ResolvedCheckpoint> resolve_checkpoint(const std::string& reference,
                                                const HubOptions& options);

}  // namespace ecgq
