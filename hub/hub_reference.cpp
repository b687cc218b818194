#include "hub/hub_reference.hpp"

#include <cctype>
#include <vector>

namespace ecgq {
namespace {

constexpr const char* kScheme = "hf://";

bool valid_name(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

Status bad(const std::string& reference, const std::string& what) {
  return Status(ErrorCode::BadReference,
                "checkpoint reference '" + reference + "': " + what +
                    " (expected hf://OWNER/REPO/PATH/IN/REPO[@REVISION] or a local path)",
                "checkpoint");
}

}  // namespace

std::string HubReference::to_string() const {
  return std::string(kScheme) + owner + "/" + repo + "/" + path + "@" + revision;
}

bool is_hub_reference(const std::string& reference) {
  return reference.rfind(kScheme, 0) == 0;
}

bool is_commit_hash(const std::string& revision) {
  if (revision.size() != 40) return false;
  for (char c : revision) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) ||
        std::isupper(static_cast<unsigned char>(c)))
      return false;
  }
  return true;
}

Expected<HubReference> parse_hub_reference(const std::string& reference) {
  if (!is_hub_reference(reference)) return bad(reference, "does not start with hf://");
  std::string rest = reference.substr(std::string(kScheme).size());
  HubReference ref;
  size_t first = rest.find('/');
  if (first == std::string::npos) return bad(reference, "missing REPO and PATH");
  ref.owner = rest.substr(0, first);
  size_t second = rest.find('/', first + 1);
  if (second == std::string::npos) return bad(reference, "missing PATH inside the repository");
  std::string repo_part = rest.substr(first + 1, second - first - 1);
  std::string path_part = rest.substr(second + 1);
  bool revision_given = false;
  size_t at = repo_part.find('@');
  if (at != std::string::npos) {
    // HfFileSystem spelling: the revision follows the repository name (it cannot contain '/').
    ref.revision = repo_part.substr(at + 1);
    repo_part = repo_part.substr(0, at);
    revision_given = true;
  }
  ref.repo = repo_part;
  size_t path_at = path_part.rfind('@');
  if (path_at != std::string::npos) {
    if (revision_given) return bad(reference, "two revisions given");
    ref.revision = path_part.substr(path_at + 1);
    path_part = path_part.substr(0, path_at);
    revision_given = true;
  }
  ref.path = path_part;
  if (!valid_name(ref.owner))
    return bad(reference, "OWNER '" + ref.owner + "' is not a valid name");
  if (!valid_name(ref.repo)) return bad(reference, "REPO '" + ref.repo + "' is not a valid name");
  if (ref.path.empty()) return bad(reference, "PATH inside the repository is empty");
  for (const auto& seg : split(ref.path, '/')) {
    if (seg.empty() || seg == "." || seg == "..") {
      return bad(reference, "PATH '" + ref.path + "' has an empty, '.' or '..' segment");
    }
  }
  if (revision_given && ref.revision.empty()) return bad(reference, "REVISION after '@' is empty");
  for (const auto& seg : split(ref.revision, '/')) {
    if (seg.empty() || seg == "." || seg == "..") {
      return bad(reference, "REVISION '" + ref.revision + "' is not a valid revision");
    }
  }
  return ref;
}

std::string hub_repo_folder(const HubReference& ref) {
  return "models--" + ref.owner + "--" + ref.repo;
}

std::string url_encode_segment(const std::string& segment) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : segment) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 0xf]);
    }
  }
  return out;
}

std::string hub_resolve_path(const HubReference& ref) {
  std::string out =
      "/" + ref.owner + "/" + ref.repo + "/resolve/" + url_encode_segment(ref.revision);
  for (const auto& seg : split(ref.path, '/')) out += "/" + url_encode_segment(seg);
  return out;
}

}  // namespace ecgq
