#include "protocol/endpoint.hpp"

#include <cctype>

namespace ecgq::mdp {

namespace {

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

Status check_endpoint(const std::string& endpoint, EndpointUse use, const std::string& flag) {
  const bool bind = use == EndpointUse::Bind;
  const std::string expected = bind ? "tcp://HOST:PORT (HOST may be *), ipc://PATH or inproc://NAME"
                                    : "tcp://HOST:PORT, ipc://PATH or inproc://NAME";
  const auto bad = [&](const std::string& why) {
    return Status(ErrorCode::BadUsage,
                  flag + " '" + endpoint + "': " + why + "; expected " + expected, flag);
  };
  for (const char* scheme : {"ipc://", "inproc://"}) {
    const std::string s = scheme;
    if (endpoint.rfind(s, 0) == 0)
      return endpoint.size() > s.size() ? Status::Ok() : bad("nothing after " + s);
  }
  if (endpoint.rfind("tcp://", 0) != 0) return bad("unknown transport");
  const std::string rest = endpoint.substr(6);
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  const std::string host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  if (host.empty()) return bad("no host");
  if (!bind && host == "*") return bad("* is for binding; name the broker's host");
  if (bind && port == "*") return Status::Ok();
  if (!all_digits(port) || port.size() > 5 || std::stoi(port) < 1 || std::stoi(port) > 65535)
    return bad("port '" + port + "' is not 1-65535");
  return Status::Ok();
}

}  // namespace ecgq::mdp
