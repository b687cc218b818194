// SCP-ECG (EN 1064 / ISO 11073-91064), versions 1.x and 2.x: a record CRC and length, section 0's
// pointers to the other sections (each with its own CRC), section 1 (patient and acquisition
// tags), 2 (Huffman tables, or 19999 for the default table), 3 (leads and sample ranges),
// 4/5 (QRS locations, reference beats) and 6 (the rhythm: per-lead Huffman streams of first or
// second differences). Files that do not validate are refused, not guessed at.
#include <algorithm>
#include <array>

#include "records/clinical_io.hpp"
#include "records/clinical_readers.hpp"

namespace ecgq {

namespace {

// One Huffman code: `prefix` bits (first bit first) followed by total - prefix bits of a signed
// value, or, when total == prefix, the value itself.
struct HuffmanCode {
  int prefix_bits, total_bits;
  bool switch_table;
  int32_t value;
  uint32_t code;  // the prefix, first bit in the most significant of its prefix_bits
};
using HuffmanTable = std::vector<HuffmanCode>;

// The default table of EN 1064 (annex): 0 -> 0, 10x -> +-1, 110x -> +-2, ... 1111111110 + 8
// bits, 1111111111 + 16 bits.
HuffmanTable default_table() {
  HuffmanTable t;
  t.push_back({1, 1, true, 0, 0});
  for (int v = 1; v <= 8; ++v) {
    const int n = v + 2;                         // ones then a zero, then the sign bit
    const uint32_t ones = ((1u << v) - 1) << 2;  // v ones followed by "0" and sign
    t.push_back({n, n, true, v, ones});          // ...0 0 -> +v
    t.push_back({n, n, true, -v, ones | 1});     // ...0 1 -> -v
  }
  t.push_back({10, 18, true, 0, 0x3FE});
  t.push_back({10, 26, true, 0, 0x3FF});
  return t;
}

// Reads bits first-bit-first from a byte string.
class BitReader {
 public:
  explicit BitReader(std::string_view b) : bytes_(b) {}
  bool bit(uint32_t* out) {
    if (pos_ >= bytes_.size() * 8) return false;
    *out = (static_cast<uint8_t>(bytes_[pos_ / 8]) >> (7 - pos_ % 8)) & 1;
    ++pos_;
    return true;
  }
  bool bits(int n, uint32_t* out) {
    uint32_t v = 0, b;
    for (int i = 0; i < n; ++i) {
      if (!bit(&b)) return false;
      v = (v << 1) | b;
    }
    *out = v;
    return true;
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

// Decodes `n` values from one lead's stream.
bool huffman_decode(std::string_view data, const std::vector<HuffmanTable>& tables, size_t n,
                    std::vector<int32_t>* out) {
  BitReader in(data);
  size_t table = 0;
  out->clear();
  while (out->size() < n) {
    uint32_t code = 0, b;
    int len = 0;
    const HuffmanCode* hit = nullptr;
    while (!hit) {
      if (len >= 32 || !in.bit(&b)) return false;
      code = (code << 1) | b;
      ++len;
      for (const HuffmanCode& c : tables[table])
        if (c.prefix_bits == len && c.code == code) hit = &c;
    }
    if (!hit->switch_table) {
      if (hit->value < 1 || static_cast<size_t>(hit->value) > tables.size()) return false;
      table = static_cast<size_t>(hit->value) - 1;
      continue;
    }
    if (hit->total_bits == hit->prefix_bits) {
      out->push_back(hit->value);
      continue;
    }
    const int extra = hit->total_bits - hit->prefix_bits;
    uint32_t v;
    if (extra > 31 || !in.bits(extra, &v)) return false;
    // Two's complement of `extra` bits.
    const int32_t s = (v & (1u << (extra - 1))) ? static_cast<int32_t>(v) - (1 << extra)
                                                : static_cast<int32_t>(v);
    out->push_back(s);
  }
  return true;
}

// The sections of a record: where each body starts and how long it is.
struct Section {
  size_t body = 0, length = 0;  // body: offset after the 16-byte header; length: of the body
  bool present = false;
};

class ScpRecord {
 public:
  ScpRecord(const std::string& bytes, const std::string& path) : b_(bytes), path_(path) {}

  Status sections() {
    clinical::ByteCursor c(b_);
    uint32_t crc, length;
    if (!c.u(2, &crc) || !c.u(4, &length))
      return refuse("byte 0", "shorter than the record header");
    if (length != b_.size())
      return refuse("byte 2", "record length field says " + std::to_string(length) +
                                  " bytes, the file has " + std::to_string(b_.size()));
    if (clinical::crc_ccitt(std::string_view(b_).substr(2)) != crc)
      return refuse("byte 0", "record CRC does not match the data");
    RETURN_IF_ERROR(section_at(6, 0, &s_[0]));
    clinical::ByteCursor p(std::string_view(b_).substr(0, s_[0].body + s_[0].length));
    p.seek(s_[0].body);
    while (p.left() >= 10) {
      uint32_t id, len, index;
      p.u(2, &id);
      p.u(4, &len);
      p.u(4, &index);
      if (len == 0 || id == 0 || id >= s_.size()) continue;
      if (index < 1)
        return refuse("section 0", "pointer to section " + std::to_string(id) + " at index 0");
      RETURN_IF_ERROR(section_at(index - 1, static_cast<int>(id), &s_[id]));
    }
    return Status::Ok();
  }

  const Section& section(int id) const { return s_[static_cast<size_t>(id)]; }
  std::string_view body(int id) const {
    return std::string_view(b_).substr(section(id).body, section(id).length);
  }
  Status bad(int id, const std::string& what) const {
    return clinical::bad(path_, "section " + std::to_string(id), what);
  }
  Status refuse(const std::string& where, const std::string& what) const {
    return clinical::bad(path_, where, what + " (not an EN 1064 conforming SCP-ECG file)");
  }

 private:
  Status section_at(size_t at, int id, Section* s) {
    clinical::ByteCursor c(b_);
    uint32_t crc, sid, len;
    if (!c.seek(at) || !c.u(2, &crc) || !c.u(2, &sid) || !c.u(4, &len) || len < 16 ||
        len - 8 > c.left())
      return refuse("section " + std::to_string(id) + " at byte " + std::to_string(at),
                    "section header or length runs past the end");
    if (static_cast<int>(sid) != id)
      return refuse("section " + std::to_string(id) + " at byte " + std::to_string(at),
                    "the header there is of section " + std::to_string(sid));
    if (clinical::crc_ccitt(std::string_view(b_).substr(at + 2, len - 2)) != crc)
      return refuse("section " + std::to_string(id), "section CRC does not match");
    s->body = at + 16;
    s->length = len - 16;
    s->present = true;
    return Status::Ok();
  }

  const std::string& b_;
  const std::string& path_;
  std::array<Section, 256> s_{};
};

Expected<std::vector<HuffmanTable>> huffman_tables(const ScpRecord& r) {
  if (!r.section(2).present) return std::vector<HuffmanTable>{default_table()};
  clinical::ByteCursor c(r.body(2));
  uint32_t n;
  if (!c.u(2, &n)) return r.bad(2, "no table count");
  if (n == 19999) return std::vector<HuffmanTable>{default_table()};
  if (n == 0 || n > 256) return r.bad(2, std::to_string(n) + " Huffman tables");
  std::vector<HuffmanTable> tables(n);
  for (auto& t : tables) {
    uint32_t codes;
    if (!c.u(2, &codes) || codes == 0 || codes * 9 > c.left())
      return r.bad(2, "table runs past the end");
    for (uint32_t k = 0; k < codes; ++k) {
      uint32_t prefix, total, mode, value, code;
      c.u(1, &prefix);
      c.u(1, &total);
      c.u(1, &mode);
      c.u(2, &value);
      c.u(4, &code);
      if (prefix < 1 || prefix > 32 || total < prefix || total > 32)
        return r.bad(
            2, "Huffman code of " + std::to_string(prefix) + "/" + std::to_string(total) + " bits");
      // The base code is stored first bit in the least significant place: reverse it.
      uint32_t reversed = 0;
      for (uint32_t i = 0; i < prefix; ++i) reversed = (reversed << 1) | ((code >> i) & 1);
      t.push_back({static_cast<int>(prefix), static_cast<int>(total), mode != 0,
                   static_cast<int16_t>(value), reversed});
    }
  }
  return tables;
}

// Section 1: patient identifiers, device and acquisition date/time.
void scp_details(const ScpRecord& r, EcgRecord* out) {
  if (!r.section(1).present) return;
  clinical::ByteCursor c(r.body(1));
  std::string date, time;
  uint32_t tag, len;
  std::string_view v;
  auto text = [](std::string_view s) { return std::string(s.substr(0, s.find('\0'))); };
  auto two = [](uint32_t x) { return (x < 10 ? "0" : "") + std::to_string(x); };
  while (c.u(1, &tag) && tag != 255 && c.u(2, &len) && c.take(len, &v)) {
    clinical::ByteCursor f(v);
    uint32_t y, m, d;
    if (tag == 0)
      out->patient_name = text(v) + (out->patient_name.empty() ? "" : ", " + out->patient_name);
    if (tag == 1) out->patient_name += (out->patient_name.empty() ? "" : ", ") + text(v);
    if (tag == 2) out->patient_id = text(v);
    if ((tag == 5 || tag == 25) && f.u(2, &y) && f.u(1, &m) && f.u(1, &d))
      (tag == 5 ? out->birth_date : date) = std::to_string(y) + "-" + two(m) + "-" + two(d);
    if (tag == 26 && f.u(1, &y) && f.u(1, &m) && f.u(1, &d))
      time = two(y) + ":" + two(m) + ":" + two(d);
    if (tag == 14 && v.size() >= 14) out->device = text(v.substr(8, 6));
  }
  out->acquisition_time = time.empty() ? date : date + "T" + time;
}

}  // namespace

Expected<EcgRecord> read_scp(const std::string& bytes, const std::string& path) {
  ScpRecord r(bytes, path);
  RETURN_IF_ERROR(r.sections());
  if (!r.section(3).present || !r.section(6).present)
    return r.bad(r.section(3).present ? 6 : 3, "absent (no rhythm data)");
  clinical::ByteCursor s3(r.body(3));
  uint32_t n_leads, flags;
  if (!s3.u(1, &n_leads) || !s3.u(1, &flags) || n_leads == 0 || n_leads * 9 > s3.left())
    return r.bad(3, "lead table runs past the end");
  if (flags & 1)
    return Status(ErrorCode::UnsupportedFormat,
                  path + ": section 3: reference-beat subtraction is not read yet", "path");
  std::vector<uint32_t> start(n_leads), end(n_leads), id(n_leads);
  for (uint32_t l = 0; l < n_leads; ++l) {
    s3.u(4, &start[l]);
    s3.u(4, &end[l]);
    s3.u(1, &id[l]);
    if (start[l] < 1 || end[l] < start[l] || end[l] - start[l] >= bytes.size() * 8)
      return r.bad(3, "lead " + std::to_string(l + 1) + " sample range " +
                          std::to_string(start[l]) + "-" + std::to_string(end[l]));
  }
  clinical::ByteCursor s6(r.body(6));
  uint32_t avm, interval, diff, bimodal;
  if (!s6.u(2, &avm) || !s6.u(2, &interval) || !s6.u(1, &diff) || !s6.u(1, &bimodal) || avm == 0 ||
      interval == 0 || diff > 2)
    return r.bad(6, "header needs AVM, sample interval and a difference encoding of 0, 1 or 2");
  if (bimodal)
    return Status(ErrorCode::UnsupportedFormat,
                  path + ": section 6: bimodal compression is not read yet", "path");
  ASSIGN_OR_RETURN(const auto tables, huffman_tables(r));
  std::vector<uint32_t> lengths(n_leads);
  for (auto& len : lengths)
    if (!s6.u(2, &len)) return r.bad(6, "lead byte lengths run past the end");
  EcgRecord out;
  out.path = path;
  out.name = clinical::stem_name(path);
  out.format = "scp-ecg";
  out.fs = 1e6 / interval;
  out.n_samples = end[0] - start[0] + 1;
  std::vector<std::vector<int32_t>> samples;
  for (uint32_t l = 0; l < n_leads; ++l) {
    const std::string lead = clinical::lead_name_from_number(static_cast<int>(id[l])).empty()
                                 ? "lead " + std::to_string(id[l])
                                 : clinical::lead_name_from_number(static_cast<int>(id[l]));
    std::string_view data;
    if (!s6.take(lengths[l], &data)) return r.bad(6, "data of lead " + lead + " run past the end");
    if (end[l] - start[l] + 1 != static_cast<uint32_t>(out.n_samples))
      return r.bad(3, "leads of different lengths (" + lead + ")");
    std::vector<int32_t> v;
    if (!huffman_decode(data, tables, static_cast<size_t>(out.n_samples), &v))
      return r.bad(6, "Huffman data of lead " + lead + " end before " +
                          std::to_string(out.n_samples) + " samples or hold an unknown code");
    for (size_t t = diff == 0 ? v.size() : diff; t < v.size(); ++t)
      v[t] += diff == 1 ? v[t - 1] : 2 * v[t - 1] - v[t - 2];
    samples.push_back(std::move(v));
    out.leads.push_back(lead);
    out.gains.push_back(1000.0 / avm);
    out.baselines.push_back(0);
    out.units.push_back("uV");
  }
  clinical::store_adc(&out, samples);
  scp_details(r, &out);
  return out;
}

}  // namespace ecgq
