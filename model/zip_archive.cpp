#include "model/zip_archive.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ecgq::ckpt {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kEocdSize = 22;
constexpr uint64_t kZip64LocatorSize = 20;
constexpr uint64_t kZip64EocdSize = 56;
constexpr uint64_t kCentralSize = 46;
constexpr uint64_t kLocalSize = 30;
// A torch checkpoint has a few hundred records; this bounds what a hostile directory can cost.
constexpr uint64_t kMaxCentralDirectory = 64ull << 20;

Status bad(const std::string& what) {
  return Status(ErrorCode::BadCheckpoint, what, "checkpoint");
}

uint16_t u16(const unsigned char* p) {
  return uint16_t(p[0] | (p[1] << 8));
}
uint32_t u32(const unsigned char* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint64_t u64(const unsigned char* p) {
  return uint64_t(u32(p)) | (uint64_t(u32(p + 4)) << 32);
}

std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (c >= 32 && c < 127) ? c : '?';
  if (s.size() > 200) out += "...";
  return out;
}

class FileSource : public ByteSource {
 public:
  FileSource(int fd, uint64_t size, std::string path)
      : fd_(fd), size_(size), path_(std::move(path)) {}
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  uint64_t size() const override { return size_; }
  const std::string& name() const override { return path_; }
  int descriptor() const override { return fd_; }
  Status read(uint64_t offset, uint64_t n, void* dst) const override {
    if (offset > size_ || n > size_ - offset) {
      return bad(path_ + ": read of " + std::to_string(n) + " bytes at offset " +
                 std::to_string(offset) + " is beyond the end of the file (" +
                 std::to_string(size_) + " bytes)");
    }
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      size_t chunk = size_t(std::min<uint64_t>(n, 1ull << 30));
      ssize_t got = ::pread(fd_, out, chunk, off_t(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        return Status(ErrorCode::IoError,
                      path_ + ": pread at offset " + std::to_string(offset) +
                          " failed: " + std::strerror(errno),
                      "checkpoint");
      }
      if (got == 0) {
        return Status(ErrorCode::IoError,
                      path_ + ": unexpected end of file at offset " + std::to_string(offset) +
                          " (the file shrank after it was opened?)",
                      "checkpoint");
      }
      out += got;
      offset += uint64_t(got);
      n -= uint64_t(got);
    }
    return Status::Ok();
  }

 private:
  int fd_;
  uint64_t size_;
  std::string path_;
};

class MemorySource : public ByteSource {
 public:
  explicit MemorySource(std::string bytes) : bytes_(std::move(bytes)) {}
  uint64_t size() const override { return bytes_.size(); }
  const std::string& name() const override { return name_; }
  Status read(uint64_t offset, uint64_t n, void* dst) const override {
    if (offset > bytes_.size() || n > bytes_.size() - offset) {
      return bad("<memory>: read of " + std::to_string(n) + " bytes at offset " +
                 std::to_string(offset) + " is beyond the end of the archive (" +
                 std::to_string(bytes_.size()) + " bytes)");
    }
    if (n > 0) std::memcpy(dst, bytes_.data() + offset, size_t(n));
    return Status::Ok();
  }

 private:
  std::string bytes_;
  std::string name_ = "<memory>";
};

// Where the central directory is, from the (ZIP64) end-of-central-directory records.
struct Directory {
  uint64_t entries = 0;
  uint64_t size = 0;
  uint64_t offset = 0;
  uint64_t end = 0;  // first byte after the central directory must not pass this
};

// ZIP64: a locator right before the EOCD (at `eocd_abs`) points at the ZIP64 EOCD record, whose
// values replace the EOCD's in `d`.
Status read_zip64(const ByteSource& src, uint64_t eocd_abs, Directory& d) {
  const std::string& where = src.name();
  unsigned char loc[kZip64LocatorSize];
  RETURN_IF_ERROR(src.read(eocd_abs - kZip64LocatorSize, kZip64LocatorSize, loc));
  if (u32(loc) == kZip64LocatorSig) {
    const uint64_t rec = u64(loc + 8);
    const uint64_t loc_abs = eocd_abs - kZip64LocatorSize;
    if (rec > loc_abs || loc_abs - rec < kZip64EocdSize) {
      return bad(where + ": ZIP64 end-of-central-directory offset " + std::to_string(rec) +
                 " (from the locator at " + std::to_string(loc_abs) + ") is out of range");
    }
    unsigned char z[kZip64EocdSize];
    RETURN_IF_ERROR(src.read(rec, kZip64EocdSize, z));
    if (u32(z) != kZip64EocdSig) {
      return bad(where + ": bad ZIP64 end-of-central-directory signature at offset " +
                 std::to_string(rec));
    }
    d.entries = u64(z + 32);
    d.size = u64(z + 40);
    d.offset = u64(z + 48);
    d.end = rec;
  } else if (d.entries == 0xFFFF || d.size == 0xFFFFFFFF || d.offset == 0xFFFFFFFF) {
    return bad(where + ": EOCD at offset " + std::to_string(eocd_abs) +
               " needs ZIP64 values but there is no ZIP64 locator");
  }
  return Status::Ok();
}

