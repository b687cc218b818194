// Plain sockets rather than cpp-httplib: Debian builds httplib as a shared library the test
// targets do not link, and faults such as a cut mid-body need byte-level control anyway.
#include "tests/support/hub_emulator.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <stdexcept>

#include "hub/hub_reference.hpp"
#include "common/sha256.hpp"

namespace ecgq::test {
namespace {

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string status_line(int code) {
  const char* reason = code == 200   ? "OK"
                       : code == 206 ? "Partial Content"
                       : code == 302 ? "Found"
                       : code == 401 ? "Unauthorized"
                       : code == 404 ? "Not Found"
                       : code == 416 ? "Range Not Satisfiable"
                                     : "Error";
  return "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n";
}

std::string key_of(const std::string& repo, const std::string& path) {
  return repo + "|" + path;
}

}  // namespace

HubEmulator::HubEmulator() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    throw std::runtime_error("HubEmulator: cannot listen on 127.0.0.1");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) throw std::runtime_error("HubEmulator: pipe failed");
  acceptor_ = std::thread([this] { accept_loop(); });
}

HubEmulator::~HubEmulator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  cv_.notify_all();
  (void)!::write(wake_pipe_[1], "x", 1);
  acceptor_.join();
  std::vector<std::thread> handlers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    handlers.swap(handlers_);
  }
  for (auto& t : handlers) t.join();
  ::close(listen_fd_);
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

std::string HubEmulator::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

void HubEmulator::add_file(const std::string& repo_id, const std::string& path,
                           const std::string& content, bool lfs, const std::string& commit,
                           const std::vector<std::string>& revisions) {
  File f;
  f.content = content;
  f.sha256 = sha256_hex(content);
  f.git_sha1 = git_blob_sha1_hex(content);
  f.lfs = lfs;
  std::lock_guard<std::mutex> lock(mu_);
  revisions_[repo_id][commit] = commit;
  for (const auto& r : revisions) revisions_[repo_id][r] = commit;
  files_[repo_id + "|" + commit + "|" + path] = f;
  if (lfs) {
    cdn_[f.sha256] = f;
    cdn_key_[f.sha256] = key_of(repo_id, path);
  }
}

void HubEmulator::require_token(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  token_ = token;
}

void HubEmulator::cut_next_download(double fraction) {
  std::lock_guard<std::mutex> lock(mu_);
  cut_fraction_ = fraction;
}

void HubEmulator::set_stall(bool stall) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stall_ = stall;
  }
  cv_.notify_all();
}

void HubEmulator::set_corrupt(bool corrupt) {
  std::lock_guard<std::mutex> lock(mu_);
  corrupt_ = corrupt;
}

void HubEmulator::set_cdn_host(const std::string& host) {
  std::lock_guard<std::mutex> lock(mu_);
  cdn_host_ = host;
}

int HubEmulator::content_gets(const std::string& repo_id, const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = content_gets_.find(key_of(repo_id, path));
  return it == content_gets_.end() ? 0 : it->second;
}

int HubEmulator::heads(const std::string& repo_id, const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = heads_.find(key_of(repo_id, path));
  return it == heads_.end() ? 0 : it->second;
}

std::vector<std::string> HubEmulator::ranges(const std::string& repo_id,
                                             const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ranges_.find(key_of(repo_id, path));
  return it == ranges_.end() ? std::vector<std::string>{} : it->second;
}

bool HubEmulator::cdn_saw_authorization() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cdn_saw_authorization_;
}

void HubEmulator::accept_loop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    open_fds_.insert(fd);
    handlers_.emplace_back([this, fd] { handle(fd); });
  }
}

bool HubEmulator::send_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

