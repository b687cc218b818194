// What a CURVE key may do at the broker: the roles of the allow-lists (client, worker, admin) and
// the one rule that says which role a message needs. The loop looks the roles of each message's
// key up in the current allow-lists; BrokerCore applies the rule (so it is testable on a fake
// clock).
#pragma once

#include <string>

namespace ecgq::broker {

// What a key may do; a key may hold several roles.
enum KeyRole : unsigned {
  kRoleClient = 1u << 0,  // submit jobs, read and cancel its own jobs
  kRoleWorker = 1u << 1,  // register (READY) and serve
  kRoleAdmin = 1u << 2,   // read and cancel any job, admin mmi.* services; may also submit, serve
};

// "client", "worker+admin", ..., "none" for logs.
std::string role_names(unsigned roles);

// Why a message from a key with `roles` is refused, or "" when it may pass. `worker_message` is
// an MDPW message (READY, HEARTBEAT, FINAL, ...), else an MDPC one to `service`. Worker keys may
// send REQUEST only to mmi.status and mmi.service (their health checks), never a job.
std::string role_refusal(unsigned roles, bool worker_message, const std::string& service);

// True for the mmi.* services only admin keys may call (every mmi.* service but mmi.service,
// mmi.status, mmi.job and mmi.cancel, which any client key may call: the last two only see its
// own jobs).
bool is_admin_service(const std::string& service);

}  // namespace ecgq::broker