Expected<Directory> find_directory(const ByteSource& src) {
  const uint64_t file_size = src.size();
  const std::string& where = src.name();
  if (file_size < kEocdSize) {
    return bad(where + ": " + std::to_string(file_size) +
               " bytes is too small for a ZIP archive (torch checkpoints are ZIP files)");
  }
  const uint64_t tail_len = std::min<uint64_t>(file_size, kEocdSize + 0xFFFF);
  const uint64_t tail_start = file_size - tail_len;
  std::string tail(size_t(tail_len), '\0');
  RETURN_IF_ERROR(src.read(tail_start, tail_len, tail.data()));
  const auto* t = reinterpret_cast<const unsigned char*>(tail.data());

  uint64_t eocd = UINT64_MAX;
  for (uint64_t i = tail_len - kEocdSize + 1; i-- > 0;) {
    if (u32(t + i) == kEocdSig && i + kEocdSize + u16(t + i + 20) <= tail_len) {
      eocd = i;
      break;
    }
  }
  if (eocd == UINT64_MAX) {
    bool legacy = file_size >= 2 && t[0] == 0x80 && tail_start == 0;
    return bad(
        where + ": end-of-central-directory record not found: not a ZIP archive or truncated" +
        std::string(legacy ? " (this looks like a legacy non-zip torch.save pickle, which is "
                             "not supported)"
                           : ""));
  }
  const unsigned char* e = t + eocd;
  const uint64_t eocd_abs = tail_start + eocd;
  Directory d;
  d.entries = u16(e + 10);
  d.size = u32(e + 12);
  d.offset = u32(e + 16);
  d.end = eocd_abs;
  const uint16_t disk = u16(e + 4), cd_disk = u16(e + 6);
  if ((disk != 0 && disk != 0xFFFF) || (cd_disk != 0 && cd_disk != 0xFFFF)) {
    return bad(where + ": multi-disk ZIP archives are not supported (EOCD at offset " +
               std::to_string(eocd_abs) + ")");
  }
  if (eocd_abs >= kZip64LocatorSize) RETURN_IF_ERROR(read_zip64(src, eocd_abs, d));
  if (d.offset > d.end || d.size > d.end - d.offset) {
    return bad(where + ": central directory (offset " + std::to_string(d.offset) + ", " +
               std::to_string(d.size) + " bytes) does not end before the EOCD at offset " +
               std::to_string(d.end) + " (truncated or corrupt archive)");
  }
  if (d.size > kMaxCentralDirectory) {
    return bad(where + ": central directory of " + std::to_string(d.size) +
               " bytes exceeds the limit of " + std::to_string(kMaxCentralDirectory));
  }
  if (d.entries > d.size / kCentralSize) {
    return bad(where + ": EOCD claims " + std::to_string(d.entries) + " entries but the " +
               std::to_string(d.size) + "-byte central directory cannot hold them");
  }
  return d;
}

}  // namespace

Expected<std::shared_ptr<const ByteSource>> open_file_source(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status(ErrorCode::IoError,
                  "cannot open checkpoint " + path + ": " + std::strerror(errno), "checkpoint");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno;
    ::close(fd);
    return Status(ErrorCode::IoError,
                  "checkpoint " + path + " is not a regular file" +
                      (err ? std::string(": ") + std::strerror(err) : ""),
                  "checkpoint");
  }
  return std::shared_ptr<const ByteSource>(
      std::make_shared<FileSource>(fd, uint64_t(st.st_size), path));
}

std::shared_ptr<const ByteSource> make_memory_source(std::string bytes) {
  return std::make_shared<MemorySource>(std::move(bytes));
}

