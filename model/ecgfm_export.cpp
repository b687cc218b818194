// The compact model file of a native ECG-FM model: export (checkpoint -> file) and load (file ->
// model packed from the verified file image, as a checkpoint's; with ECGQ_PACKED_WEIGHTS=0 the
// model's tensors lie over the image, nothing copied).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "model/checkpoint.hpp"
#include "model/ecgfm_weights.hpp"
#include "model/model_export.hpp"
#include "model/model_file.hpp"

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

namespace {

// Fills the shell's weight slots with tensors over the image (kept alive by each tensor).
Status adopt_weights(Model& shell, const std::shared_ptr<const mfile::Image>& image) {
  const mfile::Contents& c = image->contents();
  std::set<std::string> used;
  Status st;
  visit_ecgfm_weights(
      shell, [&](const std::string& name, at::Tensor& slot, bool present, at::ScalarType type) {
        if (!st.ok() || !present) return;
        const mfile::TensorEntry* e = c.find(name);
        if (e == nullptr) {
          st = Status(ErrorCode::BadCheckpoint, "tensor " + name + " is missing");
          return;
        }
        if (e->dtype != dtype_of(type)) {
          st = Status(ErrorCode::BadCheckpoint,
                      "tensor " + name + " is " + e->dtype + ", expected " + dtype_of(type));
          return;
        }
        used.insert(name);
        // The image stays while a tensor uses it; a tensor the model drops (packed, or copied
        // into its own memory) gives its pages back at once.
        std::shared_ptr<const mfile::Image> keep = image;
        slot = at::from_blob(
            const_cast<void*>(image->tensor_data(*e)), e->shape,
            [keep, e](void*) { keep->release(*e); }, at::TensorOptions().dtype(type));
      });
  RETURN_IF_ERROR(st);
  for (const auto& t : c.tensors)
    if (!used.count(t.name))
      return Status(ErrorCode::BadCheckpoint, "tensor " + t.name + " is not part of this model");
  return Status::Ok();
}

}  // namespace

Expected<std::unique_ptr<Model>> load_model_file(const std::string& path,
                                                 const LoadOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<const mfile::Image> image, mfile::read_model_file(path));
  const mfile::Contents& c = image->contents();
  if (options.precision_set && options.precision != c.precision)
    return Status(ErrorCode::BadConfig,
                  path + ": precision " + options.precision +
                      " was asked for, but this model "
                      "file is a " +
                      c.precision +
                      " export (it runs at its own precision; "
                      "drop the setting or export again)",
                  "precision");
  if (c.precision == "bf16") RETURN_IF_ERROR(bf16_supported());
  auto fail = [&](const Status& s) {
    return Status(ErrorCode::BadCheckpoint, path + ": model file " + s.message(), "checkpoint");
  };
  auto arch = architecture_from(c.fields);
  if (!arch.ok()) return fail(arch.status());
  int64_t split = 0;
  if (Status s = field_int(c.fields, "bf16_split_layers", &split); !s.ok()) return fail(s);
  ModelInfo info = info_from(*arch, c, split);
  std::unique_ptr<Model> model =
      make_ecgfm_shell(*arch, std::move(info), split, options.pack_weights);
  try {
    if (Status s = adopt_weights(*model, image); !s.ok()) return fail(s);
    // Packed, the model holds its own copy of every weight and the image goes with `image`.
    pack_ecgfm_weights(*model);
  } catch (const c10::Error& e) {
    return fail(Status(ErrorCode::BadCheckpoint, e.what_without_backtrace()));
  }
  return model;
}

}  // namespace ecgq
