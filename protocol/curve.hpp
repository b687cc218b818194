// CurveZMQ (RFC 26) keys and certificates in czmq's zcert format, so that keys made by
// `ecgq keygen`, czmq's zcert, pyzmq's zmq.auth or any other ZeroMQ tool work interchangeably.
// A certificate pair is PATH (public key only, share it) and PATH_secret (both keys, mode 0600).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace zmq {
class socket_t;
}  // namespace zmq

namespace ecgq::curve {

// One CURVE identity: Z85-encoded keys (40 characters each).
struct Certificate {
  std::string public_key;                       // Z85, always present
  std::string secret_key;                       // Z85, empty in a public certificate
  std::map<std::string, std::string> metadata;  // the zcert "metadata" section
};

// A fresh key pair from libzmq (libsodium underneath); metadata is left empty.
Expected<Certificate> generate();

// Writes `cert` as PATH (public) and PATH_secret (public + secret, created mode 0600; an
// existing secret file is never overwritten: rotate keys under a new name).
Status write_pair(const std::string& path, const Certificate& cert);

// Reads a zcert file (public or secret); errors name the file and what is wrong.
Expected<Certificate> read_certificate(const std::string& path);

// A public key given either as its 40-character Z85 text or as a certificate file.
Expected<std::string> read_public_key(const std::string& file_or_z85);

// Every public certificate in `directory` (files that parse as zcert; others are reported in
// `skipped` with the reason, not silently ignored).
Expected<std::vector<Certificate>> read_directory(const std::string& directory,
                                                  std::vector<std::string>* skipped = nullptr);

// A short, stable name for a public key in logs and audit lines (16 hex digits of the
// SHA-256 of the Z85 text); never the key itself.
std::string fingerprint(const std::string& public_key_z85);

// What a CURVE client (worker, producer, gateway) needs: its own key pair and the broker's
// public key.
struct ClientKeys {
  Certificate own;         // public and secret key
  std::string server_key;  // the broker's public key (Z85)
};

// Reads the settings curve_cert (own secret certificate file) and broker_key (the broker's public
// certificate file or its Z85 key). Both empty: nullopt (CURVE off). One without the other, a
// missing or unreadable file, a file without a secret key or a malformed key: an error naming
// the setting (`cert_name`, `key_name`: how the caller spells them, e.g. --curve-cert), the file
// and what was expected.
Expected<std::optional<ClientKeys>> load_client_keys(const std::string& curve_cert,
                                                     const std::string& broker_key,
                                                     const std::string& cert_name = "curve_cert",
                                                     const std::string& key_name = "broker_key");

// Makes `socket` a CURVE client with `keys`; call before connect().
void apply_client_keys(zmq::socket_t& socket, const ClientKeys& keys);

// True when `text` is 40 characters of the Z85 alphabet that decode to a 32-byte key.
bool is_z85_key(const std::string& text);

}  // namespace ecgq::curve
