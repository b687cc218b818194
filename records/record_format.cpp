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
    {".edf", RecordFormat::Edf, Discovery::Always},
    {".dcm", RecordFormat::Dicom, Discovery::Always},
    {".scp", RecordFormat::Scp, Discovery::Always},
    // Exports of ECG management systems are directories of XML files; the root element decides.
    {".xml", RecordFormat::Xml, Discovery::Always},
};

struct XmlRoot {
  const char* element;
  RecordFormat format;
};

constexpr XmlRoot kXmlRoots[] = {
    {"AnnotatedECG", RecordFormat::Hl7Aecg},
    {"RestingECG", RecordFormat::GeMuse},
    {"restingecgdata", RecordFormat::Philips},
};

uint32_t le32(std::string_view b, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + static_cast<size_t>(i)]);
  return v;
}

// Skips `from` past the first `end` marker; npos when there is none.
size_t skip_past(std::string_view s, size_t from, std::string_view end) {
  const size_t at = s.find(end, from);
  return at == std::string_view::npos ? at : at + end.size();
}

}  // namespace

std::string record_extension(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? "" : lower_trimmed(base.substr(dot));
}

const char* record_format_name(RecordFormat format) {
  switch (format) {
    case RecordFormat::WfdbHeader:
      return "wfdb";
    case RecordFormat::Npy:
      return "npy";
    case RecordFormat::Tabular:
      return "csv";
    case RecordFormat::Mat:
      return "mat";
    case RecordFormat::Edf:
      return "edf";
    case RecordFormat::Hl7Aecg:
      return "hl7-aecg";
    case RecordFormat::GeMuse:
      return "ge-muse";
    case RecordFormat::Philips:
      return "philips";
    case RecordFormat::Dicom:
      return "dicom";
    case RecordFormat::Scp:
      return "scp-ecg";
    case RecordFormat::Xml:
      return "xml";
  }
  return "?";
}

std::string xml_root_element(std::string_view text) {
  // UTF-16 exports (Philips writes them): the ASCII of the markup is every other byte.
  std::string narrow;
  if (text.size() >= 2 && (text.substr(0, 2) == "\xFF\xFE" || text.substr(0, 2) == "\xFE\xFF")) {
    for (size_t k = text[0] == '\xFF' ? 2 : 3; k < text.size(); k += 2) narrow.push_back(text[k]);
    text = narrow;
  }
  const std::string_view head = text;
  size_t i = 0;
  if (head.substr(0, 3) == "\xEF\xBB\xBF") i = 3;  // UTF-8 byte order mark
  while (i < head.size()) {
    const char c = head[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
    } else if (c != '<') {
      return "";
    } else if (head.substr(i, 2) == "<?") {
      i = skip_past(head, i, "?>");
    } else if (head.substr(i, 4) == "<!--") {
      i = skip_past(head, i, "-->");
    } else if (head.substr(i, 2) == "<!") {
      i = skip_past(head, i, ">");  // DOCTYPE without an internal subset
    } else {
      size_t e = i + 1;
      while (e < head.size() && head[e] != '>' && head[e] != '/' && head[e] != ' ' &&
             head[e] != '\t' && head[e] != '\r' && head[e] != '\n')
        ++e;
      std::string name(head.substr(i + 1, e - i - 1));
      const size_t colon = name.find(':');
      return colon == std::string::npos ? name : name.substr(colon + 1);
    }
    if (i == std::string_view::npos) return "";
  }
  return "";
}

std::optional<RecordFormat> detect_record_format(std::string_view head, const std::string& ext) {
  if (head.size() >= 132 && head.substr(128, 4) == "DICM") return RecordFormat::Dicom;
  if (head.size() >= 256 && head.substr(0, 8) == "0       ") return RecordFormat::Edf;
  if (head.size() >= 22 && head[8] == 0 && head[9] == 0 &&
      (head.substr(16, 6) == "SCPECG" || (ext == ".scp" && le32(head, 10) >= 16)))
    return RecordFormat::Scp;
  const std::string root = xml_root_element(head);
  if (!root.empty()) {
    for (const XmlRoot& r : kXmlRoots)
      if (root == r.element) return r.format;
    return RecordFormat::Xml;
  }
  return std::nullopt;
}

const RecordExtension* find_record_extension(const std::string& ext) {
  for (const RecordExtension& row : kExtensions)
    if (ext == row.ext) return &row;
  return nullptr;
}

}  // namespace ecgq
