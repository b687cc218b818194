#include "gateway/predict_input.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "client/job_source.hpp"
#include "common/duration.hpp"
#include "gateway/multipart.hpp"
#include "records/preprocess.hpp"
#include "records/record_format.hpp"

namespace ecgq::gateway {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string extension(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? "" : lower(name.substr(dot));
}

// File names become paths: only a plain name of safe characters is accepted.
Status check_file_name(const std::string& name) {
  const bool safe = !name.empty() && name.size() <= kMaxFileName && name[0] != '.' &&
                    std::all_of(name.begin(), name.end(), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                             c == '-' || c == '+';
                    });
  if (!safe) {
    return Status("bad_request",
                  "a file name must be 1 to 128 of A-Z a-z 0-9 . _ - + and not start with '.'",
                  "file");
  }
  return Status::Ok();
}

// A private directory removed with everything in it when the request is done.
class UploadDir {
 public:
  explicit UploadDir(const std::string& parent) {
    std::string base = parent;
    if (base.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    std::string tmpl = base + "/ecgq-upload-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;  // mode 0700
  }
  ~UploadDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  UploadDir(const UploadDir&) = delete;
  UploadDir& operator=(const UploadDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The file that names the record: the one header, else the one data file (any format ecgq reads
// by extension), else the only file sent (clinical exports such as DICOM often have no extension;
// the reader tells the format by content).
Expected<std::string> primary_file(const std::vector<std::string>& names) {
  std::vector<std::string> headers, data;
  for (const auto& n : names) {
    const std::string e = extension(n);
    if (e == ".hea")
      headers.push_back(n);
    else if (e == ".txt" || find_record_extension(e))
      data.push_back(n);
  }
  if (headers.size() == 1) return headers[0];
  if (headers.size() > 1)
    return Status("bad_request", "upload one record at a time: several .hea files were sent",
                  "file");
  if (data.size() == 1) return data[0];
  if (data.empty() && names.size() == 1) return names[0];
  return Status("bad_request",
                data.empty() ? "no record file: send a WFDB .hea with its signal files, a "
                               "Challenge .mat (with its .hea), a .csv, a .npy or a clinical "
                               "export (EDF, HL7 aECG, GE MUSE, Philips XML, DICOM, SCP-ECG)"
                             : "upload one record at a time: several data files and no .hea",
                "file");
}

// A WFDB header names its signal files, and the reader opens what it names, relative to the
// header or absolute: an uploaded header may only name files uploaded with it (never /etc/...,
// ../..., /dev/zero).
Status check_header_references(const std::string& header_path,
                               const std::vector<std::string>& uploaded) {
  std::ifstream in(header_path);
  std::string line;
  int64_t signals = -1;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line.substr(first));
    std::string name;
    fields >> name;
    if (signals < 0) {  // the record line: NAME[/SEGMENTS] SIGNALS ...
      std::string count;
      fields >> count;
      if (name.find('/') != std::string::npos)
        return Status("unsupported_record", "multi-segment WFDB records cannot be uploaded",
                      "file");
      signals = std::atoll(count.c_str());
      if (signals <= 0) return Status::Ok();  // the reader reports it
      continue;
    }
    if (name != "~" && name != "-" &&
        std::find(uploaded.begin(), uploaded.end(), name) == uploaded.end())
      return Status("not_found",
                    "the header names signal file '" + name.substr(0, 128) +
                        "', which was not uploaded with it (send it as another 'file' part)",
                    "file");
    if (--signals == 0) break;
  }
  return Status::Ok();
}

// Replaces the private directory in reader messages: clients see their own file names.
Status without_dir(const Status& s, const std::string& dir) {
  std::string m = s.message();
  for (size_t p; (p = m.find(dir + "/")) != std::string::npos;) m.erase(p, dir.size() + 1);
  for (size_t p; (p = m.find(dir)) != std::string::npos;) m.erase(p, dir.size());
  return Status(s.code(), m, s.field());
}

Expected<PredictInput> read_upload(const HttpRequest& request, const std::string& upload_dir,
                                   PredictInput in) {
  auto boundary = multipart_boundary(request.header("content-type"));
  if (!boundary) return boundary.status();
  auto parts = parse_multipart(request.body, *boundary);
  if (!parts) return parts.status();
  std::vector<const FormPart*> files;
  for (const auto& p : *parts) {
    if (p.name == "file") {
      if (Status s = check_file_name(p.filename); !s.ok()) return s;
      files.push_back(&p);
    } else if (Status s = set_field(in.fields, p.name, std::string(p.data)); !s.ok()) {
      return s;
    }
  }
  if (files.empty()) return Status("bad_request", "no part named 'file' in the upload", "file");
  if (files.size() > kMaxUploadFiles)
    return Status("bad_request", "more than 16 files in one upload", "file");
  UploadDir dir(upload_dir);
  if (dir.path().empty()) return Status("internal", "cannot create a directory for the upload");
  std::vector<std::string> names;
  for (const FormPart* f : files) {
    if (std::find(names.begin(), names.end(), f->filename) != names.end())
      return Status("bad_request", "file " + f->filename + " was sent twice", "file");
    names.push_back(f->filename);
    std::ofstream out(dir.path() + "/" + f->filename, std::ios::binary);
    out.write(f->data.data(), static_cast<std::streamsize>(f->data.size()));
    if (!out) return Status("internal", "cannot store the upload");
  }
  auto primary = primary_file(names);
  if (!primary) return primary.status();
  if (extension(*primary) == ".hea") {
    if (Status s = check_header_references(dir.path() + "/" + *primary, names); !s.ok()) return s;
  }
  client::InputOptions opts;
  opts.fs = in.fields.fs;
  opts.leads = in.fields.leads;
  auto job = client::job_from_path(dir.path() + "/" + *primary, opts);
  if (!job) return without_dir(job.status(), dir.path());
  in.job = std::move(*job);
  in.path = *primary;
  return in;
}

Expected<PredictInput> read_json(const HttpRequest& request, PredictInput in) {
  nlohmann::json j = nlohmann::json::parse(request.body, nullptr, false);
  if (j.is_discarded()) return Status("bad_request", "the body is not valid JSON", "body");
  if (!j.is_object()) return Status("bad_request", "the body must be a JSON object", "body");
  for (const char* key : {"outputs", "leads", "fs", "deadline", "missing_leads"}) {
    if (!j.contains(key)) continue;
    const auto& v = j.at(key);
    std::string text;
    if (v.is_string()) {
      text = v.get<std::string>();
    } else if (v.is_number() && std::string(key) == "fs") {
      text = v.dump();
    } else if (v.is_array() &&
               std::all_of(v.begin(), v.end(), [](const auto& x) { return x.is_string(); })) {
      for (const auto& x : v) text += (text.empty() ? "" : ",") + x.get<std::string>();
    } else {
      return Status("bad_request", std::string("wrong type of '") + key + "'", key);
    }
    if (Status s = set_field(in.fields, key, text); !s.ok()) return s;
  }
  if (!j.contains("samples") || !j.at("samples").is_array() || j.at("samples").empty())
    return Status("bad_request", "'samples' must be an array of leads, each an array of numbers",
                  "samples");
  const auto& rows = j.at("samples");
  const size_t n_samples = rows[0].is_array() ? rows[0].size() : 0;
  if (n_samples == 0)
    return Status("bad_request", "samples[0] must be a non-empty array", "samples");
  std::vector<float> v;
  v.reserve(rows.size() * n_samples);
  for (size_t l = 0; l < rows.size(); ++l) {
    if (!rows[l].is_array() || rows[l].size() != n_samples)
      return Status("bad_shape",
                    "every lead must have " + std::to_string(n_samples) + " samples (samples[" +
                        std::to_string(l) + "] differs)",
                    "samples");
    for (const auto& x : rows[l]) {
      if (!x.is_number())
        return Status("bad_request", "samples[" + std::to_string(l) + "] holds a non-number",
                      "samples");
      v.push_back(x.get<float>());
    }
  }
  if (in.fields.fs <= 0)
    return Status("bad_request", "'fs' (the sample rate in Hz) is required", "fs");
  auto job = job_from_samples(std::move(v), static_cast<int64_t>(rows.size()),
                              static_cast<int64_t>(n_samples), in.fields.fs, in.fields.leads);
  if (!job) return job.status();
  in.job = std::move(*job);
  return in;
}

}  // namespace

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
    start = end + 1;
  }
  return out;
}

