// load_model(): checkpoint kind detection and dispatch; configure_threads().
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <mutex>

#include "worker/checkpoint.hpp"
#include "worker/ecgfm_model.hpp"
#include "worker/model.hpp"
#include "worker/torchscript_model.hpp"
#include "worker/zip_archive.hpp"

namespace ecgq {
namespace {

// What the archive's record names say it is.
struct ArchiveKind {
  bool torchscript = false;  // has <prefix>/constants.pkl or <prefix>/code/
  bool pickle = false;       // has <prefix>/data.pkl
};

Expected<ArchiveKind> sniff(const std::string& path) {
  auto source = ckpt::open_file_source(path);
  if (!source.ok()) return source.status();
  auto zip = ckpt::ZipArchive::open(source.value());
  if (!zip.ok())
    return Status("bad_checkpoint",
                  path + ": not a torch checkpoint archive (" + zip.status().message() + ")",
                  "checkpoint");
  ArchiveKind k;
  for (const auto& r : zip->records()) {
    size_t slash = r.name.find('/');
    std::string rest = slash == std::string::npos ? r.name : r.name.substr(slash + 1);
    if (rest == "constants.pkl" || rest.compare(0, 5, "code/") == 0) k.torchscript = true;
    if (rest == "data.pkl") k.pickle = true;
  }
  return k;
}

Expected<std::unique_ptr<Model>> load_fairseq(const std::string& path, const LoadOptions& options) {
  auto checkpoint = ckpt::read_checkpoint(path);
  if (!checkpoint.ok()) {
    const Status& s = checkpoint.status();
    bool named = s.message().find(path) != std::string::npos;
    return Status(s.code(), named ? s.message() : path + ": " + s.message(), s.field());
  }
  return load_ecgfm(checkpoint.value(), options);
}

}  // namespace

Expected<std::unique_ptr<Model>> load_model(const std::string& path, const LoadOptions& options) {
  if (options.intra_op_threads > 0) configure_threads(options.intra_op_threads);
  if (options.model_kind == "torchscript") return load_torchscript(path, options);
  if (options.model_kind == "ecgfm") return load_fairseq(path, options);
  if (options.model_kind != "auto")
    return Status("bad_config",
                  "model kind '" + options.model_kind + "' is not one of auto, ecgfm, torchscript",
                  "model_kind");
  auto kind = sniff(path);
  if (!kind.ok()) return kind.status();
  if (kind->torchscript) return load_torchscript(path, options);
  if (kind->pickle) return load_fairseq(path, options);
  return Status("unsupported_model",
                path +
                    ": zip archive has neither */data.pkl (fairseq checkpoint) nor "
                    "*/constants.pkl (TorchScript)",
                "checkpoint");
}

void configure_threads(int intra_op_threads) {
  if (intra_op_threads <= 0) return;
  at::set_num_threads(intra_op_threads);
  // Inter-op threads can be set only once per process, before any inter-op work.
  static std::once_flag interop_once;
  std::call_once(interop_once, [] {
    try {
      at::set_num_interop_threads(1);
    } catch (...) {
    }
  });
  // The BLAS and OpenMP runtimes torch links may keep their own pools; size them too.
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads")))
    f(intra_op_threads);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    f(intra_op_threads);
}

}  // namespace ecgq
