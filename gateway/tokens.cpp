#include "gateway/tokens.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "common/sha256.hpp"

namespace ecgq::gateway {

namespace {

std::string digest(const std::string& token) {
  Sha256 h;
  h.update(token);
  return h.hex_digest();
}

bool same(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

Expected<TokenTable> TokenTable::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status("bad_config", "cannot read the tokens file " + path, "tokens");
  TokenTable table;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line);
    std::string name, token, extra;
    fields >> name >> token >> extra;
    const std::string where = path + " line " + std::to_string(number);
    if (token.empty() || !extra.empty())
      return Status("bad_config", where + ": expected 'NAME TOKEN'", "tokens");
    if (token.size() < 16)
      return Status("bad_config", where + ": the token is shorter than 16 characters", "tokens");
    for (const auto& e : table.entries_) {
      if (e.name == name)
        return Status("bad_config", where + ": the name " + name + " is used twice", "tokens");
    }
    table.entries_.push_back(Entry{name, digest(token)});
  }
  if (table.entries_.empty())
    return Status("bad_config", "the tokens file " + path + " holds no token", "tokens");
  return table;
}

std::optional<std::string> TokenTable::authenticate(const std::string& authorization) const {
  static const std::string kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i])
      return std::nullopt;
  }
  const std::string d = digest(authorization.substr(kScheme.size()));
  std::optional<std::string> found;
  for (const auto& e : entries_) {
    if (same(e.digest, d) && !found) found = e.name;
  }
  return found;
}

}  // namespace ecgq::gateway
