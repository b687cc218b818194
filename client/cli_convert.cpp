// `ecgq convert INPUT... --to npy|wfdb|csv --out DIR`: every record read as ecgq reads it, written
// in mV with a JSON sidecar; patient identifiers only with --keep-identifiers.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "client/cli.hpp"
#include "common/text.hpp"
#include "records/clinical_io.hpp"
#include "records/record_discovery.hpp"
#include "records/record_export.hpp"

namespace ecgq::client {

namespace {

// The sidecar: what the array holds and where it came from.
nlohmann::ordered_json sidecar(const EcgRecord& r, const MillivoltRecord& m, bool identifiers) {
  nlohmann::ordered_json j;
  j["fs"] = m.fs;
  j["leads"] = m.leads;
  j["units"] = "mV";
  j["source_format"] = r.format;
  j["derived_leads"] = m.derived_leads;
  j["duration_s"] = m.fs > 0 ? static_cast<double>(m.n_samples) / m.fs : 0.0;
  if (!r.device.empty()) j["device"] = r.device;
  if (!r.acquisition_time.empty()) j["acquisition_time"] = r.acquisition_time;
  if (identifiers) {
    if (!r.patient_name.empty()) j["patient_name"] = r.patient_name;
    if (!r.patient_id.empty()) j["patient_id"] = r.patient_id;
    if (!r.birth_date.empty()) j["birth_date"] = r.birth_date;
  }
  return j;
}

// A stem not used yet in this run: the record's name, else NAME_FORMAT, else NAME_2, ...
std::string unique_stem(const EcgRecord& r, std::set<std::string>* used) {
  std::string stem = r.name.empty() ? "record" : r.name;
  if (used->insert(stem).second) return stem;
  if (used->insert(stem + "_" + r.format).second) return stem + "_" + r.format;
  for (int k = 2;; ++k)
    if (used->insert(stem + "_" + std::to_string(k)).second) return stem + "_" + std::to_string(k);
}

// Converts one record; a refusal or write error is returned for the caller to print.
Status convert_one(const std::string& path, const ConvertCommand& command,
                   std::set<std::string>* used) {
  ASSIGN_OR_RETURN(const auto record, read_record(path));
  ASSIGN_OR_RETURN(const auto m, to_millivolts(record));
  const std::string stem = unique_stem(record, used);
  if (command.to == "npy") {
    RETURN_IF_ERROR(write_npy_record(m, command.out, stem));
  } else if (command.to == "wfdb") {
    RETURN_IF_ERROR(write_wfdb_record(m, command.out, stem));
  } else {
    RETURN_IF_ERROR(write_csv_record(m, command.out, stem));
  }
  const std::string json_path = command.out + "/" + stem + ".json";
  std::ofstream(json_path) << sidecar(record, m, command.keep_identifiers).dump(2) << "\n";
  for (const auto& l : m.left_out)
    std::fprintf(stderr, "ecgq: convert: %s: channel %s is not a voltage; not written\n",
                 loggable(path).c_str(), loggable(l).c_str());
  return Status::Ok();
}

}  // namespace

int run_convert(const ConvertCommand& command) {
  std::error_code ec;
  std::filesystem::create_directories(command.out, ec);
  if (!std::filesystem::is_directory(command.out)) {
    std::fprintf(stderr, "ecgq: convert: cannot create the output directory %s\n",
                 loggable(command.out).c_str());
    return kExitFailed;
  }
  std::vector<std::string> errors;
  const auto paths = discover_records(command.inputs, nullptr, &errors);
  bool refused = !errors.empty();
  for (const auto& e : errors)
    std::fprintf(stderr, "ecgq: convert: %s\n", loggable(e, 1024).c_str());
  std::set<std::string> used;
  int64_t written = 0;
  for (const std::string& path : paths) {
    const Status s = convert_one(path, command, &used);
    if (s.ok()) {
      ++written;
      continue;
    }
    refused = true;
    std::string message = s.message();
    if (message.rfind(path, 0) != 0) message = path + ": " + message;
    std::fprintf(stderr, "ecgq: convert: refused %s (%s)\n", loggable(message, 1024).c_str(),
                 s.code().c_str());
  }
  std::fprintf(stderr, "ecgq: convert: %lld record(s) written to %s\n",
               static_cast<long long>(written), loggable(command.out).c_str());
  return refused ? kExitFailed : kExitOk;
}

}  // namespace ecgq::client
