#include "client/npy_rows.hpp"

namespace ecgq::client {

namespace {
// Fixed so that the final shape always fits where the placeholder was.
constexpr size_t kHeaderBytes = 128;
}  // namespace

std::string npy_f32_header(int64_t rows, int64_t width) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                     ", " + std::to_string(width) + "), }";
  const size_t dict_len = kHeaderBytes - 10;
  dict.resize(dict_len - 1, ' ');
  dict += '\n';
  std::string h = "\x93NUMPY";
  h += '\x01';
  h += '\x00';
  h += static_cast<char>(dict_len & 0xff);
  h += static_cast<char>((dict_len >> 8) & 0xff);
  return h + dict;
}

Status NpyRowWriter::open(const std::string& path) {
  path_ = path;
  out_.open(path, std::ios::binary | std::ios::out | std::ios::trunc);
  if (!out_) return Status(ErrorCode::IoError, "cannot write " + path, "embeddings_out");
  out_ << npy_f32_header(0, 0);
  return out_ ? Status() : Status(ErrorCode::IoError, "cannot write " + path, "embeddings_out");
}

Status NpyRowWriter::append(const std::vector<float>& row) {
  if (width_ == 0) width_ = static_cast<int64_t>(row.size());
  if (static_cast<int64_t>(row.size()) != width_ || width_ == 0) {
    return Status(ErrorCode::BadShape,
                  "embedding of " + std::to_string(row.size()) + " values, the file's rows have " +
                      std::to_string(width_),
                  "embedding");
  }
  out_.write(reinterpret_cast<const char*>(row.data()),
             static_cast<std::streamsize>(row.size() * sizeof(float)));
  ++rows_;
  return out_ ? Status() : Status(ErrorCode::IoError, "cannot write " + path_, "embeddings_out");
}

Status NpyRowWriter::close() {
  if (!out_.is_open()) return Status();
  out_.seekp(0);
  out_ << npy_f32_header(rows_, width_);
  out_.close();
  return out_ ? Status() : Status(ErrorCode::IoError, "cannot write " + path_, "embeddings_out");
}

}  // namespace ecgq::client
