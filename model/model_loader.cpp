// load_model(): checkpoint kind detection and dispatch; configure_threads().
#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>
#include <dlfcn.h>

#include <mutex>

#include "common/cpu_budget.hpp"
#include "model/checkpoint.hpp"
#include "model/ecgfm_model.hpp"
#include "model/model.hpp"
#include "model/model_export.hpp"
#include "model/torchscript_model.hpp"

namespace ecgq {
namespace {

// True for a TorchScript archive (it always has <prefix>/constants.pkl). TorchScript archives
// compress their code records, which the checkpoint reader's STORED-only zip parser refuses,
// so this asks LibTorch's own container reader.
bool is_torchscript(const std::string& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    return reader.hasRecord("constants.pkl");
  } catch (...) {
    return false;
  }
}

Expected<std::unique_ptr<Model>> load_fairseq(const std::string& path, const LoadOptions& options) {
  auto checkpoint = ckpt::read_checkpoint(path);
  if (!checkpoint.ok()) {
    const Status& s = checkpoint.status();
    bool named = s.message().find(path) != std::string::npos;
    return named ? s : s.with_context(path);
  }
  return load_ecgfm(checkpoint.value(), options);
}

}  // namespace

Expected<std::unique_ptr<Model>> load_model(const std::string& path, const LoadOptions& options) {
  if (options.intra_op_threads > 0) configure_threads(options.intra_op_threads);
  if (options.model_kind == "torchscript") return load_torchscript(path, options);
  // A compact model file (ecgq-worker export) is told apart by its magic number.
  if (is_model_file(path)) return load_model_file(path, options);
  if (options.model_kind == "ecgfm") return load_fairseq(path, options);
  if (options.model_kind != "auto")
    return Status(ErrorCode::BadConfig,
                  "model kind '" + options.model_kind + "' is not one of auto, ecgfm, torchscript",
                  "model_kind");
  if (is_torchscript(path)) return load_torchscript(path, options);
  // Everything else goes to the checkpoint reader, whose errors say what is wrong with the file.
  return load_fairseq(path, options);
}

std::string configure_threads(int intra_op_threads) {
  const CpuBudget budget = process_cpu_budget();
  std::string choice = budget.describe();
  if (intra_op_threads > 0) {
    choice = std::to_string(intra_op_threads) + " (as set; " + budget.sources() + ")";
  } else {
    intra_op_threads = budget.threads;
  }
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
  // Each thread of this thread's OpenMP team sets LibTorch's thread count again at its first
  // parallel ATen op, and every setting recreates LibTorch's pthreadpool (which nothing here
  // uses), whose new worker then spin-waits ~15 ms on a core. Left to the first forward pass,
  // that took ~25 ms of CPU from it (perf, 8 segments); done now, back to back, each recreation
  // ends the previous spinner and one ~15 ms spin is left, here.
  at::parallel_for(0, intra_op_threads, 1, [](int64_t, int64_t) { (void)at::get_num_threads(); });
  return choice;
}

}  // namespace ecgq
