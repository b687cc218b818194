// Read leases (fcntl F_SETLEASE) on model files the worker maps instead of copying: while a lease
// is held, any process that opens the file for writing or truncates it is held back by the
// kernel until the lease is released, and this process is told (a signal). The mapping is then
// replaced by a private copy and the lease released, so a mapped model never sees its file
// change under it and never touches a page past a new end of file (SIGBUS).
#pragma once

#include <functional>
#include <string>

namespace ecgq::mfile {

// True when ECGQ_MODEL_MAP=0: model files and checkpoints are read, never mapped.
bool mapping_disabled();

class FileLease {
 public:
  // Takes a read lease on `fd` (open read-only) and calls `on_break` on a watcher thread when
  // another opener asks for the file for writing; on_break makes the mapping private and returns
  // true, after which the lease is released. When it returns false (no memory for the copy) the
  // lease is kept: the writer waits until the kernel breaks it (/proc/sys/fs/lease-break-time).
  // Returns "" when the lease is held, else why not (not the file's owner, the file is open for
  // writing, a file system without leases...).
  static std::string hold(int fd, std::function<bool()> on_break);
  // Gives up the lease on `fd` (before closing it); on_break is not called afterwards.
  static void release(int fd);
};

}  // namespace ecgq::mfile
