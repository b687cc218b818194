#include "model/model_file.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "model/file_lease.hpp"
#include "model/huge_pages.hpp"
#include "model/model_file_format.hpp"

namespace ecgq::mfile {
namespace {

constexpr size_t kPiece = size_t{1} << 20;  // bytes read per call into a caller's memory (same)
constexpr size_t kHugePage = size_t{2} << 20;
// Bounds that keep a damaged contents table from asking for absurd work.
constexpr uint64_t kMaxContentsBytes = uint64_t{16} << 20;
constexpr size_t kMaxRank = 8;

Status bad(const std::string& path, const std::string& why) {
  return Status(ErrorCode::BadCheckpoint, path + ": model file " + why, "checkpoint");
}

// Reads exactly `n` bytes at `offset`; false on a short read or error (errno kept).
bool pread_all(int fd, void* dst, size_t n, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got, n -= static_cast<size_t>(got), offset += static_cast<uint64_t>(got);
  }
  return true;
}

// Bytes per element of a dtype name, 0 for an unknown one.
size_t element_size(const std::string& dtype) {
  if (dtype == "f32") return 4;
  if (dtype == "bf16") return 2;
  if (dtype == "u8") return 1;
  return 0;
}

// "768,3072" ("" for a scalar).
std::string join_shape(const std::vector<int64_t>& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out;
}

// Parses a decimal uint64; false on anything else.
bool parse_u64(const std::string& text, uint64_t* out) {
  if (text.empty() || text.size() > 20) return false;
  uint64_t v = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return false;
    const uint64_t d = static_cast<uint64_t>(ch - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// Parses one "tensor NAME DTYPE OFFSET BYTES [D0,D1] [layout=TEXT]" line (after "tensor ").
Expected<TensorEntry> parse_tensor(const std::string& rest) {
  std::istringstream in(rest);
  TensorEntry t;
  std::string offset, bytes, shape;
  if (!(in >> t.name >> t.dtype >> offset >> bytes >> shape) || shape.size() < 2 ||
      shape.front() != '[' || shape.back() != ']')
    return Status(ErrorCode::BadCheckpoint, "malformed tensor line '" + rest + "'");
  if (!parse_u64(offset, &t.offset) || !parse_u64(bytes, &t.bytes))
    return Status(ErrorCode::BadCheckpoint, "tensor " + t.name + ": bad offset or size");
  std::istringstream dims(shape.substr(1, shape.size() - 2));
  std::string d;
  while (std::getline(dims, d, ',')) {
    uint64_t v = 0;
    if (!parse_u64(d, &v) || v > (uint64_t{1} << 40) || t.shape.size() == kMaxRank)
      return Status(ErrorCode::BadCheckpoint, "tensor " + t.name + ": bad shape " + shape);
    t.shape.push_back(static_cast<int64_t>(v));
  }
  std::string layout, extra;
  if (in >> layout) {
    if (layout.rfind("layout=", 0) != 0 || layout.size() == 7 || (in >> extra))
      return Status(ErrorCode::BadCheckpoint, "tensor " + t.name + ": unexpected '" + layout + "'");
    t.layout = layout.substr(7);
    if (t.dtype != "u8" || t.shape.size() != 1)
      return Status(ErrorCode::BadCheckpoint,
                    "tensor " + t.name + ": a packed layout needs dtype u8 and shape [bytes]");
  }
  return t;
}

// Parses the table of contents text.
Expected<Contents> parse_contents(const std::string& text) {
  Contents c;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t sp = line.find(' ');
    const std::string key = line.substr(0, sp),
                      rest = sp == std::string::npos ? "" : line.substr(sp + 1);
    if (key == "precision") {
      c.precision = rest;
    } else if (key == "source_sha256") {
      c.source_sha256 = rest;
    } else if (key == "source_name") {
      c.source_name = rest;
    } else if (key == "label") {
      c.labels.push_back(rest);
    } else if (key == "field") {
      const size_t k = rest.find(' ');
      c.fields[rest.substr(0, k)] = k == std::string::npos ? "" : rest.substr(k + 1);
    } else if (key == "tensor") {
      ASSIGN_OR_RETURN(auto t, parse_tensor(rest));
      c.tensors.push_back(std::move(t));
    } else if (!line.empty()) {
      return Status(ErrorCode::BadCheckpoint, "unknown contents line '" + key + "'");
    }
  }
  if (c.precision != "fp32" && c.precision != "bf16")
    return Status(ErrorCode::BadCheckpoint, "precision '" + c.precision + "' is not fp32 or bf16");
  return c;
}

// The tensors in file order.
std::vector<const TensorEntry*> by_offset(const Contents& c) {
  std::vector<const TensorEntry*> order;
  for (const auto& t : c.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorEntry* a, const TensorEntry* b) { return a->offset < b->offset; });
  return order;
}

// Checks that no two tensors share a page (each one's pages can be given back on their own).
Status check_apart(const Contents& c) {
  const std::vector<const TensorEntry*> order = by_offset(c);
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorEntry& a = *order[i - 1];
    if ((a.offset + a.bytes + kPage - 1) / kPage * kPage > order[i]->offset)
      return Status(ErrorCode::BadCheckpoint,
                    "tensor " + order[i]->name + " overlaps tensor " + a.name);
  }
  return Status::Ok();
}

