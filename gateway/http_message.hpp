// The gateway's view of an HTTP request and response: plain structs, so that routes and their
// tests never see the HTTP library.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ecgq::gateway {

// Tells a handler that its client closed the connection before the answer was sent, so that
// work done only for that answer (a queued job) can be cancelled. Thread-safe.
class ClientWatch {
 public:
  // Runs `fn` once when the client goes away before its answer (at once if it already has).
  void on_gone(std::function<void()> fn);
  // Called by the server when the connection closed while the request waited for its answer.
  void gone();

 private:
  std::mutex mutex_;
  bool gone_ = false;
  std::function<void()> fn_;
};

// One request as the router sees it.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: "/predict?async=1"
  std::string path;    // the target before '?', percent-decoding left to the routes
  std::map<std::string, std::string> query;  // decoded query fields (the first of repeats)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;
  std::string peer;                    // "ADDRESS:PORT" of the client
  bool tls = false;                    // arrived over HTTPS
  std::shared_ptr<ClientWatch> watch;  // set by the server for requests that wait for an answer

  // The first header called `name` (lower case), or "".
  std::string header(const std::string& name) const;
  // The value of query field `name`, or "".
  std::string query_value(const std::string& name) const;
};

// One response; content_type and body are sent as they are.
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Location, ...)
  bool close = false;  // close the connection after sending (the body may be unread)

  // Adds a header.
  HttpResponse& with(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

// Splits "path?query" into the request's path and decoded query fields.
void parse_target(HttpRequest& request);
// Percent-decoding with '+' as space (form and query encoding); false on a bad escape.
bool url_decode(const std::string& in, std::string& out);
// Fields of an application/x-www-form-urlencoded text (the first of repeats); false when malformed.
bool parse_form(const std::string& text, std::map<std::string, std::string>& out);
// The reason phrase of a status code ("Not Found").
const char* reason_phrase(int status);

}  // namespace ecgq::gateway
