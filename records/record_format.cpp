#include "records/record_format.hpp"

#include "records/lead_names.hpp"

namespace ecgq {

namespace {

constexpr RecordExtension kExtensions[] = {
    {".hea", RecordFormat::WfdbHeader, Discovery::Always},
    {".npy", RecordFormat::Npy, Discovery::Always},
    {".csv", RecordFormat::Tabular, Discovery::Always},
    {".tsv", RecordFormat::Tabular, Discovery::Always},
    // Text files beside records are mostly notes (README.txt, RECORDS.txt): a .txt record is read
    // when it is named, not picked up from a directory.
    {".txt", RecordFormat::Tabular, Discovery::WhenNamed},
    {".mat", RecordFormat::Mat, Discovery::UnlessNamedByHeader},
};

}  // namespace

std::string record_extension(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? "" : lower_trimmed(base.substr(dot));
}

const RecordExtension* find_record_extension(const std::string& ext) {
  for (const RecordExtension& row : kExtensions)
    if (ext == row.ext) return &row;
  return nullptr;
}

}  // namespace ecgq
