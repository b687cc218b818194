#include "records/npy.hpp"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace ecgq {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

Status bad(const std::string& what) {
  return Status(ErrorCode::BadNpy, "invalid .npy: " + what);
}

// The tiny subset of Python literal syntax that numpy writes in headers.
class HeaderParser {
 public:
  explicit HeaderParser(const std::string& text) : s_(text) {}

  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skip_ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  bool string(std::string* out) {
    skip_ws();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) return false;
    char q = s_[i_++];
    size_t end = s_.find(q, i_);
    if (end == std::string::npos) return false;
    *out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return true;
  }
  bool boolean(bool* out) {
    skip_ws();
    if (s_.compare(i_, 4, "True") == 0) {
      *out = true;
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      *out = false;
      i_ += 5;
      return true;
    }
    return false;
  }
  bool integer(int64_t* out) {
    skip_ws();
    size_t start = i_;
    int64_t v = 0;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      int d = s_[i_] - '0';
      if (v > (std::numeric_limits<int64_t>::max() - d) / 10) return false;
      v = v * 10 + d;
      ++i_;
    }
    // numpy on some platforms writes "3L" for Python 2 longs.
    if (i_ < s_.size() && s_[i_] == 'L') ++i_;
    *out = v;
    return i_ > start;
  }
  bool tuple(std::vector<int64_t>* out) {
    if (!eat('(')) return false;
    out->clear();
    while (!eat(')')) {
      int64_t v = 0;
      if (!integer(&v)) return false;
      out->push_back(v);
      if (!eat(',') && !peek(')')) return false;
    }
    return true;
  }

 private:
  const std::string& s_;
  size_t i_ = 0;
};

// Maps a numpy descr to our dtype name; empty when unsupported.
std::string dtype_from_descr(const std::string& descr, std::string* why) {
  if (descr.size() < 2) return {};
  char order = descr[0];
  std::string code = descr.substr(1);
  bool one_byte = code == "u1" || code == "b1";
  if (order == '>' && !one_byte) {
    *why = "big-endian dtype '" + descr + "' is not supported";
    return {};
  }
  if (order != '<' && order != '|' && order != '=' && order != '>') return {};
  if (code == "f4") return "f32";
  if (code == "f8") return "f64";
  if (code == "i2") return "i16";
  if (code == "i4") return "i32";
  if (code == "i8") return "i64";
  if (code == "u1") return "u8";
  if (code == "b1") return "bool";
  return {};
}

size_t size_of(const std::string& dtype) {
  if (dtype == "f32" || dtype == "i32") return 4;
  if (dtype == "f64" || dtype == "i64") return 8;
  if (dtype == "i16") return 2;
  return 1;
}

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

double element(const std::string& dtype, const char* p) {
  if (dtype == "f32") return load<float>(p);
  if (dtype == "f64") return load<double>(p);
  if (dtype == "i16") return load<int16_t>(p);
  if (dtype == "i32") return load<int32_t>(p);
  if (dtype == "i64") return static_cast<double>(load<int64_t>(p));
  if (dtype == "u8") return static_cast<unsigned char>(*p);
  return *p != 0 ? 1.0 : 0.0;
}

// Visits elements in C order, calling fn(c_index, storage_index).
template <typename Fn>
void for_each_c_order(const NpyArray& a, Fn fn) {
  int64_t n = a.numel();
  if (!a.fortran_order || a.shape.size() < 2) {
    for (int64_t i = 0; i < n; ++i) fn(i, i);
    return;
  }
  // Fortran strides (in elements): first axis fastest.
  size_t nd = a.shape.size();
  std::vector<int64_t> fstride(nd, 1);
  for (size_t d = 1; d < nd; ++d) fstride[d] = fstride[d - 1] * a.shape[d - 1];
  std::vector<int64_t> idx(nd, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < nd; ++d) off += idx[d] * fstride[d];
    fn(i, off);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < a.shape[d]) break;
      idx[d] = 0;
    }
  }
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t NpyArray::element_size() const {
  return size_of(dtype);
}

std::vector<double> NpyArray::to_double() const {
  std::vector<double> out(static_cast<size_t>(numel()));
  size_t es = element_size();
  for_each_c_order(*this, [&](int64_t i, int64_t s) {
    out[static_cast<size_t>(i)] = element(dtype, data.data() + static_cast<size_t>(s) * es);
  });
  return out;
}

std::vector<float> NpyArray::to_float() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  size_t es = element_size();
  if (dtype == "f32" && (!fortran_order || shape.size() < 2)) {
    if (!out.empty()) std::memcpy(out.data(), data.data(), out.size() * sizeof(float));
    return out;
  }
  for_each_c_order(*this, [&](int64_t i, int64_t s) {
    out[static_cast<size_t>(i)] =
        static_cast<float>(element(dtype, data.data() + static_cast<size_t>(s) * es));
  });
  return out;
}

