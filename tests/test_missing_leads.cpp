// The missing_leads job field and the masked_leads result field on the wire (docs/protocol.md
// 4.1, 4.2): round trips, refusals naming the field, the result-cache key, and the worker's
// preprocessing of a job that says "zero".
#include <gtest/gtest.h>

#include "broker/content_key.hpp"
#include "protocol/decoded_job.hpp"
#include "protocol/schema.hpp"
#include "records/preprocess.hpp"

namespace ecgq {
namespace {

// A 10 s, 2-lead (II, V5) int16 job at 500 Hz.
schema::Job holter_job() {
  schema::Job j;
  j.ecg.dtype = "i16";
  j.ecg.shape = {2, 5000};
  std::vector<int16_t> v(10000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int16_t>((i * 37) % 2001 - 1000);
  j.ecg.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * 2);
  j.fs = 500;
  j.leads = {"II", "V5"};
  j.gain = {1000};
  return j;
}

TEST(MissingLeads, JobFieldRoundTripsAndOnlyRefuseOrZeroAreAccepted) {
  schema::Job j = holter_job();
  auto plain = schema::decode_job(schema::encode_job(j));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->missing_leads, "");
  for (const char* policy : {"refuse", "zero"}) {
    j.missing_leads = policy;
    auto d = schema::decode_job(schema::encode_job(j));
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    EXPECT_EQ(d->missing_leads, policy);
  }
  j.missing_leads = "guess";
  auto bad = schema::decode_job(schema::encode_job(j));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), "bad_request");
  EXPECT_EQ(bad.status().field(), "missing_leads");
  EXPECT_NE(bad.status().message().find("refuse or zero"), std::string::npos);
}

TEST(MissingLeads, ZeroIsPartOfTheCacheKeyRefuseIsNot) {
  schema::Job j = holter_job();
  const std::string plain = schema::job_content_key(j, j.ecg.data);
  j.missing_leads = "refuse";
  EXPECT_EQ(schema::job_content_key(j, j.ecg.data), plain);
  j.missing_leads = "zero";
  EXPECT_NE(schema::job_content_key(j, j.ecg.data), plain);
}

TEST(MissingLeads, ResultCarriesMaskedLeadsOnlyWhenThereAreSome) {
  schema::Result r;
  r.id = "a";
  r.masked_leads = {"I", "V1"};
  auto d = schema::decode_result(schema::encode_result(r));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->masked_leads, r.masked_leads);
  r.masked_leads.clear();
  EXPECT_EQ(schema::encode_result(r).find("masked_leads"), std::string::npos);
}

TEST(MissingLeads, TheWorkersPreprocessingFollowsTheJob) {
  schema::Job j = holter_job();
  auto refused = preprocess_ecg(*raw_from_job(j), {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), "missing_leads");
  j.missing_leads = "zero";
  auto decoded = schema::DecodedJob::decode(schema::encode_job(j));
  ASSERT_TRUE(decoded.ok());
  auto raw = raw_from_job(*decoded);
  ASSERT_TRUE(raw.ok());
  auto p = preprocess_ecg(std::move(*raw), {});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->masked_leads.size(), 10u);
  EXPECT_EQ(p->n_segments, 2);
}

}  // namespace
}  // namespace ecgq
