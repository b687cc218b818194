#include "broker/large_intake.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "protocol/zmq_frames.hpp"

namespace ecgq::broker {

LargeIntake::LargeIntake() : notify_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (notify_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  thread_ = std::thread([this] { run(); });
}

LargeIntake::~LargeIntake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  ::close(notify_fd_);
}

void LargeIntake::add(Received event, std::vector<zmq::message_t> parts) {
  size_t bytes = 0;
  for (const auto& p : parts) bytes += p.size();
  auto item = std::make_shared<Item>();
  item->event = std::move(event);
  auto& queue = by_peer_[item->event.peer];
  queue.push_back(item);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes >= kOffLoopBytes && pending_bytes_ + bytes <= kMaxOffLoopBytes) {
      pending_bytes_ += bytes;
      item->bytes = bytes;
      item->parts = std::move(parts);
      work_.push_back(std::move(item));
    }
  }
  if (!item) {
    wake_.notify_one();
    return;
  }
  // Small (or the thread holds enough): copied now, released after the peer's earlier messages.
  item->event.frames = mdp::copy_frames(parts);
  std::lock_guard<std::mutex> lock(mutex_);
  item->done = true;
}

std::vector<Received> LargeIntake::ready(TimePoint now) {
  uint64_t counter = 0;
  while (::read(notify_fd_, &counter, sizeof counter) == sizeof counter) {
  }
  std::vector<Received> out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = by_peer_.begin(); it != by_peer_.end();) {
    auto& queue = it->second;
    while (!queue.empty() && queue.front()->done) {
      queue.front()->event.now = now;
      out.push_back(std::move(queue.front()->event));
      queue.pop_front();
    }
    it = queue.empty() ? by_peer_.erase(it) : std::next(it);
  }
  return out;
}

void LargeIntake::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !work_.empty(); });
    if (stopping_) return;
    std::shared_ptr<Item> item = std::move(work_.front());
    work_.pop_front();
    lock.unlock();
    // The copy and the release of libzmq's message (an munmap for a large one) happen here.
    mdp::Frames frames = mdp::copy_frames(item->parts);
    std::vector<zmq::message_t>().swap(item->parts);
    lock.lock();
    item->event.frames = std::move(frames);
    item->done = true;
    pending_bytes_ -= item->bytes;
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(notify_fd_, &one, sizeof one);
  }
}

}  // namespace ecgq::broker
