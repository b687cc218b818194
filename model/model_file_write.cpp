// write_model_file: the header, the tensors page-aligned and the table of contents, summed as
// they are written, through a temporary file renamed into place.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#include "model/model_file.hpp"
#include "model/model_file_format.hpp"

namespace ecgq::mfile {
namespace {

// Writes a file sequentially through a buffer, checksumming what it writes.
class SummingWriter {
 public:
  explicit SummingWriter(int fd) : fd_(fd) { buffer_.reserve(kChunk); }

  // Appends `n` bytes.
  void append(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0 && ok_) {
      const size_t take = std::min(n, kChunk - buffer_.size());
      buffer_.insert(buffer_.end(), p, p + take);
      p += take, n -= take, written_ += take;
      if (buffer_.size() == kChunk) flush();
    }
  }
  // Appends zeros up to file offset `offset`.
  void pad_to(uint64_t offset) {
    static const std::vector<uint8_t> zeros(kPage, 0);
    while (written_ < offset) append(zeros.data(), std::min<uint64_t>(kPage, offset - written_));
  }
  // Writes what is buffered (the last call may leave a partial 32-byte group).
  void flush() {
    if (buffer_.empty() || !ok_) return;
    sum_.update(buffer_.data(), buffer_.size());
    const uint8_t* p = buffer_.data();
    size_t n = buffer_.size();
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        ok_ = false;
        error_ = std::strerror(errno);
        return;
      }
      p += w, n -= static_cast<size_t>(w);
    }
    buffer_.clear();
  }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  uint64_t written() const { return written_; }
  std::string checksum() const { return sum_.hex(); }

 private:
  int fd_;
  std::vector<uint8_t> buffer_;
  Checksum sum_;
  uint64_t written_ = 0;
  bool ok_ = true;
  std::string error_;
};

// Assigns page-aligned offsets to the tensors from `data_offset`; returns where they end.
uint64_t lay_out(Contents& c, uint64_t data_offset) {
  uint64_t at = data_offset;
  for (auto& t : c.tensors) {
    t.offset = round_up(at, kPage);
    at = t.offset + t.bytes;
  }
  return at;
}

}  // namespace

Status write_model_file(const std::string& path, Contents contents,
                        const std::vector<TensorSource>& tensors) {
  contents.tensors.clear();
  for (const auto& t : tensors) contents.tensors.push_back(t.entry);
  for (const auto& label : contents.labels)
    if (label.find('\n') != std::string::npos)
      return Status(ErrorCode::BadCheckpoint, "label with a line break cannot be exported");
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFormatVersion;
  h.header_bytes = sizeof h;
  h.data_offset = kPage;
  h.contents_offset = round_up(lay_out(contents, h.data_offset), 64);
  const std::string text = contents_text(contents);
  h.contents_bytes = text.size();
  h.file_size = h.contents_offset + h.contents_bytes;

  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
  if (f.fd < 0)
    return Status(ErrorCode::IoError, "cannot create " + tmp + ": " + std::strerror(errno), "out");
  SummingWriter w(f.fd);
  w.append(&h, sizeof h);
  for (size_t i = 0; i < tensors.size(); ++i) {
    w.pad_to(contents.tensors[i].offset);
    w.append(tensors[i].data, contents.tensors[i].bytes);
  }
  w.pad_to(h.contents_offset);
  w.append(text.data(), text.size());
  w.flush();
  const std::string sum = w.checksum();
  bool ok = w.ok() &&
            ::pwrite(f.fd, sum.data(), sizeof h.checksum, offsetof(Header, checksum)) ==
                sizeof h.checksum &&
            ::fsync(f.fd) == 0;
  const std::string why = w.ok() ? std::strerror(errno) : w.error();
  ok = ::close(f.fd) == 0 && ok;
  f.fd = -1;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status(ErrorCode::IoError, "cannot write " + path + ": " + why, "out");
  }
  return Status::Ok();
}

}  // namespace ecgq::mfile
