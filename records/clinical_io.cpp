#include "records/clinical_io.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>

#include "records/lead_names.hpp"

namespace ecgq::clinical {

Expected<std::string> read_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return Status(ErrorCode::NotFound, path + " does not exist", "path");
  if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes)
    return bad(path, "file", "larger than " + std::to_string(kMaxFileBytes >> 20) + " MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(ErrorCode::NotFound, "cannot open " + path, "path");
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

Status bad(const std::string& path, const std::string& where, const std::string& what) {
  return Status(ErrorCode::BadRecord, path + ": " + where + ": " + what, "path");
}

bool ByteCursor::seek(size_t pos) {
  if (pos > bytes_.size()) return false;
  pos_ = pos;
  return true;
}

bool ByteCursor::u(int n, uint32_t* out) {
  if (left() < static_cast<size_t>(n)) return false;
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes_[pos_ + i]);
  pos_ += static_cast<size_t>(n);
  *out = v;
  return true;
}

bool ByteCursor::take(size_t n, std::string_view* out) {
  if (left() < n) return false;
  *out = bytes_.substr(pos_, n);
  pos_ += n;
  return true;
}

bool parse_number(const std::string& text, double* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(*out);
}

bool base64_decode(std::string_view text, std::string* out) {
  out->clear();
  out->reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=') {
      ++pad;
      continue;
    } else if (std::isspace(static_cast<unsigned char>(c)))
      continue;
    else
      return false;
    if (pad) return false;  // data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return pad <= 2;
}

uint32_t crc32(std::string_view bytes) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (char b : bytes) c = table[(c ^ static_cast<uint8_t>(b)) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint16_t crc_ccitt(std::string_view bytes) {
  uint16_t crc = 0xFFFF;
  for (char b : bytes) {
    crc ^= static_cast<uint16_t>(static_cast<uint8_t>(b) << 8);
    for (int k = 0; k < 8; ++k)
      crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

std::string lead_name_from_number(int number) {
  // EN 1064 table 9 (the ISO/IEEE 11073-10101 MDC_ECG_LEAD_* codes use the same numbers).
  static const std::map<int, const char*> kLeads = {
      {1, "I"},    {2, "II"},   {3, "V1"},   {4, "V2"},   {5, "V3"},   {6, "V4"},   {7, "V5"},
      {8, "V6"},   {9, "V7"},   {10, "V2R"}, {11, "V3R"}, {12, "V4R"}, {13, "V5R"}, {14, "V6R"},
      {15, "V7R"}, {16, "X"},   {17, "Y"},   {18, "Z"},   {19, "CC5"}, {20, "CM5"}, {21, "LA"},
      {22, "RA"},  {23, "LL"},  {61, "III"}, {62, "aVR"}, {63, "aVL"}, {64, "aVF"}, {65, "-aVR"},
      {66, "V8"},  {67, "V9"},  {68, "V8R"}, {69, "V9R"}, {84, "ES"},  {85, "AS"},  {86, "AI"},
      {87, "S"},   {131, "V1"}, {132, "V2"}, {133, "V3"}, {134, "V4"}, {135, "V5"}, {136, "V6"}};
  auto it = kLeads.find(number);
  return it == kLeads.end() ? "" : it->second;
}

namespace {

// The number after the last '-' or ':' of a coded lead ("5.6.3-9-61", "2:61"), or -1.
int coded_number(const std::string& s) {
  const size_t cut = s.find_last_of("-:");
  if (cut == std::string::npos || cut + 1 >= s.size() || s.size() - cut > 4) return -1;
  int n = 0;
  for (size_t i = cut + 1; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return -1;
    n = n * 10 + (s[i] - '0');
  }
  return n;
}

}  // namespace

std::string canonical_lead_name(const std::string& name) {
  std::string s = name;
  const size_t b = s.find_first_not_of(" \t");
  const size_t e = s.find_last_not_of(" \t\r\n");
  s = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  const std::string lower = lower_trimmed(s);
  for (const char* prefix : {"mdc_ecg_lead_", "ecg lead ", "ecg ", "lead "})
    if (lower.rfind(prefix, 0) == 0) {
      s = s.substr(std::strlen(prefix));
      break;
    }
  const size_t paren = s.find(" (");
  if (paren != std::string::npos) s = s.substr(0, paren);  // "I (Einthoven)"
  if (s.find_first_of("-:") != std::string::npos) {
    const std::string n = lead_name_from_number(coded_number(s));
    if (!n.empty()) return n;
  }
  const int model = model_lead_index(s);
  if (model >= 0) {
    static const char* const kNames[] = {"I",  "II", "III", "aVR", "aVL", "aVF",
                                         "V1", "V2", "V3",  "V4",  "V5",  "V6"};
    return kNames[model];
  }
  std::string upper = s;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (int n = 1; n < 140; ++n)
    if (lead_name_from_number(n) == upper) return upper;
  return s;
}

void store_adc(EcgRecord* r, const std::vector<std::vector<int32_t>>& samples) {
  int64_t lo = 0, hi = 0;
  for (const auto& v : samples)
    for (int32_t x : v) {
      lo = std::min<int64_t>(lo, x);
      hi = std::max<int64_t>(hi, x);
    }
  const size_t total = samples.size() * static_cast<size_t>(r->n_samples);
  if (lo >= INT16_MIN && hi <= INT16_MAX) {
    r->dtype = "i16";
    r->i16.reserve(total);
    for (const auto& v : samples)
      for (int32_t x : v) r->i16.push_back(static_cast<int16_t>(x));
  } else if (lo >= -(1 << 24) && hi <= (1 << 24)) {  // exact in float32
    r->dtype = "f32";
    r->f32.reserve(total);
    for (const auto& v : samples)
      for (int32_t x : v) r->f32.push_back(static_cast<float>(x));
  } else {
    r->dtype = "f64";
    r->f64.reserve(total);
    for (const auto& v : samples)
      for (int32_t x : v) r->f64.push_back(x);
  }
}

std::string stem_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

}  // namespace ecgq::clinical
