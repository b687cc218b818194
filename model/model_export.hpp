// The compact model file (docs/model-file.md): `ecgq-worker export` writes it from a checkpoint,
// load_model reads it back. Torch-free header.
#pragma once

#include <memory>
#include <string>

#include "common/status.hpp"
#include "model/model.hpp"

namespace ecgq {

// What to export and how.
struct ExportOptions {
  std::string precision = "fp32";  // "fp32" or "bf16"
  int bf16_split_layers = -1;      // bf16: last layers with hi+lo weights (-1 = default)
  std::string source_sha256;       // the checkpoint's sha256, which results will name
  std::string source_name;         // its reference, for people (inspect)
  // The layers' projections stored in the packed layout this CPU's kernels use (a load on a CPU
  // that wants the same one maps them in place; another repacks them); false: plain row-major.
  bool packed_layout = true;
};

// What an export wrote.
struct ExportReport {
  uint64_t bytes = 0;         // size of the file
  int64_t tensors = 0;        // tensors in it
  std::string summary;        // the architecture line
  int64_t packed_layers = 0;  // layers stored in a packed layout
  std::string packed_for;     // the kernel that layout is for ("brg:avx512_core_amx_bf16")
};

// Loads the fairseq-signals ECG-FM checkpoint at `checkpoint` in `options.precision` and writes
// its folded weights, architecture, labels and source sha256 to `out` (training state is not
// carried). Errors name the file and the reason.
Expected<ExportReport> export_checkpoint(const std::string& checkpoint,
                                         const ExportOptions& options, const std::string& out);

// True when the file at `path` is a model file (by its magic number, not its name).
bool is_model_file(const std::string& path);

// Loads a model file verified in full (magic, format version, size, checksum) into private
// memory and packs its weights as a checkpoint's load does; the model then holds its own copy of
// every weight and that memory is released (with packing off, ECGQ_PACKED_WEIGHTS=0 or
// LoadOptions::pack_weights, the weights are tensors over it). A precision the caller set that
// differs from the file's is an error naming both.
Expected<std::unique_ptr<Model>> load_model_file(const std::string& path,
                                                 const LoadOptions& options);

// The precision and source sha256 a model file declares, without reading its weights (the
// worker names its model before loading it); "" for both when `path` is not a model file.
struct ModelFileIdentity {
  std::string precision;
  std::string source_sha256;
};
ModelFileIdentity peek_model_file_identity(const std::string& path);

}  // namespace ecgq
