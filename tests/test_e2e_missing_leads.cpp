// A 2-lead Holter record end to end (real broker, worker on the demo model, gateway, `ecgq`):
// refused with missing_leads by default, scored with the missing leads as zeros when the job
// says missing_leads: zero (listed in masked_leads in JSON, CSV and the gateway's answer); a
// clinical file refuses an fs that differs from its own rate, naming both; /info lists the
// formats and the policy.
#include <fstream>
#include <sstream>

#include "tests/clinical_writers.hpp"
#include "tests/test_gateway_support.hpp"

namespace ecgq::test {
namespace {

// The cluster of this file's tests, and `ecgq submit` on it.
class MissingLeadsE2e : public GatewaySuite<MissingLeadsE2e> {
 public:
  static constexpr const char* kWorkerId = "ml-w1";

 protected:
  // `ecgq submit` on this cluster with `args` before the paths.
  static CommandResult submit(std::vector<std::string> args) {
    std::vector<std::string> argv{bin("ecgq"), "--broker", broker_->endpoint, "submit"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 60s);
  }
};

// The leads a II + V5 record lacks and cannot derive, in model order.
const std::vector<std::string> kMasked = {"I",  "III", "aVR", "aVL", "aVF",
                                          "V1", "V2",  "V3",  "V4",  "V6"};

// A 10 s EDF of a Holter's two channels (modified II and V5) at 500 Hz, 0.1 uV per step.
std::string write_holter(const TempDir& dir) {
  static const std::vector<float> ecg = synthetic_ecg(5000);  // I II III aVR aVL aVF V1..V6
  const std::string path = dir.file("holter.edf");
  std::ofstream(path, std::ios::binary) << edf_file(
      {{"ECG II", "uV", 500}, {"ECG V5", "uV", 500}}, 10, 1, "EDF+C", [](int s, int64_t t) {
        const size_t lead = s == 0 ? 1 : 10;
        return static_cast<int16_t>(std::lround(ecg[lead * 5000 + t] * 1e4));
      });
  return path;
}

TEST_F(MissingLeadsE2e, SubmitRefusesByDefaultAndMasksWhenAsked) {
  TempDir dir;
  const std::string holter = write_holter(dir);
  auto refused = submit({holter});
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  auto r = client::Json::parse(refused.out.substr(0, refused.out.find('\n')));
  EXPECT_EQ(r["error"]["code"], "missing_leads") << refused.out;

  auto zero = submit({"--missing-leads", "zero", holter});
  ASSERT_EQ(zero.exit_code, 0) << zero.err;
  auto j = client::Json::parse(zero.out.substr(0, zero.out.find('\n')));
  EXPECT_EQ(j["status"], "ok") << zero.out;
  EXPECT_EQ(j["n_segments"], 2);
  EXPECT_EQ(j["masked_leads"].get<std::vector<std::string>>(), kMasked);
  EXPECT_EQ(j["probs"].size(), 17u);

  auto csv = submit({"--missing-leads", "zero", "--format", "csv", holter});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_NE(csv.out.find(",cached,masked_leads,"), std::string::npos) << csv.out;
  EXPECT_NE(csv.out.find(",I;III;aVR;aVL;aVF;V1;V2;V3;V4;V6,"), std::string::npos) << csv.out;
  auto plain_csv = submit({"--format", "csv", holter});
  EXPECT_EQ(plain_csv.out.find("masked_leads"), std::string::npos) << plain_csv.out;

  auto usage = submit({"--missing-leads", "guess", holter});
  EXPECT_EQ(usage.exit_code, 2) << usage.err;
  EXPECT_NE(usage.err.find("--missing-leads"), std::string::npos) << usage.err;
}

TEST_F(MissingLeadsE2e, GatewayTakesMissingLeadsAsQueryFormOrJsonField) {
  TempDir dir;
  const std::string holter = write_holter(dir);
  auto c = gateway_->client();
  auto refused = c->Post("/predict", httplib::MultipartFormDataItems{file_part(holter)});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  EXPECT_EQ(body_json(refused)["error"]["code"], "missing_leads");

  auto query =
      c->Post("/predict?missing_leads=zero", httplib::MultipartFormDataItems{file_part(holter)});
  ASSERT_EQ(query->status, 200) << query->body;
  EXPECT_EQ(body_json(query)["masked_leads"].get<std::vector<std::string>>(), kMasked);
  httplib::MultipartFormDataItems form = {file_part(holter), {"missing_leads", "zero", "", ""}};
  auto f = c->Post("/predict", form);
  ASSERT_EQ(f->status, 200) << f->body;
  EXPECT_EQ(body_json(f)["masked_leads"].size(), kMasked.size());

  // JSON samples of two leads.
  client::Json body = {{"samples", {std::vector<float>(5000, 0.1f), std::vector<float>(5000)}},
                       {"fs", 500},
                       {"leads", {"II", "V5"}},
                       {"missing_leads", "zero"}};
  for (int t = 0; t < 5000; ++t) body["samples"][1][t] = std::sin(t / 20.0);
  auto js = c->Post("/predict", body.dump(), "application/json");
  ASSERT_EQ(js->status, 200) << js->body;
  EXPECT_EQ(body_json(js)["masked_leads"].size(), kMasked.size());

  auto bad =
      c->Post("/predict?missing_leads=guess", httplib::MultipartFormDataItems{file_part(holter)});
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(body_json(bad)["error"]["field"], "missing_leads") << bad->body;
}

TEST_F(MissingLeadsE2e, InfoListsTheFormatsAndTheMissingLeadsPolicy) {
  auto info = body_json(gateway_->client()->Get("/info"));
  const auto formats = info["input"]["formats"].get<std::vector<std::string>>();
  for (const char* f :
       {"EDF / EDF+", "HL7 aECG XML", "GE MUSE XML", "DICOM ECG waveforms", "SCP-ECG v1.x / v2.x"})
    EXPECT_NE(std::find(formats.begin(), formats.end(), f), formats.end()) << f;
  EXPECT_NE(info["input"]["missing_leads"]["zero"].get<std::string>().find("not validated"),
            std::string::npos)
      << info.dump();
}

TEST_F(MissingLeadsE2e, ConflictingFsIsRefusedNamingBothRates) {
  TempDir dir;
  const std::string holter = write_holter(dir);
  auto run = submit({"--fs", "250", "--missing-leads", "zero", holter});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  auto j = client::Json::parse(run.out.substr(0, run.out.find('\n')));
  EXPECT_EQ(j["error"]["code"], "bad_request") << run.out;
  EXPECT_EQ(j["error"]["field"], "fs");
  const std::string message = j["error"]["message"].get<std::string>();
  EXPECT_NE(message.find("records 500 Hz"), std::string::npos) << message;
  EXPECT_NE(message.find("says 250 Hz"), std::string::npos) << message;
  // The file's own rate given again is no conflict.
  EXPECT_EQ(submit({"--fs", "500", "--missing-leads", "zero", holter}).exit_code, 0);

  auto c = gateway_->client();
  auto r = c->Post("/predict?fs=250&missing_leads=zero",
                   httplib::MultipartFormDataItems{file_part(holter)});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(body_json(r)["error"]["field"], "fs");
  EXPECT_NE(r->body.find("250 Hz"), std::string::npos) << r->body;
}

}  // namespace
}  // namespace ecgq::test
