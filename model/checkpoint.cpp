#include "model/checkpoint.hpp"

#include <cstring>
#include <set>
#include <string_view>
#include <unordered_set>

#include "model/pickle_machine.hpp"
#include "model/zip_archive.hpp"

namespace ecgq::ckpt {
namespace {

// data.pkl of ECG-FM is ~230 KB; anything this large is not a model checkpoint.
constexpr uint64_t kMaxPickleBytes = 32ull << 20;
// Total size of the repr strings kept from cfg["model"].
constexpr size_t kMaxCfgRepr = 1u << 20;
constexpr size_t kMaxSkippedNames = 256;

Status bad(const std::string& what) {
  return Status(ErrorCode::BadCheckpoint, what, "checkpoint");
}

std::string quoted(const std::string& s) {
  return python_str_repr(s, 200);
}

// a * b, or false on uint64 overflow.
bool mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
bool add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

// Finds the single `<prefix>/data.pkl` record.
Expected<std::string> find_prefix(const ZipArchive& zip) {
  std::vector<std::string> found;
  for (const ZipRecord& r : zip.records()) {
    static const std::string kSuffix = "/data.pkl";
    if (r.name.size() > kSuffix.size() &&
        r.name.compare(r.name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
      std::string prefix = r.name.substr(0, r.name.size() - kSuffix.size());
      if (prefix.find('/') == std::string::npos) found.push_back(prefix);
    }
  }
  if (found.size() == 1) return found[0];
  if (found.empty()) {
    std::string names;
    for (size_t k = 0; k < zip.records().size() && k < 5; ++k) {
      names += (k ? ", " : "") + quoted(zip.records()[k].name);
    }
    return bad(zip.source()->name() +
               ": no '<prefix>/data.pkl' record, so this is not a torch "
               "zip checkpoint (" +
               std::to_string(zip.records().size()) + " records: " + names + ")");
  }
  return bad(zip.source()->name() + ": " + std::to_string(found.size()) + " data.pkl records (" +
             quoted(found[0] + "/data.pkl") + ", " + quoted(found[1] + "/data.pkl") +
             "); expected exactly one");
}

// cfg["model"] top-level entries: scalars as values, containers as their repr.
Status extract_cfg(const PyHeap& heap, uint32_t root, Checkpoint* cp) {
  const uint32_t cfg = heap.dict_get(root, "cfg");
  if (cfg == UINT32_MAX || heap.at(cfg).kind != PyKind::Dict) return Status::Ok();
  const uint32_t model = heap.dict_get(cfg, "model");
  if (model == UINT32_MAX) return Status::Ok();
  if (heap.at(model).kind != PyKind::Dict) {
    return bad("cfg['model'] is a " + heap.type_name(model) + ", expected a dict");
  }
  size_t repr_bytes = 0;
  const auto& items = heap.at(model).items;
  for (size_t k = 0; k + 1 < items.size(); k += 2) {
    const PyNode& key = heap.at(items[k]);
    if (key.kind != PyKind::Str) continue;  // cfg keys are field names; nothing else is usable
    const PyNode& v = heap.at(items[k + 1]);
    CfgValue value;
    switch (v.kind) {
      case PyKind::None:
        break;
      case PyKind::Bool:
        value = bool(v.i);
        break;
      case PyKind::Int:
        value = v.i;
        break;
      case PyKind::Float:
        value = v.f;
        break;
      case PyKind::Str:
        value = v.s;
        break;
      default:
        value = heap.repr(items[k + 1]);
        break;
    }
    if (const auto* s = std::get_if<std::string>(&value)) repr_bytes += s->size() + key.s.size();
    if (repr_bytes > kMaxCfgRepr) {
      return bad("cfg['model'] holds more than " + std::to_string(kMaxCfgRepr) +
                 " bytes of text; not a model config");
    }
    cp->model_cfg[key.s] = std::move(value);
  }
  return Status::Ok();
}

// Resolves the storage of one model tensor and checks it against its record.
Status add_storage(const ZipArchive& zip, const std::string& prefix, const PyNode& st,
                   const std::string& tensor, Checkpoint* cp) {
  auto it = cp->storages.find(st.s);
  if (it != cp->storages.end()) {
    if (it->second.dtype != st.dtype || it->second.numel != uint64_t(st.i)) {
      return bad("storage " + quoted(st.s) + " is declared twice with different types or sizes (" +
                 dtype_name(it->second.dtype) + "[" + std::to_string(it->second.numel) + "] vs " +
                 dtype_name(st.dtype) + "[" + std::to_string(st.i) + "], tensor " + quoted(tensor) +
                 ")");
    }
    return Status::Ok();
  }
  const std::string record_name = prefix + "/data/" + st.s;
  const ZipRecord* rec = zip.find(record_name);
  if (!rec) {
    return bad("tensor " + quoted(tensor) + " refers to storage " + quoted(st.s) + " but record " +
               quoted(record_name) + " does not exist");
  }
  uint64_t nbytes = 0;
  if (!mul(uint64_t(st.i), dtype_size(st.dtype), &nbytes) || nbytes != rec->size) {
    return bad("storage " + quoted(st.s) + " of tensor " + quoted(tensor) + " declares " +
               std::to_string(st.i) + " " + dtype_name(st.dtype) + " elements but record " +
               quoted(record_name) + " holds " + std::to_string(rec->size) + " bytes");
  }
  ASSIGN_OR_RETURN(auto offset, zip.data_offset(*rec));
  StorageInfo info;
  info.key = st.s;
  info.dtype = st.dtype;
  info.numel = uint64_t(st.i);
  info.file_offset = offset;
  cp->storages.emplace(st.s, std::move(info));
  return Status::Ok();
}

// Checks that every element of `t` lies inside its storage and that a dense copy of it (what a
// loader allocates) is no larger than the file, which rules out huge stride-0 broadcasts.
Status check_extent(const TensorInfo& t, const StorageInfo& storage, uint64_t file_size) {
  uint64_t numel = 1, last = uint64_t(t.storage_offset);
  for (size_t d = 0; d < t.shape.size(); ++d) {
    uint64_t span = 0;
    if (!mul(numel, uint64_t(t.shape[d]), &numel)) {
      return bad("tensor " + quoted(t.name) + ": shape overflows 64 bits in dimension " +
                 std::to_string(d));
    }
    if (t.shape[d] > 0 &&
        (!mul(uint64_t(t.shape[d] - 1), uint64_t(t.stride[d]), &span) || !add(last, span, &last))) {
      return bad("tensor " + quoted(t.name) + ": extent overflows 64 bits in dimension " +
                 std::to_string(d));
    }
  }
  uint64_t bytes = 0;
  if (!mul(numel, dtype_size(t.dtype), &bytes) || bytes > file_size) {
    return bad("tensor " + quoted(t.name) + " has " + std::to_string(numel) +
               " elements, more than the " + std::to_string(file_size) +
               "-byte file can hold densely");
  }
  if (numel > 0 && last >= storage.numel) {
    return bad("tensor " + quoted(t.name) + " (offset " + std::to_string(t.storage_offset) + ", " +
               std::to_string(t.shape.size()) + " dims) reaches element " + std::to_string(last) +
               " but storage " + quoted(storage.key) + " has only " +
               std::to_string(storage.numel) + " elements");
  }
  return Status::Ok();
}

Status extract_model(const PyHeap& heap, uint32_t root, const ZipArchive& zip,
                     const std::string& prefix, Checkpoint* cp) {
  const uint32_t model = heap.dict_get(root, "model");
  if (model == UINT32_MAX) return bad("the checkpoint has no 'model' entry (no state_dict)");
  if (heap.at(model).kind != PyKind::Dict) {
    return bad("'model' is a " + heap.type_name(model) + ", expected a state_dict (OrderedDict)");
  }
  const auto& items = heap.at(model).items;
  std::unordered_set<std::string_view> seen;
  for (size_t k = 0; k + 1 < items.size(); k += 2) {
    const PyNode& key = heap.at(items[k]);
    if (key.kind != PyKind::Str) {
      return bad("model key " + heap.repr(items[k], 100) + " is not a str");
    }
    if (!seen.insert(key.s).second) return bad("model has the tensor " + quoted(key.s) + " twice");
    const uint32_t value = items[k + 1];
    if (heap.at(value).kind != PyKind::Tensor) {
      return bad("model[" + quoted(key.s) + "] is a " + heap.type_name(value) +
                 ", expected a tensor");
    }
    const PyNode& tn = heap.at(value);
    const PyNode& st = heap.at(tn.items[0]);
    TensorInfo t;
    t.name = key.s;
    t.storage_key = st.s;
    t.dtype = st.dtype;
    t.storage_offset = tn.i;
    for (uint32_t d : heap.at(tn.items[1]).items) t.shape.push_back(heap.at(d).i);
    for (uint32_t d : heap.at(tn.items[2]).items) t.stride.push_back(heap.at(d).i);
    RETURN_IF_ERROR(add_storage(zip, prefix, st, t.name, cp));
    RETURN_IF_ERROR(check_extent(t, cp->storages.at(st.s), cp->file_size));
    cp->tensors.push_back(std::move(t));
  }
  return Status::Ok();
}

Expected<Checkpoint> read_from(std::shared_ptr<const ByteSource> source, const std::string& path) {
  ASSIGN_OR_RETURN(auto zip, ZipArchive::open(source));
  ASSIGN_OR_RETURN(auto prefix, find_prefix(zip));
  Checkpoint cp;
  cp.path = path;
  cp.file_size = source->size();
  cp.archive_prefix = prefix;
  cp.source = source;

  if (const ZipRecord* bo = zip.find(prefix + "/byteorder")) {
    ASSIGN_OR_RETURN(auto order, zip.read_record(*bo, 64));
    if (order != "little") {
      return bad("record " + quoted(bo->name) + " says byte order " + quoted(order) +
                 "; only little-endian checkpoints are supported");
    }
  }
  const std::string pkl_name = prefix + "/data.pkl";
  const ZipRecord* pkl = zip.find(pkl_name);
  ASSIGN_OR_RETURN(auto pkl_offset, zip.data_offset(*pkl));
  ASSIGN_OR_RETURN(auto pickle, zip.read_record(*pkl, kMaxPickleBytes));
  ASSIGN_OR_RETURN(auto result, run_pickle(pickle, pkl_name, pkl_offset));
  const PyHeap& heap = result.heap;
  const uint32_t root = result.root;
  if (heap.at(root).kind != PyKind::Dict) {
    return bad(pkl_name + " holds a " + heap.type_name(root) +
               ", expected the checkpoint dict (a bare state_dict or model object is not a "
               "fairseq checkpoint)");
  }
  RETURN_IF_ERROR(extract_cfg(heap, root, &cp));
  RETURN_IF_ERROR(extract_model(heap, root, zip, prefix, &cp));

  const auto& top = heap.at(root).items;
  size_t unnamed = 0;
  for (size_t k = 0; k + 1 < top.size(); k += 2) {
    const PyNode& key = heap.at(top[k]);
    if (key.kind == PyKind::Str && (key.s == "cfg" || key.s == "model")) continue;
    if (cp.skipped.size() < kMaxSkippedNames) {
      cp.skipped.push_back(key.kind == PyKind::Str ? key.s.substr(0, 200) : heap.repr(top[k], 200));
    } else {
      ++unnamed;
    }
  }
  if (unnamed) cp.skipped.push_back("... and " + std::to_string(unnamed) + " more");

  const std::string data_dir = prefix + "/data/";
  for (const ZipRecord& r : zip.records()) {
    if (r.name.compare(0, data_dir.size(), data_dir) == 0 &&
        cp.storages.count(r.name.substr(data_dir.size())) == 0) {
      cp.skipped_storage_bytes += r.size;
    }
  }
  return cp;
}

const StorageInfo* find_storage(const Checkpoint& cp, const std::string& key) {
  auto it = cp.storages.find(key);
  return it == cp.storages.end() ? nullptr : &it->second;
}

}  // namespace

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::Bool:
      return 1;
  }
  return 1;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "f32";
    case DType::F64:
      return "f64";
    case DType::F16:
      return "f16";
    case DType::BF16:
      return "bf16";
    case DType::I64:
      return "i64";
    case DType::I32:
      return "i32";
    case DType::I16:
      return "i16";
    case DType::I8:
      return "i8";
    case DType::U8:
      return "u8";
    case DType::Bool:
      return "bool";
  }
  return "?";
}

