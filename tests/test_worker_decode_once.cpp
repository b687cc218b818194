// Decode once, copy no samples: a job body goes from the ZeroMQ frame it arrived in, through one
// decode, to preprocessing, which reads the samples where they are and frees the body once they
// are converted. An allocation counter (this file's operator new) measures the copies.
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>
#include <zmq.hpp>

#include "protocol/decoded_job.hpp"
#include "protocol/zmq_frames.hpp"
#include "tests/test_worker_support.hpp"
#include "worker/job_runner.hpp"

namespace {

// Heap use through operator new while a test is tracking: live bytes, their peak, and the sizes
// of the allocations of at least `large` bytes.
struct HeapCounter {
  std::atomic<bool> tracking{false};
  std::atomic<int64_t> live{0};
  std::atomic<int64_t> peak{0};
  std::atomic<size_t> large{SIZE_MAX};
  std::mutex mutex;
  std::vector<size_t> large_sizes;  // reserved before tracking, so pushing never allocates
};

HeapCounter& counter() {
  static HeapCounter c;
  return c;
}

// Each block carries its size in a 16-byte header (keeping malloc's alignment) so that delete
// knows what it frees.
constexpr size_t kHeader = 16;

void* counted_new(size_t n) {
  void* block = std::malloc(n + kHeader);
  if (block == nullptr) throw std::bad_alloc();
  *static_cast<size_t*>(block) = n;
  HeapCounter& c = counter();
  if (c.tracking.load(std::memory_order_relaxed)) {
    const int64_t now = c.live.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = c.peak.load();
    while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
    }
    if (n >= c.large.load()) {
      std::lock_guard<std::mutex> lock(c.mutex);
      if (c.large_sizes.size() < c.large_sizes.capacity()) c.large_sizes.push_back(n);
    }
  }
  return static_cast<char*>(block) + kHeader;
}

void counted_delete(void* p) noexcept {
  if (p == nullptr) return;
  void* block = static_cast<char*>(p) - kHeader;
  HeapCounter& c = counter();
  if (c.tracking.load(std::memory_order_relaxed))
    c.live.fetch_sub(static_cast<int64_t>(*static_cast<size_t*>(block)));
  std::free(block);
}

}  // namespace