// Checks every tensor lies inside the data area, page-aligned, sized as its shape says, apart
// from the others.
Status check_tensors(const Contents& c, const Header& h) {
  for (const auto& t : c.tensors) {
    const size_t es = element_size(t.dtype);
    if (es == 0) return Status(ErrorCode::BadCheckpoint, "tensor " + t.name + ": dtype " + t.dtype);
    unsigned __int128 numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    if (numel * es != t.bytes)
      return Status(ErrorCode::BadCheckpoint, "tensor " + t.name + ": " + std::to_string(t.bytes) +
                                                  " bytes for shape [" + join_shape(t.shape) +
                                                  "] of " + t.dtype);
    if (t.offset % kPage != 0 || t.offset < h.data_offset || t.offset > h.file_size ||
        t.bytes > h.file_size - t.offset)
      return Status(ErrorCode::BadCheckpoint,
                    "tensor " + t.name + ": bytes " + std::to_string(t.offset) + "+" +
                        std::to_string(t.bytes) + " outside the data area");
  }
  return check_apart(c);
}

// Reads and checks the header of open file `fd` of `size` bytes.
Expected<Header> read_header(int fd, uint64_t size, const std::string& path) {
  Header h{};
  const size_t have = static_cast<size_t>(std::min<uint64_t>(size, sizeof h));
  if (!pread_all(fd, &h, have, 0) || have < sizeof kMagic ||
      std::memcmp(h.magic, kMagic, sizeof kMagic) != 0)
    return bad(path, "does not start with the magic ECGQMODL");
  if (have < sizeof h)
    return bad(path, "is " + std::to_string(size) + " bytes, shorter than its header: truncated");
  if (h.version < kOldestReadable || h.version > kFormatVersion)
    return bad(path, "has format version " + std::to_string(h.version) +
                         "; this build reads versions " + std::to_string(kOldestReadable) + " to " +
                         std::to_string(kFormatVersion) + " (export it again with this build)");
  if (h.file_size != size)
    return bad(path, "is " + std::to_string(size) + " bytes but its header says " +
                         std::to_string(h.file_size) +
                         (size < h.file_size ? ": truncated" : ": bytes appended"));
  if (h.header_bytes != sizeof h || h.contents_bytes > kMaxContentsBytes ||
      h.contents_offset > size || h.contents_bytes > size - h.contents_offset ||
      h.data_offset % kPage != 0 || h.data_offset > size)
    return bad(path, "has a damaged header (offsets outside the file)");
  return h;
}

}  // namespace

// The table of contents as text, one entry per line.
std::string contents_text(const Contents& c) {
  std::ostringstream out;
  out << "precision " << c.precision << "\nsource_sha256 " << c.source_sha256 << "\nsource_name "
      << c.source_name << "\n";
  for (const auto& [key, value] : c.fields) out << "field " << key << " " << value << "\n";
  for (const auto& label : c.labels) out << "label " << label << "\n";
  for (const auto& t : c.tensors)
    out << "tensor " << t.name << " " << t.dtype << " " << t.offset << " " << t.bytes << " ["
        << join_shape(t.shape) << "]" << (t.layout.empty() ? "" : " layout=" + t.layout) << "\n";
  return out.str();
}

