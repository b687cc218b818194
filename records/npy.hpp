// NumPy .npy files (format versions 1.0, 2.0 and 3.0): reading a few plain dtypes and writing
// float32; torch-free so the client, the ECG readers and the worker tools can all use it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq {

// A parsed .npy array; `data` holds the raw little-endian element bytes in file order.
struct NpyArray {
  std::string dtype;           // "f32", "f64", "i16", "i32", "i64", "u8" or "bool"
  std::vector<int64_t> shape;  // empty for a 0-d array
  bool fortran_order = false;  // true when `data` is column-major
  std::string data;            // numel() * element_size() bytes

  // Number of elements (1 for a 0-d array).
  int64_t numel() const;
  // Bytes per element of `dtype`.
  size_t element_size() const;
  // The elements as doubles in C (row-major) order, whatever the dtype and storage order.
  std::vector<double> to_double() const;
  // The elements as floats in C (row-major) order, whatever the dtype and storage order.
  std::vector<float> to_float() const;
  // "[2, 12, 2500]" for messages.
  std::string shape_string() const;
};

// Parses the bytes of a .npy file; errors (code "bad_npy") say what part of the file is wrong.
Expected<NpyArray> parse_npy(const std::string& bytes);
// Reads and parses a .npy file; errors name the path.
Expected<NpyArray> read_npy(const std::string& path);
// Serialises a float32 C-order array as .npy format 1.0 bytes.
std::string format_npy_f32(const float* data, const std::vector<int64_t>& shape);
// Writes a float32 C-order array to `path` as .npy format 1.0 (replacing any existing file).
Status write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

}  // namespace ecgq
