// ActivationPool (model/activation_pool.cpp): inside a Scope large tensors reuse idle blocks by
// size and grow a smaller idle one instead of mapping new memory; outside it LibTorch's allocator
// serves as before; blocks a pass did not take, and every idle one at release(), are unmapped.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <thread>

#include "model/activation_pool.hpp"

namespace ecgq {
namespace {

constexpr int64_t kBig = 1 << 20;  // floats: 4 MiB, pooled

TEST(ActivationPool, AFreedBlockServesTheNextTensorOfItsSizeInTheSamePassAndTheNext) {
  ActivationPool::release();
  void* first = nullptr;
  {
    ActivationPool::Scope pass;
    at::Tensor a = at::empty({kBig}, at::kFloat);
    first = a.data_ptr();
    a.fill_(1.0f);
    a = at::Tensor();
    EXPECT_EQ(ActivationPool::idle_bytes(), kBig * sizeof(float));
    at::Tensor b = at::empty({kBig}, at::kFloat);
    EXPECT_EQ(b.data_ptr(), first);
    EXPECT_EQ(ActivationPool::idle_bytes(), 0u);
  }
  {
    ActivationPool::Scope pass;  // a later pass takes the block the first one left idle
    at::Tensor c = at::empty({kBig / 2 + 1}, at::kFloat);
    EXPECT_EQ(c.data_ptr(), first);
  }
  EXPECT_EQ(ActivationPool::release(), kBig * sizeof(float));
  EXPECT_EQ(ActivationPool::idle_bytes(), 0u);
}

TEST(ActivationPool, ASmallerIdleBlockGrowsKeepingItsContents) {
  ActivationPool::release();
  ActivationPool::Scope pass;
  at::Tensor a = at::empty({kBig}, at::kFloat);
  a.fill_(3.0f);
  a = at::Tensor();
  at::Tensor b = at::empty({3 * kBig}, at::kFloat);  // over twice the idle block: grows it
  EXPECT_EQ(ActivationPool::idle_bytes(), 0u);
  // mremap moves the pages: what the block held is still there, the rest reads as zero
  EXPECT_EQ(b.narrow(0, 0, kBig).eq(3.0f).all().item<bool>(), true);
  b.fill_(2.0f);
  EXPECT_EQ(b.sum().item<float>(), 6.0f * kBig);
}

TEST(ActivationPool, SmallTensorsAndOtherThreadsAreNotPooled) {
  ActivationPool::release();
  ActivationPool::Scope pass;
  { at::Tensor small = at::empty({16}, at::kFloat); }
  std::thread([] { at::Tensor t = at::empty({kBig}, at::kFloat); }).join();
  EXPECT_EQ(ActivationPool::idle_bytes(), 0u);
}

TEST(ActivationPool, BlocksAPassDidNotTakeAreUnmappedWhenItEnds) {
  ActivationPool::release();
  {
    ActivationPool::Scope pass;
    at::Tensor a = at::empty({kBig}, at::kFloat);
  }
  EXPECT_EQ(ActivationPool::idle_bytes(), kBig * sizeof(float));
  { ActivationPool::Scope pass; }  // took nothing
  EXPECT_EQ(ActivationPool::idle_bytes(), 0u);
}

TEST(ActivationPool, ATensorOutlivingItsPassReturnsItsBlockWhenFreed) {
  ActivationPool::release();
  at::Tensor kept;
  {
    ActivationPool::Scope pass;
    kept = at::ones({kBig}, at::kFloat);
  }
  EXPECT_EQ(kept.sum().item<float>(), static_cast<float>(kBig));
  kept = at::Tensor();
  EXPECT_EQ(ActivationPool::release(), kBig * sizeof(float));
}

}  // namespace
}  // namespace ecgq
