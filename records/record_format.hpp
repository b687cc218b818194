// The record formats ecgq reads, by file extension and by content (magic bytes, XML root element):
// the one table that read_record() dispatches on and that RecordDiscovery finds records by.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ecgq {

// Which reader a file goes to.
enum class RecordFormat {
  WfdbHeader,  // .hea: a WFDB header and the signal files it names
  Npy,         // .npy
  Tabular,     // CSV-like text: .csv, .tsv, .txt
  Mat,         // .mat: a Challenge signal file read through its header, else MATLAB v4
  Edf,         // EDF and EDF+ (.edf; "0" and 7 spaces at byte 0)
  Hl7Aecg,     // HL7 aECG XML (root element AnnotatedECG)
  GeMuse,      // GE MUSE XML (root element RestingECG)
  Philips,     // Philips SierraECG / PhilipsECG XML (root element restingecgdata)
  Dicom,       // DICOM waveform object ("DICM" at byte 128)
  Scp,         // SCP-ECG (EN 1064; section 0 at byte 6)
  Xml,         // .xml whose root element is none of the above (refused with its name)
};

// The format's name as records and messages give it ("edf", "hl7-aecg", ...).
const char* record_format_name(RecordFormat format);

// How a directory walk treats a file of an extension.
enum class Discovery {
  Always,               // a record
  WhenNamed,            // a record when named on the command line, never found in a directory walk
  UnlessNamedByHeader,  // a record unless a WFDB header in its directory names it as a signal file
};

// One row of the table.
struct RecordExtension {
  const char* ext;  // lower case, with the dot
  RecordFormat format;
  Discovery discovery;
};

// The extension of `path`'s file name with its dot, lower-cased ("" when none, and for dotfiles).
std::string record_extension(const std::string& path);

// The row of extension `ext` (as record_extension() returns it), or nullptr when ecgq reads no
// record format by that extension (such files are read only as WFDB signal files).
const RecordExtension* find_record_extension(const std::string& ext);

// The format of a file from its first bytes (`head`, at least the first 4 KiB when the file is
// that long) and its extension (as record_extension() returns it), or nullopt
// when the content says nothing: EDF, DICOM, SCP-ECG and the XML formats are told apart by
// content; an SCP-ECG file is recognised by content only with "SCPECG" in section 0's header, or
// by its .scp extension when section 0 is where EN 1064 puts it.
std::optional<RecordFormat> detect_record_format(std::string_view head, const std::string& ext);

// The first element name of an XML document (prefix removed), or "" when `head` does not start
// like XML. `head` may be cut anywhere after that element's name.
std::string xml_root_element(std::string_view head);

}  // namespace ecgq
