// A float32 [N, E] .npy file written one row at a time: the header is written with room to spare
// and its shape patched when the file is closed, so a million embeddings never sit in memory.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq::client {

// The .npy rows writer (NumPy format 1.0, '<f4', C order); not copyable.
class NpyRowWriter {
 public:
  // Opens (truncates) `path`; the row width is taken from the first row.
  Status open(const std::string& path);
  // Appends one row; fails (bad_shape) when its width differs from the first row's.
  Status append(const std::vector<float>& row);
  // Patches the header with the final shape and closes the file.
  Status close();
  // Rows written so far.
  int64_t rows() const { return rows_; }
  // Width of the rows (0 before the first).
  int64_t width() const { return width_; }

 private:
  std::string path_;
  std::ofstream out_;
  int64_t rows_ = 0;
  int64_t width_ = 0;
};

// The 128-byte .npy v1.0 header of a float32 C-order array of `shape` (padded with spaces).
std::string npy_f32_header(int64_t rows, int64_t width);

}  // namespace ecgq::client
