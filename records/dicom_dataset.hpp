// A small strict DICOM data set parser (PS3.5): the file meta group, then explicit or implicit
// VR little endian elements with nested sequences (defined and undefined lengths). Values are
// views into the caller's bytes; nothing is copied and every length is checked against what is
// left of its container before it is used.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"

namespace ecgq::dicom {

// One data element; items holds the elements of each item of a sequence.
struct Element {
  uint32_t tag = 0;  // (group << 16) | element
  std::string vr;    // as written (explicit VR), "SQ" for sequences, "" for implicit VR
  std::string_view value;
  size_t offset = 0;  // of the element's tag in the file
  std::vector<std::vector<Element>> items;
};

// A parsed file: the meta group's transfer syntax and the data set.
struct Dataset {
  std::string transfer_syntax;
  std::vector<Element> elements;
};

// Parses a DICOM Part 10 file (128-byte preamble, "DICM"); explicit and implicit VR little endian
// only. Errors: bad_record naming the tag and byte offset; unsupported_format for other transfer
// syntaxes.
Expected<Dataset> parse(std::string_view bytes, const std::string& path);

// The element of `tag` in `elements`, or nullptr.
const Element* find(const std::vector<Element>& elements, uint32_t tag);
// The string value of `tag` with trailing spaces and NULs removed ("" when absent).
std::string text(const std::vector<Element>& elements, uint32_t tag);
// The first number of a DS/IS value of `tag`; false when absent or not a number.
bool decimal(const std::vector<Element>& elements, uint32_t tag, double* out);
// An unsigned integer value of `tag` (US: 2 bytes, UL: 4 bytes, by the value's length); false when
// absent or of another length.
bool unsigned_value(const std::vector<Element>& elements, uint32_t tag, uint32_t* out);
// "(gggg,eeee)" for messages.
std::string tag_name(uint32_t tag);

}  // namespace ecgq::dicom