Status check_outputs(const std::vector<std::string>& outputs) {
  for (const auto& o : outputs) {
    if (std::find(schema::kOutputNames.begin(), schema::kOutputNames.end(), o) ==
        schema::kOutputNames.end())
      return Status("unsupported_output",
                    "unknown output; expected probs, logits, embedding, segments or saliency",
                    "outputs");
  }
  return Status::Ok();
}

Status set_field(PredictFields& f, const std::string& name, const std::string& value) {
  if (name == "outputs") {
    f.outputs = split_list(value);
    return check_outputs(f.outputs);
  }
  if (name == "leads") {
    f.leads = split_list(value);
    return Status::Ok();
  }
  if (name == "fs") {
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(v) || v <= 0)
      return Status("bad_request", "fs must be a positive number of Hz", "fs");
    f.fs = v;
    return Status::Ok();
  }
  if (name == "deadline") {
    auto d = parse_duration(value);
    if (!d || d->count() < 0)
      return Status("bad_request", "deadline must be a duration such as 30s or 500ms", "deadline");
    f.deadline_ms = d->count();
    return Status::Ok();
  }
  if (name == "missing_leads") {
    if (std::find(schema::kMissingLeadsPolicies.begin(), schema::kMissingLeadsPolicies.end(),
                  value) == schema::kMissingLeadsPolicies.end())
      return Status("bad_request", "missing_leads must be refuse or zero", "missing_leads");
    f.missing_leads = value == "zero" ? value : "";
    return Status::Ok();
  }
  if (name == "async") {
    f.async = value == "1" || value == "true";
    if (!f.async && value != "0" && value != "false")
      return Status("bad_request", "async must be 1 or 0", "async");
    return Status::Ok();
  }
  return Status("bad_request",
                "unknown field; expected outputs, fs, leads, deadline, missing_leads or async",
                name.size() <= 64 ? name : name.substr(0, 64));
}

