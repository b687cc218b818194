// Philips XML (restingecgdata, http://www3.medical.philips.com): SierraECG 1.03 and PhilipsECG
// 1.04 / 1.04.01. The rhythm is in <parsedwaveforms>: Plain (text integers), Base64 (int16 LE per
// lead) or Base64 XLI-compressed. XLI, as Philips writes it: per lead an 8-byte chunk header (int32
// size, int16 unknown, int16 first delta), then `size` bytes of LZW with 10-bit codes, which
// decode to the deltas' high bytes followed by their low bytes; the deltas are second-order
// predictions with a bias of 64. Leads III, aVR, aVL and aVF are stored as residuals against
// what I and II predict, and are reconstructed here.
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "records/clinical_io.hpp"
#include "records/clinical_readers.hpp"
#include "records/xml_document.hpp"

namespace ecgq {

namespace {

// LZW with 10-bit codes read MSB-first, 256 single-byte strings to start with, no reset code,
// as the XLI encoder writes it: decoding stops at the code whose reading consumed the last byte
// (or at a code above the table's limit); the output is capped at `limit` bytes.
bool lzw_decode(std::string_view in, size_t limit, std::string* out) {
  constexpr int kBits = 10;
  constexpr uint32_t kMaxCode = (1u << kBits) - 2;
  std::vector<std::string> table(256);
  for (int i = 0; i < 256; ++i)
    table[static_cast<size_t>(i)] = std::string(1, static_cast<char>(i));
  std::string previous;
  uint32_t buffer = 0;
  int bits = 0;
  size_t pos = 0;
  while (true) {
    while (bits <= 24) {
      // Past the end the reader sees all ones, which ends decoding with an out-of-range code.
      const uint32_t byte = pos < in.size() ? static_cast<uint8_t>(in[pos]) : 0xFFFFFFFFu;
      buffer |= byte << (24 - bits);
      bits += 8;
      if (pos < in.size()) ++pos;
    }
    const uint32_t code = buffer >> (32 - kBits);
    buffer <<= kBits;
    bits -= kBits;
    if (pos >= in.size() || code > kMaxCode) break;
    std::string current;
    if (code < table.size()) {
      current = table[code];
    } else if (code == table.size() && !previous.empty()) {
      current = previous + previous[0];
    } else {
      return false;
    }
    if (out->size() + current.size() > limit) return false;
    *out += current;
    if (!previous.empty() && table.size() <= kMaxCode) table.push_back(previous + current[0]);
    previous = std::move(current);
  }
  return true;
}

// One XLI lead chunk at `*pos`: the lead's first `n` samples.
Status xli_lead(std::string_view data, size_t* pos, int64_t n, size_t lead, const std::string& path,
                std::vector<int32_t>* out) {
  const std::string where = "parsedwaveforms, XLI chunk of lead " + std::to_string(lead + 1) +
                            " at byte " + std::to_string(*pos);
  clinical::ByteCursor c(data);
  uint32_t size, unknown, first;
  if (!c.seek(*pos) || !c.u(4, &size) || !c.u(2, &unknown) || !c.u(2, &first) || size > c.left())
    return clinical::bad(path, where, "chunk header or size runs past the data");
  std::string_view chunk;
  c.take(size, &chunk);
  *pos = c.pos();
  std::string bytes;
  // Each sample is two bytes; a chunk never decodes to more than the samples it holds, and LZW
  // cannot expand 10 bits to more than 1023 bytes.
  if (!lzw_decode(chunk, static_cast<size_t>(n) * 2 + 4096, &bytes))
    return clinical::bad(path, where, "LZW data are not valid");
  const size_t half = (bytes.size() + 1) / 2;
  if (half < static_cast<size_t>(n))
    return clinical::bad(
        path, where,
        std::to_string(half) + " samples where " + std::to_string(n) + " are expected");
  std::vector<int32_t> d(half);
  for (size_t i = 0; i < half; ++i)
    d[i] =
        static_cast<int16_t>((static_cast<uint8_t>(bytes[i]) << 8) |
                             (half + i < bytes.size() ? static_cast<uint8_t>(bytes[half + i]) : 0));
  int64_t x = d[0], y = half > 1 ? d[1] : 0, last = static_cast<int16_t>(first);
  for (size_t i = 2; i < half; ++i) {
    const int64_t z = 2 * y - x - last;
    // Real ECG stays within 16 bits; a prediction that runs away is corrupt data, not a signal.
    if (z > (1 << 24) || z < -(1 << 24))
      return clinical::bad(path, where, "decoded sample " + std::to_string(i) + " runs away");
    last = d[i] - 64;
    d[i] = static_cast<int32_t>(z);
    x = y;
    y = z;
  }
  d.resize(static_cast<size_t>(n));
  *out = std::move(d);
  return Status::Ok();
}

// III, aVR, aVL, aVF from their residuals (leads 0-5 in the order I II III aVR aVL aVF).
void reconstruct_limb_leads(std::vector<std::vector<int32_t>>& l) {
  for (size_t t = 0; t < l[0].size(); ++t) {
    const int32_t i = l[0][t], ii = l[1][t];
    l[2][t] = ii - i - l[2][t];
    l[3][t] = -l[3][t] - (i + ii) / 2;
    l[4][t] = (i - l[2][t]) / 2 - l[4][t];
    l[5][t] = (ii + l[2][t]) / 2 - l[5][t];
  }
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

struct PhilipsLayout {
  std::vector<std::string> leads;
  double fs = 0, resolution = 0;
  int64_t samples = 0;
};

Expected<PhilipsLayout> philips_layout(XmlNode root, XmlNode wave, const std::string& path) {
  XmlNode sc = xml_path(root, "dataacquisition/signalcharacteristics");
  auto num = [](const std::string& text, double* out) {
    char* end = nullptr;
    *out = std::strtod(text.c_str(), &end);
    return !text.empty() && end == text.c_str() + text.size() && std::isfinite(*out) && *out > 0;
  };
  PhilipsLayout l;
  std::string fs = xml_attr(wave, "samplespersecond");
  if (fs.empty()) fs = xml_path_text(sc, "samplingrate");
  std::string res = xml_attr(wave, "resolution");
  if (res.empty()) res = xml_path_text(sc, "signalresolution");
  double duration, count;
  if (!num(fs, &l.fs) || !num(res, &l.resolution) ||
      !num(xml_attr(wave, "durationperchannel"), &duration))
    return clinical::bad(path, "parsedwaveforms",
                         "needs a sample rate, a resolution and durationperchannel");
  l.samples = static_cast<int64_t>(std::llround(duration * l.fs / 1000));
  l.leads = split_words(xml_attr(wave, "leadlabels"));
  if (l.leads.empty()) {
    std::string n = xml_attr(wave, "numberofleads");
    if (n.empty()) n = xml_path_text(sc, "numberchannelsvalid");
    if (!num(n, &count) || count > 16)
      return clinical::bad(path, "signalcharacteristics", "no valid number of channels");
    static const char* const kStd[] = {"I",  "II", "III", "aVR", "aVL", "aVF",
                                       "V1", "V2", "V3",  "V4",  "V5",  "V6"};
    for (int i = 0; i < static_cast<int>(count) && i < 12; ++i) l.leads.push_back(kStd[i]);
  }
  for (auto& name : l.leads) name = clinical::canonical_lead_name(name);
  if (l.samples < 1 || l.samples > (int64_t{1} << 26))
    return clinical::bad(path, "parsedwaveforms", "durationperchannel gives no samples");
  return l;
}

// The leads' samples from the parsedwaveforms element.
Status philips_samples(XmlNode wave, const PhilipsLayout& l, size_t file_size,
                       const std::string& path, std::vector<std::vector<int32_t>>* out) {
  const std::string encoding = xml_attr(wave, "dataencoding");
  const std::string method = xml_attr(wave, "compression").empty()
                                 ? xml_attr(wave, "compressmethod")
                                 : xml_attr(wave, "compression");
  const bool compressed =
      !method.empty() && method != "None" && xml_attr(wave, "compressflag") != "False";
  if (static_cast<double>(l.samples) * static_cast<double>(l.leads.size()) >
      static_cast<double>(file_size) * 8)
    return clinical::bad(path, "parsedwaveforms", "declared samples exceed what the file can hold");
  if (encoding == "Plain") {
    const auto words = split_words(xml_text(wave));
    if (words.size() < static_cast<size_t>(l.samples) * l.leads.size())
      return clinical::bad(path, "parsedwaveforms", "fewer Plain values than leads x samples");
    for (size_t k = 0; k < l.leads.size(); ++k) {
      std::vector<int32_t> v(static_cast<size_t>(l.samples));
      for (size_t t = 0; t < v.size(); ++t)
        v[t] = static_cast<int32_t>(std::strtol(words[k * v.size() + t].c_str(), nullptr, 10));
      out->push_back(std::move(v));
    }
    return Status::Ok();
  }
  if (encoding != "Base64")
    return clinical::bad(path, "parsedwaveforms",
                         "dataencoding '" + encoding + "' (expected Base64 or Plain)");
  std::string data;
  if (!clinical::base64_decode(xml_text(wave), &data))
    return clinical::bad(path, "parsedwaveforms", "not base64");
  size_t pos = 0;
  for (size_t k = 0; k < l.leads.size(); ++k) {
    std::vector<int32_t> v;
    if (compressed) {
      if (method != "XLI")
        return Status(ErrorCode::UnsupportedFormat,
                      path + ": Philips compression '" + method + "' is not read (XLI only)",
                      "path");
      RETURN_IF_ERROR(xli_lead(data, &pos, l.samples, k, path, &v));
    } else {
      if (data.size() < (k + 1) * static_cast<size_t>(l.samples) * 2)
        return clinical::bad(path, "parsedwaveforms", "fewer bytes than leads x samples x 2");
      v.resize(static_cast<size_t>(l.samples));
      for (size_t t = 0; t < v.size(); ++t) {
        const size_t at = (k * v.size() + t) * 2;
        v[t] = static_cast<int16_t>(static_cast<uint8_t>(data[at]) |
                                    (static_cast<uint8_t>(data[at + 1]) << 8));
      }
    }
    out->push_back(std::move(v));
  }
  static const std::vector<std::string> kLimb = {"I", "II", "III", "aVR", "aVL", "aVF"};
  if (compressed && l.leads.size() >= 6 && std::equal(kLimb.begin(), kLimb.end(), l.leads.begin()))
    reconstruct_limb_leads(*out);
  return Status::Ok();
}

void philips_details(XmlNode root, EcgRecord* r) {
  XmlNode acq = xml_child(root, "dataacquisition");
  r->device = xml_path_text(acq, "machine");
  const std::string date = xml_attr(acq, "date"), time = xml_attr(acq, "time");
  r->acquisition_time = time.empty() ? date : date + "T" + time;
  XmlNode p = xml_path(root, "patient/generalpatientdata");
  r->patient_id = xml_path_text(p, "patientid");
  const std::string last = xml_path_text(p, "name/lastname"),
                    first = xml_path_text(p, "name/firstname");
  r->patient_name = first.empty() ? last : last + ", " + first;
  r->birth_date = xml_path_text(p, "age/dateofbirth");
}

}  // namespace

Expected<EcgRecord> read_philips(const std::string& bytes, const std::string& path) {
  ASSIGN_OR_RETURN(auto doc, XmlDocument::parse(bytes, path));
  XmlNode root = doc.root();
  if (xml_name(root) != "restingecgdata")
    return clinical::bad(path, "root element",
                         "<" + xml_name(root) + ">, expected <restingecgdata>");
  const std::string version = xml_path_text(root, "documentinfo/documentversion");
  if (version != "1.03" && version.rfind("1.04", 0) != 0)
    return Status(
        ErrorCode::UnsupportedFormat,
        path + ": Philips XML document version '" + version + "' is not read (1.03, 1.04, 1.04.01)",
        "path");
  XmlNode wave = xml_find(root, "parsedwaveforms");
  if (!wave) return clinical::bad(path, "restingecgdata", "no <parsedwaveforms>");
  ASSIGN_OR_RETURN(auto layout, philips_layout(root, wave, path));
  std::vector<std::vector<int32_t>> samples;
  RETURN_IF_ERROR(philips_samples(wave, layout, bytes.size(), path, &samples));
  EcgRecord r;
  r.path = path;
  r.name = clinical::stem_name(path);
  r.format = "philips";
  r.fs = layout.fs;
  r.n_samples = layout.samples;
  r.leads = layout.leads;
  r.gains.assign(r.leads.size(), 1.0 / layout.resolution);
  r.baselines.assign(r.leads.size(), 0.0);
  r.units.assign(r.leads.size(), "uV");
  clinical::store_adc(&r, samples);
  philips_details(root, &r);
  return r;
}

}  // namespace ecgq
