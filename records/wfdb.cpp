// WFDB header parsing and signal decoding (formats as in the WFDB library's signal.c and the
// "header" and "signal" man pages of the WFDB Programmer's Guide).
#include "records/wfdb.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace ecgq::wfdb {

namespace {

std::vector<std::string> split_ws(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream is(line);
  std::string tok;
  while (is >> tok) out.push_back(tok);
  return out;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size() && std::isfinite(*out);
}

bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  *out = std::strtoll(s.c_str(), &end, 10);
  return errno == 0 && end == s.c_str() + s.size();
}

Status bad(int line_no, const std::string& what) {
  return Status(ErrorCode::BadRecord, "header line " + std::to_string(line_no) + ": " + what,
                "header");
}

// "format[xspf][:skew][+offset]"
Status parse_format(const std::string& tok, SignalSpec* s, int line_no) {
  size_t i = 0;
  while (i < tok.size() && std::isdigit(static_cast<unsigned char>(tok[i]))) ++i;
  int64_t v = 0;
  if (!parse_int(tok.substr(0, i), &v)) return bad(line_no, "bad signal format '" + tok + "'");
  s->format = static_cast<int>(v);
  while (i < tok.size()) {
    const char c = tok[i++];
    size_t j = i;
    if (j < tok.size() && tok[j] == '-') ++j;
    while (j < tok.size() && std::isdigit(static_cast<unsigned char>(tok[j]))) ++j;
    if (!parse_int(tok.substr(i, j - i), &v))
      return bad(line_no, "bad signal format '" + tok + "' (expected format[xN][:skew][+offset])");
    if (c == 'x')
      s->samples_per_frame = static_cast<int>(v);
    else if (c == ':')
      s->skew = static_cast<int>(v);
    else if (c == '+')
      s->byte_offset = v;
    else
      return bad(line_no, "bad signal format '" + tok + "'");
    i = j;
  }
  if (s->samples_per_frame < 1 || s->byte_offset < 0)
    return bad(line_no, "bad signal format '" + tok + "'");
  return Status::Ok();
}

// "gain[(baseline)][/units]"; returns whether a baseline was given.
Status parse_gain(const std::string& tok, SignalSpec* s, bool* baseline_given, int line_no) {
  std::string g = tok;
  const size_t slash = g.find('/');
  if (slash != std::string::npos) {
    s->units = g.substr(slash + 1);
    g = g.substr(0, slash);
  }
  const size_t paren = g.find('(');
  if (paren != std::string::npos) {
    const size_t close = g.find(')', paren);
    if (close == std::string::npos || close != g.size() - 1)
      return bad(line_no, "bad gain '" + tok + "' (expected gain(baseline)/units)");
    double b = 0;
    if (!parse_double(g.substr(paren + 1, close - paren - 1), &b))
      return bad(line_no, "bad baseline in '" + tok + "'");
    s->baseline = b;
    *baseline_given = true;
    g = g.substr(0, paren);
  }
  double gain = 0;
  if (!parse_double(g, &gain)) return bad(line_no, "bad gain '" + tok + "'");
  if (gain != 0) {
    s->gain = gain;
    s->gain_given = true;
  }
  return Status::Ok();
}

Status parse_signal_line(const std::vector<std::string>& t, SignalSpec* s, int line_no) {
  if (t.size() < 2) return bad(line_no, "signal line needs at least a file name and a format");
  s->file_name = t[0];
  RETURN_IF_ERROR(parse_format(t[1], s, line_no));
  bool baseline_given = false;
  if (t.size() > 2) RETURN_IF_ERROR(parse_gain(t[2], s, &baseline_given, line_no));
  int64_t v = 0;
  if (t.size() > 3) {
    if (!parse_int(t[3], &v)) return bad(line_no, "bad ADC resolution '" + t[3] + "'");
    s->adc_resolution = static_cast<int>(v);
  }
  if (t.size() > 4) {
    if (!parse_int(t[4], &v)) return bad(line_no, "bad ADC zero '" + t[4] + "'");
    s->adc_zero = static_cast<int>(v);
  }
  if (!baseline_given) s->baseline = s->adc_zero;
  if (t.size() > 5) {
    if (!parse_int(t[5], &v)) return bad(line_no, "bad initial value '" + t[5] + "'");
    s->initial_value = v;
  }
  if (t.size() > 6) {
    if (!parse_int(t[6], &v)) return bad(line_no, "bad checksum '" + t[6] + "'");
    s->checksum = v;
  }
  if (t.size() > 7) {
    if (!parse_int(t[7], &v)) return bad(line_no, "bad block size '" + t[7] + "'");
    s->block_size = static_cast<int>(v);
  }
  for (size_t i = 8; i < t.size(); ++i) s->description += (i > 8 ? " " : "") + t[i];
  return Status::Ok();
}

