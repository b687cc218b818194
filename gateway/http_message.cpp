#include "gateway/http_message.hpp"

namespace ecgq::gateway {

void ClientWatch::on_gone(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!gone_) {
    fn_ = std::move(fn);
    return;
  }
  lock.unlock();
  fn();
}

void ClientWatch::gone() {
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (gone_) return;
    gone_ = true;
    fn.swap(fn_);
  }
  if (fn) fn();
}

std::string HttpRequest::header(const std::string& name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return "";
}

std::string HttpRequest::query_value(const std::string& name) const {
  auto it = query.find(name);
  return it == query.end() ? std::string() : it->second;
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool url_decode(const std::string& in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_digit(in[i + 1]);
      const int lo = hex_digit(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return true;
}

bool parse_form(const std::string& text, std::map<std::string, std::string>& out) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('&', start);
    if (end == std::string::npos) end = text.size();
    const std::string pair = text.substr(start, end - start);
    if (!pair.empty()) {
      const auto eq = pair.find('=');
      std::string key, value;
      if (!url_decode(pair.substr(0, eq), key)) return false;
      if (eq != std::string::npos && !url_decode(pair.substr(eq + 1), value)) return false;
      out.emplace(std::move(key), std::move(value));  // emplace keeps the first of repeats
    }
    start = end + 1;
  }
  return true;
}

void parse_target(HttpRequest& request) {
  const auto q = request.target.find('?');
  request.path = request.target.substr(0, q);
  request.query.clear();
  if (q != std::string::npos) parse_form(request.target.substr(q + 1), request.query);
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

}  // namespace ecgq::gateway
