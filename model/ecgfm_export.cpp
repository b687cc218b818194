// The compact model file of a native ECG-FM model: export (checkpoint -> file) and load (file ->
// model packed from the verified file image, as a checkpoint's; with ECGQ_PACKED_WEIGHTS=0 the
// model's tensors lie over the image, nothing copied).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "model/checkpoint.hpp"
#include "model/ecgfm_weights.hpp"
#include "model/model_export.hpp"
#include "model/model_file.hpp"
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
  info.architecture += ", model file v" + std::to_string(mfile::kFormatVersion);
  return info;
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
  int64_t split = 0;
  visit_ecgfm_weights(
      *model, [&](const std::string& name, at::Tensor& t, bool present, at::ScalarType) {
        if (!present || !t.defined()) return;
        if (name.size() > 7 && name.compare(name.size() - 7, 7, ".qkv_lo") == 0) ++split;
        mfile::TensorSource s;
        s.entry.name = name;
        s.entry.dtype = dtype_of(t.scalar_type());
        s.entry.shape = t.sizes().vec();
        s.entry.bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
        s.data = t.contiguous().data_ptr();  // the model's tensors are contiguous already
        tensors.push_back(std::move(s));
      });
  contents.fields["bf16_split_layers"] = std::to_string(split);
  RETURN_IF_ERROR(mfile::write_model_file(out, contents, tensors));
  std::error_code ec;
  ExportReport report;
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
};

// The shell's weight slots by name, checked against the table of contents: every slot this
// architecture has is in the file with its dtype, and the file holds nothing else.
Expected<std::map<std::string, Slot>> match_slots(Model& shell, const mfile::Contents& c) {
  std::map<std::string, Slot> slots;
  Status st;
  visit_ecgfm_weights(
      shell, [&](const std::string& name, at::Tensor& slot, bool present, at::ScalarType type) {
        if (!st.ok() || !present) return;
        const mfile::TensorEntry* e = c.find(name);
        if (e == nullptr)
          st = Status(ErrorCode::BadCheckpoint, "tensor " + name + " is missing");
        else if (e->dtype != dtype_of(type))
          st = Status(ErrorCode::BadCheckpoint,
                      "tensor " + name + " is " + e->dtype + ", expected " + dtype_of(type));
        else
          slots[name] = {&slot, type};
      });
  RETURN_IF_ERROR(st);
  for (const auto& t : c.tensors)
    if (!slots.count(t.name))
      return Status(ErrorCode::BadCheckpoint, "tensor " + t.name + " is not part of this model");
  return slots;
}

// "PATH: model file WHY" (bad_checkpoint) from an error of the table of contents.
Status bad_file(const std::string& path, const Status& s) {
  return Status(ErrorCode::BadCheckpoint, path + ": model file " + s.message(), "checkpoint");
}

// The empty model a model file describes, after the checks of its table of contents that come
// before any weight: the precision asked for, bf16 on this CPU, the architecture.
Expected<std::unique_ptr<Model>> shell_for(const std::string& path, const mfile::Contents& c,
                                           const LoadOptions& options, bool pack) {
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
  return make_ecgfm_shell(*arch, std::move(info), split, pack);
}

// The ATen path: the model's tensors lie over the verified image, which lives as long as they.
Expected<std::unique_ptr<Model>> load_over_image(const std::string& path,
                                                 const LoadOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<const mfile::Image> image, mfile::read_model_file(path));
  const mfile::Contents& c = image->contents();
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, shell_for(path, c, options, false));
  auto slots = match_slots(*model, c);
  if (!slots.ok()) return bad_file(path, slots.status());
  for (auto& [name, slot] : *slots) {
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
  auto start = [&](const mfile::Contents& c) -> Status {
    ASSIGN_OR_RETURN(model, shell_for(path, c, options, true));
    auto matched = match_slots(*model, c);
    if (!matched.ok()) return bad_file(path, matched.status());
    slots = std::move(matched).value();
    return Status::Ok();
  };
  auto tensor = [&](const mfile::TensorEntry& e, const void* bytes) -> Status {
    const Slot& slot = slots.at(e.name);  // match_slots: every tensor has its slot
    at::Tensor view = at::from_blob(const_cast<void*>(bytes), e.shape, slot.type);
    *slot.tensor =
        ecgfm_weight_is_packed(e.name) ? view.clone() : arena.empty(e.shape, slot.type).copy_(view);
    pack_ecgfm_weights(*model, arena, false);
    return Status::Ok();
  };
  RETURN_IF_ERROR(mfile::stream_model_file(path, start, tensor));
  pack_ecgfm_weights(*model, arena, true);
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
