// Reading fairseq-signals checkpoints (torch zip + pickle) without LibTorch and without
// executing anything; see ../shared/docs/ecgfm-model.md section 6.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/status.hpp"

namespace ecgq::ckpt {

class ByteSource;  // worker/zip_archive.hpp

// Element types of torch storages.
enum class DType { F32, F64, F16, BF16, I64, I32, I16, I8, U8, Bool };

// Bytes per element.
size_t dtype_size(DType dtype);
// "f32", "bf16", ... for messages.
const char* dtype_name(DType dtype);

// One storage record of the archive (`<prefix>/data/<key>`).
struct StorageInfo {
  std::string key;
  DType dtype = DType::F32;
  uint64_t numel = 0;
  uint64_t file_offset = 0;  // absolute offset of the first byte in the file
};

// One tensor of `model` (the state_dict): a strided view of a storage.
struct TensorInfo {
  std::string name;
  std::string storage_key;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;
  int64_t storage_offset = 0;  // in elements
};

// A scalar of cfg["model"]; lists and dicts appear as a Python-like repr string.
using CfgValue = std::variant<std::monostate, bool, int64_t, double, std::string>;

// What the reader extracted from a checkpoint.
struct Checkpoint {
  std::string path;
  uint64_t file_size = 0;
  std::string archive_prefix;                   // e.g. "archive"
  std::map<std::string, CfgValue> model_cfg;    // cfg["model"], top-level keys
  std::vector<TensorInfo> tensors;              // model state_dict, in file order
  std::map<std::string, StorageInfo> storages;  // only storages referenced by `tensors`
  std::vector<std::string> skipped;             // top-level keys parsed past (optimizer state...)
  uint64_t skipped_storage_bytes = 0;           // bytes of storages never read
  // The open file (or memory) that read_storage reads from; shared by copies of this struct.
  std::shared_ptr<const ByteSource> source;
};

// Parses the archive directory and data.pkl; reads no tensor bytes.
Expected<Checkpoint> read_checkpoint(const std::string& path);
// Parses an in-memory archive (the fuzz target and tests use this).
Expected<Checkpoint> read_checkpoint_bytes(const std::string& bytes);

// Number of elements of `tensor` (product of its shape; validated not to overflow).
uint64_t tensor_numel(const TensorInfo& tensor);
// True when the strides are those of a row-major (C-order) tensor of this shape.
bool is_contiguous(const TensorInfo& tensor);

// Copies `nbytes` bytes of storage `key`, from byte `byte_offset` of that storage, into `dst`.
Status read_storage(const Checkpoint& checkpoint, const std::string& key, uint64_t byte_offset,
                    uint64_t nbytes, void* dst);

// Where the bytes of a contiguous, non-empty `tensor` start in the file, once the checks
// read_tensor makes have passed; nullopt for an empty or strided tensor (read those).
Expected<std::optional<uint64_t>> contiguous_file_offset(const Checkpoint& checkpoint,
                                                         const TensorInfo& tensor);

// Copies the elements of `tensor` into `dst` in row-major order (tensor_numel * dtype_size bytes),
// gathering strided or offset views of a shared storage. The one reader of tensor bytes: the
// model's weight loader reads through it and converts the dtype.
Status read_tensor(const Checkpoint& checkpoint, const TensorInfo& tensor, void* dst);

}  // namespace ecgq::ckpt
