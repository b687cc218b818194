// libFuzzer target: the file readers behind read_record that take a path (Challenge .mat,
// CSV, a WFDB record whose header and signal file both come from the input). The first byte
// picks the reader; the rest is written to a file under /dev/shm (or the temp directory) named
// with the extension the reader expects.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "records/ecg_record.hpp"

namespace {

std::string scratch_dir() {
  static const std::string dir = [] {
    std::filesystem::path base =
        std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    auto d = base / ("ecgq-fuzz-records-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string dir = scratch_dir();
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  ecgq::ReadOptions options;
  options.fs = 500;
  switch (data[0] % 4) {
    case 0:
      write(dir + "/r.mat", rest);
      (void)ecgq::read_mat_v4(dir + "/r.mat", options);
      break;
    case 1:
      write(dir + "/r.csv", rest);
      (void)ecgq::read_csv_record(dir + "/r.csv", options);
      break;
    case 2: {
      // Header text up to the first NUL, the signal file after it.
      const size_t cut = rest.find('\0');
      write(dir + "/r.hea", rest.substr(0, cut));
      write(dir + "/r.dat", cut == std::string::npos ? std::string() : rest.substr(cut + 1));
      (void)ecgq::read_wfdb_record(dir + "/r.hea", ecgq::ReadOptions{});
      break;
    }
    default:
      write(dir + "/r.npy", rest);
      (void)ecgq::read_npy_record(dir + "/r.npy", options);
      break;
  }
  return 0;
}