Expected<Checkpoint> read_checkpoint(const std::string& path) {
  ASSIGN_OR_RETURN(auto source, open_file_source(path));
  auto cp = read_from(source, path);
  if (!cp && cp.status().message().rfind(path, 0) != 0) {
    return Status(cp.status().code(), path + ": " + cp.status().message(), "checkpoint");
  }
  return cp;
}

Expected<Checkpoint> read_checkpoint_bytes(const std::string& bytes) {
  return read_from(make_memory_source(bytes), "");
}

uint64_t tensor_numel(const TensorInfo& tensor) {
  uint64_t n = 1;
  for (int64_t d : tensor.shape) n *= uint64_t(d);
  return n;
}

bool is_contiguous(const TensorInfo& tensor) {
  int64_t expected = 1;
  for (size_t d = tensor.shape.size(); d-- > 0;) {
    if (tensor.shape[d] != 1 && tensor.stride[d] != expected) return false;
    expected *= tensor.shape[d];
  }
  return true;
}

namespace {

Status unused_storage(const Checkpoint& checkpoint, const std::string& key) {
  return bad("storage " + quoted(key) + " is not used by any model tensor of " +
             (checkpoint.path.empty() ? std::string("the checkpoint") : checkpoint.path));
}

// The storage of `tensor` once it is known to exist, to have the tensor's type and to hold every
// element the view reaches.
Expected<const StorageInfo*> checked_storage(const Checkpoint& checkpoint,
                                             const TensorInfo& tensor) {
  const StorageInfo* st = find_storage(checkpoint, tensor.storage_key);
  if (!st) return unused_storage(checkpoint, tensor.storage_key);
  if (st->dtype != tensor.dtype || tensor.shape.size() != tensor.stride.size()) {
    return bad("tensor " + quoted(tensor.name) + " does not match its storage");
  }
  RETURN_IF_ERROR(check_extent(tensor, *st, checkpoint.file_size));
  return st;
}

}  // namespace