Status parse_record_line(const std::vector<std::string>& t, Header* h, int line_no) {
  if (t.size() < 2) return bad(line_no, "record line needs a record name and a signal count");
  h->record_name = t[0];
  if (t[0].find('/') != std::string::npos)
    return Status(ErrorCode::UnsupportedRecord,
                  "record " + t[0] +
                      " is a multi-segment record; only single-segment records "
                      "are supported",
                  "header");
  int64_t v = 0;
  if (!parse_int(t[1], &v) || v < 0) return bad(line_no, "bad signal count '" + t[1] + "'");
  h->n_signals = static_cast<int>(v);
  if (t.size() > 2) {
    // "fs[/counter_freq[(base_counter)]]": only fs matters here.
    std::string f = t[2].substr(0, t[2].find('/'));
    double fs = 0;
    if (!parse_double(f, &fs) || fs <= 0)
      return bad(line_no, "bad sampling frequency '" + t[2] + "'");
    h->fs = fs;
  }
  if (t.size() > 3) {
    if (!parse_int(t[3], &v) || v < 0) return bad(line_no, "bad sample count '" + t[3] + "'");
    h->n_samples = v == 0 ? -1 : v;
  }
  if (t.size() > 4) h->base_time = t[4];
  if (t.size() > 5) h->base_date = t[5];
  return Status::Ok();
}

// Bits per sample of a format (for lengths from file sizes), 0 when unknown.
double bytes_per_sample(int format) {
  switch (format) {
    case 8:
    case 80:
      return 1;
    case 16:
    case 61:
    case 160:
      return 2;
    case 212:
      return 1.5;
    case 310:
    case 311:
      return 4.0 / 3.0;
    case 24:
      return 3;
    case 32:
      return 4;
    default:
      return 0;
  }
}

// Bytes needed to hold `count` samples of `format`.
int64_t bytes_needed(int format, int64_t count) {
  switch (format) {
    case 212:
      return 3 * (count / 2) + (count % 2 ? 2 : 0);
    case 310:
    case 311: {
      const int64_t rem = count % 3;
      return 4 * (count / 3) + (rem == 0 ? 0 : rem == 1 ? 2 : (format == 310 ? 4 : 3));
    }
    default:
      return static_cast<int64_t>(bytes_per_sample(format)) * count;
  }
}

// The value WFDB writes for a missing sample in `format`, 0 when the format has none.
int64_t invalid_marker(int format) {
  switch (format) {
    case 16:
    case 61:
    case 160:
      return -32768;
    case 80:
      return -128;
    case 212:
      return -2048;
    case 310:
    case 311:
      return -512;
    case 24:
      return -8388608;
    case 32:
      return INT32_MIN;
    default:
      return 0;
  }
}

int32_t sign_extend(uint32_t v, int bits) {
  const uint32_t m = 1u << (bits - 1);
  return static_cast<int32_t>((v ^ m) - m);
}

// Decodes `count` consecutive samples (all signals of the file interleaved) from `p`.
std::vector<int32_t> decode(int format, const unsigned char* p, int64_t count) {
  std::vector<int32_t> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    switch (format) {
      case 8:
        out[i] = static_cast<int8_t>(p[i]);
        break;  // first differences, summed later
      case 80:
        out[i] = static_cast<int32_t>(p[i]) - 128;
        break;
      case 16:
        out[i] = static_cast<int16_t>(p[2 * i] | (p[2 * i + 1] << 8));
        break;
      case 61:
        out[i] = static_cast<int16_t>((p[2 * i] << 8) | p[2 * i + 1]);
        break;
      case 160:
        out[i] = static_cast<int32_t>(p[2 * i] | (p[2 * i + 1] << 8)) - 32768;
        break;
      case 24:
        out[i] = sign_extend(p[3 * i] | (p[3 * i + 1] << 8) | (p[3 * i + 2] << 16), 24);
        break;
      case 32:
        out[i] = static_cast<int32_t>(static_cast<uint32_t>(p[4 * i]) | (p[4 * i + 1] << 8) |
                                      (p[4 * i + 2] << 16) |
                                      (static_cast<uint32_t>(p[4 * i + 3]) << 24));
        break;
      case 212: {
        const unsigned char* b = p + 3 * (i / 2);
        out[i] = i % 2 == 0 ? sign_extend(b[0] | ((b[1] & 0x0F) << 8), 12)
                            : sign_extend(b[2] | ((b[1] & 0xF0) << 4), 12);
        break;
      }
      case 310: {
        const unsigned char* b = p + 4 * (i / 3);
        const uint32_t w0 = b[0] | (b[1] << 8);
        switch (i % 3) {
          case 0:
            out[i] = sign_extend((w0 >> 1) & 0x3FF, 10);
            break;
          case 1:
            out[i] = sign_extend(((b[2] | (b[3] << 8)) >> 1) & 0x3FF, 10);
            break;
          default:
            out[i] = sign_extend((b[1] >> 3) | ((b[3] >> 3) << 5), 10);
            break;
        }
        break;
      }
      case 311: {
        const unsigned char* b = p + 4 * (i / 3);
        switch (i % 3) {
          case 0:
            out[i] = sign_extend(b[0] | ((b[1] & 0x03) << 8), 10);
            break;
          case 1:
            out[i] = sign_extend((b[1] >> 2) | ((b[2] & 0x0F) << 6), 10);
            break;
          default:
            out[i] = sign_extend((b[2] >> 4) | ((b[3] & 0x3F) << 4), 10);
            break;
        }
        break;
      }
    }
  }
  return out;
}

