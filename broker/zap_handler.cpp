#include "broker/zap_handler.hpp"

#include <spdlog/spdlog.h>

#include "common/text.hpp"
#include "protocol/curve.hpp"
#include "protocol/zmq_frames.hpp"

namespace ecgq::broker {

namespace {

// RFC 27 request frames: version, request id, domain, address, identity, mechanism,
// credentials...
constexpr size_t kRequestFrames = 6;

}  // namespace

ZapHandler::ZapHandler(zmq::context_t& context, std::shared_ptr<const KeyStore> keys)
    : socket_(context, zmq::socket_type::rep), keys_(std::move(keys)) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
}

void ZapHandler::answer_pending() {
  while (true) {
    auto request = mdp::recv_frames(socket_, zmq::recv_flags::dontwait);
    if (!request) return;
    const mdp::Frames& r = *request;
    std::string status = "400", text = "malformed ZAP request", user_id;
    if (r.size() >= kRequestFrames && r[0] == "1.0") {
      const std::string& address = r[3];
      const std::string& mechanism = r[5];
      if (mechanism != "CURVE" || r.size() < kRequestFrames + 1 || r[6].size() != 32) {
        text = "CURVE required";
        ++refused_;
        spdlog::warn("event=peer_refused reason=not_curve mechanism={} address={}",
                     loggable(mechanism, 16), loggable(address, 64));
      } else {
        char z85[41];
        zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(r[6].data()), 32);
        const unsigned roles = keys_->roles(z85);
        if (roles == 0) {
          text = "unknown key";
          ++refused_;
          spdlog::warn("event=peer_refused reason=unknown_key key={} address={}",
                       curve::fingerprint(z85), loggable(address, 64));
        } else {
          status = "200";
          text = "OK";
          user_id = z85;
          ++admitted_;
          spdlog::info("event=peer_admitted key={} roles={} address={}", curve::fingerprint(z85),
                       role_names(roles), loggable(address, 64));
        }
      }
    }
    const std::string request_id = r.size() > 1 ? r[1] : "";
    mdp::send_frames(socket_, {"1.0", request_id, status, text, user_id, ""});
  }
}

}  // namespace ecgq::broker