Status read_storage(const Checkpoint& checkpoint, const std::string& key, uint64_t byte_offset,
                    uint64_t nbytes, void* dst) {
  const StorageInfo* st = find_storage(checkpoint, key);
  if (!st) return unused_storage(checkpoint, key);
  const uint64_t size = st->numel * dtype_size(st->dtype);
  if (byte_offset > size || nbytes > size - byte_offset) {
    return bad("read of " + std::to_string(nbytes) + " bytes at byte " +
               std::to_string(byte_offset) + " of storage " + quoted(key) + " (" +
               std::to_string(size) + " bytes) is out of range");
  }
  if (!checkpoint.source) return bad("checkpoint has no open source to read storage bytes from");
  return checkpoint.source->read(st->file_offset + byte_offset, nbytes, dst);
}

Expected<std::optional<uint64_t>> contiguous_file_offset(const Checkpoint& checkpoint,
                                                         const TensorInfo& tensor) {
  ASSIGN_OR_RETURN(const StorageInfo* st, checked_storage(checkpoint, tensor));
  if (tensor_numel(tensor) == 0 || !is_contiguous(tensor)) return std::optional<uint64_t>();
  return std::optional<uint64_t>(st->file_offset +
                                 uint64_t(tensor.storage_offset) * dtype_size(tensor.dtype));
}

