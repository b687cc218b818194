// `ecgq result ID...`: what the broker knows of jobs by id (mmi.job), printed like `submit`
// prints results: one JSON line per id, the result's line when the job finished.
#include <cstdio>
#include <iostream>

#include "client/cli.hpp"
#include "client/json_output.hpp"
#include "protocol/extensions.hpp"

namespace ecgq::client {

int run_result(const ResultCommand& command) {
  Client client(command.client);
  int rc = kExitOk;
  // mmi.job answers at most kMaxJobQueryIds ids per request.
  for (size_t start = 0; start < command.ids.size(); start += ext::kMaxJobQueryIds) {
    const auto end = std::min(command.ids.size(), start + ext::kMaxJobQueryIds);
    ext::JobQuery query{{command.ids.begin() + static_cast<long>(start),
                         command.ids.begin() + static_cast<long>(end)}};
    auto reply = client.mmi("mmi.job", {ext::encode_job_query(query)}, command.client.timeout);
    if (!reply) {
      std::fprintf(stderr, "ecgq: %s\n", reply.status().to_string().c_str());
      return kExitFailed;
    }
    auto jobs = ext::decode_job_reply(reply->empty() ? std::string() : (*reply)[0]);
    if (!jobs) {
      std::fprintf(stderr, "ecgq: mmi.job: %s\n", jobs.status().to_string().c_str());
      return kExitFailed;
    }
    for (const ext::JobInfo& j : jobs->jobs) {
      auto result = j.result.empty()
                        ? Expected<schema::Result>(Status(ErrorCode::BadResult, "none"))
                        : schema::decode_result(j.result);
      if (result.ok()) {
        Json line = result_json("", *result, command.outputs);
        line.erase("path");
        line["state"] = j.state;
        std::cout << json_line(line) << '\n';
        if (result->status != "ok") rc = kExitFailed;
        continue;
      }
      Json line = {{"id", j.id}, {"state", j.state}, {"attempts", j.attempts}};
      if (j.position >= 0) line["position"] = j.position;
      std::cout << json_line(line) << '\n';
      rc = kExitFailed;  // not (or no longer) known, or not finished yet
    }
  }
  return rc;
}

}  // namespace ecgq::client