void HubEmulator::handle(int fd) {
  std::string buf;
  char chunk[4096];
  while (buf.find("\r\n\r\n") == std::string::npos && buf.size() < 65536) {
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
  }
  size_t end = buf.find("\r\n\r\n");
  if (end != std::string::npos) {
    Request req;
    auto lines = split(buf.substr(0, end), '\n');
    auto first = split(lines[0], ' ');
    if (first.size() >= 2) {
      req.method = first[0];
      req.target = first[1];
      for (size_t i = 1; i < lines.size(); ++i) {
        std::string line = lines[i];
        if (!line.empty() && line.back() == '\r') line.pop_back();
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        req.headers[name] = line.substr(v);
      }
      respond(fd, req);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  open_fds_.erase(fd);
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

void HubEmulator::respond(int fd, const Request& req) {
  std::string target = req.target.substr(0, req.target.find('?'));
  auto parts = split(target, '/');
  auto simple = [&](int code, const std::string& headers, const std::string& body) {
    std::string head = status_line(code) + headers +
                       "Content-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n";
    send_all(fd, req.method == "HEAD" ? head : head + body);
  };
  // /cdn/SHA256
  if (parts.size() == 3 && parts[1] == "cdn") {
    File file;
    std::string key;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (req.headers.count("authorization")) cdn_saw_authorization_ = true;
      auto it = cdn_.find(parts[2]);
      if (it == cdn_.end()) return simple(404, "", "no such object");
      file = it->second;
      key = cdn_key_[parts[2]];
    }
    return serve_bytes(fd, req, key, file, "");
  }
  // /OWNER/REPO/resolve/REVISION/PATH...
  if (parts.size() < 6 || parts[3] != "resolve") return simple(404, "", "unknown route");
  std::string repo_id = url_decode(parts[1]) + "/" + url_decode(parts[2]);
  std::string revision = url_decode(parts[4]);
  std::string path;
  for (size_t i = 5; i < parts.size(); ++i) path += (i > 5 ? "/" : "") + url_decode(parts[i]);
  std::string key = key_of(repo_id, path);
  File file;
  std::string commit;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (req.method == "HEAD") ++heads_[key];
    if (!token_.empty()) {
      auto it = req.headers.find("authorization");
      if (it == req.headers.end() || it->second != "Bearer " + token_) {
        return simple(401,
                      "X-Error-Code: RepoNotFound\r\nX-Error-Message: Invalid credentials in "
                      "Authorization header\r\n",
                      "unauthorized");
      }
    }
    auto repo = revisions_.find(repo_id);
    if (repo == revisions_.end()) {
      return simple(404, "X-Error-Code: RepoNotFound\r\n", "Repository not found");
    }
    auto rev = repo->second.find(revision);
    if (rev == repo->second.end()) {
      return simple(404, "X-Error-Code: RevisionNotFound\r\n", "Invalid rev id: " + revision);
    }
    commit = rev->second;
    auto f = files_.find(repo_id + "|" + commit + "|" + path);
    if (f == files_.end()) {
      return simple(404, "X-Error-Code: EntryNotFound\r\n", "Entry not found");
    }
    file = f->second;
  }
  if (file.lfs) {
    std::string cdn_host;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cdn_host = cdn_host_;
    }
    std::string location =
        "http://" + cdn_host + ":" + std::to_string(port_) + "/cdn/" + file.sha256 + "?sig=x";
    return simple(302,
                  "X-Repo-Commit: " + commit + "\r\nX-Linked-Etag: \"" + file.sha256 +
                      "\"\r\nX-Linked-Size: " + std::to_string(file.content.size()) +
                      "\r\nETag: \"" + git_blob_sha1_hex("pointer " + file.sha256) +
                      "\"\r\nLocation: " + location + "\r\n",
                  "Found. Redirecting to " + location);
  }
  serve_bytes(fd, req, key, file,
              "X-Repo-Commit: " + commit + "\r\nETag: \"" + file.git_sha1 + "\"\r\n");
}

void HubEmulator::serve_bytes(int fd, const Request& req, const std::string& key, const File& file,
                              const std::string& extra_headers) {
  std::string body = file.content;
  size_t total = body.size();
  size_t start = 0;
  std::string range;
  auto r = req.headers.find("range");
  if (r != req.headers.end()) {
    range = r->second;
    if (range.rfind("bytes=", 0) == 0) start = std::stoull(range.substr(6));
  }
  double cut = -1;
  bool stall = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (req.method == "GET") {
      ++content_gets_[key];
      ranges_[key].push_back(range);
      cut = cut_fraction_;
      cut_fraction_ = -1;
    }
    stall = stall_;
    if (corrupt_ && !body.empty()) body[body.size() / 2] ^= 0x5a;
  }
  std::string headers = extra_headers + "Accept-Ranges: bytes\r\nConnection: close\r\n";
  if (!range.empty() && start >= total) {
    send_all(fd, status_line(416) + headers + "Content-Range: bytes */" + std::to_string(total) +
                     "\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  int code = 200;
  if (!range.empty()) {
    code = 206;
    headers += "Content-Range: bytes " + std::to_string(start) + "-" + std::to_string(total - 1) +
               "/" + std::to_string(total) + "\r\n";
  }
  body = body.substr(start);
  std::string head =
      status_line(code) + headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  if (req.method == "HEAD") {
    send_all(fd, head);
    return;
  }
  if (cut >= 0 || stall) {
    size_t part = static_cast<size_t>(static_cast<double>(body.size()) * (cut >= 0 ? cut : 0.5));
    send_all(fd, head + body.substr(0, part));
    if (stall) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !stall_; });
    }
    return;  // the caller closes the connection mid-body
  }
  send_all(fd, head + body);
}

}  // namespace ecgq::test