Status read_tensor(const Checkpoint& checkpoint, const TensorInfo& tensor, void* dst) {
  RETURN_IF_ERROR(checked_storage(checkpoint, tensor).status());
  const uint64_t es = dtype_size(tensor.dtype);
  const uint64_t numel = tensor_numel(tensor);
  if (numel == 0) return Status::Ok();
  if (is_contiguous(tensor)) {
    return read_storage(checkpoint, tensor.storage_key, uint64_t(tensor.storage_offset) * es,
                        numel * es, dst);
  }
  // Strided view: read the span it covers once, then gather it, a row at a time when the last
  // dimension is dense, else element by element.
  uint64_t last = uint64_t(tensor.storage_offset);
  for (size_t d = 0; d < tensor.shape.size(); ++d) {
    last += uint64_t(tensor.shape[d] - 1) * uint64_t(tensor.stride[d]);
  }
  const uint64_t first = uint64_t(tensor.storage_offset);
  std::string span(size_t((last - first + 1) * es), '\0');
  RETURN_IF_ERROR(
      read_storage(checkpoint, tensor.storage_key, first * es, span.size(), span.data()));
  const size_t nd = tensor.shape.size();
  const bool dense_rows = tensor.stride[nd - 1] == 1;
  const size_t outer = dense_rows ? nd - 1 : nd;
  const uint64_t run = dense_rows ? uint64_t(tensor.shape[nd - 1]) : 1;
  std::vector<int64_t> idx(outer, 0);
  auto* out = static_cast<char*>(dst);
  for (uint64_t n = 0; n < numel; n += run) {
    uint64_t off = 0;
    for (size_t d = 0; d < outer; ++d) off += uint64_t(idx[d]) * uint64_t(tensor.stride[d]);
    std::memcpy(out + n * es, span.data() + off * es, run * es);
    for (size_t d = outer; d-- > 0;) {
      if (++idx[d] < tensor.shape[d]) break;
      idx[d] = 0;
    }
  }
  return Status::Ok();
}

}  // namespace ecgq::ckpt
