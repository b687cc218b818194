// `ecgq keygen PATH`: a CURVE certificate pair for a broker, worker or client.
#include <cstdio>

#include "client/cli.hpp"
#include "protocol/curve.hpp"

namespace ecgq::client {

int run_keygen(const KeygenCommand& command) {
  auto cert = curve::generate();
  if (!cert.ok()) {
    std::fprintf(stderr, "ecgq: keygen: %s\n", cert.status().message().c_str());
    return kExitFailed;
  }
  cert->metadata = command.metadata;
  if (auto s = curve::write_pair(command.path, *cert); !s.ok()) {
    std::fprintf(stderr, "ecgq: keygen: %s\n", s.message().c_str());
    return kExitFailed;
  }
  std::printf(
      "public certificate: %s (share it)\nsecret certificate: %s_secret (mode 0600, keep it)\n"
      "fingerprint: %s\n",
      command.path.c_str(), command.path.c_str(), curve::fingerprint(cert->public_key).c_str());
  return kExitOk;
}

}  // namespace ecgq::client
