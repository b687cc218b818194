// `ecgq dlq`: the broker's dead-letter list (jobs that exhausted max_attempts), each with the
// worker and error of every attempt; readable or as JSON.
#include <cstdio>
#include <ctime>
#include <iostream>
#include <sstream>
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

// The list as text: one block per job, one line per failed attempt.
std::string readable(const std::vector<ext::DeadLetter>& letters) {
  std::ostringstream out;
  out << letters.size() << " dead-lettered job(s)\n";
  for (const auto& d : letters) {
    out << "job " << escape_invalid_utf8(d.id) << "  service " << escape_invalid_utf8(d.service)
        << "  failed " << utc(d.failed_unix_ms) << "  " << d.code << " after " << d.attempts.size()
        << " attempt(s)\n";
    for (size_t i = 0; i < d.attempts.size(); ++i) {
      const ext::DeadAttempt& a = d.attempts[i];
      out << "  " << i + 1 << ". worker " << escape_invalid_utf8(a.worker) << "  " << a.code << "  "
          << escape_invalid_utf8(a.message) << "\n";
    }
  }
  return out.str();
}

// What `ecgq dlq` prints: the broker's dead-letter list as JSON or text.
Expected<std::string> dead_letters(Client& client, const DlqCommand& command) {
  ASSIGN_OR_RETURN(const std::string body, client.status(command.client.timeout));
  if (!command.json) {
    ASSIGN_OR_RETURN(const ext::BrokerStatus status, ext::decode_status(body));
    return readable(status.dead_letters);
  }
  // Every key the broker sent for each job, known to this build or not.
  ASSIGN_OR_RETURN(const Json json, msgpack_json(body));
  const Json letters =
      json.is_object() && json.contains("dead_letters") ? json.at("dead_letters") : Json::array();
  return letters.dump(2) + "\n";
}

}  // namespace

int run_dlq(const DlqCommand& command) {
  Client client(command.client);
  auto text = dead_letters(client, command);
  if (!text) {
    std::fprintf(stderr, "ecgq: error: %s\n", text.status().message().c_str());
    return kExitFailed;
  }
  std::cout << *text << std::flush;
  return kExitOk;
}

}  // namespace ecgq::client