Expected<ZipArchive> ZipArchive::open(std::shared_ptr<const ByteSource> source) {
  if (!source) return bad("no byte source");
  ASSIGN_OR_RETURN(auto dir, find_directory(*source));
  const std::string& where = source->name();
  std::string cd(size_t(dir.size), '\0');
  RETURN_IF_ERROR(source->read(dir.offset, dir.size, cd.data()));
  const auto* p = reinterpret_cast<const unsigned char*>(cd.data());

  ZipArchive zip;
  zip.source_ = std::move(source);
  zip.cd_offset_ = dir.offset;
  zip.records_.reserve(size_t(dir.entries));
  uint64_t pos = 0;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    const std::string at = where + ": central directory entry " + std::to_string(i) +
                           " at offset " + std::to_string(dir.offset + pos);
    if (dir.size - pos < kCentralSize) return bad(at + " is truncated");
    const unsigned char* c = p + pos;
    if (u32(c) != kCentralSig) return bad(at + " has a bad signature");
    const uint16_t flags = u16(c + 8);
    const uint16_t method = u16(c + 10);
    uint64_t csize = u32(c + 20);
    uint64_t usize = u32(c + 24);
    const uint64_t name_len = u16(c + 28), extra_len = u16(c + 30), comment_len = u16(c + 32);
    uint64_t local = u32(c + 42);
    if (dir.size - pos - kCentralSize < name_len + extra_len + comment_len) {
      return bad(at + ": name/extra/comment run past the end of the central directory");
    }
    ZipRecord rec;
    rec.name.assign(reinterpret_cast<const char*>(c + kCentralSize), size_t(name_len));
    const std::string rat = at + " ('" + printable(rec.name) + "')";
    // ZIP64 extended information: only the fields whose 32-bit value is saturated are present.
    const unsigned char* x = c + kCentralSize + name_len;
    for (uint64_t xp = 0; xp + 4 <= extra_len;) {
      const uint16_t id = u16(x + xp), len = u16(x + xp + 2);
      if (xp + 4 + len > extra_len) return bad(rat + ": extra field runs past its end");
      if (id == 0x0001) {
        uint64_t fp = xp + 4;
        for (uint64_t* field : {&usize, &csize, &local}) {
          if (*field != 0xFFFFFFFF) continue;
          if (fp + 8 > xp + 4 + len) return bad(rat + ": ZIP64 extra field is too short");
          *field = u64(x + fp);
          fp += 8;
        }
      }
      xp += 4 + len;
    }
    if (flags & 0x0001) return bad(rat + " is encrypted");
    if (method != 0) {
      return bad(
          "record '" + printable(rec.name) + "' uses compression method " + std::to_string(method) +
          "; torch checkpoints store every record uncompressed (method 0, STORED) (" + at + ")");
    }
    if (csize != usize) {
      return bad(rat + ": STORED record has compressed size " + std::to_string(csize) +
                 " != uncompressed size " + std::to_string(usize));
    }
    if (local >= dir.offset || usize > dir.offset - local) {
      return bad("record '" + printable(rec.name) + "' (local header at " + std::to_string(local) +
                 ", " + std::to_string(usize) +
                 " bytes) does not fit before the central directory at " +
                 std::to_string(dir.offset) + " (" + at + ")");
    }
    rec.size = usize;
    rec.local_header_offset = local;
    if (!zip.index_.emplace(rec.name, zip.records_.size()).second) {
      return bad(rat + ": duplicate record name");
    }
    zip.records_.push_back(std::move(rec));
    pos += kCentralSize + name_len + extra_len + comment_len;
  }
  return zip;
}

const ZipRecord* ZipArchive::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &records_[it->second];
}

Expected<uint64_t> ZipArchive::data_offset(const ZipRecord& record) const {
  const std::string at = "record '" + printable(record.name) + "' local header at offset " +
                         std::to_string(record.local_header_offset);
  if (record.local_header_offset > cd_offset_ ||
      cd_offset_ - record.local_header_offset < kLocalSize) {
    return bad(at + " is truncated");
  }
  unsigned char h[kLocalSize];
  RETURN_IF_ERROR(source_->read(record.local_header_offset, kLocalSize, h));
  if (u32(h) != kLocalSig) return bad(at + " has a bad signature");
  if (u16(h + 8) != 0) {
    return bad(at + " says compression method " + std::to_string(u16(h + 8)) +
               " but only STORED (0) is supported");
  }
  const uint64_t name_len = u16(h + 26), extra_len = u16(h + 28);
  const uint64_t start = record.local_header_offset + kLocalSize + name_len + extra_len;
  if (start > cd_offset_ || record.size > cd_offset_ - start) {
    return bad(at + ": data (" + std::to_string(record.size) + " bytes at offset " +
               std::to_string(start) + ") run past the central directory at " +
               std::to_string(cd_offset_));
  }
  if (name_len != record.name.size()) {
    return bad(at + ": name length " + std::to_string(name_len) +
               " differs from the central directory's " + std::to_string(record.name.size()));
  }
  std::string name(size_t(name_len), '\0');
  RETURN_IF_ERROR(source_->read(record.local_header_offset + kLocalSize, name_len, name.data()));
  if (name != record.name) return bad(at + ": name differs from the central directory's");
  return start;
}

Expected<std::string> ZipArchive::read_record(const ZipRecord& record, uint64_t max_size) const {
  if (record.size > max_size) {
    return bad("record '" + printable(record.name) + "' is " + std::to_string(record.size) +
               " bytes; the limit is " + std::to_string(max_size));
  }
  ASSIGN_OR_RETURN(auto start, data_offset(record));
  std::string out(size_t(record.size), '\0');
  RETURN_IF_ERROR(source_->read(start, record.size, out.data()));
  return out;
}

}  // namespace ecgq::ckpt
