// libFuzzer target: the WFDB header parser (the text of a .hea file).
#include <cstddef>
#include <cstdint>
#include <string>

#include "records/wfdb.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)ecgq::wfdb::parse_header(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
