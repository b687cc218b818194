// ecgq-broker as a process that can be killed (-9) and started again on the same endpoint and
// journal: the durability and producer ride-through tests.
#pragma once

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/test_broker_peers.hpp"

namespace ecgq::test {

// ecgq-broker on a fixed endpoint and journal ("" = none), restartable.
class DurableBroker {
 public:
  DurableBroker(std::string journal, std::vector<std::string> extra = {})
      : endpoint_(free_endpoint()), journal_(std::move(journal)), extra_(std::move(extra)) {}
  bool start(const std::string& wrapper = "") {
    std::vector<std::string> argv{bin("ecgq-broker"),
                                  "--bind",
                                  endpoint_,
                                  "--journal",
                                  journal_,  // "" keeps jobs in memory only
                                  "--heartbeat-interval",
                                  "100ms",
                                  "--heartbeat-liveness",
                                  "10",
                                  "--log-level",
                                  "debug"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    if (!wrapper.empty()) {
      std::string cmd = wrapper + " exec";
      for (const auto& a : argv) cmd += " '" + a + "'";
      argv = {"/bin/sh", "-c", cmd};
    }
    proc_ = std::make_unique<ChildProcess>(argv);
    RawClient probe(endpoint_);
    probe.request("mmi.service", {"x"});
    return probe.final(10s).has_value();
  }
  void kill9() {
    proc_->signal(SIGKILL);
    proc_->wait(10s);
  }
  const std::string& endpoint() const { return endpoint_; }
  ChildProcess& proc() { return *proc_; }

 private:
  std::string endpoint_, journal_;
  std::vector<std::string> extra_;
  std::unique_ptr<ChildProcess> proc_;
};

}  // namespace ecgq::test
