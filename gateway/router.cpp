#include "gateway/router.hpp"

namespace ecgq::gateway {

namespace {

std::vector<std::string> segments(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool matches(const std::string& pattern, const std::string& path,
             std::map<std::string, std::string>& params) {
  if (pattern == path) return true;
  const auto want = segments(pattern);
  const auto have = segments(path);
  if (want.size() != have.size()) return false;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string& w = want[i];
    if (w.size() > 2 && w.front() == '{' && w.back() == '}') {
      if (have[i].empty()) return false;
      found[w.substr(1, w.size() - 2)] = have[i];
    } else if (w != have[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

}  // namespace

Router::Match Router::match(const std::string& method, const std::string& path) const {
  Match m;
  if (path.empty() || path[0] != '/') return m;
  for (const auto& r : routes_) {
    std::map<std::string, std::string> params;
    if (!matches(r.pattern, path, params)) continue;
    if (r.method == method) {
      m.route = &r;
      m.params = std::move(params);
      m.allowed.clear();
      return m;
    }
    m.allowed.push_back(r.method);
  }
  return m;
}

}  // namespace ecgq::gateway