void* operator new(size_t n) {
  return counted_new(n);
}
void* operator new[](size_t n) {
  return counted_new(n);
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept {
  counted_delete(p);
}
void operator delete[](void* p) noexcept {
  counted_delete(p);
}
void operator delete(void* p, size_t) noexcept {
  counted_delete(p);
}
void operator delete[](void* p, size_t) noexcept {
  counted_delete(p);
}

using namespace ecgq;
using namespace ecgq::test;

namespace {

// Counts heap use from construction to stop(); `large` is the size from which allocations are
// listed.
class Tracking {
 public:
  explicit Tracking(size_t large) {
    HeapCounter& c = counter();
    c.large_sizes.clear();
    c.large_sizes.reserve(64);
    c.live = 0;
    c.peak = 0;
    c.large = large;
    c.tracking = true;
  }
  ~Tracking() { stop(); }
  // Stops counting; the figures stay readable.
  void stop() { counter().tracking = false; }
  int64_t peak() const { return counter().peak.load(); }
  int64_t live() const { return counter().live.load(); }
  std::vector<size_t> large_sizes() const { return counter().large_sizes; }

 private:
};

// A 12-lead f32 job of `seconds` at 500 Hz; the sample count is not a multiple of a 2500-sample
// segment, so no preprocessing buffer happens to have the body's size.
std::string big_body(double seconds) {
  return schema::encode_job(synthetic_job("big", seconds));
}

JobContext context() {
  JobContext c;
  c.received = std::chrono::steady_clock::now();
  c.model = schema::ModelIdentity{"ecgfm", "/fake/model.pt", std::string(64, 'b'), "fp32"};
  return c;
}

}  // namespace

TEST(DecodeOnce, TheDecodedJobReadsItsSamplesInsideTheBody) {
  auto owner = std::make_shared<std::string>(big_body(60.5));
  const std::string_view bytes(*owner);
  Tracking tracking(bytes.size() / 4);
  auto job = schema::DecodedJob::decode(bytes, owner);
  tracking.stop();
  ASSERT_TRUE(job.ok()) << job.status().to_string();
  EXPECT_EQ(job->id(), "big");
  EXPECT_TRUE(job->fields().ecg.data.empty());
  const std::string_view samples = job->samples();
  EXPECT_EQ(samples.size(), static_cast<size_t>(12 * 30250 * 4));
  EXPECT_GE(samples.data(), bytes.data());
  EXPECT_LE(samples.data() + samples.size(), bytes.data() + bytes.size());
  EXPECT_TRUE(tracking.large_sizes().empty()) << "the decode copied the samples";
  EXPECT_LT(tracking.peak(), 64 * 1024) << "decoding a job allocates only its small fields";

  // The DecodedJob shares the body; releasing the samples lets go of it.
  std::weak_ptr<std::string> weak = owner;
  owner.reset();
  EXPECT_FALSE(weak.expired());
  job->release_samples();
  EXPECT_TRUE(weak.expired());
  EXPECT_TRUE(job->samples().empty());
}

TEST(DecodeOnce, ARequestBodyStaysInTheZeroMQFrameItArrivedIn) {
  zmq::context_t ctx;
  zmq::socket_t in(ctx, zmq::socket_type::pair);
  zmq::socket_t out(ctx, zmq::socket_type::pair);
  in.bind("inproc://decode-once");
  out.connect("inproc://decode-once");
  const std::string body = big_body(60.5);
  ASSERT_TRUE(mdp::send_frames(
      out, mdp::worker_reply_frames(mdp::WorkerCommand::Request, "client-token", {body})));

  Tracking tracking(body.size() / 4);
  auto message = mdp::recv_split(in, 4);
  ASSERT_TRUE(message.has_value());
  ASSERT_EQ(message->tail.size(), 1u);
  auto frame = std::make_shared<zmq::message_t>(std::move(message->tail.front()));
  const std::string_view bytes(static_cast<const char*>(frame->data()), frame->size());
  auto job = schema::DecodedJob::decode(bytes, frame);
  tracking.stop();

  auto parsed = mdp::parse_worker(message->head);
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_EQ(parsed->command, mdp::WorkerCommand::Request);
  EXPECT_EQ(parsed->reply_to, "client-token");
  ASSERT_TRUE(job.ok()) << job.status().to_string();
  EXPECT_EQ(bytes, body);
  EXPECT_GE(job->samples().data(), bytes.data());
  EXPECT_LE(job->samples().data() + job->samples().size(), bytes.data() + bytes.size());
  // ZeroMQ holds the body in its own buffer; nothing on our side copied it into a string.
  EXPECT_TRUE(tracking.large_sizes().empty());
}

TEST(DecodeOnce, PrepareConvertsTheSamplesOnceAndFreesTheBodyBeforePreprocessing) {
  FakeControl control;
  FakeModel model(control);
  JobRunnerOptions options;
  options.worker_id = "w";
  const JobRunner runner(options);

  // 30 min at 500 Hz, f32: a 43.2 MB body, 360 segments.
  const double seconds = 1800.5;
  auto owner = std::make_shared<std::string>(big_body(seconds));
  const size_t body = owner->size();
  const size_t sample_bytes = static_cast<size_t>(12 * 900250 * 4);
  std::weak_ptr<std::string> weak = owner;
  auto job = schema::DecodedJob::decode(std::string_view(*owner), owner);
  ASSERT_TRUE(job.ok());
  owner.reset();

  Tracking tracking(sample_bytes / 2);
  PreparedJob prepared = runner.prepare(std::move(job), &model, context());
  tracking.stop();
  ASSERT_FALSE(prepared.failed) << prepared.result.error->message;
  EXPECT_EQ(prepared.n_segments, 360);
  EXPECT_TRUE(weak.expired()) << "the body outlived preprocessing";

  // The only large buffers: the physical values (float64, twice the f32 samples) and the model
  // input segments (float32). No buffer of the samples' size (a byte copy) and one float64 array
  // (the 12 model leads take over the physical values' buffer instead of copying them).
  const std::vector<size_t> large = tracking.large_sizes();
  const size_t segments = static_cast<size_t>(360 * 12 * 2500 * 4);
  EXPECT_EQ(large, (std::vector<size_t>{2 * sample_bytes, segments}));
  // Peak heap growth: the float64 values (2x) and the segments (1x), less the body freed once
  // the values exist, plus one lead's squares in the z-score; a copy of the samples anywhere on
  // the way would add at least 1x.
  const double peak_x = static_cast<double>(tracking.peak()) / static_cast<double>(sample_bytes);
  std::printf(
      "[ measure  ] body %zu bytes, samples %zu bytes, heap peak +%.2fx samples, "
      "%zu large allocations\n",
      body, sample_bytes, peak_x, large.size());
  EXPECT_LE(peak_x, 2.5);
}
