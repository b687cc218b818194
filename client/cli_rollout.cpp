// `ecgq rollout SERVICE --to SHA256`: mmi.rollout, the model upgrade of docs/operations.md.
#include <cstdio>

#include "client/cli.hpp"
#include "protocol/admission.hpp"

namespace ecgq::client {

int run_rollout(const RolloutCommand& command) {
  Client client(command.client);
  const std::string body = ext::encode_rollout_request({command.service, command.to});
  auto reply = client.mmi("mmi.rollout", {body}, command.client.timeout);
  if (!reply) {
    std::fprintf(stderr, "ecgq: error: %s\n", reply.status().message().c_str());
    return kExitFailed;
  }
  if (reply->empty() || (*reply)[0] == ext::kServiceNotImplemented) {
    std::fprintf(stderr, "ecgq: error: the broker does not implement mmi.rollout\n");
    return kExitFailed;
  }
  auto done = ext::decode_rollout_reply((*reply)[0]);
  if (!done) {
    std::fprintf(stderr, "ecgq: error: mmi.rollout: %s: %s\n", done.status().code().c_str(),
                 done.status().message().c_str());
    return kExitFailed;
  }
  std::printf(
      "service %s: model %s -> %s; %lld worker(s) of the new model serving, %lld draining (they "
      "finish their jobs and leave)\n",
      done->service.c_str(), done->from.empty() ? "(none)" : done->from.c_str(), done->to.c_str(),
      static_cast<long long>(done->serving), static_cast<long long>(done->draining));
  return kExitOk;
}

}  // namespace ecgq::client