Expected<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(ErrorCode::NotFound, "cannot open " + path, "path");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

bool format_supported(int format) {
  return bytes_per_sample(format) > 0;
}

Expected<Header> parse_header(const std::string& text) {
  Header h;
  bool have_record = false;
  int line_no = 0;
  std::istringstream is(text);
  std::string line;
  while (std::getline(is, line)) {
    ++line_no;
    const std::string t = trim(line);
    if (t.empty()) continue;
    if (t[0] == '#') {
      const std::string c = trim(t.substr(1));
      if (!c.empty()) h.comments.push_back(c);
      continue;
    }
    const auto tokens = split_ws(t);
    if (!have_record) {
      RETURN_IF_ERROR(parse_record_line(tokens, &h, line_no));
      have_record = true;
      continue;
    }
    if (static_cast<int>(h.signals.size()) == h.n_signals)
      return bad(line_no, "more signal lines than the " + std::to_string(h.n_signals) +
                              " the record line declares");
    SignalSpec s;
    RETURN_IF_ERROR(parse_signal_line(tokens, &s, line_no));
    h.signals.push_back(std::move(s));
  }
  if (!have_record) return Status(ErrorCode::BadRecord, "header has no record line", "header");
  if (static_cast<int>(h.signals.size()) != h.n_signals)
    return Status(ErrorCode::BadRecord,
                  "record line declares " + std::to_string(h.n_signals) + " signals but " +
                      std::to_string(h.signals.size()) + " signal lines follow",
                  "header");
  return h;
}

Expected<Header> read_header(const std::string& path) {
  ASSIGN_OR_RETURN(auto text, read_file(path));
  auto h = parse_header(text);
  if (!h.ok()) return h.status().with_context(path);
  return h;
}

namespace {

// Signals stored in the same file, in header order; files in order of first appearance.
using FileGroups = std::vector<std::pair<std::string, std::vector<size_t>>>;

// Groups the signals by file, refusing what ecgq does not read.
Expected<FileGroups> group_by_file(const Header& header, std::vector<std::string>* warnings) {
  FileGroups groups;
  for (size_t i = 0; i < header.signals.size(); ++i) {
    const SignalSpec& s = header.signals[i];
    if (!format_supported(s.format))
      return Status(ErrorCode::UnsupportedRecord,
                    "signal " + std::to_string(i) + " (" + s.description + ") uses format " +
                        std::to_string(s.format) +
                        "; supported: 8, 16, 24, 32, 61, 80, 160, 212, 310, 311",
                    "header");
    if (s.samples_per_frame != 1)
      return Status(ErrorCode::UnsupportedRecord,
                    "signal " + std::to_string(i) + " (" + s.description + ") has " +
                        std::to_string(s.samples_per_frame) +
                        " samples per frame; only 1 is supported",
                    "header");
    if (s.file_name == "~" || s.file_name == "-")
      return Status(ErrorCode::UnsupportedRecord,
                    "signal " + std::to_string(i) + " has no signal file", "header");
    if (s.skew != 0)
      warnings->push_back("signal " + std::to_string(i) + " skew " + std::to_string(s.skew) +
                          " ignored");
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == s.file_name; });
    if (it == groups.end())
      groups.push_back({s.file_name, {i}});
    else
      it->second.push_back(i);
  }
  return groups;
}