const TensorEntry* Contents::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {
std::atomic<int64_t> images_alive{0};
}  // namespace

Image::Image(void* map, size_t map_bytes, size_t size, Contents contents)
    : map_(map), map_bytes_(map_bytes), size_(size), contents_(std::move(contents)) {
  ++images_alive;
}

Image::Image(void* map, size_t map_bytes, size_t size, Contents contents, int leased_fd)
    : Image(map, map_bytes, size, std::move(contents)) {
  leased_fd_ = leased_fd;
}

Image::~Image() {
  if (leased_fd_ >= 0) {
    FileLease::release(leased_fd_);
    ::close(leased_fd_);
  }
  ::munmap(map_, map_bytes_);
  --images_alive;
}

bool Image::make_private() const {
  if (copied_ || leased_fd_ < 0) return true;
  void* copy =
      ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (copy == MAP_FAILED) return false;
  std::memcpy(copy, map_, size_);
  // Moves the copy's pages over the file mapping in one step: a reader on another thread sees
  // the same bytes before and after.
  if (::mremap(copy, map_bytes_, map_bytes_, MREMAP_MAYMOVE | MREMAP_FIXED, map_) == MAP_FAILED) {
    ::munmap(copy, map_bytes_);
    return false;
  }
  copied_ = true;
  return true;
}

int64_t Image::alive() {
  return images_alive.load();
}

void Image::release(const TensorEntry& e) const {
  // Whole pages: every tensor starts on one and no other tensor shares its last.
  const uint64_t bytes = (e.bytes + kPage - 1) / kPage * kPage;
  ::madvise(static_cast<uint8_t*>(map_) + e.offset, std::min<uint64_t>(bytes, size_ - e.offset),
            MADV_DONTNEED);
}

bool has_magic(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  char magic[sizeof kMagic];
  return f.fd >= 0 && pread_all(f.fd, magic, sizeof magic, 0) &&
         std::memcmp(magic, kMagic, sizeof kMagic) == 0;
}

}  // namespace ecgq::mfile

namespace ecgq::mfile {
namespace {

// Private anonymous memory, unmapped when it goes (or handed over with release()).
using Mapped = std::unique_ptr<uint8_t, std::function<void(uint8_t*)>>;

// Private anonymous memory of at least `bytes` (`*mapped` of them), starting on a 2 MiB boundary
// (advised onto transparent huge pages with ECGQ_HUGE_PAGES=1, see huge_pages.hpp); an error
// naming `path` when there is none.
Expected<Mapped> anonymous_memory(size_t bytes, const std::string& path, size_t* mapped) {
  const size_t size = round_up(std::max<size_t>(bytes, 1), kHugePage);
  void* raw =
      ::mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return bad(path, "needs " + std::to_string(bytes) + " bytes of memory");
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t base = round_up(start, kHugePage);
  if (base > start) ::munmap(raw, base - start);
  const uintptr_t end = start + size + kHugePage;
  if (end > base + size) ::munmap(reinterpret_cast<void*>(base + size), end - (base + size));
  if (huge_pages_wanted()) ::madvise(reinterpret_cast<void*>(base), size, MADV_HUGEPAGE);
  *mapped = size;
  return Mapped(reinterpret_cast<uint8_t*>(base), [size](uint8_t* p) { ::munmap(p, size); });
}

// Sums the file's first `n` bytes (from offset 0) into `sum`, the header's checksum field counted
// as zeros: the sum the writer put there covers the file with that field zeroed.
void sum_from_start(Checksum& sum, const uint8_t* p, size_t n) {
  uint8_t first[kPage];
  const size_t head = std::min<size_t>(kPage, n);
  std::memcpy(first, p, head);
  if (head >= sizeof(Header))
    std::memset(first + offsetof(Header, checksum), 0, sizeof(Header::checksum));
  sum.update(first, head);
  if (n > head) sum.update(p + head, n - head);
}

// Ok when `sum` is the checksum header `h` records; else the error naming both.
Status check_sum(const Checksum& sum, const Header& h, const std::string& path) {
  const std::string want(h.checksum, sizeof h.checksum), got = sum.hex();
  if (got == want) return Status::Ok();
  return bad(path, "checksum mismatch (header " + want + ", contents " + got +
                       "): the file was altered or damaged");
}

// Reads a file's bytes front to back, piece by piece, updating the checksum over each piece while
// it is in cache (the header's checksum field counted as zeros). Every piece but the last is a
// multiple of 32 bytes and starts where the previous one ended.
class SummingReader {
 public:
  SummingReader(int fd, const std::string& path) : fd_(fd), path_(path) {}

