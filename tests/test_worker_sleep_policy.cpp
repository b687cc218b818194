// SleepPolicy on a fake clock: the worker's sleep/wake decisions with no threads and no waiting.
#include <gtest/gtest.h>

#include "worker/sleep_policy.hpp"

using namespace ecgq;
using std::chrono::milliseconds;
using Step = SleepPolicy::Step;

namespace {

// A clock the test moves by hand.
class FakeClock {
 public:
  SleepPolicy::TimePoint now() const { return now_; }
  void advance(milliseconds d) { now_ += d; }

 private:
  SleepPolicy::TimePoint now_{std::chrono::hours(1)};
};

SleepPolicyOptions options(milliseconds idle = milliseconds(1000), bool warm_on_start = true) {
  SleepPolicyOptions o;
  o.idle_timeout = idle;
  o.warm_on_start = warm_on_start;
  return o;
}

// Runs the load the policy asks for at `clock`'s time, taking `load_time`, and returns its end.
void load(SleepPolicy& policy, FakeClock& clock, milliseconds load_time, bool ok = true) {
  policy.on_load_started();
  EXPECT_EQ(policy.state(), WorkerState::Warming);
  clock.advance(load_time);
  policy.on_load_finished(clock.now(), ok);
}

}  // namespace

TEST(SleepPolicy, WarmsOnStartThenSleepsAfterTheIdleTimeout) {
  FakeClock clock;
  SleepPolicy policy(options(), clock.now());
  EXPECT_EQ(policy.state(), WorkerState::Cold);
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Warm);
  load(policy, clock, milliseconds(300));
  EXPECT_EQ(policy.state(), WorkerState::Warm);
  // The idle time counts from the end of the load.
  ASSERT_TRUE(policy.next_deadline().has_value());
  EXPECT_EQ(*policy.next_deadline(), clock.now() + milliseconds(1000));
  clock.advance(milliseconds(999));
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Wait);
  EXPECT_FALSE(policy.should_sleep(clock.now()));
  clock.advance(milliseconds(1));
  EXPECT_TRUE(policy.should_sleep(clock.now()));
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Sleep);
  policy.on_sleep();
  EXPECT_EQ(policy.state(), WorkerState::Asleep);
  // Asleep, nothing more happens without an event: no deadline, no automatic warm-up.
  EXPECT_FALSE(policy.next_deadline().has_value());
  clock.advance(milliseconds(3600 * 1000));
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Wait);
}

TEST(SleepPolicy, WithoutWarmOnStartTheFirstJobLoadsTheModel) {
  FakeClock clock;
  SleepPolicy policy(options(milliseconds(1000), /*warm_on_start=*/false), clock.now());
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Wait);
  EXPECT_FALSE(policy.next_deadline().has_value());
  EXPECT_TRUE(policy.job_waits_for_model());
  EXPECT_EQ(policy.next_step(clock.now(), true), Step::Serve);
  EXPECT_TRUE(policy.on_job_started(clock.now()));  // a wake: load first
  load(policy, clock, milliseconds(200));
  clock.advance(milliseconds(50));
  policy.on_job_finished(clock.now());
  EXPECT_EQ(policy.state(), WorkerState::Warm);
  EXPECT_EQ(*policy.next_deadline(), clock.now() + milliseconds(1000));
}

TEST(SleepPolicy, AJobRestartsTheIdleTimeAndNoSleepWhileServing) {
  FakeClock clock;
  SleepPolicy policy(options(), clock.now());
  load(policy, clock, milliseconds(10));
  clock.advance(milliseconds(900));
  EXPECT_FALSE(policy.job_waits_for_model());
  EXPECT_FALSE(policy.on_job_started(clock.now()));  // warm: no load
  // A job that runs past the idle timeout does not put the model to sleep under it.
  clock.advance(milliseconds(5000));
  EXPECT_FALSE(policy.next_deadline().has_value());
  EXPECT_FALSE(policy.should_sleep(clock.now()));
  policy.on_job_finished(clock.now());
  EXPECT_EQ(*policy.next_deadline(), clock.now() + milliseconds(1000));
  clock.advance(milliseconds(999));
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Wait);
}