// Reads the signals `members` of `file` into out->samples; `*n` is the samples per signal (-1:
// the header gives none, the file decides).
Status read_signal_file(const Header& header, const std::string& directory, const std::string& file,
                        const std::vector<size_t>& members, int64_t* n, Signals* out) {
  const SignalSpec& first = header.signals[members[0]];
  for (size_t m : members)
    if (header.signals[m].format != first.format ||
        header.signals[m].byte_offset != first.byte_offset)
      return Status(ErrorCode::BadRecord,
                    "signals in " + file + " disagree on format or byte offset", "header");
  ASSIGN_OR_RETURN(const auto data,
                   read_file(directory.empty() || file[0] == '/' ? file : directory + "/" + file));
  if (static_cast<int64_t>(data.size()) < first.byte_offset)
    return Status(ErrorCode::BadRecord, file + " is shorter than its byte offset", "header");
  const int64_t avail = static_cast<int64_t>(data.size()) - first.byte_offset;
  const int64_t k = static_cast<int64_t>(members.size());
  const int64_t frames_in_file =
      static_cast<int64_t>(std::floor(avail / bytes_per_sample(first.format))) / k;
  if (*n < 0) *n = frames_in_file;  // header gives no length: use the whole file
  if (bytes_needed(first.format, *n * k) > avail)
    return Status(ErrorCode::BadRecord,
                  file + " holds " + std::to_string(frames_in_file) +
                      " samples per signal; the header says " + std::to_string(*n),
                  "header");
  const auto* p = reinterpret_cast<const unsigned char*>(data.data() + first.byte_offset);
  std::vector<int32_t> flat = decode(first.format, p, *n * k);
  for (int64_t j = 0; j < k; ++j) {
    const size_t sig = members[j];
    std::vector<int32_t>& dst = out->samples[sig];
    dst.resize(static_cast<size_t>(*n));
    for (int64_t t = 0; t < *n; ++t) dst[t] = flat[t * k + j];
    if (first.format == 8) {  // first differences from the initial value
      int64_t acc = header.signals[sig].initial_value.value_or(0);
      for (int64_t t = 0; t < *n; ++t) {
        acc += dst[t];
        dst[t] = static_cast<int32_t>(acc);
      }
    }
  }
  return Status::Ok();
}

// WFDB marks missing samples with the most negative value of the format: a warning per signal.
void warn_invalid_samples(const Header& header, Signals* out) {
  for (size_t i = 0; i < header.signals.size(); ++i) {
    const int64_t marker = invalid_marker(header.signals[i].format);
    if (marker == 0) continue;
    int64_t count = 0, first = -1;
    for (int64_t t = 0; t < out->n_samples; ++t)
      if (out->samples[i][t] == marker && count++ == 0) first = t;
    if (count > 0)
      out->warnings.push_back(
          "signal " + std::to_string(i) + " (" + header.signals[i].description +
          "): " + std::to_string(count) + " samples hold the WFDB invalid-sample value " +
          std::to_string(marker) + " (first at sample " + std::to_string(first) + ")");
  }
}

// The header's initial values and checksums against the samples read, per `policy`.
Status check_signals(const Header& header, ChecksumPolicy policy, Signals* out) {
  for (size_t i = 0; i < header.signals.size() && policy != ChecksumPolicy::kIgnore; ++i) {
    const SignalSpec& s = header.signals[i];
    const auto& v = out->samples[i];
    std::string problem;
    if (s.initial_value && out->n_samples > 0 && v[0] != *s.initial_value)
      problem = "initial value " + std::to_string(v[0]) + " but the header says " +
                std::to_string(*s.initial_value);
    if (s.checksum && problem.empty()) {
      int64_t sum = 0;
      for (int32_t x : v) sum += x;
      // Headers write the 16-bit sum signed or unsigned; compare modulo 65536.
      if (((sum - *s.checksum) % 65536 + 65536) % 65536 != 0)
        problem = "checksum " + std::to_string(((sum % 65536) + 65536) % 65536) +
                  " (mod 65536) but the header says " + std::to_string(*s.checksum);
    }
    if (problem.empty()) continue;
    const std::string msg = "signal " + std::to_string(i) + " (" + s.description + ") in " +
                            s.file_name + ": " + problem;
    if (policy == ChecksumPolicy::kError)
      return Status(ErrorCode::BadRecord, msg + " (wrong format or damaged file)", "header");
    out->warnings.push_back(msg);
  }
  return Status::Ok();
}

}  // namespace

Expected<Signals> read_signals(const Header& header, const std::string& directory,
                               ChecksumPolicy policy) {
  Signals out;
  out.samples.resize(header.signals.size());
  if (header.signals.empty())
    return Status(ErrorCode::BadRecord, "record " + header.record_name + " has no signals",
                  "header");
  ASSIGN_OR_RETURN(const FileGroups groups, group_by_file(header, &out.warnings));
  int64_t n = header.n_samples;
  for (const auto& [file, members] : groups)
    RETURN_IF_ERROR(read_signal_file(header, directory, file, members, &n, &out));
  out.n_samples = n;
  warn_invalid_samples(header, &out);
  RETURN_IF_ERROR(check_signals(header, policy, &out));
  return out;
}

}  // namespace ecgq::wfdb
