#include "records/dicom_dataset.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "records/clinical_io.hpp"

namespace ecgq::dicom {

namespace {

constexpr uint32_t kUndefined = 0xFFFFFFFFu;
constexpr uint32_t kItem = 0xFFFEE000u, kItemEnd = 0xFFFEE00Du, kSequenceEnd = 0xFFFEE0DDu;
constexpr int kMaxDepth = 8;
constexpr const char* kImplicitLE = "1.2.840.10008.1.2";
constexpr const char* kExplicitLE = "1.2.840.10008.1.2.1";

// Sequences this reader needs to find inside implicit VR data sets, where nothing says that an
// element of defined length is a sequence.
bool known_sequence(uint32_t tag) {
  switch (tag) {
    case 0x54000100:  // WaveformSequence
    case 0x003A0200:  // ChannelDefinitionSequence
    case 0x003A0208:  // ChannelSourceSequence
    case 0x003A0211:  // ChannelSensitivityUnitsSequence
      return true;
    default:
      return false;
  }
}

bool long_length_vr(std::string_view vr) {
  static const char* const kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                      "SV", "UC", "UN", "UR", "UT", "UV"};
  for (const char* v : kLong)
    if (vr == v) return true;
  return false;
}

// Parses elements of one data set, items and sequences in it.
class Parser {
 public:
  Parser(std::string_view bytes, const std::string& path) : in_(bytes), path_(path) {}

  clinical::ByteCursor& cursor() { return in_; }

  // Elements until `end` (a byte offset), or until an item delimiter when `end` is npos.
  Status elements(bool explicit_vr, size_t end, int depth, std::vector<Element>* out) {
    if (depth > kMaxDepth) return error(in_.pos(), 0, "sequences nested too deep");
    while (end == std::string_view::npos ? true : in_.pos() < end) {
      const size_t at = in_.pos();
      uint32_t group, elem;
      if (!in_.u(2, &group) || !in_.u(2, &elem)) {
        if (end == std::string_view::npos) return error(at, 0, "data set ends inside an item");
        return error(at, 0, "truncated element tag");
      }
      const uint32_t tag = (group << 16) | elem;
      if (tag == kItemEnd) {
        uint32_t zero;
        if (!in_.u(4, &zero)) return error(at, tag, "truncated item delimiter");
        if (end == std::string_view::npos) return Status::Ok();
        return error(at, tag, "item delimiter in an item of defined length");
      }
      Element e;
      e.tag = tag;
      e.offset = at;
      uint32_t length;
      RETURN_IF_ERROR(header(explicit_vr && group != 0xFFFE, &e, &length));
      if (e.vr == "SQ" || (!explicit_vr && (known_sequence(tag) || length == kUndefined))) {
        e.vr = "SQ";
        RETURN_IF_ERROR(sequence(explicit_vr, length, depth, &e));
      } else {
        if (length == kUndefined)
          return error(at, tag, "undefined length on an element that is not a sequence");
        if (!in_.take(length, &e.value) || (end != std::string_view::npos && in_.pos() > end))
          return error(at, tag, "value of " + std::to_string(length) + " bytes runs past its end");
      }
      out->push_back(std::move(e));
    }
    if (in_.pos() != end) return error(in_.pos(), 0, "element runs past the end of its item");
    return Status::Ok();
  }

  Status error(size_t at, uint32_t tag, const std::string& what) const {
    return clinical::bad(
        path_, (tag ? "element " + tag_name(tag) + " at byte " : "byte ") + std::to_string(at),
        what);
  }

 private:
  Status header(bool explicit_vr, Element* e, uint32_t* length) {
    if (!explicit_vr) {
      if (!in_.u(4, length)) return error(e->offset, e->tag, "truncated length");
      return Status::Ok();
    }
    std::string_view vr;
    if (!in_.take(2, &vr) || !std::isupper(static_cast<unsigned char>(vr[0])) ||
        !std::isupper(static_cast<unsigned char>(vr[1])))
      return error(e->offset, e->tag, "no value representation (expected explicit VR)");
    e->vr = std::string(vr);
    uint32_t reserved;
    if (long_length_vr(vr)) {
      if (!in_.u(2, &reserved) || !in_.u(4, length))
        return error(e->offset, e->tag, "truncated length");
    } else if (!in_.u(2, length)) {
      return error(e->offset, e->tag, "truncated length");
    }
    return Status::Ok();
  }

