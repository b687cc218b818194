// `ecgq dlq`: the broker's dead-letter list (jobs that exhausted max_attempts), each with the
// worker and error of every attempt; readable or as JSON.
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>

#include "client/cli.hpp"
#include "client/json_output.hpp"
#include "common/text.hpp"
#include "protocol/extensions.hpp"

namespace ecgq::client {

namespace {

// Unix milliseconds as UTC "2026-01-02T03:04:05Z".
std::string utc(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void print_readable(const std::vector<ext::DeadLetter>& letters) {
  std::cout << letters.size() << " dead-lettered job(s)\n";
  for (const auto& d : letters) {
    std::cout << "job " << escape_invalid_utf8(d.id) << "  service " << d.service << "  failed "
              << utc(d.failed_unix_ms) << "  " << d.code << " after " << d.attempts.size()
              << " attempt(s)\n";
    for (size_t i = 0; i < d.attempts.size(); ++i) {
      const ext::DeadAttempt& a = d.attempts[i];
      std::cout << "  " << i + 1 << ". worker " << escape_invalid_utf8(a.worker) << "  " << a.code
                << "  " << escape_invalid_utf8(a.message) << "\n";
    }
  }
}

}  // namespace

int run_dlq(const DlqCommand& command) {
  Client client(command.client);
  auto body = client.status(command.client.timeout);
  if (!body) {
    std::fprintf(stderr, "ecgq: error: %s\n", body.status().message().c_str());
    return kExitFailed;
  }
  if (command.json) {
    auto json = msgpack_json(*body);
    if (!json) {
      std::fprintf(stderr, "ecgq: error: mmi.status reply: %s\n", json.status().message().c_str());
      return kExitFailed;
    }
    const Json letters = json->is_object() && json->contains("dead_letters")
                             ? json->at("dead_letters")
                             : Json::array();
    std::cout << letters.dump(2) << std::endl;
    return kExitOk;
  }
  auto status = ext::decode_status(*body);
  if (!status) {
    std::fprintf(stderr, "ecgq: error: mmi.status reply: %s\n", status.status().message().c_str());
    return kExitFailed;
  }
  print_readable(status->dead_letters);
  return kExitOk;
}

}  // namespace ecgq::client
