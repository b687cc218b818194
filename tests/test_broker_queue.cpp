// The broker's per-service queue: round-robin across clients, re-queued jobs first, positions.
#include <gtest/gtest.h>

#include "broker/service_queue.hpp"
#include "broker/state.hpp"

namespace ecgq::broker {
namespace {

std::shared_ptr<JobRecord> job(const std::string& client, const std::string& id) {
  auto j = std::make_shared<JobRecord>();
  j->client = client;
  j->id = id;
  return j;
}

std::vector<std::string> drain(ServiceQueue& q) {
  std::vector<std::string> out;
  while (auto j = q.pop()) out.push_back(j->id);
  return out;
}

TEST(ServiceQueue, RoundRobinAcrossClientsFifoWithinOne) {
  ServiceQueue q;
  for (const char* id : {"a1", "a2", "a3"}) q.push_back(job("A", id));
  q.push_back(job("B", "b1"));
  q.push_back(job("C", "c1"));
  q.push_back(job("B", "b2"));
  EXPECT_EQ(q.size(), 6u);
  EXPECT_EQ(q.clients(), 3u);
  EXPECT_EQ(q.client_size("A"), 3u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a1", "b1", "c1", "a2", "b2", "a3"}));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.pop(), nullptr);
}

TEST(ServiceQueue, RequeuedJobsGoFirst) {
  ServiceQueue q;
  q.push_back(job("A", "a1"));
  q.push_front(job("B", "retry2"));
  q.push_front(job("A", "retry1"));
  EXPECT_EQ(q.client_size("A"), 2u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"retry1", "retry2", "a1"}));
}

TEST(ServiceQueue, PositionMatchesPopOrder) {
  ServiceQueue q;
  std::vector<std::shared_ptr<JobRecord>> all;
  for (const auto& [c, id] : std::vector<std::pair<std::string, std::string>>{
           {"A", "a1"}, {"A", "a2"}, {"A", "a3"}, {"B", "b1"}, {"B", "b2"}, {"C", "c1"}}) {
    all.push_back(job(c, id));
    q.push_back(all.back());
  }
  auto r = job("A", "r");
  q.push_front(r);
  all.push_back(r);
  std::map<std::string, size_t> predicted;
  for (const auto& j : all) predicted[j->id] = q.position(*j);
  auto order = drain(q);
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(predicted[order[i]], i) << order[i];
}

TEST(ServiceQueue, RemoveIfKeepsTheRestInOrder) {
  ServiceQueue q;
  for (const char* id : {"a1", "a2", "a3"}) q.push_back(job("A", id));
  q.push_back(job("B", "b1"));
  q.push_front(job("A", "ra"));
  auto gone = q.remove_if([](const JobRecord& j) { return j.client == "A" && j.id != "a3"; });
  std::vector<std::string> ids;
  for (auto& j : gone) ids.push_back(j->id);
  EXPECT_EQ(ids, (std::vector<std::string>{"ra", "a1", "a2"}));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a3", "b1"}));
  q.push_back(job("B", "b2"));
  q.remove_if([](const JobRecord&) { return true; });
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.clients(), 0u);
}

}  // namespace
}  // namespace ecgq::broker
