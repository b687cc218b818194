// The compact model file of a native ECG-FM model: export (checkpoint -> file) and load (file ->
// model packed from the verified file image, as a checkpoint's; with ECGQ_PACKED_WEIGHTS=0 the
// model's tensors lie over the image, nothing copied).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "model/bf16_rows.hpp"
#include "model/checkpoint.hpp"
#include "model/ecgfm_weights.hpp"
#include "model/model_export.hpp"
#include "model/model_file.hpp"
#include "model/packed_conv.hpp"
#include "model/packed_layer.hpp"
#include "model/packed_linear.hpp"
#include "model/weight_arena.hpp"

namespace ecgq {
namespace {

using Fields = std::map<std::string, std::string>;

std::string dtype_of(at::ScalarType t) {
  return t == at::kBFloat16 ? "bf16" : "f32";
}

// The architecture as "arch.*" fields of the table of contents.
Fields architecture_fields(const EcgfmArchitecture& a) {
  std::ostringstream conv;
  for (size_t i = 0; i < a.conv.size(); ++i)
    conv << (i ? ";" : "") << a.conv[i].dim << "," << a.conv[i].kernel << "," << a.conv[i].stride;
  auto b = [](bool v) { return std::string(v ? "1" : "0"); };
  return {{"arch.model_name", a.model_name},
          {"arch.variant", a.variant},
          {"arch.in_d", std::to_string(a.in_d)},
          {"arch.conv", conv.str()},
          {"arch.extractor_mode", a.extractor_mode},
          {"arch.conv_bias", b(a.conv_bias)},
          {"arch.post_extract_proj", b(a.post_extract_proj)},
          {"arch.embed_dim", std::to_string(a.embed_dim)},
          {"arch.ffn_dim", std::to_string(a.ffn_dim)},
          {"arch.heads", std::to_string(a.heads)},
          {"arch.layers", std::to_string(a.layers)},
          {"arch.layer_norm_first", b(a.layer_norm_first)},
          {"arch.conv_pos", std::to_string(a.conv_pos)},
          {"arch.conv_pos_groups", std::to_string(a.conv_pos_groups)},
          {"arch.num_labels", std::to_string(a.num_labels)},
          {"arch.parameters", std::to_string(a.parameters)}};
}

// Reads one integer field (bounded: a damaged table cannot ask for absurd shapes).
Status field_int(const Fields& f, const std::string& key, int64_t* out) {
  auto it = f.find(key);
  if (it == f.end()) return Status(ErrorCode::BadCheckpoint, "field " + key + " is missing");
  try {
    size_t used = 0;
    *out = std::stoll(it->second, &used);
    if (used == it->second.size() && *out >= 0 && *out <= (int64_t{1} << 40)) return Status::Ok();
  } catch (...) {
  }
  return Status(ErrorCode::BadCheckpoint,
                "field " + key + " = '" + it->second + "' is not a count");
}

// The architecture back from its fields.
Expected<EcgfmArchitecture> architecture_from(const Fields& f) {
  EcgfmArchitecture a;
  auto text = [&](const std::string& k) { return f.count(k) ? f.at(k) : std::string(); };
  a.model_name = text("arch.model_name");
  a.variant = text("arch.variant");
  a.extractor_mode = text("arch.extractor_mode");
  a.conv_bias = text("arch.conv_bias") == "1";
  a.post_extract_proj = text("arch.post_extract_proj") == "1";
  a.layer_norm_first = text("arch.layer_norm_first") == "1";
  for (auto [key, out] : {std::pair{"arch.in_d", &a.in_d},
                          {"arch.embed_dim", &a.embed_dim},
                          {"arch.ffn_dim", &a.ffn_dim},
                          {"arch.heads", &a.heads},
                          {"arch.layers", &a.layers},
                          {"arch.conv_pos", &a.conv_pos},
                          {"arch.conv_pos_groups", &a.conv_pos_groups},
                          {"arch.num_labels", &a.num_labels},
                          {"arch.parameters", &a.parameters}})
    RETURN_IF_ERROR(field_int(f, key, out));
  std::istringstream conv(text("arch.conv"));
  std::string block;
  while (std::getline(conv, block, ';')) {
    ConvLayerSpec c;
    char s1 = 0, s2 = 0;
    std::istringstream in(block);
    if (!(in >> c.dim >> s1 >> c.kernel >> s2 >> c.stride) || c.dim <= 0 || c.stride <= 0)
      return Status(ErrorCode::BadCheckpoint, "field arch.conv block '" + block + "' is malformed");
    a.conv.push_back(c);
  }
  if (a.conv.empty() || a.heads <= 0 || a.embed_dim <= 0 || a.embed_dim % a.heads != 0 ||
      a.layers > 1000 || a.conv.size() > 64)
    return Status(ErrorCode::BadCheckpoint, "fields arch.* describe no valid ECG-FM");
  return a;
}

// The ModelInfo of an export (as load_ecgfm builds it for the checkpoint).
ModelInfo info_from(const EcgfmArchitecture& arch, const mfile::Contents& c, int64_t split) {
  ModelInfo info;
  info.kind = "ecgfm";
  info.variant = arch.variant;
  info.labels = c.labels;
  info.in_leads = arch.in_d;
  info.segment_samples = 2500;
  info.embed_dim = arch.embed_dim;
  info.parameters = arch.parameters;
  info.precision = c.precision;
  info.source_sha256 = c.source_sha256;
  info.architecture = arch.summary();
  if (c.precision == "bf16")
    info.architecture +=
        ", bf16 projections (last " + std::to_string(split) + " layers split hi+lo)";
  info.architecture += ", model file v" + std::to_string(c.version);
  if (c.fields.count("packed_for"))
    info.architecture += " (layers stored packed for " + c.fields.at("packed_for") + ")";
  return info;
}

// The name the positional convolution's packed weights have in a model file (layer -1).
constexpr const char* kPosPacked = "pos_packed";

// The model file's name of layer l's packed projection j ("layer3.fc1_packed"; layer -1:
// kPosPacked).
std::string packed_name(int64_t l, int j) {
  if (l == -1) return kPosPacked;
  return "layer" + std::to_string(l) + "." + PackedLayer::kProjections[j] + "_packed";
}

// The packed entry that replaces plain slot `name` ("layer3.fc1_w" and "layer3.fc1_lo" ->
// "layer3.fc1_packed"), or "" for a slot that is not a projection weight.
std::string packed_name_of(const std::string& name) {
  if (name == "pos_w") return kPosPacked;
  for (const char* suffix : {"_w", "_lo"}) {
    const size_t n = std::strlen(suffix), dot = name.find('.');
    if (name.rfind("layer", 0) != 0 || dot == std::string::npos || name.size() <= dot + n ||
        name.compare(name.size() - n, n, suffix) != 0)
      continue;
    const std::string proj = name.substr(dot + 1, name.size() - n - dot - 1);
    for (const char* p : PackedLayer::kProjections)
      if (proj == p) return name.substr(0, dot + 1) + proj + "_packed";
  }
  return "";
}

// Layer and projection index of a packed entry's name; false for any other name.
bool parse_packed_name(const std::string& name, int64_t* layer, int* projection) {
  if (name == kPosPacked) {
    *layer = -1, *projection = 0;
    return true;
  }
  const size_t dot = name.find('.');
  if (name.rfind("layer", 0) != 0 || dot == std::string::npos || dot == 5 || dot > 5 + 6)
    return false;
  for (size_t i = 5; i < dot; ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  *layer = std::stoll(name.substr(5, dot - 5));
  for (int j = 0; j < 4; ++j)
    if (name.compare(dot + 1, std::string::npos,
                     std::string(PackedLayer::kProjections[j]) + "_packed") == 0) {
      *projection = j;
      return true;
    }
  return false;
}

// A packed projection as a tensor of the file.
mfile::TensorSource packed_source(const std::string& name, const PackedLinear::Prepacked& p) {
  mfile::TensorSource s;
  s.entry.name = name;
  s.entry.dtype = "u8";
  s.entry.shape = {p.bytes.numel()};
  s.entry.bytes = static_cast<uint64_t>(p.bytes.numel());
  s.entry.layout = p.layout;
  s.data = p.bytes.data_ptr();
  return s;
}

}  // namespace

Expected<ExportReport> export_checkpoint(const std::string& checkpoint,
                                         const ExportOptions& options, const std::string& out) {
  if (mfile::has_magic(checkpoint))
    return Status(ErrorCode::BadCheckpoint,
                  checkpoint + ": is already a model file (export the checkpoint it came from)",
                  "checkpoint");
  auto parsed = ckpt::read_checkpoint(checkpoint);
  if (!parsed.ok()) return parsed.status().with_context(checkpoint);
  ASSIGN_OR_RETURN(EcgfmArchitecture arch, derive_architecture(*parsed));
  LoadOptions load;
  load.model_kind = "ecgfm";
  load.precision = options.precision;
  load.bf16_split_layers = options.bf16_split_layers;
  load.pack_weights = false;  // the file holds the plain weights; packing would leave them empty
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, load_ecgfm(*parsed, load));

