#include "broker/key_store.hpp"

#include "protocol/curve.hpp"

namespace ecgq::broker {

Expected<KeyStore> KeyStore::load(const KeyDirectories& directories) {
  KeyStore store;
  const std::pair<const std::string*, unsigned> lists[] = {{&directories.client, kRoleClient},
                                                           {&directories.worker, kRoleWorker},
                                                           {&directories.admin, kRoleAdmin}};
  for (const auto& [dir, role] : lists) {
    if (dir->empty()) continue;
    auto certs = curve::read_directory(*dir, &store.skipped_);
    if (!certs.ok()) return certs.status();
    for (const auto& c : *certs) store.roles_[c.public_key] |= role;
  }
  return store;
}

unsigned KeyStore::roles(const std::string& public_key) const {
  auto it = roles_.find(public_key);
  return it == roles_.end() ? 0u : it->second;
}

}  // namespace ecgq::broker
