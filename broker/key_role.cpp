#include "broker/key_role.hpp"

#include <utility>

namespace ecgq::broker {

std::string role_names(unsigned roles) {
  std::string out;
  for (const auto& [bit, name] :
       {std::pair{kRoleClient, "client"}, std::pair{kRoleWorker, "worker"},
        std::pair{kRoleAdmin, "admin"}}) {
    if ((roles & bit) == 0) continue;
    if (!out.empty()) out += "+";
    out += name;
  }
  return out.empty() ? "none" : out;
}

bool is_admin_service(const std::string& service) {
  if (service.rfind("mmi.", 0) != 0) return false;
  return service != "mmi.service" && service != "mmi.status" && service != "mmi.job" &&
         service != "mmi.cancel";
}

std::string role_refusal(unsigned roles, bool worker_message, const std::string& service) {
  if (roles == 0) return "key_not_listed";  // removed by a reload after its handshake
  if ((roles & kRoleAdmin) != 0) return "";
  if (worker_message) return (roles & kRoleWorker) != 0 ? "" : "not_a_worker_key";
  // A worker key may ask whether the broker and its service are up (its health check), nothing
  // that carries jobs.
  if ((roles & kRoleClient) == 0)
    return service == "mmi.status" || service == "mmi.service" ? "" : "not_a_client_key";
  return is_admin_service(service) ? "not_an_admin_key" : "";
}

}  // namespace ecgq::broker
