// WFDB (PhysioNet) single-segment records: header (.hea) parsing and signal file decoding, as
// PhysioNet headers are written in practice (CRLF, blank lines, Challenge-style record lines).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq::wfdb {

// One signal line of a header.
struct SignalSpec {
  std::string file_name;      // signal file, relative to the header's directory
  int format = 16;            // 8, 16, 24, 32, 61, 80, 160, 212, 310, 311
  int samples_per_frame = 1;  // only 1 is supported when reading
  int skew = 0;               // ignored when reading (reported as a warning)
  int64_t byte_offset = 0;    // "16+24": data start at byte 24 of the file
  double gain = 200;          // ADC units per physical unit (0 or absent in the header -> 200)
  bool gain_given = false;    // false when the header had no gain or gain 0
  double baseline = 0;        // ADC value of 0 physical units (ADC zero when not given)
  std::string units = "mV";   // as written; absent -> "mV"
  int adc_resolution = 0;     // bits (0 = not given)
  int adc_zero = 0;           // ADC value at the middle of the input range
  std::optional<int64_t> initial_value;  // first sample, when given
  std::optional<int64_t> checksum;       // 16-bit sum of all samples, when given
  int block_size = 0;
  std::string description;  // the signal (lead) name
};

// A parsed header.
struct Header {
  std::string record_name;  // as on the record line (may carry an extension, e.g. "E07500.mat")
  int n_signals = 0;
  double fs = 250;                    // frames per second (WFDB default 250)
  int64_t n_samples = -1;             // samples per signal; -1 when the header does not say
  std::string base_time;              // verbatim, not interpreted
  std::string base_date;              // verbatim, not interpreted
  std::vector<SignalSpec> signals;    // n_signals entries
  std::vector<std::string> comments;  // comment lines without '#', trimmed, blank ones dropped
};

// What to do when a signal's checksum or initial value disagrees with the decoded samples. A
// mismatch almost always means a wrong format or a damaged file, so the default is an error.
enum class ChecksumPolicy { kError, kWarn, kIgnore };

// Decoded samples of a record, in ADC units.
struct Signals {
  int64_t n_samples = 0;
  std::vector<std::vector<int32_t>> samples;  // one vector per signal, header order
  std::vector<std::string> warnings;          // e.g. checksum mismatches under kWarn
};

// Parses header text; errors (code "bad_record") name the line and what was expected.
// Multi-segment (name/n) records are rejected.
Expected<Header> parse_header(const std::string& text);
// Reads and parses a header file.
Expected<Header> read_header(const std::string& path);
// Reads all signals named by `header` from files in `directory`, checking lengths, initial values
// and checksums (modulo 65536) according to `policy`.
Expected<Signals> read_signals(const Header& header, const std::string& directory,
                               ChecksumPolicy policy = ChecksumPolicy::kError);
// True when `format` is one read_signals decodes.
bool format_supported(int format);

}  // namespace ecgq::wfdb
