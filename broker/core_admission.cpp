// Admission: a service serves one model identity (sha256, kind, outputs) at a time. A worker
// with another is refused (DISCONNECT with a model_mismatch refusal naming both) unless an
// operator runs mmi.rollout, which admits the new model and drains the workers of the old one:
// they finish their jobs, get no new ones, and are retired (DISCONNECT with model_retired).
// Workers that report no identity (strict RFC 18 workers) neither set nor conflict with it.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "broker/core.hpp"
#include "common/text.hpp"
#include "protocol/admission.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

namespace {

// "sha256 ab12cd34ef56 (ecgfm; probs, logits, embedding)" for refusals and logs.
std::string describe(const schema::ModelIdentity& m) {
  std::string outputs;
  for (const auto& o : m.outputs) outputs += (outputs.empty() ? "" : ", ") + o;
  return "sha256 " + m.sha256 + " (" + (m.kind.empty() ? "kind ?" : m.kind) +
         (outputs.empty() ? "" : "; " + outputs) + ")";
}

// True when both are known and differ: an unknown kind or output list conflicts with nothing.
template <typename T>
bool known_and_different(const T& a, const T& b) {
  return !a.empty() && !b.empty() && a != b;
}

}  // namespace

std::string BrokerCore::admission_problem(const Service& svc, const Worker& w) const {
  const schema::ModelIdentity& mine = w.model;
  if (mine.sha256.empty()) return "";
  auto pin = config_.precision_pins.find(svc.name);
  if (pin != config_.precision_pins.end() && !mine.precision.empty() &&
      mine.precision != pin->second)
    return "service '" + svc.name + "' pins precision " + pin->second + " (setting " +
           "pinned_precision); worker " + w.worker_id + " runs " + mine.precision;
  const schema::ModelIdentity& served = svc.model;
  if (served.sha256.empty()) return "";
  if (served.sha256 != mine.sha256 || known_and_different(served.kind, mine.kind) ||
      known_and_different(served.outputs, mine.outputs))
    return "service '" + svc.name + "' serves model " + describe(served) + "; worker " +
           w.worker_id + " offers " + describe(mine) + " (ecgq rollout " + svc.name +
           " --to SHA256 admits another model)";
  return "";
}

void BrokerCore::refuse_worker(const std::string& peer, const Worker& w, const char* code,
                               const std::string& why) {
  spdlog::warn("event=refused_worker worker={} peer={} service={} code={} reason=\"{}\"",
               loggable(w.worker_id), peer_name(peer), w.service, code, why);
  mdp::Frames frames = mdp::disconnect_frames();
  frames.push_back(ext::encode_refusal({code, why}));
  send(peer, std::move(frames));
}

void BrokerCore::adopt_model(Service& svc, const Worker& w) {
  const schema::ModelIdentity& m = w.model;
  // A worker whose model does not load does not decide what the service serves; it is checked
  // again when its first load gives its outputs.
  if (m.sha256.empty() || w.state == WorkerState::Failed) return;
  if (svc.model.sha256.empty()) {
    spdlog::info("event=service_model service={} model=\"{}\" worker={}", svc.name, describe(m),
                 w.worker_id);
    svc.model.sha256 = m.sha256;
  }
  // A rollout names only the sha256; the first worker of that model tells the rest.
  if (svc.model.kind.empty()) svc.model.kind = m.kind;
  if (svc.model.outputs.empty()) svc.model.outputs = m.outputs;
}

void BrokerCore::forget_unserved_model(Service& svc) {
  if (svc.model_pinned || svc.model.sha256.empty()) return;
  for (const auto& key : svc.workers)
    if (workers_.at(key).model.sha256 == svc.model.sha256) return;
  spdlog::info("event=service_model service={} model=none reason=\"no worker serves {} now\"",
               svc.name, svc.model.sha256);
  svc.model = schema::ModelIdentity{};
}

bool BrokerCore::admit_reported_model(const std::string& key, const schema::ModelIdentity& before) {
  Worker& w = workers_.at(key);
  const schema::ModelIdentity& now = w.model;
  if (now.sha256.empty() ||
      (now.sha256 == before.sha256 && now.kind == before.kind && now.outputs == before.outputs))
    return true;
  Service& svc = find_or_create_service(w.service);
  const std::string problem = admission_problem(svc, w);
  if (problem.empty()) {
    adopt_model(svc, w);
    return true;
  }
  const Worker copy = w;
  delete_worker(key, "model mismatch", false);
  refuse_worker(key, copy, "model_mismatch", problem);
  return false;
}

void BrokerCore::retire_when_drained(const std::string& key) {
  auto it = workers_.find(key);
  if (it == workers_.end() || !it->second.draining || !it->second.in_flight.empty()) return;
  const Worker w = it->second;
  const Service* svc = find_service(w.service);
  const std::string why = "model " + w.model.sha256 + " was replaced by a rollout of '" +
                          w.service + "' to " + (svc ? svc->model.sha256 : std::string("?")) +
                          "; this worker's jobs are done";
  delete_worker(key, "retired by rollout", false);
  refuse_worker(key, w, "model_retired", why);
}

bool BrokerCore::takes_jobs(const Worker& w, const std::string& model_sha256) const {
  return can_answer(w.state) && !w.draining &&
         (model_sha256.empty() || w.model.sha256 == model_sha256);
}

bool BrokerCore::pin_unservable(const Service& svc, const std::string& model_sha256) const {
  // Only once some worker can answer: a service still starting leaves the job to service_wait.
  if (model_sha256.empty()) return false;
  bool any = false;
  for (const auto& key : svc.workers) {
    const Worker& w = workers_.at(key);
    if (takes_jobs(w, model_sha256)) return false;
    any = any || takes_jobs(w, "");
  }
  return any;
}

std::string BrokerCore::rollout(const std::string& peer, const std::string& body) {
  auto request = ext::decode_rollout_request(body);
  if (!request) {
    ++counters_.errors["bad_request"];
    return schema::error_result(
        "", "bad_request",
        "mmi.rollout body must be a msgpack map {service, to}: " + request.status().message(),
        request.status().field());
  }
  Service& svc = find_or_create_service(request->service);
  ext::RolloutReply reply;
  reply.service = svc.name;
  reply.from = svc.model.sha256;
  reply.to = request->to;
  if (svc.model.sha256 != request->to) svc.model = schema::ModelIdentity{};
  svc.model.sha256 = request->to;
  svc.model_pinned = true;
  std::vector<std::string> drained;
  for (const auto& key : svc.workers) {
    Worker& w = workers_.at(key);
    if (w.model.sha256 == request->to) {
      ++reply.serving;
      adopt_model(svc, w);
    } else if (!w.model.sha256.empty()) {
      w.draining = true;
      ++reply.draining;
      drained.push_back(key);
    }
  }
  spdlog::info("event=rollout client={} service={} from={} to={} draining={} serving={}",
               peer_name(peer), svc.name, reply.from.empty() ? "-" : reply.from, reply.to,
               reply.draining, reply.serving);
  for (const auto& key : drained) retire_when_drained(key);
  mark_changed(svc);
  return ext::encode_rollout_reply(reply);
}

}  // namespace ecgq::broker
