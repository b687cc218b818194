#include "worker/export_command.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "common/cli_exit.hpp"
#include "common/sha256.hpp"
#include "common/time.hpp"
#include "model/model_export.hpp"
#include "worker/lifecycle.hpp"
#include "worker/model_tools.hpp"

namespace ecgq {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;

int fail(const std::string& reason) {
  std::cerr << "ecgq-worker export: " << reason.substr(0, reason.find('\n')) << "\n";
  return kExitFailure;
}

}  // namespace

int export_command(int argc, char** argv) {
  CLI::App app(
      "Write a compact model file: folded weights in the export's precision, architecture, "
      "labels and the source checkpoint's sha256 (no training state); load it with --checkpoint",
      "ecgq-worker export");
  std::string checkpoint, out;
  ExportOptions options;
  app.add_option("--checkpoint", checkpoint,
                 "fairseq-signals ECG-FM checkpoint: a path or hf://OWNER/REPO/PATH[@REVISION]")
      ->required();
  app.add_option("--precision", options.precision,
                 "fp32, or bf16 (projections in bfloat16; needs AVX-512 BF16 or AMX)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--bf16-split-layers", options.bf16_split_layers,
                 "bf16: last layers with hi+lo weights (more accurate, slower; -1 = default)")
      ->check(CLI::Range(-1, 1000));
  std::string layout = "packed";
  app.add_option(
         "--layout", layout,
         "packed (the layers' weights in the layout this CPU's kernels use: loads with no "
         "repacking on a CPU that wants the same, repacked on another) or plain (row-major)")
      ->check(CLI::IsMember({"packed", "plain"}));
  app.add_option("--out", out, "the model file to write (replaced atomically)")->required();
  app.set_version_flag("--version", std::string("ecgq-worker ") + ECGQ_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return parse_error_exit(app, e, "ecgq-worker export");
  }
  const auto start = SteadyClock::now();
  auto resolved = resolve_with_environment(checkpoint);
  if (!resolved) return fail(resolved.status().message());
  options.source_sha256 = resolved->sha256;
  if (options.source_sha256.empty()) {
    auto hashed = sha256_file(resolved->path);
    if (!hashed) return fail(hashed.status().message());
    options.source_sha256 = hashed.value();
  }
  options.source_name = checkpoint;
  options.packed_layout = layout == "packed";
  auto report = export_checkpoint(resolved->path, options, out);
  if (!report) return fail(report.status().message());
  std::printf("%s -> %s: %s, %lld tensors, %llu bytes, source sha256 %s (%.0f ms)\n",
              checkpoint.c_str(), out.c_str(), options.precision.c_str(),
              static_cast<long long>(report->tensors),
              static_cast<unsigned long long>(report->bytes), options.source_sha256.c_str(),
              ms_since(start));
  if (report->packed_layers > 0)
    std::printf("layers stored packed: %lld, for %s\n",
                static_cast<long long>(report->packed_layers), report->packed_for.c_str());
  else if (options.packed_layout)
    std::printf("layers stored plain: oneDNN offers no packed kernel on this CPU\n");
  end_one_shot_command(kExitOk);
}

}  // namespace ecgq
