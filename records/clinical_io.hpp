// What the clinical-format readers (EDF, HL7 aECG, GE MUSE, DICOM, Philips, SCP-ECG) share:
// bounded file reading, a bounds-checked little-endian cursor, base64, CRC32, canonical lead names
// and the errors that say where in a file something is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "records/ecg_record.hpp"

namespace ecgq::clinical {

// Largest clinical file read (a 24 h 12-lead Holter at 1 kHz in int16 is ~2 GB; exports of
// resting ECGs are well under 10 MB): larger files are refused before anything is allocated.
inline constexpr uint64_t kMaxFileBytes = uint64_t{1} << 30;

// The whole file, or not_found / bad_record (too large).
Expected<std::string> read_file(const std::string& path);

// A bad_record error "PATH: WHERE: WHAT" (field "path").
Status bad(const std::string& path, const std::string& where, const std::string& what);

// A bounds-checked little-endian reader over bytes it does not own.
class ByteCursor {
 public:
  // Reads `bytes` from offset 0.
  explicit ByteCursor(std::string_view bytes) : bytes_(bytes) {}
  // Bytes left after the current offset.
  size_t left() const { return bytes_.size() - pos_; }
  // Current offset.
  size_t pos() const { return pos_; }
  // Moves to `pos`; false when past the end.
  bool seek(size_t pos);
  // Reads an unsigned little-endian integer of `n` bytes (1, 2 or 4); false when past the end.
  bool u(int n, uint32_t* out);
  // Reads `n` bytes; false when past the end.
  bool take(size_t n, std::string_view* out);

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

// A whole decimal number (no trailing text, finite); false otherwise.
bool parse_number(const std::string& text, double* out);

// Decodes base64 (whitespace ignored); false on any other character or bad padding.
bool base64_decode(std::string_view text, std::string* out);

// CRC-32 (IEEE 802.3, as zlib computes it) of `bytes`.
uint32_t crc32(std::string_view bytes);

// CRC-CCITT (polynomial 0x1021, initial 0xFFFF), as SCP-ECG sections use it.
uint16_t crc_ccitt(std::string_view bytes);

// The canonical lead name of an SCP-ECG / ISO 11073 MDC lead number (1 = I, 2 = II, 3..8 =
// V1..V6, 61..64 = III, aVR, aVL, aVF, ...), or "" when the number is not a lead ecgq names.
std::string lead_name_from_number(int number);

// A canonical lead name from a name as files spell it: "MDC_ECG_LEAD_AVR" -> "aVR", "Lead I
// (Einthoven)" -> "I", "ECG V1" -> "V1", "2:61" / "5.6.3-9-61" -> "III"; other names unchanged.
std::string canonical_lead_name(const std::string& name);

// Fills r's sample vector from ADC values (lead-major), in the narrowest dtype that holds them
// exactly; r->n_samples must be set.
void store_adc(EcgRecord* r, const std::vector<std::vector<int32_t>>& samples);

// The record name of `path`: its file name without the extension.
std::string stem_name(const std::string& path);

}  // namespace ecgq::clinical
