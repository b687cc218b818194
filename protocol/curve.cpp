#include "protocol/curve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <zmq.hpp>

#include "common/sha256.hpp"

namespace ecgq::curve {

namespace {

Status bad_cert(const std::string& path, const std::string& why) {
  return Status(ErrorCode::BadCertificate, path + ": " + why, "certificate");
}

std::string header(bool secret) {
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  std::string h = std::string("#   ****  Generated on ") + when + " by ecgq keygen  ****\n";
  if (secret) {
    h += "#   ZeroMQ CURVE **Secret** Certificate\n"
         "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n";
  } else {
    h += "#   ZeroMQ CURVE Public Certificate\n"
         "#   Exchange securely, or use a secure mechanism to verify the contents\n"
         "#   of this file after exchange. Store public certificates in your home\n"
         "#   directory, in the .curve subdirectory.\n";
  }
  return h + "\n";
}

std::string body(const Certificate& cert, bool secret) {
  std::string b = "metadata\n";
  for (const auto& [k, v] : cert.metadata) b += "    " + k + " = \"" + v + "\"\n";
  b += "curve\n    public-key = \"" + cert.public_key + "\"\n";
  if (secret) b += "    secret-key = \"" + cert.secret_key + "\"\n";
  return b;
}

Status write_file(const std::string& path, const std::string& text, mode_t mode, bool exclusive) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0)
    return Status(ErrorCode::IoError, "cannot create " + path + ": " + std::strerror(errno),
                  "path");
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::fchmod(fd, mode);  // the umask must not widen or narrow what we promise
  ::close(fd);
  return ok ? Status::Ok() : Status(ErrorCode::IoError, "cannot write " + path, "path");
}

// The value of `key = "value"` (quotes optional, as ZPL allows), or "" when the line is not one.
bool parse_assignment(const std::string& line, std::string* key, std::string* value) {
  const size_t eq = line.find('=');
  if (eq == std::string::npos) return false;
  const auto trim = [](std::string s) {
    const size_t b = s.find_first_not_of(" \t");
    const size_t e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  *key = trim(line.substr(0, eq));
  std::string v = trim(line.substr(eq + 1));
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
    v = v.substr(1, v.size() - 2);
  *value = v;
  return !key->empty();
}

}  // namespace

bool is_z85_key(const std::string& text) {
  if (text.size() != 40) return false;
  uint8_t raw[32];
  return zmq_z85_decode(raw, text.c_str()) != nullptr;
}

Expected<Certificate> generate() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0)
    return Status(ErrorCode::CurveUnavailable,
                  std::string("this libzmq cannot make CURVE keys: ") + zmq_strerror(zmq_errno()));
  return Certificate{pub, sec, {}};
}

Status write_pair(const std::string& path, const Certificate& cert) {
  RETURN_IF_ERROR(write_file(path + "_secret", header(true) + body(cert, true), 0600, true));
  return write_file(path, header(false) + body(cert, false), 0644, false);
}

Expected<Certificate> read_certificate(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status(ErrorCode::NotFound, "cannot read certificate " + path, "certificate");
  Certificate cert;
  std::string section, line;
  while (std::getline(in, line)) {
    if (line.empty() || line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#')
      continue;
    if (line[0] != ' ' && line[0] != '\t') {  // a top-level section name
      section = line.substr(0, line.find_last_not_of(" \t\r") + 1);
      continue;
    }
    std::string key, value;
    if (!parse_assignment(line, &key, &value)) continue;
    if (section == "metadata") {
      cert.metadata[key] = value;
    } else if (section == "curve" && key == "public-key") {
      cert.public_key = value;
    } else if (section == "curve" && key == "secret-key") {
      cert.secret_key = value;
    }
  }
  if (cert.public_key.empty()) return bad_cert(path, "no curve public-key (not a zcert file)");
  if (!is_z85_key(cert.public_key)) return bad_cert(path, "public-key is not a 40-char Z85 key");
  if (!cert.secret_key.empty() && !is_z85_key(cert.secret_key))
    return bad_cert(path, "secret-key is not a 40-char Z85 key");
  return cert;
}

Expected<std::string> read_public_key(const std::string& file_or_z85) {
  if (is_z85_key(file_or_z85) && !std::filesystem::exists(file_or_z85)) return file_or_z85;
  ASSIGN_OR_RETURN(auto cert, read_certificate(file_or_z85));
  return cert.public_key;
}

Expected<std::vector<Certificate>> read_directory(const std::string& directory,
                                                  std::vector<std::string>* skipped) {
  std::error_code ec;
  if (!std::filesystem::is_directory(directory, ec))
    return Status(ErrorCode::NotFound, "no key directory " + directory, "keys");
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(directory, ec))
    if (e.is_regular_file()) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::vector<Certificate> certs;
  for (const auto& f : files) {
    auto c = read_certificate(f);
    if (c.ok() && c->secret_key.empty()) {
      certs.push_back(std::move(*c));
    } else if (skipped) {
      skipped->push_back(c.ok() ? f + ": holds a secret key (only public certificates belong here)"
                                : c.status().message());
    }
  }
  return certs;
}

Expected<std::optional<ClientKeys>> load_client_keys(const std::string& curve_cert,
                                                     const std::string& broker_key,
                                                     const std::string& cert_name,
                                                     const std::string& key_name) {
  if (curve_cert.empty() && broker_key.empty()) return std::optional<ClientKeys>();
  if (curve_cert.empty())
    return Status(ErrorCode::BadUsage,
                  key_name + " is set but " + cert_name +
                      " is not: CURVE needs this peer's own secret certificate too (ecgq keygen)",
                  cert_name);
  if (broker_key.empty())
    return Status(ErrorCode::BadUsage,
                  cert_name + " is set but " + key_name +
                      " is not: CURVE needs the broker's public certificate or Z85 key too",
                  key_name);
  auto own = read_certificate(curve_cert);
  if (!own)
    return Status(ErrorCode::BadUsage, cert_name + ": " + own.status().message(), cert_name);
  if (own->secret_key.empty())
    return Status(ErrorCode::BadUsage,
                  cert_name + ": " + curve_cert +
                      " holds no secret-key (expected the PATH_secret file ecgq keygen wrote)",
                  cert_name);
  auto server = read_public_key(broker_key);
  if (!server)
    return Status(ErrorCode::BadUsage,
                  key_name + ": " + server.status().message() +
                      " (expected the broker's public certificate file or its 40-character Z85 "
                      "public key)",
                  key_name);
  return std::optional<ClientKeys>(ClientKeys{std::move(*own), std::move(*server)});
}

void apply_client_keys(zmq::socket_t& socket, const ClientKeys& keys) {
  socket.set(zmq::sockopt::curve_serverkey, keys.server_key);
  socket.set(zmq::sockopt::curve_publickey, keys.own.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.own.secret_key);
}

std::string fingerprint(const std::string& public_key_z85) {
  return sha256_hex(public_key_z85).substr(0, 16);
}

}  // namespace ecgq::curve
