#include "client/resume.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

namespace ecgq::client {

namespace {

// One record's row as it will be kept.
struct KeptRow {
  size_t order = 0;  // first appearance, so the rewritten file keeps the original order
  std::string line;
  std::string status;
  std::string code;
};

}  // namespace

bool is_permanent_input_error(const std::string& code) {
  static const ErrorCode kPermanent[] = {
      ErrorCode::BadRequest,       ErrorCode::BadShape,          ErrorCode::UnsupportedDtype,
      ErrorCode::MessageTooLarge,  ErrorCode::MissingLeads,      ErrorCode::TooShort,
      ErrorCode::TooLong,          ErrorCode::BadSamples,        ErrorCode::BadRecord,
      ErrorCode::BadNpy,           ErrorCode::UnsupportedRecord, ErrorCode::UnsupportedFormat,
      ErrorCode::UnsupportedOutput};
  const auto parsed = parse_error_code(code);
  return parsed &&
         std::find(std::begin(kPermanent), std::end(kPermanent), *parsed) != std::end(kPermanent);
}

Expected<ResumeState> load_resume(const std::string& path, bool retry_errors) {
  ResumeState state;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return state;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(ErrorCode::IoError, "cannot read " + path, "resume");
  std::map<std::string, KeptRow> rows;
  std::string line;
  size_t order = 0;
  while (std::getline(in, line)) {
    if (in.eof()) {  // no newline after this line: a cut-off write
      state.truncated_tail = !line.empty();
      break;
    }
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("path") || !j["path"].is_string()) {
      ++state.bad_lines;
      continue;
    }
    KeptRow row{order++, line, j.value("status", ""), ""};
    if (j.contains("error") && j["error"].is_object()) row.code = j["error"].value("code", "");
    auto [it, fresh] = rows.emplace(j["path"].get<std::string>(), row);
    if (fresh) continue;
    ++state.rows_dropped;
    // An ok row is never replaced by a later error; otherwise the later row wins.
    if (it->second.status != "ok") {
      row.order = it->second.order;
      it->second = row;
    }
  }
  in.close();

  std::vector<const std::pair<const std::string, KeptRow>*> kept;
  for (const auto& entry : rows) {
    const KeptRow& r = entry.second;
    const bool permanent = r.status != "ok" && !retry_errors && is_permanent_input_error(r.code);
    if (r.status == "ok" || permanent) {
      kept.push_back(&entry);
      state.done_paths.insert(entry.first);
      (r.status == "ok" ? state.ok : state.permanent_errors) += 1;
    } else {
      ++state.to_retry;
      ++state.rows_dropped;
    }
  }
  std::sort(kept.begin(), kept.end(),
            [](auto* a, auto* b) { return a->second.order < b->second.order; });

  const std::string tmp = path + ".resume-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    for (const auto* entry : kept) out << entry->second.line << '\n';
    out.flush();
    if (!out) return Status(ErrorCode::IoError, "cannot write " + tmp, "resume");
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return Status(ErrorCode::IoError, "cannot replace " + path + ": " + ec.message(), "resume");
  return state;
}

}  // namespace ecgq::client
