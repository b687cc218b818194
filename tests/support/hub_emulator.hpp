// A tiny Hugging Face hub for tests: serves /OWNER/REPO/resolve/REV/PATH like the real hub
// (302 to a CDN URL for LFS files, X-Repo-Commit / X-Linked-Etag / X-Linked-Size / ETag headers),
// on 127.0.0.1 in a thread of the test process, with fault injection and request counters.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace ecgq::test {

// The HTTP/1.1 server; every connection carries one request (Connection: close).
class HubEmulator {
 public:
  // Starts listening on 127.0.0.1 at a random free port.
  HubEmulator();
  // Stops the server, releasing stalled responses and joining every thread.
  ~HubEmulator();
  HubEmulator(const HubEmulator&) = delete;
  HubEmulator& operator=(const HubEmulator&) = delete;

  // "http://127.0.0.1:PORT", the value for HF_ENDPOINT.
  std::string endpoint() const;

  // Publishes `content` as `path` of `repo_id` at `commit`, reachable through the commit and each
  // of `revisions`; an LFS file is answered with a 302 to /cdn/SHA256 and an X-Linked-Etag.
  void add_file(const std::string& repo_id, const std::string& path, const std::string& content,
                bool lfs, const std::string& commit,
                const std::vector<std::string>& revisions = {"main"});
  // Requests to /resolve/ without "Authorization: Bearer `token`" get a 401 ("" disables).
  void require_token(const std::string& token);
  // The next GET of file bytes sends the headers and `fraction` of the body, then drops the
  // connection (one shot).
  void cut_next_download(double fraction = 0.5);
  // While on, GETs of file bytes send half the body and then hang until turned off or shutdown.
  void set_stall(bool stall);
  // While on, served file bytes have one byte flipped (headers still announce the true hashes).
  void set_corrupt(bool corrupt);
  // Redirect LFS downloads to this host name (same port), e.g. "localhost" to test that the
  // token is not forwarded to another host.
  void set_cdn_host(const std::string& host);

  // GET requests that sent bytes of that file (resolve 200 or CDN).
  int content_gets(const std::string& repo_id, const std::string& path) const;
  // HEAD requests to the resolve URL of that file.
  int heads(const std::string& repo_id, const std::string& path) const;
  // The Range header of every content GET of that file ("" when absent), in order.
  std::vector<std::string> ranges(const std::string& repo_id, const std::string& path) const;
  // True when any CDN request carried an Authorization header.
  bool cdn_saw_authorization() const;

 private:
  struct File {
    std::string content;
    std::string sha256;
    std::string git_sha1;
    bool lfs = false;
  };
  struct Request {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // lower-cased names
  };
  void accept_loop();
  void handle(int fd);
  void respond(int fd, const Request& req);
  void serve_bytes(int fd, const Request& req, const std::string& key, const File& file,
                   const std::string& extra_headers);
  static bool send_all(int fd, const std::string& data);

  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::thread> handlers_;
  std::set<int> open_fds_;
  // repo -> revision -> commit; "repo|commit|path" -> file; "repo|path" -> counters.
  std::map<std::string, std::map<std::string, std::string>> revisions_;
  std::map<std::string, File> files_;
  std::map<std::string, File> cdn_;             // by sha256
  std::map<std::string, std::string> cdn_key_;  // sha256 -> "repo|path"
  std::map<std::string, int> content_gets_;
  std::map<std::string, int> heads_;
  std::map<std::string, std::vector<std::string>> ranges_;
  std::string token_;
  std::string cdn_host_ = "127.0.0.1";
  double cut_fraction_ = -1;
  bool stall_ = false;
  bool corrupt_ = false;
  bool cdn_saw_authorization_ = false;
};

}  // namespace ecgq::test