  // Reads `n` bytes at `at` into `dst`.
  Status read(uint8_t* dst, uint64_t at, size_t n) {
    if (!pread_all(fd_, dst, n, at))
      return bad(path_, "could not be read at byte " + std::to_string(at) + " (" +
                            (errno ? std::strerror(errno) : "it shrank while being read") + ")");
    if (at == 0)
      sum_from_start(sum_, dst, n);
    else
      sum_.update(dst, n);
    return Status::Ok();
  }

  // Ok when the sum of everything read equals the header's.
  Status verify(const Header& h) const { return check_sum(sum_, h, path_); }

 private:
  int fd_;
  const std::string& path_;
  Checksum sum_;
};

// Opens `path` and checks its header against its size.
Expected<Header> open_model_file(const std::string& path, Fd* f, uint64_t* size) {
  f->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (f->fd < 0 || ::fstat(f->fd, &st) != 0)
    return Status(ErrorCode::BadCheckpoint, path + ": cannot open: " + std::strerror(errno),
                  "checkpoint");
  *size = static_cast<uint64_t>(st.st_size);
  return read_header(f->fd, *size, path);
}

// The table of contents of open file `fd`, parsed (not yet covered by a checksum).
Expected<Contents> read_contents(int fd, const Header& h, const std::string& path) {
  std::string text(h.contents_bytes, '\0');
  if (!pread_all(fd, text.data(), text.size(), h.contents_offset))
    return bad(path, "contents could not be read");
  auto contents = parse_contents(text);
  if (!contents.ok()) return bad(path, contents.status().message());
  contents->version = h.version;
  return contents;
}

// Checks the checksum of a file's `size` bytes at `data` (read-only: the header's checksum field
// is summed from a copy of the first page with the field zeroed).
Status verify_mapped(const uint8_t* data, uint64_t size, const Header& h, const std::string& path) {
  Checksum sum;
  const size_t head = static_cast<size_t>(std::min<uint64_t>(kPage, size));
  sum_from_start(sum, data, head);
  // The rest in one piece per CPU this process may use (at most 4, at least 16 MiB each), each
  // summed on its own thread from zero and joined in order.
  cpu_set_t cpus;
  const int ncpu = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  const uint64_t rest = size - head;
  const uint64_t pieces = std::clamp<uint64_t>(rest / (uint64_t{16} << 20), 1, std::min(ncpu, 4));
  const uint64_t per = round_up(rest / pieces, kChunk);
  std::vector<Checksum> sums(pieces, Checksum::continuation());
  auto sum_piece = [&](uint64_t i) {
    const uint64_t from = head + i * per, to = std::min(size, from + per);
    for (uint64_t at = from; at < to; at += kChunk)
      sums[i].update(data + at, static_cast<size_t>(std::min<uint64_t>(kChunk, to - at)));
  };
  std::vector<std::thread> threads;
  for (uint64_t i = 1; i < pieces && head + i * per < size; ++i) threads.emplace_back(sum_piece, i);
  sum_piece(0);
  for (auto& t : threads) t.join();
  for (uint64_t i = 0; i < pieces && head + i * per < size; ++i)
    sum.join(sums[i], std::min(size, head + (i + 1) * per) - (head + i * per));
  return check_sum(sum, h, path);
}

// The table of contents of a verified file in memory, parsed and checked.
Expected<Contents> parse_mapped(const uint8_t* data, const Header& h, const std::string& path) {
  auto contents = parse_contents(
      std::string(reinterpret_cast<const char*>(data + h.contents_offset), h.contents_bytes));
  if (!contents.ok()) return bad(path, contents.status().message());
  contents->version = h.version;
  if (Status s = check_tensors(*contents, h); !s.ok()) return bad(path, s.message());
  return contents;
}

}  // namespace

Expected<std::shared_ptr<const Image>> read_model_file(const std::string& path) {
  Fd f;
  uint64_t size = 0;
  ASSIGN_OR_RETURN(Header h, open_model_file(path, &f, &size));
  size_t mapped = 0;
  ASSIGN_OR_RETURN(Mapped guard, anonymous_memory(size, path, &mapped));  // until the image
  uint8_t* base = guard.get();
  SummingReader reader(f.fd, path);
  for (uint64_t at = 0; at < size; at += kChunk)
    RETURN_IF_ERROR(reader.read(base + at, at, std::min<uint64_t>(kChunk, size - at)));
  RETURN_IF_ERROR(reader.verify(h));
  ASSIGN_OR_RETURN(Contents contents, parse_mapped(base, h, path));
  return std::make_shared<const Image>(guard.release(), mapped, size, std::move(contents));
}

Status stream_model_file(const std::string& path, const StreamStart& start,
                         const StreamTensor& tensor, const StreamPlace& place) {
  Fd f;
  uint64_t size = 0;
  ASSIGN_OR_RETURN(Header h, open_model_file(path, &f, &size));
  ASSIGN_OR_RETURN(Contents contents, read_contents(f.fd, h, path));
  if (Status s = check_tensors(contents, h); !s.ok()) return bad(path, s.message());
  RETURN_IF_ERROR(start(contents));
  uint64_t largest = kChunk;
  for (const auto& t : contents.tensors) largest = std::max(largest, round_up(t.bytes, kPage));
  // One buffer, reused for every piece: it stays in cache and the load touches no more fresh
  // memory than the model's own.
  size_t mapped = 0;
  ASSIGN_OR_RETURN(Mapped guard, anonymous_memory(largest, path, &mapped));
  uint8_t* buffer = guard.get();
  SummingReader reader(f.fd, path);
  uint64_t at = 0;
  auto skip_to = [&](uint64_t end) {
    for (; at < end; at += std::min<uint64_t>(kChunk, end - at))
      RETURN_IF_ERROR(reader.read(buffer, at, std::min<uint64_t>(kChunk, end - at)));
    return Status::Ok();
  };
  for (const TensorEntry* t : by_offset(contents)) {
    RETURN_IF_ERROR(skip_to(t->offset));
    // (Whole 32-byte groups only: the checksum sums every read but the last in whole groups.)
    auto* dst = static_cast<uint8_t*>(place && t->bytes % 32 == 0 ? place(*t) : nullptr);
    if (dst != nullptr) {
      // In pieces that the checksum reads while they are still in cache; the padding after the
      // tensor goes through the buffer.
      for (uint64_t done = 0; done < t->bytes; done += kPiece) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kPiece, t->bytes - done));
        RETURN_IF_ERROR(reader.read(dst + done, at, n));
        at += n;
      }
      RETURN_IF_ERROR(tensor(*t, dst));
      continue;
    }
    // Through the end of the tensor's last page (no other tensor shares it).
    const uint64_t n = std::min(round_up(t->bytes, kPage), size - at);
    RETURN_IF_ERROR(reader.read(buffer, at, n));
    at += n;
    RETURN_IF_ERROR(tensor(*t, buffer));
  }
  RETURN_IF_ERROR(skip_to(size));
  return reader.verify(h);
}