  mfile::Contents contents;
  contents.precision = model->info().precision;
  contents.source_sha256 = options.source_sha256;
  contents.source_name = options.source_name;
  contents.fields = architecture_fields(arch);
  contents.labels = model->info().labels;
  std::vector<mfile::TensorSource> tensors;
  WeightArena packed_arena;  // the packed layers, alive until the file is written
  std::map<std::string, PackedLinear::Prepacked> packed;  // holds the packed bytes
  std::set<std::string> written;
  SplitSourceReuse split_sources;
  if (options.packed_layout)
    for (int64_t l = -1; l < arch.layers; ++l) {
      auto layer = prepack_ecgfm_layer(*model, l, packed_arena);
      for (size_t j = 0; j < layer.size(); ++j)
        packed[packed_name(l, static_cast<int>(j))] = std::move(layer[j]);
    }
  int64_t split = 0;
  visit_ecgfm_weights(
      *model, [&](const std::string& name, at::Tensor& t, bool present, at::ScalarType) {
        if (!present || !t.defined()) return;
        if (name.size() > 7 && name.compare(name.size() - 7, 7, ".qkv_lo") == 0) ++split;
        if (auto p = packed.find(packed_name_of(name)); p != packed.end()) {
          // The layer's plain projection weights give way to its packed ones, written once.
          if (written.insert(p->first).second)
            tensors.push_back(packed_source(p->first, p->second));
          return;
        }
        mfile::TensorSource s;
        s.entry.name = name;
        s.entry.dtype = dtype_of(t.scalar_type());
        s.entry.shape = t.sizes().vec();
        s.entry.bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
        s.data = t.contiguous().data_ptr();  // the model's tensors are contiguous already
        tensors.push_back(std::move(s));
      });
  contents.fields["bf16_split_layers"] = std::to_string(split);
  ExportReport report;
  report.packed_layers = static_cast<int64_t>((packed.size() - packed.count(kPosPacked)) / 4);
  if (auto first = packed.find(packed_name(0, 0)); first != packed.end()) {
    report.packed_for = first->second.kernel;
    contents.fields["packed_for"] = report.packed_for;
  }
  RETURN_IF_ERROR(mfile::write_model_file(out, contents, tensors));
  std::error_code ec;
  report.bytes = std::filesystem::file_size(out, ec);
  report.tensors = static_cast<int64_t>(tensors.size());
  report.summary = model->info().architecture;
  return report;
}

bool is_model_file(const std::string& path) {
  return mfile::has_magic(path);
}

ModelFileIdentity peek_model_file_identity(const std::string& path) {
  if (!mfile::has_magic(path)) return {};
  auto c = mfile::peek_model_file(path);
  if (!c.ok()) return {};
  return {c->precision, c->source_sha256};
}

bool ecgfm_weight_is_packed(const std::string& name) {
  static const char* const kPacked[] = {".qkv_w",  ".out_w",  ".fc1_w",  ".fc2_w",
                                        ".qkv_lo", ".out_lo", ".fc1_lo", ".fc2_lo"};
  for (const char* p : kPacked) {
    const size_t n = std::strlen(p);
    if (name.size() > n && name.compare(name.size() - n, n, p) == 0) return true;
  }
  return name == "pos_w";
}

namespace {

// A weight slot of a shell and the dtype it takes.
struct Slot {
  at::Tensor* tensor = nullptr;
  at::ScalarType type = at::kFloat;
  std::string packed;  // the file stores it in this packed entry (a projection weight), or ""
};

// The shell's weight slots by name, checked against the table of contents: every slot this
// architecture has is in the file with its dtype (a projection weight: or its layer's packed
// entry), and the file holds nothing else.
Expected<std::map<std::string, Slot>> match_slots(Model& shell, const mfile::Contents& c,
                                                  int64_t layers) {
  std::map<std::string, Slot> slots;
  Status st;
  visit_ecgfm_weights(
      shell, [&](const std::string& name, at::Tensor& slot, bool present, at::ScalarType type) {
        if (!st.ok() || !present) return;
        const mfile::TensorEntry* e = c.find(name);
        const std::string packed = packed_name_of(name);
        if (e == nullptr && !packed.empty() && c.find(packed) != nullptr)
          slots[name] = {&slot, type, packed};
        else if (e == nullptr)
          st = Status(ErrorCode::BadCheckpoint, "tensor " + name + " is missing");
        else if (e->dtype != dtype_of(type))
          st = Status(ErrorCode::BadCheckpoint,
                      "tensor " + name + " is " + e->dtype + ", expected " + dtype_of(type));
        else
          slots[name] = {&slot, type, ""};
      });
  RETURN_IF_ERROR(st);
  for (const auto& t : c.tensors) {
    int64_t layer = 0;
    int projection = 0;
    const bool packed = parse_packed_name(t.name, &layer, &projection) && layer < layers;
    if (packed && t.layout.empty())
      return Status(ErrorCode::BadCheckpoint, "tensor " + t.name + " has no packed layout");
    if (!packed && !slots.count(t.name))
      return Status(ErrorCode::BadCheckpoint, "tensor " + t.name + " is not part of this model");
  }
  return slots;
}

// The layer count the architecture fields give (0 when absent: then no packed entry fits).
int64_t layers_of(const mfile::Contents& c) {
  int64_t layers = 0;
  return field_int(c.fields, "arch.layers", &layers).ok() ? layers : 0;
}

// "PATH: model file WHY" (bad_checkpoint) from an error of the table of contents.
Status bad_file(const std::string& path, const Status& s) {
  return Status(ErrorCode::BadCheckpoint, path + ": model file " + s.message(), "checkpoint");
}

// The empty model a model file describes, after the checks of its table of contents that come
// before any weight: the precision asked for, bf16 on this CPU, the architecture.
Expected<std::unique_ptr<Model>> shell_for(const std::string& path, const mfile::Contents& c,
                                           const LoadOptions& options, bool pack,
                                           const std::string& note = "") {
  if (options.precision_set && options.precision != c.precision)
    return Status(ErrorCode::BadConfig,
                  path + ": precision " + options.precision +
                      " was asked for, but this model file is a " + c.precision +
                      " export (it runs at its own precision; drop the setting or export again)",
                  "precision");
  if (c.precision == "bf16") RETURN_IF_ERROR(bf16_supported());
  auto arch = architecture_from(c.fields);
  if (!arch.ok()) return bad_file(path, arch.status());
  int64_t split = 0;
  if (Status s = field_int(c.fields, "bf16_split_layers", &split); !s.ok())
    return bad_file(path, s);
  ModelInfo info = info_from(*arch, c, split);
  info.architecture += note;
  return make_ecgfm_shell(*arch, std::move(info), split, pack);
}

// The ATen path: the model's tensors lie over the verified image, which lives as long as they.
Expected<std::unique_ptr<Model>> load_over_image(const std::string& path,
                                                 const LoadOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<const mfile::Image> image, mfile::read_model_file(path));
  const mfile::Contents& c = image->contents();
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, shell_for(path, c, options, false));
  auto slots = match_slots(*model, c, layers_of(c));
  if (!slots.ok()) return bad_file(path, slots.status());
  for (auto& [name, slot] : *slots) {
    if (!slot.packed.empty()) {
      // The ATen path multiplies plain weights: unpack the layer's stored layout.
      const mfile::TensorEntry* e = c.find(slot.packed);
      at::Tensor bytes = at::from_blob(const_cast<void*>(image->tensor_data(*e)),
                                       {static_cast<int64_t>(e->bytes)}, at::kByte);
      if (name == "pos_w") {
        auto w = PackedConv::unpack({bytes, e->layout, ""}, c.precision == "bf16"
                                                                ? PackedConv::Precision::bf16
                                                                : PackedConv::Precision::fp32);
        if (!w.ok()) return bad_file(path, w.status().with_context("tensor " + e->name));
        *slot.tensor = *w;
        continue;
      }
      const bool lo = name.compare(name.size() - 3, 3, "_lo") == 0;
      const bool split = lo || slots->count(name.substr(0, name.size() - 2) + "_lo");
      auto plain = PackedLinear::unpack({bytes, e->layout, ""}, split);
      if (!plain.ok()) return bad_file(path, plain.status().with_context("tensor " + e->name));
      *slot.tensor = lo ? plain->second : plain->first;
      continue;
    }
    const mfile::TensorEntry* e = c.find(name);
    // A tensor the model drops gives its pages back at once.
    std::shared_ptr<const mfile::Image> keep = image;
    *slot.tensor = at::from_blob(
        const_cast<void*>(image->tensor_data(*e)), e->shape,
        [keep, e](void*) { keep->release(*e); }, at::TensorOptions().dtype(slot.type));
  }
  return model;
}

