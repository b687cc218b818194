// The record formats ecgq reads, by file extension: the one table that read_record() dispatches
// on and that RecordDiscovery finds records by.
#pragma once

#include <string>

namespace ecgq {

// Which reader a file goes to.
enum class RecordFormat {
  WfdbHeader,  // .hea: a WFDB header and the signal files it names
  Npy,         // .npy
  Tabular,     // CSV-like text: .csv, .tsv, .txt
  Mat,         // .mat: a Challenge signal file read through its header, else MATLAB v4
};

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

}  // namespace ecgq
