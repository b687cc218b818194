// Writers of small clinical-format files for the tests: EDF(+), GE MUSE XML and SCP-ECG.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
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

// Little-endian bytes of `v` (`n` of them).
inline std::string le(uint32_t v, int n) {
  std::string o;
  for (int i = 0; i < n; ++i) o.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return o;
}

// `values` coded with the default Huffman table of EN 1064: 0 -> "0", +-1..8 -> ones, a zero
// and the sign, others 1111111110 + 8 bits or 1111111111 + 16 bits; padded to whole bytes.
inline std::string scp_default_huffman(const std::vector<int32_t>& values) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  auto put = [&](uint32_t code, int n) {
    for (int i = n - 1; i >= 0; --i) {
      acc = (acc << 1) | ((code >> i) & 1);
      if (++bits == 8) {
        out.push_back(static_cast<char>(acc));
        acc = 0;
        bits = 0;
      }
    }
  };
  for (int32_t v : values) {
    const uint32_t m = static_cast<uint32_t>(v < 0 ? -v : v);
    if (v == 0)
      put(0, 1);
    else if (m <= 8)
      put((((1u << m) - 1) << 2) | (v < 0 ? 1 : 0), static_cast<int>(m) + 2);
    else if (v >= -128 && v <= 127)
      put((0x3FEu << 8) | (static_cast<uint32_t>(v) & 0xFF), 18);
    else
      put((0x3FFu << 16) | (static_cast<uint32_t>(v) & 0xFFFF), 26);
  }
  if (bits) put(0, 8 - bits);
  return out;
}

// A section 5/6 body: AVM (nV), sample interval (us), difference encoding (applied here to
// `leads` before coding with the default table), the bimodal byte, lengths, data.
inline std::string scp_lead_block(uint32_t avm, uint32_t interval_us, int difference, int bimodal,
                                  const std::vector<std::vector<int32_t>>& leads) {
  std::string head = le(avm, 2) + le(interval_us, 2) + le(static_cast<uint32_t>(difference), 1) +
                     le(static_cast<uint32_t>(bimodal), 1);
  std::string data;
  for (const auto& v : leads) {
    std::vector<int32_t> d = v;
    for (size_t t = d.size(); t-- > static_cast<size_t>(difference);)
      d[t] = difference == 1 ? v[t] - v[t - 1] : v[t] - 2 * v[t - 1] + v[t - 2];
    const std::string coded = scp_default_huffman(d);
    head += le(static_cast<uint32_t>(coded.size()), 2);
    data += coded;
  }
  return head + data;
}

// An SCP-ECG record of the given section bodies (section 0 is made here); every section header
// carries "SCPECG", lengths and CRCs are right.
inline std::string scp_record(const std::map<int, std::string>& bodies) {
  auto section = [](int id, const std::string& body) {
    std::string s = le(static_cast<uint32_t>(id), 2) +
                    le(static_cast<uint32_t>(16 + body.size()), 4) +
                    std::string("\x14\x14SCPECG", 8) + body;
    return le(clinical::crc_ccitt(s), 2) + s;
  };
  const size_t s0_size = 16 + 10 * (bodies.size() + 1);
  std::string pointers, rest;
  size_t at = 6 + s0_size;
  pointers += le(0, 2) + le(static_cast<uint32_t>(s0_size), 4) + le(7, 4);
  for (const auto& [id, body] : bodies) {
    const std::string s = section(id, body);
    pointers += le(static_cast<uint32_t>(id), 2) + le(static_cast<uint32_t>(s.size()), 4) +
                le(static_cast<uint32_t>(at + 1), 4);
    at += s.size();
    rest += s;
  }
  const std::string tail =
      le(static_cast<uint32_t>(6 + s0_size + rest.size()), 4) + section(0, pointers) + rest;
  return le(clinical::crc_ccitt(tail), 2) + tail;
}

}  // namespace ecgq::test