TEST(SleepPolicy, QueuedJobsComeBeforeASleepThatIsDue) {
  FakeClock clock;
  SleepPolicy policy(options(), clock.now());
  load(policy, clock, milliseconds(10));
  clock.advance(milliseconds(2000));
  EXPECT_TRUE(policy.should_sleep(clock.now()));
  // A job that arrived before the sleep began is served by the warm model, not a cold start.
  EXPECT_FALSE(policy.job_waits_for_model());
  EXPECT_EQ(policy.next_step(clock.now(), true), Step::Serve);
}

TEST(SleepPolicy, AJobArrivingAsTheModelGoesToSleepWaitsForAWake) {
  FakeClock clock;
  SleepPolicy policy(options(), clock.now());
  load(policy, clock, milliseconds(10));
  clock.advance(milliseconds(1000));
  ASSERT_EQ(policy.next_step(clock.now(), false), Step::Sleep);
  policy.on_sleep();  // the model is still being freed
  EXPECT_TRUE(policy.job_waits_for_model());
  EXPECT_EQ(policy.next_step(clock.now(), true), Step::Serve);
  EXPECT_TRUE(policy.on_job_started(clock.now()));
  load(policy, clock, milliseconds(400));
  policy.on_job_finished(clock.now());
  EXPECT_EQ(policy.state(), WorkerState::Warm);
}

TEST(SleepPolicy, KeepWarmHoldsTheModelAndWakesItFromSleep) {
  FakeClock clock;
  SleepPolicy policy(options(), clock.now());
  load(policy, clock, milliseconds(10));
  EXPECT_TRUE(policy.on_keep_warm(true));
  EXPECT_FALSE(policy.on_keep_warm(true));  // no change
  EXPECT_TRUE(policy.keep_warm());
  clock.advance(milliseconds(10 * 1000));
  EXPECT_FALSE(policy.next_deadline().has_value());
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Wait);
  // Released: the idle time since the last activity counts, so a long-idle model sleeps now.
  EXPECT_TRUE(policy.on_keep_warm(false));
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Sleep);
  policy.on_sleep();
  // keep_warm again while asleep: load with no job waiting.
  policy.on_keep_warm(true);
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Warm);
  load(policy, clock, milliseconds(10));
  EXPECT_EQ(policy.state(), WorkerState::Warm);
}

TEST(SleepPolicy, AFailedLoadIsRetriedWithBackoff) {
  FakeClock clock;
  SleepPolicyOptions o = options();
  o.model_retry = milliseconds(100);
  SleepPolicy policy(o, clock.now());
  policy.on_keep_warm(true);
  load(policy, clock, milliseconds(10), /*ok=*/false);
  EXPECT_EQ(policy.state(), WorkerState::Failed);
  // keep_warm does not retry in a loop: the retry waits for model_retry.
  EXPECT_FALSE(policy.should_warm());
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Wait);
  EXPECT_EQ(*policy.next_deadline(), clock.now() + milliseconds(100));
  clock.advance(milliseconds(100));
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Warm);
  load(policy, clock, milliseconds(10), /*ok=*/false);
  // The second delay is twice the first.
  EXPECT_EQ(*policy.next_deadline(), clock.now() + milliseconds(200));
  clock.advance(milliseconds(199));
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Wait);
  // A job that comes meanwhile tries a load of its own; its success resets the delay.
  EXPECT_TRUE(policy.on_job_started(clock.now()));
  load(policy, clock, milliseconds(10));
  policy.on_job_finished(clock.now());
  EXPECT_EQ(policy.state(), WorkerState::Warm);
  policy.on_keep_warm(false);
  policy.on_sleep();
  EXPECT_TRUE(policy.on_job_started(clock.now()));
  load(policy, clock, milliseconds(10), /*ok=*/false);
  policy.on_job_finished(clock.now());
  EXPECT_EQ(*policy.next_deadline(), clock.now() + milliseconds(100));
}