std::string NpyArray::shape_string() const {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

Expected<NpyArray> parse_npy(const std::string& bytes) {
  if (bytes.size() < kMagicLen + 2 || bytes.compare(0, kMagicLen, kMagic, kMagicLen) != 0)
    return bad("missing the \\x93NUMPY magic (not a .npy file)");
  auto major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0;
  size_t header_start = 0;
  if (major == 1) {
    if (bytes.size() < 10) return bad("truncated header length");
    header_len = static_cast<unsigned char>(bytes[8]) |
                 (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("truncated header length");
    for (int k = 0; k < 4; ++k)
      header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + k])) << (8 * k);
    header_start = 12;
  } else {
    return bad("unsupported format version " + std::to_string(major) + "." +
               std::to_string(static_cast<unsigned char>(bytes[7])) +
               " (expected 1.0, 2.0 or 3.0)");
  }
  if (bytes.size() < header_start + header_len)
    return bad("truncated header (" + std::to_string(header_len) + " bytes declared, " +
               std::to_string(bytes.size() - header_start) + " present)");
  std::string header = bytes.substr(header_start, header_len);

  HeaderParser p(header);
  NpyArray a;
  bool have_descr = false, have_order = false, have_shape = false;
  std::string descr;
  if (!p.eat('{')) return bad("header is not a dict literal");
  while (!p.eat('}')) {
    std::string key;
    if (!p.string(&key) || !p.eat(':')) return bad("malformed header dict: " + header);
    if (key == "descr") {
      if (!p.string(&descr))
        return bad("'descr' must be a simple dtype string (structured dtypes are not supported)");
      have_descr = true;
    } else if (key == "fortran_order") {
      if (!p.boolean(&a.fortran_order)) return bad("'fortran_order' must be True or False");
      have_order = true;
    } else if (key == "shape") {
      if (!p.tuple(&a.shape)) return bad("'shape' must be a tuple of non-negative integers");
      have_shape = true;
    } else {
      return bad("unexpected header key '" + key + "'");
    }
    if (!p.eat(',') && !p.peek('}')) return bad("malformed header dict: " + header);
  }
  if (!have_descr || !have_order || !have_shape)
    return bad("header lacks one of 'descr', 'fortran_order', 'shape'");
  std::string why;
  a.dtype = dtype_from_descr(descr, &why);
  if (a.dtype.empty())
    return bad(why.empty() ? "unsupported dtype '" + descr +
                                 "' (expected <f4, <f8, <i2, <i4, <i8, |u1 or |b1)"
                           : why);

  // Overflow-checked element count.
  uint64_t n = 1;
  for (int64_t d : a.shape) {
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / 16 / static_cast<uint64_t>(d))
      return bad("shape " + a.shape_string() + " is too large");
    n *= static_cast<uint64_t>(d);
  }
  uint64_t need = n * a.element_size();
  uint64_t have = bytes.size() - header_start - header_len;
  if (have < need)
    return bad("truncated data: shape " + a.shape_string() + " of " + descr + " needs " +
               std::to_string(need) + " bytes, file has " + std::to_string(have));
  if (have > need)
    return bad("trailing data: shape " + a.shape_string() + " of " + descr + " needs " +
               std::to_string(need) + " bytes, file has " + std::to_string(have));
  a.data = bytes.substr(header_start + header_len);
  return a;
}

Expected<NpyArray> read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status(ErrorCode::IoError, "cannot open " + path + ": " + std::strerror(errno), "path");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return Status(ErrorCode::IoError, "cannot read " + path, "path");
  auto parsed = parse_npy(buf.str());
  if (!parsed.ok())
    return Status(parsed.status().code(), path + ": " + parsed.status().message(), "path");
  return parsed;
}

std::string format_npy_f32(const float* data, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  // Pad with spaces so that magic + length + header + '\n' is a multiple of 64 bytes.
  size_t total = kMagicLen + 2 + 2 + dict.size() + 1;
  size_t pad = (64 - total % 64) % 64;
  dict.append(pad, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>((dict.size() >> 8) & 0xff);
  out += dict;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n) * sizeof(float));
  return out;
}

Status write_npy_f32(const std::string& path, const float* data,
                     const std::vector<int64_t>& shape) {
  std::string bytes = format_npy_f32(data, shape);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    return Status(ErrorCode::IoError, "cannot create " + path + ": " + std::strerror(errno),
                  "path");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return Status(ErrorCode::IoError, "cannot write " + path, "path");
  return Status::Ok();
}

}  // namespace ecgq
