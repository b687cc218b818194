// SCP-ECG (EN 1064 / ISO 11073-91064), versions 1.x and 2.x: a record CRC and length, section 0's
// pointers to the other sections (each with its own CRC), section 1 (patient and acquisition
// tags), 2 (Huffman tables, or 19999 for the default table), 3 (leads and sample ranges),
// 4/5 (QRS locations, reference beat) and 6 (the rhythm: per-lead Huffman streams of first or
// second differences, possibly a residual after reference-beat subtraction and bimodally
// compressed, records/scp_beats.hpp). Files that do not validate are refused, not guessed at.
#include <algorithm>
#include <array>
#include <numeric>

#include "records/clinical_io.hpp"
#include "records/clinical_readers.hpp"
#include "records/scp_beats.hpp"

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

// The Huffman tables of section 2; none (the data are int16) when the record has no section 2.
Expected<std::vector<HuffmanTable>> huffman_tables(const ScpRecord& r) {
  if (!r.section(2).present) return std::vector<HuffmanTable>{};
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

// Section 3: the leads, their sample range and whether the reference beat was subtracted.
struct LeadTable {
  std::vector<std::string> names;
  uint32_t n_samples = 0;
  bool reference_beat_subtracted = false;
};

Expected<LeadTable> lead_table(const ScpRecord& r, size_t file_size) {
  clinical::ByteCursor s3(r.body(3));
  uint32_t n_leads, flags;
  if (!s3.u(1, &n_leads) || !s3.u(1, &flags) || n_leads == 0 || n_leads * 9 > s3.left())
    return r.bad(3, "lead table runs past the end");
  LeadTable t;
  t.reference_beat_subtracted = flags & 1;
  for (uint32_t l = 0; l < n_leads; ++l) {
    uint32_t start, end, id;
    s3.u(4, &start);
    s3.u(4, &end);
    s3.u(1, &id);
    const std::string name = clinical::lead_name_from_number(static_cast<int>(id));
    t.names.push_back(name.empty() ? "lead " + std::to_string(id) : name);
    if (start < 1 || end < start || end - start >= file_size * 8)
      return r.bad(3, "lead " + std::to_string(l + 1) + " sample range " + std::to_string(start) +
                          "-" + std::to_string(end));
    if (l == 0) t.n_samples = end - start + 1;
    if (end - start + 1 != t.n_samples)
      return r.bad(3, "leads of different lengths (" + t.names.back() + ")");
  }
  return t;
}

// Section 5 or 6: AVM (nV per step), sample interval (us), difference encoding, the byte that
// says bimodal compression in section 6, and each lead's encoded bytes.
struct LeadBlock {
  int section = 0;
  uint32_t avm = 0, interval_us = 0, difference = 0, bimodal = 0;
  std::vector<std::string_view> data;
};

Expected<LeadBlock> lead_block(const ScpRecord& r, int id, size_t n_leads) {
  clinical::ByteCursor c(r.body(id));
  LeadBlock b;
  b.section = id;
  if (!c.u(2, &b.avm) || !c.u(2, &b.interval_us) || !c.u(1, &b.difference) || !c.u(1, &b.bimodal) ||
      b.avm == 0 || b.interval_us == 0 || b.difference > 2)
    return r.bad(id, "header needs AVM, sample interval and a difference encoding of 0, 1 or 2");
  std::vector<uint32_t> lengths(n_leads);
  for (auto& len : lengths)
    if (!c.u(2, &len)) return r.bad(id, "lead byte lengths run past the end");
  for (size_t l = 0; l < n_leads; ++l) {
    std::string_view data;
    if (!c.take(lengths[l], &data))
      return r.bad(id, "data of lead " + std::to_string(l + 1) + " run past the end");
    b.data.push_back(data);
  }
  return b;
}

// `n` values of lead `l` of a block: Huffman-decoded (int16 without section 2), then the first
// or second differences summed.
Expected<std::vector<int32_t>> decode_lead(const ScpRecord& r, const LeadBlock& b, size_t l,
                                           const std::vector<HuffmanTable>& tables, size_t n,
                                           const std::string& lead) {
  std::vector<int32_t> v;
  if (tables.empty()) {
    if (b.data[l].size() < n * 2)
      return r.bad(b.section, "lead " + lead + " holds " + std::to_string(b.data[l].size()) +
                                  " bytes, not " + std::to_string(n) + " int16 samples");
    clinical::ByteCursor c(b.data[l]);
    for (size_t t = 0; t < n; ++t) {
      uint32_t x;
      c.u(2, &x);
      v.push_back(static_cast<int16_t>(x));
    }
  } else if (!huffman_decode(b.data[l], tables, n, &v)) {
    return r.bad(b.section, "Huffman data of lead " + lead + " end before " + std::to_string(n) +
                                " samples or hold an unknown code");
  }
  for (size_t t = b.difference == 0 ? v.size() : b.difference; t < v.size(); ++t)
    v[t] += b.difference == 1 ? v[t - 1] : 2 * v[t - 1] - v[t - 2];
  return v;
}

// The decoded rhythm: samples per lead in steps of `step_nv` nanovolts at `fs`.
struct Rhythm {
  double fs = 0;
  uint32_t step_nv = 0;
  std::vector<std::vector<int32_t>> samples;
};

// The rhythm as section 6 stores it (no reference beat, no bimodal compression).
Expected<Rhythm> stored_rhythm(const ScpRecord& r, const LeadTable& t, const LeadBlock& b6,
                               const std::vector<HuffmanTable>& tables) {
  Rhythm out{1e6 / b6.interval_us, b6.avm, {}};
  for (size_t l = 0; l < t.names.size(); ++l) {
    ASSIGN_OR_RETURN(auto v, decode_lead(r, b6, l, tables, t.n_samples, t.names[l]));
    out.samples.push_back(std::move(v));
  }
  return out;
}

// The reference beat (section 5) of every lead in nV, as long as section 4 says.
Expected<std::vector<std::vector<int64_t>>> reference_beat(
    const ScpRecord& r, const LeadTable& t, const LeadBlock& b5, const scp::QrsLocations& q,
    const std::vector<HuffmanTable>& tables) {
  const size_t n = static_cast<size_t>(q.reference_ms) * 1000 / b5.interval_us;
  // The fiducial is checked where the beat is added (a file without subtraction may leave it 0).
  if (n == 0)
    return r.bad(4, "reference beat of " + std::to_string(q.reference_ms) + " ms at " +
                        std::to_string(b5.interval_us) + " us per sample holds no sample");
  std::vector<std::vector<int64_t>> beat;
  for (size_t l = 0; l < t.names.size(); ++l) {
    ASSIGN_OR_RETURN(auto v, decode_lead(r, b5, l, tables, n, t.names[l]));
    beat.emplace_back(v.begin(), v.end());
    for (auto& x : beat.back()) x *= b5.avm;
  }
  return beat;
}

// Most samples (all leads) a compressed rhythm is rebuilt to: 12 leads of 46 min at 1 kHz.
constexpr uint64_t kMaxRebuiltSamples = uint64_t{1} << 25;

// The rhythm rebuilt at the reference beat's rate: the residual of section 6 (expanded from its
// bimodal compression) plus, when section 3 says it was subtracted, the reference beat of
// section 5 at every type-0 QRS of section 4.
Expected<Rhythm> rebuilt_rhythm(const ScpRecord& r, const LeadTable& t, const LeadBlock& b6,
                                const std::vector<HuffmanTable>& tables) {
  for (int id : {4, 5})
    if (!r.section(id).present)
      return r.bad(id, std::string("absent, but section ") +
                           (b6.bimodal ? "6 says bimodal" : "3 says reference-beat subtraction") +
                           " compression needs it");
  scp::QrsLocations q;
  const std::string bad_qrs = scp::parse_qrs_locations(r.body(4), t.n_samples, &q);
  if (!bad_qrs.empty()) return r.bad(4, bad_qrs);
  ASSIGN_OR_RETURN(const LeadBlock b5, lead_block(r, 5, t.names.size()));
  const uint32_t factor = b6.interval_us / b5.interval_us;
  if (b6.interval_us % b5.interval_us != 0 || factor < 1 || factor > 16 ||
      (factor > 1 && !b6.bimodal))
    return r.bad(6, "sample interval " + std::to_string(b6.interval_us) + " us against the " +
                        "reference beat's " + std::to_string(b5.interval_us) + " us" +
                        (b6.bimodal ? " is not a decimation by 1-16"
                                    : " differs without bimodal compression"));
  // Expansion makes more samples than the file has bits (up to 16 per stored value): bound it.
  if (static_cast<uint64_t>(t.n_samples) * t.names.size() > kMaxRebuiltSamples)
    return r.bad(3, std::to_string(t.names.size()) + " leads of " + std::to_string(t.n_samples) +
                        " samples are more than the " + std::to_string(kMaxRebuiltSamples) +
                        " samples ecgq rebuilds from a compressed SCP-ECG rhythm");
  ASSIGN_OR_RETURN(const auto beat, reference_beat(r, t, b5, q, tables));
  uint32_t step = std::gcd(b5.avm, b6.avm);
  Rhythm out{1e6 / b5.interval_us, step, {}};
  const size_t stored =
      b6.bimodal ? scp::bimodal_stored_count(q, t.n_samples, factor) : t.n_samples;
  for (size_t l = 0; l < t.names.size(); ++l) {
    ASSIGN_OR_RETURN(auto v, decode_lead(r, b6, l, tables, stored, t.names[l]));
    std::vector<int64_t> nv = b6.bimodal ? scp::bimodal_expand(v, q, t.n_samples, factor)
                                         : std::vector<int64_t>(v.begin(), v.end());
    for (auto& x : nv) x *= b6.avm;
    if (t.reference_beat_subtracted) {
      const std::string bad_zone = scp::add_reference_beat(q, beat[l], &nv);
      if (!bad_zone.empty()) return r.bad(4, bad_zone);
    }
    std::vector<int32_t> steps;
    for (int64_t x : nv) {
      if (x / step > INT32_MAX || x / step < INT32_MIN)
        return r.bad(6, "lead " + t.names[l] + " rebuilds to values out of range");
      steps.push_back(static_cast<int32_t>(x / step));
    }
    out.samples.push_back(std::move(steps));
  }
  return out;
}

}  // namespace