TEST(SleepPolicy, ARetryOfAFailedLoadIsReportedFailedUntilItSucceeds) {
  FakeClock clock;
  SleepPolicyOptions o = options();
  o.model_retry = milliseconds(100);
  SleepPolicy policy(o, clock.now());
  // The first load is reported warming: the broker may send jobs that wait for it.
  policy.on_load_started();
  EXPECT_EQ(policy.reported_state(), WorkerState::Warming);
  clock.advance(milliseconds(10));
  policy.on_load_finished(clock.now(), false);
  EXPECT_EQ(policy.reported_state(), WorkerState::Failed);
  // A retry is not: a job sent to it would likely fail again and spend one of its attempts.
  clock.advance(milliseconds(100));
  ASSERT_EQ(policy.next_step(clock.now(), false), Step::Warm);
  policy.on_load_started();
  EXPECT_EQ(policy.state(), WorkerState::Warming);
  EXPECT_EQ(policy.reported_state(), WorkerState::Failed);
  EXPECT_TRUE(policy.job_waits_for_model());
  clock.advance(milliseconds(10));
  policy.on_load_finished(clock.now(), true);
  EXPECT_EQ(policy.reported_state(), WorkerState::Warm);
  // Once warm, a wake from sleep is reported warming again.
  policy.on_sleep();
  policy.on_load_started();
  EXPECT_EQ(policy.reported_state(), WorkerState::Warming);
}

TEST(SleepPolicy, TheBackoffStopsGrowingAtEightTimesModelRetry) {
  FakeClock clock;
  SleepPolicyOptions o = options();
  o.model_retry = milliseconds(100);
  SleepPolicy policy(o, clock.now());
  policy.on_load_failed(clock.now());
  for (int i = 0; i < 6; ++i) {
    clock.advance(milliseconds(1000));
    ASSERT_EQ(policy.next_step(clock.now(), false), Step::Warm);
    load(policy, clock, milliseconds(0), /*ok=*/false);
  }
  EXPECT_EQ(*policy.next_deadline(), clock.now() + milliseconds(800));
}

TEST(SleepPolicy, AJobThatBeatsTheFirstWarmUpLeavesNoWarmUpPending) {
  FakeClock clock;
  SleepPolicy policy(options(), clock.now());
  EXPECT_TRUE(policy.on_job_started(clock.now()));
  load(policy, clock, milliseconds(10));
  policy.on_job_finished(clock.now());
  clock.advance(milliseconds(1000));
  ASSERT_EQ(policy.next_step(clock.now(), false), Step::Sleep);
  policy.on_sleep();
  // warm_on_start was satisfied by the job's load: the model stays asleep.
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Wait);
}

TEST(SleepPolicy, AZeroIdleTimeoutSleepsRightAfterEachJob) {
  FakeClock clock;
  SleepPolicy policy(options(milliseconds(0), false), clock.now());
  EXPECT_TRUE(policy.on_job_started(clock.now()));
  load(policy, clock, milliseconds(10));
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Wait);  // serving: no sleep yet
  policy.on_job_finished(clock.now());
  EXPECT_EQ(policy.next_step(clock.now(), false), Step::Sleep);
  EXPECT_EQ(policy.next_step(clock.now(), true), Step::Serve);
}

TEST(SleepPolicy, StepNames) {
  EXPECT_STREQ(step_name(Step::Serve), "serve");
  EXPECT_STREQ(step_name(Step::Warm), "warm");
  EXPECT_STREQ(step_name(Step::Sleep), "sleep");
  EXPECT_STREQ(step_name(Step::Wait), "wait");
}
