// Who may talk to the broker with CURVE on: the allow-lists of client, worker and admin public
// keys, each a directory of certificates (czmq zcert files), loaded at start and on SIGHUP.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "broker/key_role.hpp"
#include "common/status.hpp"

namespace ecgq::broker {

// Where the allow-lists live (empty = that role has no keys).
struct KeyDirectories {
  std::string client;
  std::string worker;
  std::string admin;
};

// An immutable snapshot of the allow-lists; the loop swaps in a new one on reload.
class KeyStore {
 public:
  // Reads every public certificate in the directories; a missing directory is an error naming
  // it, a file that is not a public certificate is reported in skipped() and ignored.
  static Expected<KeyStore> load(const KeyDirectories& directories);

  // The roles of a Z85 public key (0 = unknown: refused at the handshake).
  unsigned roles(const std::string& public_key) const;
  // Keys in all lists (a key in two lists counts once).
  size_t size() const { return roles_.size(); }
  // Files that were not loaded, with the reason.
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  std::map<std::string, unsigned> roles_;
  std::vector<std::string> skipped_;
};

}  // namespace ecgq::broker