  Status sequence(bool explicit_vr, uint32_t length, int depth, Element* e) {
    const size_t end = length == kUndefined ? std::string_view::npos : in_.pos() + length;
    if (length != kUndefined && length > in_.left())
      return error(e->offset, e->tag,
                   "sequence of " + std::to_string(length) + " bytes runs past the end");
    while (end == std::string_view::npos || in_.pos() < end) {
      const size_t at = in_.pos();
      uint32_t group, elem, item_length;
      if (!in_.u(2, &group) || !in_.u(2, &elem) || !in_.u(4, &item_length))
        return error(at, e->tag, "sequence ends without a sequence delimiter");
      const uint32_t tag = (group << 16) | elem;
      if (tag == kSequenceEnd && end == std::string_view::npos) return Status::Ok();
      if (tag != kItem)
        return error(at, e->tag, "expected an item tag (FFFE,E000) in the sequence");
      std::vector<Element> item;
      if (item_length == kUndefined) {
        RETURN_IF_ERROR(elements(explicit_vr, std::string_view::npos, depth + 1, &item));
      } else {
        if (item_length > in_.left()) return error(at, e->tag, "item runs past the end");
        RETURN_IF_ERROR(elements(explicit_vr, in_.pos() + item_length, depth + 1, &item));
      }
      e->items.push_back(std::move(item));
    }
    if (in_.pos() != end) return error(in_.pos(), e->tag, "item runs past the end of its sequence");
    return Status::Ok();
  }

  clinical::ByteCursor in_;
  const std::string& path_;
};

std::string trimmed(std::string_view v) {
  size_t e = v.size();
  while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\0')) --e;
  size_t b = 0;
  while (b < e && v[b] == ' ') ++b;
  return std::string(v.substr(b, e - b));
}

}  // namespace

Expected<Dataset> parse(std::string_view bytes, const std::string& path) {
  if (bytes.size() < 132 || bytes.substr(128, 4) != "DICM")
    return clinical::bad(path, "byte 128", "no DICM prefix (not a DICOM Part 10 file)");
  Parser p(bytes, path);
  p.cursor().seek(132);
  // The meta group (0002) is always explicit VR little endian; it ends where group 0002 does.
  std::vector<Element> meta;
  while (p.cursor().left() >= 8 && static_cast<uint8_t>(bytes[p.cursor().pos()]) == 0x02 &&
         bytes[p.cursor().pos() + 1] == 0) {
    const size_t at = p.cursor().pos();
    clinical::ByteCursor peek(bytes);
    peek.seek(at + 4);
    std::string_view vr;
    uint32_t len;
    if (!peek.take(2, &vr)) break;
    if (long_length_vr(vr)) {
      uint32_t r;
      if (!peek.u(2, &r) || !peek.u(4, &len)) break;
    } else if (!peek.u(2, &len)) {
      break;
    }
    if (len > peek.left()) return p.error(at, 0x0002, "meta element runs past the end");
    RETURN_IF_ERROR(p.elements(true, peek.pos() + len, 0, &meta));
  }
  Dataset d;
  d.transfer_syntax = text(meta, 0x00020010);
  bool explicit_vr;
  if (d.transfer_syntax == kExplicitLE) {
    explicit_vr = true;
  } else if (d.transfer_syntax == kImplicitLE) {
    explicit_vr = false;
  } else {
    return Status(ErrorCode::UnsupportedFormat,
                  path + ": DICOM transfer syntax '" + d.transfer_syntax +
                      "' is not read (explicit or implicit VR little endian only)",
                  "path");
  }
  RETURN_IF_ERROR(p.elements(explicit_vr, bytes.size(), 0, &d.elements));
  return d;
}

const Element* find(const std::vector<Element>& elements, uint32_t tag) {
  for (const Element& e : elements)
    if (e.tag == tag) return &e;
  return nullptr;
}

std::string text(const std::vector<Element>& elements, uint32_t tag) {
  const Element* e = find(elements, tag);
  return e ? trimmed(e->value) : "";
}

bool decimal(const std::vector<Element>& elements, uint32_t tag, double* out) {
  std::string s = text(elements, tag);
  s = s.substr(0, s.find('\\'));
  if (s.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(*out);
}

bool unsigned_value(const std::vector<Element>& elements, uint32_t tag, uint32_t* out) {
  const Element* e = find(elements, tag);
  if (!e || (e->value.size() != 2 && e->value.size() != 4)) return false;
  clinical::ByteCursor c(e->value);
  return c.u(static_cast<int>(e->value.size()), out);
}

std::string tag_name(uint32_t tag) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "(%04X,%04X)", tag >> 16, tag & 0xFFFF);
  return buf;
}

}  // namespace ecgq::dicom
