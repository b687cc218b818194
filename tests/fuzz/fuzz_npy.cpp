// libFuzzer target: the .npy parser (header dict, dtype, shape, data length).
#include <cstddef>
#include <cstdint>
#include <string>

#include "records/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)ecgq::parse_npy(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
