// prepare_shape: a task list over the intra-op pool.
#include "model/prepare_shape.hpp"

#include <ATen/Parallel.h>

#include <atomic>
#include <functional>

namespace ecgq {

void prepare_shape(const ShapeParts& parts, int64_t b, int64_t t, int64_t e) {
  std::vector<std::function<void()>> tasks;
  if (parts.pos_conv) tasks.emplace_back([&] { parts.pos_conv->prepare(b, t); });
  if (parts.products)
    tasks.emplace_back([&] {  // one task: the products keep their primitives unlocked
      if (parts.unsplit) parts.products->prepare(b, t, e, parts.bf16);
      if (parts.split) parts.products->prepare(b, t, e, false);  // q/k/v fp32 there
    });
  for (const PackedLayer* layer : {parts.split, parts.unsplit}) {
    if (layer == nullptr) continue;
    auto more = layer->preparations(b * t);
    tasks.insert(tasks.end(), more.rbegin(), more.rend());  // fc2 first: the largest
  }
  std::atomic<size_t> next{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    for (size_t i; (i = next++) < tasks.size();) tasks[i]();
  });
}

}  // namespace ecgq
