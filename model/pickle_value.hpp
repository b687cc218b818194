// The objects a torch pickle can build, kept in an index-addressed arena so that shared and
// cyclic references (memo) cost nothing and destruction never recurses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/checkpoint.hpp"

namespace ecgq::ckpt {

// What a node holds; anything we do not model (custom classes, results of REDUCE) is Opaque.
enum class PyKind : uint8_t {
  None,
  Bool,
  Int,
  BigInt,  // an integer outside int64 (kept opaque)
  Float,
  Str,
  Bytes,
  Tuple,
  List,
  Dict,
  Set,
  Global,   // s = "module.name"
  Storage,  // s = key, i = numel, dtype
  Tensor,   // items = {storage, size tuple, stride tuple}, i = storage offset
  Opaque,   // s = what it is; items = {callable} when it came from REDUCE/NEWOBJ
};

// One Python object.
struct PyNode {
  PyNode() = default;
  // A node of `k` with default contents.
  explicit PyNode(PyKind k) : kind(k) {}

  PyKind kind = PyKind::None;
  DType dtype = DType::F32;     // Storage only
  int64_t i = 0;                // Bool/Int value, Storage numel, Tensor storage offset
  double f = 0;                 // Float value
  std::string s;                // Str/Bytes contents, Global name, Storage key, Opaque description
  std::vector<uint32_t> items;  // Tuple/List/Set elements, Dict keys and values interleaved
};

// The arena of nodes built by one pickle run.
class PyHeap {
 public:
  // Index of the shared None object.
  static constexpr uint32_t kNone = 0;
  // Index of the shared True object.
  static constexpr uint32_t kTrue = 1;
  // Index of the shared False object.
  static constexpr uint32_t kFalse = 2;

  // Starts with the None/True/False singletons.
  PyHeap();
  // Appends a node and returns its index.
  uint32_t add(PyNode node);
  // The node at `index` (must be valid).
  const PyNode& at(uint32_t index) const { return nodes_[index]; }
  // Mutable access for the pickle machine (APPEND, SETITEM...).
  PyNode& mut(uint32_t index) { return nodes_[index]; }
  // Number of nodes.
  size_t size() const { return nodes_.size(); }

  // The value for `key` in dict `dict` (the last one if repeated), or UINT32_MAX.
  uint32_t dict_get(uint32_t dict, const std::string& key) const;
  // A Python-like repr, cut at `max_len` characters and at a fixed nesting depth.
  std::string repr(uint32_t index, size_t max_len = 4096) const;
  // A short name of the node's type for messages ("list", "tensor", "object torch.Foo"...).
  std::string type_name(uint32_t index) const;

 private:
  void repr_into(uint32_t index, std::string& out, size_t max_len, int depth) const;
  std::vector<PyNode> nodes_;
};

// Python's repr of a float (shortest round-trip digits, "2.0", "5e-05", "inf").
std::string python_float_repr(double value);
// Python's repr of a str ('abc', "it's").
std::string python_str_repr(const std::string& value, size_t max_len = 4096);

}  // namespace ecgq::ckpt
