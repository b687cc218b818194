#include "client/resume.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace ecgq::client {

Expected<ResumeState> load_resume(const std::string& path) {
  ResumeState state;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return state;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(ErrorCode::IoError, "cannot read " + path, "resume");
  std::string line;
  uint64_t complete_bytes = 0;  // bytes up to and including the last newline
  while (std::getline(in, line)) {
    if (in.eof()) {  // no newline after this line: a cut-off write
      state.truncated_tail = !line.empty();
      break;
    }
    complete_bytes += line.size() + 1;
    if (line.empty()) continue;
    ++state.lines;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("path") || !j["path"].is_string()) {
      ++state.bad_lines;
      continue;
    }
    if (j.value("status", "") == "ok") state.ok_paths.insert(j["path"].get<std::string>());
  }
  in.close();
  if (state.truncated_tail) {
    std::filesystem::resize_file(path, complete_bytes, ec);
    if (ec)
      return Status(ErrorCode::IoError, "cannot cut the partial last line of " + path, "resume");
  }
  return state;
}

}  // namespace ecgq::client