Expected<schema::Job> job_from_samples(std::vector<float> samples, int64_t n_leads,
                                       int64_t n_samples, double fs,
                                       std::vector<std::string> leads) {
  if (leads.empty() && n_leads == static_cast<int64_t>(kModelLeads.size())) leads = kModelLeads;
  if (static_cast<int64_t>(leads.size()) != n_leads)
    return Status("bad_request",
                  "give one lead name per row (" + std::to_string(n_leads) + " rows, " +
                      std::to_string(leads.size()) + " names)",
                  "leads");
  if (!std::all_of(samples.begin(), samples.end(), [](float x) { return std::isfinite(x); }))
    return Status("bad_samples", "samples must be finite numbers", "samples");
  schema::Job job;
  job.ecg.dtype = "f32";
  job.ecg.shape = {n_leads, n_samples};
  job.ecg.data.assign(reinterpret_cast<const char*>(samples.data()),
                      samples.size() * sizeof(float));
  job.fs = fs;
  job.leads = std::move(leads);
  return job;
}

Expected<PredictInput> read_predict(const HttpRequest& request, const std::string& upload_dir) {
  PredictInput in;
  for (const auto& [k, v] : request.query) {
    if (Status s = set_field(in.fields, k, v); !s.ok()) return s;
  }
  const std::string type = lower(request.header("content-type"));
  Expected<PredictInput> out = Status("unsupported_media_type",
                                      "send multipart/form-data (files) or application/json "
                                      "({samples, fs, leads})",
                                      "content-type");
  if (type.rfind("multipart/form-data", 0) == 0)
    out = read_upload(request, upload_dir, std::move(in));
  else if (type.rfind("application/json", 0) == 0)
    out = read_json(request, std::move(in));
  if (!out) return out;
  out->job.outputs = out->fields.outputs;
  out->job.deadline_ms = out->fields.deadline_ms;
  out->job.missing_leads = out->fields.missing_leads;
  return out;
}

}  // namespace ecgq::gateway
