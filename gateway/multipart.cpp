#include "gateway/multipart.hpp"

#include <algorithm>
#include <cctype>

namespace ecgq::gateway {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

Status bad(const std::string& message) {
  return Status("bad_request", "malformed multipart body: " + message, "body");
}

// Reads one part's headers (between the delimiter line and the blank line) into `part`.
Status read_part_headers(std::string_view headers, FormPart& part) {
  bool disposition = false;
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t end = headers.find("\r\n", pos);
    if (end == std::string_view::npos) end = headers.size();
    const std::string line(headers.substr(pos, end - pos));
    pos = end + 2;
    if (line.empty()) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) return bad("a part header line has no ':'");
    const std::string name = lower(trim(line.substr(0, colon)));
    const std::string value = trim(line.substr(colon + 1));
    if (name == "content-disposition") {
      if (lower(value).rfind("form-data", 0) != 0)
        return bad("a part's Content-Disposition is not form-data");
      part.name = header_parameter(value, "name");
      part.filename = header_parameter(value, "filename");
      disposition = true;
    } else if (name == "content-type") {
      part.content_type = value;
    }
  }
  if (!disposition) return bad("a part has no Content-Disposition header");
  if (part.name.empty()) return bad("a part has no name");
  return Status::Ok();
}

}  // namespace

std::string header_parameter(const std::string& value, const std::string& name) {
  size_t pos = value.find(';');
  while (pos != std::string::npos && pos < value.size()) {
    ++pos;
    while (pos < value.size() && (value[pos] == ' ' || value[pos] == '\t')) ++pos;
    const auto eq = value.find('=', pos);
    if (eq == std::string::npos) return "";
    const std::string key = lower(trim(value.substr(pos, eq - pos)));
    std::string out;
    size_t i = eq + 1;
    if (i < value.size() && value[i] == '"') {
      for (++i; i < value.size() && value[i] != '"'; ++i) {
        if (value[i] == '\\' && i + 1 < value.size()) ++i;
        out.push_back(value[i]);
      }
      pos = value.find(';', i);
    } else {
      const auto semi = value.find(';', i);
      out = trim(value.substr(i, semi == std::string::npos ? std::string::npos : semi - i));
      pos = semi;
    }
    if (key == name) return out;
  }
  return "";
}

Expected<std::string> multipart_boundary(const std::string& content_type) {
  if (lower(content_type).rfind("multipart/form-data", 0) != 0) {
    return Status("unsupported_media_type", "expected multipart/form-data", "content-type");
  }
  const std::string b = header_parameter(content_type, "boundary");
  // RFC 2046: 1 to 70 characters.
  if (b.empty() || b.size() > 70) {
    return Status("bad_request", "multipart/form-data without a valid boundary parameter",
                  "content-type");
  }
  return b;
}

Expected<std::vector<FormPart>> parse_multipart(std::string_view body,
                                                const std::string& boundary) {
  const std::string delimiter = "--" + boundary;
  const std::string next_delimiter = "\r\n" + delimiter;
  size_t pos;
  if (body.substr(0, delimiter.size()) == delimiter) {
    pos = delimiter.size();
  } else {
    const auto first = body.find(next_delimiter);  // a preamble may precede the first delimiter
    if (first == std::string_view::npos) return bad("the boundary never appears");
    pos = first + next_delimiter.size();
  }
  std::vector<FormPart> parts;
  while (true) {
    if (body.substr(pos, 2) == "--") return parts;  // the close delimiter
    // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n") return bad("a boundary line does not end with CRLF");
    pos += 2;
    if (parts.size() == kMaxFormParts)
      return bad("more than " + std::to_string(kMaxFormParts) + " parts");
    const auto header_end = body.find("\r\n\r\n", pos);
    const bool no_headers = body.substr(pos, 2) == "\r\n";
    if (!no_headers &&
        (header_end == std::string_view::npos || header_end - pos > kMaxPartHeaderBytes))
      return bad(header_end == std::string_view::npos ? "the body ends inside a part's headers"
                                                      : "a part's headers are too long");
    FormPart part;
    const size_t data_start = no_headers ? pos + 2 : header_end + 4;
    if (Status s = read_part_headers(
            no_headers ? std::string_view() : body.substr(pos, header_end - pos), part);
        !s.ok())
      return s;
    const auto data_end = body.find(next_delimiter, data_start);
    if (data_end == std::string_view::npos)
      return bad("the body ends before the closing boundary (truncated upload?)");
    part.data = body.substr(data_start, data_end - data_start);
    parts.push_back(std::move(part));
    pos = data_end + next_delimiter.size();
  }
}

}  // namespace ecgq::gateway
