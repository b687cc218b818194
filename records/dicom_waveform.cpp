// DICOM ECG waveforms (PS3.3 C.10.9 Waveform module): WaveformSequence items are multiplex
// groups (RHYTHM, MEDIAN BEAT, ...), each with its channels' definitions and interleaved samples.
#include <algorithm>
#include <cctype>

#include "records/clinical_io.hpp"
#include "records/clinical_readers.hpp"
#include "records/dicom_dataset.hpp"

namespace ecgq {

namespace {

using dicom::Element;

// SOP classes whose waveforms are ECGs.
bool ecg_sop_class(const std::string& uid) {
  return uid == "1.2.840.10008.5.1.4.1.1.9.1.1"      // 12-lead ECG Waveform Storage
         || uid == "1.2.840.10008.5.1.4.1.1.9.1.2"   // General ECG Waveform Storage
         || uid == "1.2.840.10008.5.1.4.1.1.9.1.3"   // Ambulatory ECG Waveform Storage
         || uid == "1.2.840.10008.5.1.4.1.1.9.2.1";  // Hemodynamic Waveform Storage
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The multiplex group read: the first labelled RHYTHM, else the first not labelled a median or
// average beat.
const std::vector<Element>* rhythm_group(const Element& waveforms) {
  for (const auto& g : waveforms.items)
    if (upper(dicom::text(g, 0x003A0020)).find("RHYTHM") != std::string::npos) return &g;
  for (const auto& g : waveforms.items) {
    const std::string label = upper(dicom::text(g, 0x003A0020));
    if (label.find("MEDIAN") == std::string::npos && label.find("AVERAGE") == std::string::npos)
      return &g;
  }
  return nullptr;
}

// A channel's lead name: the source code value when it is an SCP-ECG or MDC lead code, else the
// code meaning.
std::string channel_name(const std::vector<Element>& def, size_t index) {
  const Element* src = dicom::find(def, 0x003A0208);
  if (!src || src->items.empty()) return "channel " + std::to_string(index + 1);
  const auto& item = src->items[0];
  const std::string code = dicom::text(item, 0x00080100);
  const std::string from_code = clinical::canonical_lead_name(code);
  if (from_code != code) return from_code;
  const std::string meaning = dicom::text(item, 0x00080104);
  return clinical::canonical_lead_name(meaning.empty() ? code : meaning);
}

// Channel definitions into r (names, gains, baselines, units).
Status read_channels(const Element& defs, const std::string& path, EcgRecord* r) {
  for (size_t c = 0; c < defs.items.size(); ++c) {
    const auto& def = defs.items[c];
    const std::string name = channel_name(def, c);
    double sensitivity, correction = 1, baseline = 0;
    if (!dicom::decimal(def, 0x003A0210, &sensitivity) || sensitivity == 0)
      return clinical::bad(path, "channel " + std::to_string(c + 1) + " (" + name + ")",
                           "no non-zero ChannelSensitivity (003A,0210)");
    if (dicom::find(def, 0x003A0212) && !dicom::decimal(def, 0x003A0212, &correction))
      return clinical::bad(path, "channel " + name,
                           "ChannelSensitivityCorrectionFactor is not a number");
    if (dicom::find(def, 0x003A0213) && !dicom::decimal(def, 0x003A0213, &baseline))
      return clinical::bad(path, "channel " + name, "ChannelBaseline is not a number");
    std::string units = "uV";
    if (const Element* u = dicom::find(def, 0x003A0211); u && !u->items.empty())
      units = dicom::text(u->items[0], 0x00080100);
    // Physical value = (sample + baseline) * sensitivity * correction (PS3.3 C.10.9.1.4).
    r->leads.push_back(name);
    r->gains.push_back(1.0 / (sensitivity * correction));
    r->baselines.push_back(-baseline);
    r->units.push_back(units);
  }
  return Status::Ok();
}

// Interleaved samples of `channels` channels into lead-major int32.
Status read_samples(std::string_view data, int bits, const std::string& interpretation,
                    size_t channels, const std::string& path, EcgRecord* r) {
  const size_t width = static_cast<size_t>(bits / 8);
  std::vector<std::vector<int32_t>> samples(
      channels, std::vector<int32_t>(static_cast<size_t>(r->n_samples)));
  for (int64_t t = 0; t < r->n_samples; ++t)
    for (size_t c = 0; c < channels; ++c) {
      const char* p = data.data() + (static_cast<size_t>(t) * channels + c) * width;
      int32_t v;
      if (width == 1) {
        v = interpretation == "SB" ? static_cast<int8_t>(p[0]) : static_cast<uint8_t>(p[0]);
      } else if (width == 2) {
        const uint16_t u =
            static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
        v = interpretation == "SS" ? static_cast<int16_t>(u) : static_cast<int32_t>(u);
      } else {
        uint32_t u = 0;
        for (int k = 3; k >= 0; --k) u = (u << 8) | static_cast<uint8_t>(p[k]);
        v = static_cast<int32_t>(u);
      }
      samples[c][static_cast<size_t>(t)] = v;
    }
  (void)path;
  clinical::store_adc(r, samples);
  return Status::Ok();
}

Status read_group(const std::vector<Element>& g, const std::string& path, EcgRecord* r) {
  uint32_t channels, n, bits;
  double fs;
  if (!dicom::unsigned_value(g, 0x003A0005, &channels) ||
      !dicom::unsigned_value(g, 0x003A0010, &n) || !dicom::decimal(g, 0x003A001A, &fs) || fs <= 0 ||
      !dicom::unsigned_value(g, 0x54001004, &bits))
    return clinical::bad(path, "multiplex group",
                         "needs NumberOfWaveformChannels, NumberOfWaveformSamples, "
                         "SamplingFrequency and WaveformBitsAllocated");
  const std::string interpretation = dicom::text(g, 0x54001006);
  const bool ok_type = (bits == 16 && (interpretation == "SS" || interpretation == "US")) ||
                       (bits == 8 && (interpretation == "SB" || interpretation == "UB")) ||
                       (bits == 32 && interpretation == "SL");
  if (!ok_type)
    return Status(ErrorCode::UnsupportedFormat,
                  path + ": waveform samples of " + std::to_string(bits) + " bits '" +
                      interpretation + "' are not read (SS/US 16, SB/UB 8, SL 32 only)",
                  "path");
  const Element* defs = dicom::find(g, 0x003A0200);
  const Element* data = dicom::find(g, 0x54001010);
  if (!defs || !data)
    return clinical::bad(path, "multiplex group", "no ChannelDefinitionSequence or WaveformData");
  // Zero channels would pass the size check below for any sample count; refuse them first.
  if (channels == 0)
    return clinical::bad(path, "NumberOfWaveformChannels (003A,0005)", "0; expected 1 or more");
  const size_t width = bits / 8, size = data->value.size();
  if (n == 0 || size / width / n < channels)
    return clinical::bad(path, "WaveformData (5400,1010)",
                         std::to_string(size) + " bytes for " + std::to_string(channels) +
                             " channels of " + std::to_string(n) + " samples");
  if (defs->items.size() != channels) {
    // A tolerant reading of files that declare fewer channels than they define and hold.
    if (size != defs->items.size() * n * width)
      return clinical::bad(path, "ChannelDefinitionSequence (003A,0200)",
                           std::to_string(defs->items.size()) + " channel definitions for " +
                               std::to_string(channels) + " channels");
    r->warnings.push_back("NumberOfWaveformChannels says " + std::to_string(channels) +
                          ", the file defines and holds " + std::to_string(defs->items.size()) +
                          " channels; reading those");
    channels = static_cast<uint32_t>(defs->items.size());
  }
  r->fs = fs;
  r->n_samples = n;
  RETURN_IF_ERROR(read_channels(*defs, path, r));
  return read_samples(data->value, static_cast<int>(bits), interpretation, channels, path, r);
}

// Device, time and patient identifiers.
void dicom_details(const std::vector<Element>& ds, EcgRecord* r) {
  const std::string maker = dicom::text(ds, 0x00080070), model = dicom::text(ds, 0x00081090);
  r->device = maker.empty() ? model : model.empty() ? maker : maker + " " + model;
  std::string dt = dicom::text(ds, 0x0008002A);
  if (dt.empty()) dt = dicom::text(ds, 0x00080023) + dicom::text(ds, 0x00080033);
  if (dt.size() >= 8) {
    std::string iso = dt.substr(0, 4) + "-" + dt.substr(4, 2) + "-" + dt.substr(6, 2);
    if (dt.size() >= 14)
      iso += "T" + dt.substr(8, 2) + ":" + dt.substr(10, 2) + ":" + dt.substr(12, 2);
    r->acquisition_time = iso;
  }
  r->patient_name = dicom::text(ds, 0x00100010);
  r->patient_id = dicom::text(ds, 0x00100020);
  r->birth_date = dicom::text(ds, 0x00100030);
}

}  // namespace

Expected<EcgRecord> read_dicom(const std::string& bytes, const std::string& path) {
  ASSIGN_OR_RETURN(auto ds, dicom::parse(bytes, path));
  const std::string sop = dicom::text(ds.elements, 0x00080016);
  if (!ecg_sop_class(sop))
    return Status(ErrorCode::UnsupportedFormat,
                  path + ": DICOM SOP class '" + sop +
                      "' is not an ECG waveform (12-lead, general, ambulatory ECG or hemodynamic)",
                  "path");
  const Element* waveforms = dicom::find(ds.elements, 0x54000100);
  if (!waveforms || waveforms->items.empty())
    return clinical::bad(path, "WaveformSequence (5400,0100)", "absent or empty");
  const auto* group = rhythm_group(*waveforms);
  if (!group) return clinical::bad(path, "WaveformSequence (5400,0100)", "only median-beat groups");
  EcgRecord r;
  r.path = path;
  r.name = clinical::stem_name(path);
  r.format = "dicom";
  RETURN_IF_ERROR(read_group(*group, path, &r));
  dicom_details(ds.elements, &r);
  return r;
}

}  // namespace ecgq