namespace {

// The files map_model_file has verified, as their identity was when verified (under the lease).
class VerifiedFiles {
 public:
  static VerifiedFiles& get() {
    static VerifiedFiles* instance = new VerifiedFiles();  // never destroyed (exit order)
    return *instance;
  }
  bool contains(const struct stat& st) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::find(files_.begin(), files_.end(), identity(st)) != files_.end();
  }
  // Remembers a file verified with identity `st`, unless its change time is within two ticks of
  // the clock that stamps it (CLOCK_REALTIME_COARSE): a write in the same tick would leave it.
  void add(const struct stat& st) {
    timespec now{}, tick{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
    ::clock_getres(CLOCK_REALTIME_COARSE, &tick);
    const int64_t age_ns =
        (now.tv_sec - st.st_ctim.tv_sec) * 1000000000LL + (now.tv_nsec - st.st_ctim.tv_nsec);
    if (age_ns <= 2 * (tick.tv_sec * 1000000000LL + tick.tv_nsec)) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (std::find(files_.begin(), files_.end(), identity(st)) != files_.end()) return;
    if (files_.size() >= 16) files_.erase(files_.begin());  // a worker serves one model
    files_.push_back(identity(st));
  }
  // Forgets file (dev, ino): someone opened it for writing while it was mapped (lease break).
  void forget(int64_t dev, int64_t ino) {
    std::lock_guard<std::mutex> lock(mu_);
    files_.erase(std::remove_if(files_.begin(), files_.end(),
                                [&](const Identity& i) { return i[0] == dev && i[1] == ino; }),
                 files_.end());
  }

 private:
  using Identity = std::array<int64_t, 7>;  // dev, inode, size, mtime s/ns, ctime s/ns
  static Identity identity(const struct stat& st) {
    return {static_cast<int64_t>(st.st_dev),
            static_cast<int64_t>(st.st_ino),
            static_cast<int64_t>(st.st_size),
            static_cast<int64_t>(st.st_mtim.tv_sec),
            st.st_mtim.tv_nsec,
            static_cast<int64_t>(st.st_ctim.tv_sec),
            st.st_ctim.tv_nsec};
  }
  std::mutex mu_;
  std::vector<Identity> files_;
};

}  // namespace

