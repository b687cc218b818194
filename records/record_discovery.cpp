#include "records/record_discovery.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <utility>

#include "records/record_format.hpp"
#include "records/wfdb.hpp"

namespace ecgq {

namespace fs = std::filesystem;

namespace {

struct Entry {
  std::string name;
  bool is_dir = false;
};

// One directory being walked.
struct Frame {
  std::string dir;
  std::vector<Entry> entries;  // sorted by name
  size_t next = 0;
  bool header_names_loaded = false;
  std::set<std::string> header_names;  // signal files named by any header here
};

std::string stem_of(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

// The signal files a header names, or none when it cannot be parsed.
std::vector<std::string> signal_files(const std::string& header_path) {
  std::vector<std::string> out;
  auto h = wfdb::read_header(header_path);
  if (!h.ok()) return out;
  for (const auto& s : h->signals) out.push_back(s.file_name);
  return out;
}

}  // namespace

struct RecordDiscovery::State {
  std::vector<std::string> roots;
  size_t next_root = 0;
  std::vector<Frame> stack;
  std::set<std::pair<dev_t, ino_t>> visited;
  int64_t skipped = 0;
  int64_t found = 0;
  std::vector<std::string> errors;

  bool has_entry(const Frame& f, const std::string& name) const {
    auto it = std::lower_bound(f.entries.begin(), f.entries.end(), name,
                               [](const Entry& e, const std::string& n) { return e.name < n; });
    return it != f.entries.end() && it->name == name && !it->is_dir;
  }

  // True when some header in the frame's directory names `name` as a signal file.
  bool named_by_header(Frame& f, const std::string& name) {
    const std::string same = stem_of(name) + ".hea";
    if (has_entry(f, same))
      for (const auto& s : signal_files(f.dir + "/" + same))
        if (s == name) return true;
    if (!f.header_names_loaded) {
      f.header_names_loaded = true;
      for (const auto& e : f.entries)
        if (!e.is_dir && record_extension(e.name) == ".hea")
          for (const auto& s : signal_files(f.dir + "/" + e.name)) f.header_names.insert(s);
    }
    return f.header_names.count(name) > 0;
  }

  void open_dir(const std::string& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0 && !visited.insert({st.st_dev, st.st_ino}).second) return;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
      errors.push_back("cannot list " + dir + ": " + ec.message());
      return;
    }
    Frame f;
    f.dir = dir;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ec) {
        errors.push_back("cannot list " + dir + ": " + ec.message());
        break;
      }
      std::error_code dec;
      f.entries.push_back({it->path().filename().string(), it->is_directory(dec)});
    }
    std::sort(f.entries.begin(), f.entries.end(),
              [](const Entry& a, const Entry& b) { return a.name < b.name; });
    stack.push_back(std::move(f));
  }
};

RecordDiscovery::RecordDiscovery(std::vector<std::string> roots)
    : state_(std::make_unique<State>()) {
  state_->roots = std::move(roots);
}
RecordDiscovery::~RecordDiscovery() = default;
RecordDiscovery::RecordDiscovery(RecordDiscovery&&) noexcept = default;
RecordDiscovery& RecordDiscovery::operator=(RecordDiscovery&&) noexcept = default;

std::optional<std::string> RecordDiscovery::next() {
  State& s = *state_;
  for (;;) {
    if (s.stack.empty()) {
      if (s.next_root >= s.roots.size()) return std::nullopt;
      std::string root = s.roots[s.next_root++];
      while (root.size() > 1 && root.back() == '/') root.pop_back();
      std::error_code ec;
      const auto status = fs::status(root, ec);
      if (ec || !fs::exists(status)) {
        s.errors.push_back(root + " does not exist");
        continue;
      }
      if (fs::is_directory(status)) {
        s.open_dir(root);
        continue;
      }
      ++s.found;
      return root;
    }
    Frame& f = s.stack.back();
    if (f.next >= f.entries.size()) {
      s.stack.pop_back();
      continue;
    }
    const Entry e = f.entries[f.next++];
    const std::string path = f.dir + "/" + e.name;
    if (e.name[0] == '.') {
      ++s.skipped;
      continue;
    }
    if (e.is_dir) {
      s.open_dir(path);  // invalidates `f`
      continue;
    }
    const RecordExtension* known = find_record_extension(record_extension(e.name));
    const bool record =
        known &&
        (known->discovery == Discovery::Always ||
         (known->discovery == Discovery::UnlessNamedByHeader && !s.named_by_header(f, e.name)));
    if (!record) {
      ++s.skipped;
      continue;
    }
    ++s.found;
    return path;
  }
}

int64_t RecordDiscovery::skipped() const {
  return state_->skipped;
}
int64_t RecordDiscovery::found() const {
  return state_->found;
}
const std::vector<std::string>& RecordDiscovery::errors() const {
  return state_->errors;
}

std::vector<std::string> discover_records(const std::vector<std::string>& roots, int64_t* skipped,
                                          std::vector<std::string>* errors) {
  RecordDiscovery walk(roots);
  std::vector<std::string> out;
  while (auto p = walk.next()) out.push_back(std::move(*p));
  if (skipped) *skipped = walk.skipped();
  if (errors) *errors = walk.errors();
  return out;
}

}  // namespace ecgq
