// ActivationPool: a c10::Allocator installed in front of LibTorch's CPU allocator that serves the
// large allocations of a Scope from blocks kept by size.
#include "model/activation_pool.hpp"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>

#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ecgq {
namespace {

constexpr size_t kPage = 4096;

// Every pooled block, idle or in use, and the idle ones by capacity.
struct Pool {
  struct Block {
    size_t bytes = 0;        // capacity (whole pages)
    unsigned long used = 0;  // the pass that last took it
  };
  std::mutex mu;
  std::unordered_map<void*, Block> blocks;
  std::multimap<size_t, void*> idle;
  size_t idle_bytes = 0;
  unsigned long generation = 0;  // passes begun

  // Removes the idle blocks `drop` accepts from the pool; the caller frees them unlocked.
  template <typename Drop>
  std::vector<std::pair<void*, size_t>> take_idle(const Drop& drop) {
    std::vector<std::pair<void*, size_t>> out;
    for (auto it = idle.begin(); it != idle.end();) {
      if (!drop(blocks[it->second])) {
        ++it;
        continue;
      }
      out.emplace_back(it->second, it->first);
      idle_bytes -= it->first;
      blocks.erase(it->second);
      it = idle.erase(it);
    }
    return out;
  }
};

// Never destroyed: tensors may be freed during static destruction.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

thread_local int depth = 0;            // Scopes alive on this thread
thread_local unsigned long pass = 0;   // the outermost Scope's generation
c10::DeleterFnPtr next_raw = nullptr;  // the wrapped allocator's raw deleter

// Blocks are mappings of their own, so that an idle one can grow in place of a new one.
void* map_block(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  P.blocks[p] = Pool::Block{bytes, pass};
  return p;
}

// The largest idle block smaller than `want`, grown to it with mremap (its resident pages move
// with it, only the rest is fresh), or nullptr. A pass that first needs 10 MB and later 11.5 MB
// then touches 11.5 MB, not 21.5.
void* grow_idle(Pool& P, size_t want) {
  std::lock_guard<std::mutex> lock(P.mu);
  auto it = P.idle.lower_bound(want);
  if (it == P.idle.begin()) return nullptr;
  --it;
  const size_t had = it->first;
  void* old = it->second;
  void* p = mremap(old, had, want, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) return nullptr;  // the old mapping is untouched and stays idle
  P.idle_bytes -= had;
  P.idle.erase(it);
  P.blocks.erase(old);
  P.blocks[p] = Pool::Block{want, pass};
  return p;
}

void free_blocks(const std::vector<std::pair<void*, size_t>>& blocks) {
  for (auto [p, bytes] : blocks) munmap(p, bytes);
}

// A pooled block's deleter: back to the idle list.
void give_back(void* p) {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  auto it = P.blocks.find(p);
  if (it == P.blocks.end()) return;  // not reached: every pooled pointer is listed
  P.idle.emplace(it->second.bytes, p);
  P.idle_bytes += it->second.bytes;
}

// raw_deleter(): a pooled block, or one of the wrapped allocator's.
void free_any(void* p) {
  {
    Pool& P = pool();
    std::lock_guard<std::mutex> lock(P.mu);
    if (P.blocks.count(p) == 0) {
      if (next_raw != nullptr) next_raw(p);
      return;
    }
  }
  give_back(p);
}

class PoolAllocator final : public c10::Allocator {
 public:
  explicit PoolAllocator(c10::Allocator* next) : next_(next) {}

  c10::DataPtr allocate(size_t n) const override {
    if (depth == 0 || n < ActivationPool::kMinBytes) return next_->allocate(n);
    const size_t want = (n + kPage - 1) / kPage * kPage;
    Pool& P = pool();
    {
      std::lock_guard<std::mutex> lock(P.mu);
      // The smallest idle block that fits, unless it is over twice the need (a large block kept
      // for a small tensor would be missing for the next large one).
      auto it = P.idle.lower_bound(want);
      if (it != P.idle.end() && it->first <= 2 * want) {
        void* p = it->second;
        P.idle_bytes -= it->first;
        P.idle.erase(it);
        P.blocks[p].used = pass;
        return wrap(p);
      }
    }
    void* p = grow_idle(P, want);
    if (p == nullptr) p = map_block(want);
    return wrap(p);
  }

  c10::DeleterFnPtr raw_deleter() const override { return next_raw ? &free_any : nullptr; }

 private:
  static c10::DataPtr wrap(void* p) {
    return {p, p, &give_back, c10::Device(c10::DeviceType::CPU)};
  }
  c10::Allocator* next_;
};

void install() {
  static std::once_flag once;
  std::call_once(once, [] {
    c10::Allocator* next = c10::GetCPUAllocator();
    next_raw = next->raw_deleter();
    static PoolAllocator allocator(next);
    c10::SetCPUAllocator(&allocator);
  });
}

}  // namespace

ActivationPool::Scope::Scope() : generation_(0), outer_(depth == 0) {
  install();
  ++depth;
  if (!outer_) return;
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  generation_ = ++P.generation;
  pass = generation_;
}

ActivationPool::Scope::~Scope() {
  --depth;
  if (!outer_) return;
  // Blocks this pass did not take are what an earlier, larger pass needed: free them.
  std::vector<std::pair<void*, size_t>> unused;
  {
    Pool& P = pool();
    std::lock_guard<std::mutex> lock(P.mu);
    const unsigned long g = generation_;
    unused = P.take_idle([g](const Pool::Block& b) { return b.used < g; });
  }
  free_blocks(unused);
}

size_t ActivationPool::release() {
  std::vector<std::pair<void*, size_t>> all;
  size_t bytes = 0;
  {
    Pool& P = pool();
    std::lock_guard<std::mutex> lock(P.mu);
    bytes = P.idle_bytes;
    all = P.take_idle([](const Pool::Block&) { return true; });
  }
  free_blocks(all);
  return bytes;
}

size_t ActivationPool::idle_bytes() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  return P.idle_bytes;
}

}  // namespace ecgq