namespace {

// The record of `rhythm` with the leads of `t` (steps in uV) and section 1's details.
EcgRecord scp_record_of(const ScpRecord& r, const std::string& path, const LeadTable& t,
                        const Rhythm& rhythm) {
  EcgRecord out;
  out.path = path;
  out.name = clinical::stem_name(path);
  out.format = "scp-ecg";
  out.fs = rhythm.fs;
  out.n_samples = static_cast<int64_t>(rhythm.samples.empty() ? 0 : rhythm.samples[0].size());
  out.leads = t.names;
  out.gains.assign(t.names.size(), 1000.0 / rhythm.step_nv);
  out.baselines.assign(t.names.size(), 0);
  out.units.assign(t.names.size(), "uV");
  clinical::store_adc(&out, rhythm.samples);
  scp_details(r, &out);
  return out;
}

}  // namespace

Expected<EcgRecord> read_scp(const std::string& bytes, const std::string& path) {
  ScpRecord r(bytes, path);
  RETURN_IF_ERROR(r.sections());
  if (!r.section(3).present || !r.section(6).present)
    return r.bad(r.section(3).present ? 6 : 3, "absent (no rhythm data)");
  ASSIGN_OR_RETURN(const LeadTable t, lead_table(r, bytes.size()));
  ASSIGN_OR_RETURN(const LeadBlock b6, lead_block(r, 6, t.names.size()));
  if (b6.bimodal > 1) return r.bad(6, "bimodal compression byte is " + std::to_string(b6.bimodal));
  ASSIGN_OR_RETURN(const auto tables, huffman_tables(r));
  ASSIGN_OR_RETURN(const Rhythm rhythm, t.reference_beat_subtracted || b6.bimodal
                                            ? rebuilt_rhythm(r, t, b6, tables)
                                            : stored_rhythm(r, t, b6, tables));
  return scp_record_of(r, path, t, rhythm);
}

Expected<EcgRecord> read_scp_reference_beat(const std::string& bytes, const std::string& path) {
  ScpRecord r(bytes, path);
  RETURN_IF_ERROR(r.sections());
  for (int id : {3, 4, 5})
    if (!r.section(id).present) return r.bad(id, "absent (no reference beat)");
  ASSIGN_OR_RETURN(const LeadTable t, lead_table(r, bytes.size()));
  scp::QrsLocations q;
  const std::string bad_qrs = scp::parse_qrs_locations(r.body(4), t.n_samples, &q);
  if (!bad_qrs.empty()) return r.bad(4, bad_qrs);
  ASSIGN_OR_RETURN(const LeadBlock b5, lead_block(r, 5, t.names.size()));
  ASSIGN_OR_RETURN(const auto tables, huffman_tables(r));
  ASSIGN_OR_RETURN(const auto beat, reference_beat(r, t, b5, q, tables));
  Rhythm steps{1e6 / b5.interval_us, b5.avm, {}};
  for (const auto& lead : beat) {
    steps.samples.emplace_back();
    for (int64_t nv : lead) steps.samples.back().push_back(static_cast<int32_t>(nv / b5.avm));
  }
  return scp_record_of(r, path, t, steps);
}

}  // namespace ecgq
