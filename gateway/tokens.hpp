// Bearer tokens with names: who is calling, for the logs and for the scope of async jobs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq::gateway {

// The tokens of a --tokens file; only their SHA-256 digests are kept in memory.
class TokenTable {
 public:
  // No tokens: authentication is off.
  TokenTable() = default;
  // Reads "NAME TOKEN" lines ('#' comments and blank lines skipped); tokens of at least 16
  // characters, names unique; bad_config naming the line otherwise.
  static Expected<TokenTable> load(const std::string& path);
  // True when no token was loaded (authentication off).
  bool empty() const { return entries_.empty(); }
  // How many tokens were loaded.
  size_t size() const { return entries_.size(); }
  // The name of the token in an Authorization header value ("Bearer TOKEN"), or nullopt. Every
  // entry is compared in constant time, so timing tells nothing about the tokens.
  std::optional<std::string> authenticate(const std::string& authorization) const;

 private:
  struct Entry {
    std::string name;
    std::string digest;  // hex SHA-256 of the token
  };
  std::vector<Entry> entries_;
};

}  // namespace ecgq::gateway
