// libFuzzer target: any byte string must give a checkpoint or a clean error, never a crash, a
// sanitizer report or an unbounded allocation; accepted inputs must also read every tensor.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "worker/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecgq::ckpt;
  auto cp = read_checkpoint_bytes(std::string(reinterpret_cast<const char*>(data), size));
  if (!cp.ok()) return 0;
  std::vector<char> buf;
  for (const TensorInfo& t : cp->tensors) {
    const uint64_t bytes = tensor_numel(t) * dtype_size(t.dtype);
    if (bytes > cp->file_size) __builtin_trap();  // the reader promises this bound
    buf.resize(size_t(bytes));
    if (!read_tensor(*cp, t, buf.data()).ok()) __builtin_trap();
  }
  for (const auto& [key, s] : cp->storages) {
    char b[8];
    const uint64_t nbytes = s.numel * dtype_size(s.dtype);
    if (nbytes >= 8 && !read_storage(*cp, key, nbytes - 8, 8, b).ok()) __builtin_trap();
    if (read_storage(*cp, key, nbytes, 1, b).ok()) __builtin_trap();
  }
  return 0;
}
