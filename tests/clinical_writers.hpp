// Writers of small clinical-format files for the tests: EDF(+) and GE MUSE XML.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "records/clinical_io.hpp"

namespace ecgq::test {

// An EDF(+) file: `signals` (label, units, samples per record), `records` records of
// `duration` s; digital -32768..32767 maps to physical -3276.8..3276.7 (0.1 units per step).
inline std::string edf_file(const std::vector<std::tuple<std::string, std::string, int>>& signals,
                            int records, double duration, const std::string& reserved,
                            const std::function<int16_t(int signal, int64_t t)>& value) {
  auto pad = [](std::string s, size_t n) {
    s.resize(n, ' ');
    return s;
  };
  const size_t ns = signals.size();
  std::string h = pad("0", 8) + pad("MCH-0234567 F 02-MAY-1951 Haagse_Harry", 80) +
                  pad("Startdate 02-MAR-2002 EMG561 BK/JOP Sony. MNC R Median Nerve.", 80) +
                  "02.03.02" + "13.14.15" + pad(std::to_string(256 * (ns + 1)), 8) +
                  pad(reserved, 44) + pad(std::to_string(records), 8) +
                  pad(std::to_string(duration), 8) + pad(std::to_string(ns), 4);
  auto each = [&](auto fn, size_t n) {
    for (const auto& s : signals) h += pad(fn(s), n);
  };
  each([](const auto& s) { return std::get<0>(s); }, 16);
  each([](const auto&) { return std::string("AgAgCl electrode"); }, 80);
  each([](const auto& s) { return std::get<1>(s); }, 8);
  each([](const auto&) { return std::string("-3276.8"); }, 8);
  each([](const auto&) { return std::string("3276.7"); }, 8);
  each([](const auto&) { return std::string("-32768"); }, 8);
  each([](const auto&) { return std::string("32767"); }, 8);
  each([](const auto&) { return std::string("HP:0.1Hz"); }, 80);
  each([](const auto& s) { return std::to_string(std::get<2>(s)); }, 8);
  each([](const auto&) { return std::string(); }, 32);
  for (int k = 0; k < records; ++k)
    for (size_t i = 0; i < ns; ++i)
      for (int t = 0; t < std::get<2>(signals[i]); ++t) {
        const int16_t v = value(static_cast<int>(i), k * std::get<2>(signals[i]) + t);
        h.push_back(static_cast<char>(v & 0xFF));
        h.push_back(static_cast<char>((v >> 8) & 0xFF));
      }
  return h;
}

// A GE MUSE RestingECG with a Rhythm waveform of leads I and II (base64 int16), `crc_of_ii`
// written as lead II's LeadDataCRC32, then `more_leads` with `more_data` (their CRCs right).
inline std::string muse_file(const std::string& i_data, const std::string& ii_data,
                             uint32_t crc_of_ii, const std::vector<std::string>& more_leads = {},
                             const std::vector<std::string>& more_data = {}) {
  auto b64 = [](const std::string& d) {
    static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string o;
    for (size_t i = 0; i < d.size(); i += 3) {
      uint32_t v = static_cast<uint8_t>(d[i]) << 16;
      if (i + 1 < d.size()) v |= static_cast<uint8_t>(d[i + 1]) << 8;
      if (i + 2 < d.size()) v |= static_cast<uint8_t>(d[i + 2]);
      o += k[(v >> 18) & 63];
      o += k[(v >> 12) & 63];
      o += i + 1 < d.size() ? k[(v >> 6) & 63] : '=';
      o += i + 2 < d.size() ? k[v & 63] : '=';
    }
    return o;
  };
  auto lead = [&](const std::string& id, const std::string& d, uint32_t crc) {
    return "<LeadData><LeadSampleCountTotal>" + std::to_string(d.size() / 2) +
           "</LeadSampleCountTotal><LeadAmplitudeUnitsPerBit>4.88</LeadAmplitudeUnitsPerBit>"
           "<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadID>" +
           id + "</LeadID><LeadDataCRC32>" + std::to_string(crc) +
           "</LeadDataCRC32><WaveFormData>" + b64(d) + "</WaveFormData></LeadData>";
  };
  return "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<!DOCTYPE RestingECG SYSTEM "
         "\"restecg.dtd\">\n<RestingECG><TestDemographics><AcquisitionDevice>MAC55"
         "</AcquisitionDevice><AcquisitionDate>05-04-2017</AcquisitionDate><AcquisitionTime>"
         "16:35:07</AcquisitionTime></TestDemographics><Waveform><WaveformType>Rhythm"
         "</WaveformType><SampleBase>250</SampleBase><SampleExponent>1</SampleExponent>" +
         lead("I", i_data, clinical::crc32(i_data)) + lead("II", ii_data, crc_of_ii) +
         [&] {
           std::string extra;
           for (size_t k = 0; k < more_leads.size(); ++k)
             extra += lead(more_leads[k], more_data[k], clinical::crc32(more_data[k]));
           return extra;
         }() +
         "</Waveform></RestingECG>\n";
}

}  // namespace ecgq::test