// The packed path: the file is read front to back through one buffer; each tensor is copied into
// the model's arena or, for the weights packing replaces, into a temporary that the layer's
// packing drops, so the load touches no image of the file and the model holds each weight once.
Expected<std::unique_ptr<Model>> load_packed(const std::string& path, const LoadOptions& options) {
  std::unique_ptr<Model> model;
  std::map<std::string, Slot> slots;
  WeightArena arena;
  std::map<std::string, at::Tensor> placed;  // packed entries being read into the arena
  std::string note;                          // how the weights came: mapped or read
  auto start = [&](const mfile::Contents& c) -> Status {
    ASSIGN_OR_RETURN(model, shell_for(path, c, options, true, note));
    auto matched = match_slots(*model, c, layers_of(c));
    if (!matched.ok()) return bad_file(path, matched.status());
    slots = std::move(matched).value();
    return Status::Ok();
  };
  auto tensor = [&](const mfile::TensorEntry& e, const void* bytes) -> Status {
    int64_t layer = 0;
    int projection = 0;
    if (!e.layout.empty() && parse_packed_name(e.name, &layer, &projection)) {
      // Read into the arena (place), where the projection uses it in place when this CPU wants
      // its layout.
      auto it = placed.find(e.name);
      at::Tensor memory = it != placed.end() ? it->second : arena.empty(e.shape, at::kByte);
      if (it == placed.end())
        memory.copy_(at::from_blob(const_cast<void*>(bytes), e.shape, at::kByte));
      else
        placed.erase(it);
      *ecgfm_prepacked_slot(*model, layer, projection) = {memory, e.layout, ""};
    } else {
      const Slot& slot = slots.at(e.name);  // match_slots: every other tensor has its slot
      at::Tensor view = at::from_blob(const_cast<void*>(bytes), e.shape, slot.type);
      *slot.tensor = ecgfm_weight_is_packed(e.name) ? view.clone()
                                                    : arena.empty(e.shape, slot.type).copy_(view);
    }
    return pack_ecgfm_weights(*model, arena, false).with_context(path);
  };
  auto place = [&](const mfile::TensorEntry& e) -> void* {
    int64_t layer = 0;
    int projection = 0;
    if (e.layout.empty() || !parse_packed_name(e.name, &layer, &projection) ||
        ecgfm_prepacked_slot(*model, layer, projection) == nullptr)
      return nullptr;
    at::Tensor memory = arena.empty(e.shape, at::kByte);
    placed[e.name] = memory;
    return memory.data_ptr();
  };
  std::string why_not;
  ASSIGN_OR_RETURN(std::shared_ptr<const mfile::Image> image,
                   mfile::map_model_file(path, &why_not));
  if (image) {
    // Mapped: the packed layers are used where the page cache holds them, nothing copied.
    note = image->checksum_reused() ? ", mapped (checksum as verified at an earlier load)"
                                    : ", mapped";
    RETURN_IF_ERROR(start(image->contents()));
    // A tensor the model copies (or repacks) gives its mapped pages back, so that its weight is
    // not resident twice.
    for (const mfile::TensorEntry& e : image->contents().tensors) {
      const mfile::TensorEntry* entry = &e;  // lives as long as the image
      if (!e.layout.empty())
        placed[e.name] = at::from_blob(
            const_cast<void*>(image->tensor_data(e)), e.shape,
            [image, entry](void*) { image->release(*entry); }, at::kByte);
      RETURN_IF_ERROR(tensor(e, image->tensor_data(e)));
      if (e.layout.empty()) image->release(e);
    }
  } else {
    note = ", read (not mapped: " + why_not + ")";
    RETURN_IF_ERROR(mfile::stream_model_file(path, start, tensor, place));
  }
  RETURN_IF_ERROR(pack_ecgfm_weights(*model, arena, true).with_context(path));
  return model;
}

}  // namespace

Expected<std::unique_ptr<Model>> load_model_file(const std::string& path,
                                                 const LoadOptions& options) {
  try {
    if (options.pack_weights && packed_weights_enabled()) return load_packed(path, options);
    return load_over_image(path, options);
  } catch (const c10::Error& e) {
    return bad_file(path, Status(ErrorCode::BadCheckpoint, e.what_without_backtrace()));
  }
}

}  // namespace ecgq
