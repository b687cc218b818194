// libFuzzer target: any byte string must give a checkpoint or a clean error, never a crash, a
// sanitizer report or an unbounded allocation; accepted inputs must also read every tensor.
// Inputs that do not start with "PK" are taken as a data.pkl and wrapped into a torch-like
// archive with storages "0".."7" (64 bytes each), so that mutations reach the pickle VM directly.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/checkpoint.hpp"

namespace {

void put(std::string& out, uint64_t v, int n) {
  for (int k = 0; k < n; ++k) out += k < 8 ? char((v >> (8 * k)) & 0xFF) : char(0);
}

std::string wrap_pickle(const std::string& pkl) {
  std::vector<std::pair<std::string, std::string>> records = {{"archive/data.pkl", pkl}};
  for (int k = 0; k < 8; ++k)
    records.emplace_back("archive/data/" + std::to_string(k), std::string(64, char(k)));
  std::string out, cd;
  for (const auto& [name, data] : records) {
    const uint64_t offset = out.size();
    put(out, 0x04034b50, 4);
    put(out, 0, 22);
    put(out, name.size(), 2);
    put(out, 0, 2);
    out += name + data;
    put(cd, 0x02014b50, 4);
    put(cd, 0, 16);
    put(cd, data.size(), 4);
    put(cd, data.size(), 4);
    put(cd, name.size(), 2);
    put(cd, 0, 12);
    put(cd, offset, 4);
    cd += name;
  }
  const uint64_t cd_offset = out.size();
  out += cd;
  put(out, 0x06054b50, 4);
  put(out, 0, 4);
  put(out, records.size(), 2);
  put(out, records.size(), 2);
  put(out, cd.size(), 4);
  put(out, cd_offset, 4);
  put(out, 0, 2);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecgq::ckpt;
  std::string input(reinterpret_cast<const char*>(data), size);
  if (input.compare(0, 2, "PK") != 0) input = wrap_pickle(input);
  auto cp = read_checkpoint_bytes(input);
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
