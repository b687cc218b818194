// FileLease: one real-time signal for every lease (F_SETSIG: the signal carries the file
// descriptor), a handler that only writes that descriptor to a pipe, and one watcher thread that
// reads the pipe and runs the break callback outside the signal handler.
#include "model/file_lease.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

namespace ecgq::mfile {
namespace {

// The signal lease breaks arrive on (glibc keeps the first real-time signals for itself; SIGRTMIN
// already skips them).
int lease_signal() {
  return SIGRTMIN + 4;
}

int pipe_fds[2] = {-1, -1};  // written by the handler, read by the watcher

extern "C" void on_lease_break(int, siginfo_t* info, void*) {
  const int saved = errno;
  const int fd = info->si_fd;
  ssize_t ignored = ::write(pipe_fds[1], &fd, sizeof fd);  // async-signal-safe
  (void)ignored;
  errno = saved;
}

// Leases held, by descriptor.
struct Registry {
  std::mutex mutex;
  std::map<int, std::function<bool()>> on_break;
};

Registry& registry() {
  static Registry r;
  return r;
}

// Runs each break's callback, then releases that lease (once the mapping is private).
void watch() {
  for (;;) {
    int fd = -1;
    const ssize_t got = ::read(pipe_fds[0], &fd, sizeof fd);
    if (got < 0 && errno == EINTR) continue;
    if (got != sizeof fd) return;
    std::lock_guard<std::mutex> lock(registry().mutex);
    auto it = registry().on_break.find(fd);
    if (it == registry().on_break.end()) continue;  // released meanwhile
    if (!it->second()) continue;                    // not copied: keep the writer waiting
    ::fcntl(fd, F_SETLEASE, F_UNLCK);
    registry().on_break.erase(it);
  }
}

// The pipe, the handler and the watcher, once per process; "" or why they could not be set up.
std::string start_watching() {
  static std::string error = [] {
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_lease_break;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(lease_signal(), &sa, nullptr) != 0)
      return std::string("sigaction: ") + std::strerror(errno);
    std::thread(watch).detach();
    return std::string();
  }();
  return error;
}

}  // namespace

bool mapping_disabled() {
  const char* v = std::getenv("ECGQ_MODEL_MAP");
  return v != nullptr && std::strcmp(v, "0") == 0;
}

std::string FileLease::hold(int fd, std::function<bool()> on_break) {
  if (std::string e = start_watching(); !e.empty()) return e;
  std::lock_guard<std::mutex> lock(registry().mutex);
  if (::fcntl(fd, F_SETSIG, lease_signal()) != 0)
    return std::string("F_SETSIG: ") + std::strerror(errno);
  if (::fcntl(fd, F_SETLEASE, F_RDLCK) != 0) {
    const int e = errno;
    return std::string("no read lease: ") + std::strerror(e) +
           (e == EACCES   ? " (the worker does not own the file)"
            : e == EAGAIN ? " (the file is open for writing)"
                          : "");
  }
  registry().on_break[fd] = std::move(on_break);
  return std::string();
}

void FileLease::release(int fd) {
  std::lock_guard<std::mutex> lock(registry().mutex);
  if (registry().on_break.erase(fd) > 0) ::fcntl(fd, F_SETLEASE, F_UNLCK);
}

}  // namespace ecgq::mfile
