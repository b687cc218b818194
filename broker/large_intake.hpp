// Large received messages turned into frames off the broker's loop. Copying a 100 MiB body out of
// libzmq's message into the broker's string (and faulting in its pages) held the loop ~56 ms; here
// the loop hands the message over, keeps serving, and is woken (an eventfd it polls) when the
// frames are ready. A peer's messages stay in order: while one of them is being copied, the
// peer's later messages wait behind it.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "broker/core.hpp"

namespace ecgq::broker {

// Messages at least this large (all frames) are copied off the loop; smaller ones cost the loop
// less than the hand-over (under ~0.5 ms of copy).
inline constexpr size_t kOffLoopBytes = size_t{1} << 20;

// Bytes the thread may hold waiting or being copied; a large message beyond them is copied on
// the loop as before, so a flood of large bodies slows the loop (and, through libzmq's
// high-water mark, its senders) instead of piling up here.
inline constexpr size_t kMaxOffLoopBytes = size_t{128} << 20;

// One copying thread and the per-peer order of the messages it holds; used by the loop thread.
class LargeIntake {
 public:
  // Starts the thread; throws std::system_error when no eventfd can be made.
  LargeIntake();
  ~LargeIntake();
  LargeIntake(const LargeIntake&) = delete;
  LargeIntake& operator=(const LargeIntake&) = delete;

  // Readable when messages are ready: poll it with the sockets.
  int notify_fd() const { return notify_fd_; }
  // Whether `peer` has messages here (its next one must queue behind them).
  bool holds(const std::string& peer) const { return by_peer_.count(peer) != 0; }
  // Takes a received message: `event` (peer, roles; its frames empty) and `parts` (without the
  // routing id). Large ones are copied on the thread (unless it holds kMaxOffLoopBytes), others
  // at once; either way the event is released by ready() after the peer's earlier messages.
  void add(Received event, std::vector<zmq::message_t> parts);
  // The messages whose frames are ready, in each peer's order, stamped `now`.
  std::vector<Received> ready(TimePoint now);

 private:
  // A message on its way to the core.
  struct Item {
    Received event;
    std::vector<zmq::message_t> parts;  // until copied
    size_t bytes = 0;                   // of `parts`
    bool done = false;                  // under mutex_
  };
  void run();

  int notify_fd_ = -1;
  std::map<std::string, std::deque<std::shared_ptr<Item>>> by_peer_;  // loop thread only
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Item>> work_;  // under mutex_: to copy, oldest first
  size_t pending_bytes_ = 0;                // under mutex_: of the messages in work_ or copying
  bool stopping_ = false;                   // under mutex_
  std::thread thread_;
};

}  // namespace ecgq::broker
