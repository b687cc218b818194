#include "worker/fetch_command.hpp"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "common/duration.hpp"
#include "hub/hub_cache.hpp"
#include "common/cli_exit.hpp"
#include "common/logging.hpp"

namespace ecgq {

int fetch_command(int argc, char** argv) {
  CLI::App app(
      "Download a checkpoint into the shared cache (huggingface_hub layout) and print "
      "its sha256 and local path",
      "ecgq-worker fetch");
  std::string reference;
  std::string cache_dir;
  std::string stall_timeout = "30s";
  std::string log_level = "info";
  bool offline = false;
  bool no_recheck = false;
  int attempts = 3;
  app.add_option("reference", reference, "hf://OWNER/REPO/PATH[@REVISION] or a local path")
      ->required();
  app.add_option("--cache-dir", cache_dir,
                 "cache directory (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)");
  app.add_flag("--offline", offline, "use the cache only (same as HF_HUB_OFFLINE=1)");
  app.add_flag("--no-recheck", no_recheck,
               "trust a cached branch revision without asking the hub for its latest commit");
  app.add_option("--stall-timeout", stall_timeout,
                 "abort a download that makes no progress for this long (e.g. 30s)");
  app.add_option("--attempts", attempts, "download attempts, resuming after interruptions")
      ->check(CLI::PositiveNumber);
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error");
  app.set_version_flag("--version", std::string("ecgq-worker ") + ECGQ_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return parse_error_exit(app, e, "ecgq-worker fetch");
  }
  auto stall = parse_duration(stall_timeout);
  if (!stall) {
    std::fprintf(stderr, "error: --stall-timeout: %s\n", stall.status().to_string().c_str());
    return 2;
  }
  if (!spdlog::get("worker")) init_logging("worker", log_level);
  HubOptions options;
  options.cache_dir = cache_dir;
  options.offline = offline;
  options.recheck = !no_recheck;
  options.stall_timeout = *stall;
  options.download_attempts = attempts;
  auto resolved = resolve_checkpoint(reference, options);
  if (!resolved) {
    std::fprintf(stderr, "error: %s\n", resolved.status().to_string().c_str());
    return 1;
  }
  spdlog::info(
      "event=fetch_done ref={} path={} sha256={} commit={} bytes={} downloaded={} "
      "download_ms={:.0f} "
      "verify_ms={:.0f} lock_wait_ms={:.0f}",
      reference, resolved->path, resolved->sha256, resolved->commit, resolved->size,
      resolved->downloaded, resolved->download_ms, resolved->verify_ms, resolved->lock_wait_ms);
  std::printf("%s  %s\n", resolved->sha256.c_str(), resolved->path.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace ecgq
