// CheckpointMapping: the checkpoint's file mapped for one load under a read lease. A writer is
// never held back by it, never makes it fault, and the load that saw the file change is told.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "model/checkpoint.hpp"
#include "model/checkpoint_mapping.hpp"
#include "tests/support/process.hpp"

namespace ecgq::ckpt {
namespace {

// A copy of the tiny fine-tuned checkpoint the test may overwrite.
std::string copy_checkpoint(const test::TempDir& dir) {
  const std::string path = dir.path() + "/model.pt";
  std::filesystem::copy_file(test::data_path("ecgfm/tiny_finetuned.pt"), path);
  return path;
}

std::string bytes_of(const void* p, uint64_t n) {
  return std::string(static_cast<const char*>(p), static_cast<size_t>(n));
}

TEST(CheckpointMapping, EveryContiguousTensorMapsToTheBytesReadTensorReads) {
  test::TempDir dir;
  auto cp = read_checkpoint(copy_checkpoint(dir));
  ASSERT_TRUE(cp.ok()) << cp.status().to_string();
  std::string why_not;
  auto map = CheckpointMapping::map(*cp, &why_not);
  ASSERT_NE(map, nullptr) << why_not;
  int mapped = 0;
  for (const TensorInfo& t : cp->tensors) {
    auto bytes = map->tensor_bytes(*cp, t);
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    if (!*bytes) continue;
    const uint64_t n = tensor_numel(t) * dtype_size(t.dtype);
    std::string read(static_cast<size_t>(n), '\0');
    ASSERT_TRUE(read_tensor(*cp, t, read.data()).ok());
    EXPECT_EQ(bytes_of(**bytes, n), read) << t.name;
    // Released from the page tables, the bytes fault back from the page cache unchanged.
    map->release(**bytes, n);
    EXPECT_EQ(bytes_of(**bytes, n), read) << t.name;
    ++mapped;
  }
  EXPECT_EQ(mapped, static_cast<int>(cp->tensors.size()));
  EXPECT_TRUE(map->intact().ok());
  // While it is mapped, a second load of the same open file reads instead of sharing the lease.
  std::string second_why;
  EXPECT_EQ(CheckpointMapping::map(*cp, &second_why), nullptr);
  EXPECT_EQ(second_why, "another load has it mapped");
  map.reset();
  EXPECT_NE(CheckpointMapping::map(*cp, &second_why), nullptr) << second_why;
}

TEST(CheckpointMapping, AWriterIsNotHeldBackAndTheLoadIsToldTheFileChanged) {
  test::TempDir dir;
  const std::string path = copy_checkpoint(dir);
  auto cp = read_checkpoint(path);
  ASSERT_TRUE(cp.ok()) << cp.status().to_string();
  std::string why_not;
  auto map = CheckpointMapping::map(*cp, &why_not);
  ASSERT_NE(map, nullptr) << why_not;
  const TensorInfo& last = cp->tensors.back();
  auto before = map->tensor_bytes(*cp, last);
  ASSERT_TRUE(before.ok() && *before);
  // Another process truncates the file, waiting for the lease to go: a kept lease would make
  // that the kernel's lease-break time (45 s by default), past this timeout. Then it writes the
  // old size of zeros back.
  const test::CommandResult writer = test::truncate_and_zero_fill(path, std::chrono::seconds(20));
  EXPECT_EQ(writer.exit_code, 0) << writer.err;
  // The map now shows zeros (no fault past the end of the truncated file) and says so.
  const uint64_t n = tensor_numel(last) * dtype_size(last.dtype);
  EXPECT_EQ(bytes_of(**before, n), std::string(static_cast<size_t>(n), '\0'));
  const Status intact = map->intact();
  EXPECT_EQ(intact.code(), "io_error") << intact.to_string();
  EXPECT_NE(intact.message().find("opened for writing or truncated while its weights were"),
            std::string::npos)
      << intact.message();
  EXPECT_NE(intact.message().find(path), std::string::npos) << intact.message();
}

TEST(CheckpointMapping, AFileOpenForWritingInMemoryOrWithMappingOffIsReadAndSaysWhy) {
  test::TempDir dir;
  const std::string path = copy_checkpoint(dir);
  auto cp = read_checkpoint(path);
  ASSERT_TRUE(cp.ok());
  const int writer = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(writer, 0);
  std::string why_not;
  EXPECT_EQ(CheckpointMapping::map(*cp, &why_not), nullptr);
  ::close(writer);
  EXPECT_NE(why_not.find("no read lease"), std::string::npos) << why_not;
  EXPECT_NE(why_not.find("open for writing"), std::string::npos) << why_not;
  // The failed attempt left nothing behind: the file maps once the writer is gone.
  EXPECT_NE(CheckpointMapping::map(*cp, &why_not), nullptr) << why_not;
  // ECGQ_MODEL_MAP=0 reads checkpoints as it reads model files.
  setenv("ECGQ_MODEL_MAP", "0", 1);
  EXPECT_EQ(CheckpointMapping::map(*cp, &why_not), nullptr);
  unsetenv("ECGQ_MODEL_MAP");
  EXPECT_EQ(why_not, "ECGQ_MODEL_MAP=0");

  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto memory = read_checkpoint_bytes(bytes);
  ASSERT_TRUE(memory.ok());
  EXPECT_EQ(CheckpointMapping::map(*memory, &why_not), nullptr);
  EXPECT_EQ(why_not, "not read from a file");
}

}  // namespace
}  // namespace ecgq::ckpt