Expected<std::shared_ptr<const Image>> map_model_file(const std::string& path,
                                                      std::string* why_not) {
  if (mfile::mapping_disabled()) {
    *why_not = "ECGQ_MODEL_MAP=0";
    return std::shared_ptr<const Image>();
  }
  Fd f;
  uint64_t size = 0;
  ASSIGN_OR_RETURN(Header h, open_model_file(path, &f, &size));
  const size_t map_bytes = round_up(size, kPage);
  void* map = ::mmap(nullptr, map_bytes, PROT_READ, MAP_SHARED, f.fd, 0);
  if (map == MAP_FAILED) {
    *why_not = std::string("mmap: ") + std::strerror(errno);
    return std::shared_ptr<const Image>();
  }
  // From here the image owns the mapping and the descriptor; the lease's break callback copies
  // the mapping (a break during the checks below too: they then read the copy).
  auto image = std::make_shared<Image>(map, map_bytes, size, Contents{}, f.fd);
  f.fd = -1;
  const Image* target = image.get();
  struct stat st {};
  if (::fstat(image->leased_fd_, &st) != 0) {  // dev and inode of the open file, for the break
    *why_not = std::string("fstat: ") + std::strerror(errno);
    return std::shared_ptr<const Image>();
  }
  const int64_t dev = static_cast<int64_t>(st.st_dev), ino = static_cast<int64_t>(st.st_ino);
  *why_not = FileLease::hold(image->leased_fd_, [target, dev, ino] {
    VerifiedFiles::get().forget(dev, ino);  // a writer is waiting: check it next time
    return target->make_private();
  });
  // Again with the lease held: the identity the checksum is remembered under.
  if (why_not->empty() &&
      (::fstat(image->leased_fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) != size))
    *why_not = "the file changed size while being opened";  // before the lease: read it instead
  if (!why_not->empty()) return std::shared_ptr<const Image>();
  ::madvise(map, map_bytes, MADV_POPULATE_READ);  // page tables in one call (advisory)
  image->checksum_reused_ = VerifiedFiles::get().contains(st);
  Status checked =
      image->checksum_reused_ ? Status::Ok() : verify_mapped(image->data(), size, h, path);
  Expected<Contents> contents = checked.ok() ? parse_mapped(image->data(), h, path) : checked;
  if (!contents.ok()) return contents.status();
  VerifiedFiles::get().add(st);
  image->contents_ = std::move(contents).value();
  return std::shared_ptr<const Image>(std::move(image));
}

Expected<Contents> peek_model_file(const std::string& path) {
  Fd f;
  uint64_t size = 0;
  ASSIGN_OR_RETURN(Header h, open_model_file(path, &f, &size));
  return read_contents(f.fd, h, path);
}

}  // namespace ecgq::mfile
