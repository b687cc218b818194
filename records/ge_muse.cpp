// GE MUSE XML (RestingECG, restecg.dtd): Waveform elements (Median, Rhythm), each with LeadData
// per stored lead: LeadID, LeadSampleCountTotal, LeadAmplitudeUnitsPerBit, LeadAmplitudeUnits,
// LeadDataCRC32 and WaveFormData (base64 of little-endian int16). MUSE stores I, II and V1-V6;
// the preprocessing derives III, aVR, aVL and aVF as for any record.
#include <cmath>
#include <cstdlib>

#include "records/clinical_io.hpp"
#include "records/clinical_readers.hpp"
#include "records/xml_document.hpp"

namespace ecgq {

namespace {

std::string muse_units(const std::string& units) {
  if (units == "MICROVOLTS" || units.empty()) return "uV";
  if (units == "MILLIVOLTS") return "mV";
  return units;
}

// "MM-DD-YYYY" + "HH:MM:SS" -> "YYYY-MM-DDTHH:MM:SS".
std::string muse_time(const std::string& date, const std::string& time) {
  if (date.size() != 10) return "";
  std::string out = date.substr(6, 4) + "-" + date.substr(0, 2) + "-" + date.substr(3, 2);
  return time.empty() ? out : out + "T" + time;
}

// One lead's samples, its CRC32 checked.
Status muse_lead(XmlNode lead, const std::string& id, int64_t n, const std::string& path,
                 std::vector<int32_t>* out) {
  const std::string where = "Rhythm lead " + id + " (line " + std::to_string(xml_line(lead)) + ")";
  std::string data;
  if (!clinical::base64_decode(xml_path_text(lead, "WaveFormData"), &data))
    return clinical::bad(path, where, "WaveFormData is not base64");
  const std::string crc_text = xml_path_text(lead, "LeadDataCRC32");
  double crc;
  if (!crc_text.empty()) {
    if (!clinical::parse_number(crc_text, &crc) || crc < 0 || crc > 4294967295.0)
      return clinical::bad(path, where, "LeadDataCRC32 is not a number");
    if (static_cast<uint32_t>(crc) != clinical::crc32(data))
      return clinical::bad(path, where,
                           "CRC32 mismatch: the file says " + crc_text + ", the data give " +
                               std::to_string(clinical::crc32(data)));
  }
  if (data.size() < static_cast<size_t>(n) * 2)
    return clinical::bad(path, where,
                         std::to_string(data.size()) + " bytes of data for " + std::to_string(n) +
                             " samples of 2 bytes");
  out->resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t)
    (*out)[static_cast<size_t>(t)] = static_cast<int16_t>(
        static_cast<uint8_t>(data[2 * t]) | (static_cast<uint8_t>(data[2 * t + 1]) << 8));
  return Status::Ok();
}

void muse_details(XmlNode root, EcgRecord* r) {
  XmlNode p = xml_child(root, "PatientDemographics");
  const std::string last = xml_path_text(p, "PatientLastName");
  const std::string first = xml_path_text(p, "PatientFirstName");
  r->patient_name = first.empty() ? last : last + ", " + first;
  r->patient_id = xml_path_text(p, "PatientID");
  r->birth_date = xml_path_text(p, "DateofBirth");
  XmlNode t = xml_child(root, "TestDemographics");
  r->device = xml_path_text(t, "AcquisitionDevice");
  r->acquisition_time =
      muse_time(xml_path_text(t, "AcquisitionDate"), xml_path_text(t, "AcquisitionTime"));
}

}  // namespace

Expected<EcgRecord> read_ge_muse(const std::string& bytes, const std::string& path) {
  ASSIGN_OR_RETURN(auto doc, XmlDocument::parse(bytes, path));
  XmlNode root = doc.root();
  if (xml_name(root) != "RestingECG")
    return clinical::bad(path, "root element", "<" + xml_name(root) + ">, expected <RestingECG>");
  XmlNode wave = nullptr;
  for (XmlNode w : xml_children(root, "Waveform"))
    if (xml_path_text(w, "WaveformType") == "Rhythm") wave = w;
  if (!wave) return clinical::bad(path, "RestingECG", "no Waveform of WaveformType Rhythm");
  double base, exponent = 0;
  if (!clinical::parse_number(xml_path_text(wave, "SampleBase"), &base) || base <= 0 ||
      (!xml_path_text(wave, "SampleExponent").empty() &&
       !clinical::parse_number(xml_path_text(wave, "SampleExponent"), &exponent)))
    return clinical::bad(path, "Rhythm waveform", "SampleBase must be a positive number");
  EcgRecord r;
  r.path = path;
  r.name = clinical::stem_name(path);
  r.format = "ge-muse";
  r.fs = base * std::pow(10.0, exponent);
  std::vector<std::vector<int32_t>> samples;
  for (XmlNode lead : xml_children(wave, "LeadData")) {
    const std::string id = clinical::canonical_lead_name(xml_path_text(lead, "LeadID"));
    double n, per_bit;
    if (!clinical::parse_number(xml_path_text(lead, "LeadSampleCountTotal"), &n) || n < 1 ||
        n > static_cast<double>(bytes.size()))
      return clinical::bad(path, "Rhythm lead " + id, "LeadSampleCountTotal is not a count");
    if (!clinical::parse_number(xml_path_text(lead, "LeadAmplitudeUnitsPerBit"), &per_bit) ||
        per_bit <= 0)
      return clinical::bad(path, "Rhythm lead " + id,
                           "LeadAmplitudeUnitsPerBit must be a positive number");
    if (!samples.empty() && static_cast<int64_t>(n) != r.n_samples)
      return clinical::bad(path, "Rhythm lead " + id,
                           xml_path_text(lead, "LeadSampleCountTotal") + " samples where lead " +
                               r.leads[0] + " has " + std::to_string(r.n_samples));
    r.n_samples = static_cast<int64_t>(n);
    std::vector<int32_t> v;
    RETURN_IF_ERROR(muse_lead(lead, id, r.n_samples, path, &v));
    samples.push_back(std::move(v));
    r.leads.push_back(id);
    r.gains.push_back(1.0 / per_bit);
    r.baselines.push_back(0);
    r.units.push_back(muse_units(xml_path_text(lead, "LeadAmplitudeUnits")));
  }
  if (samples.empty()) return clinical::bad(path, "Rhythm waveform", "no LeadData");
  clinical::store_adc(&r, samples);
  muse_details(root, &r);
  return r;
}

}  // namespace ecgq
