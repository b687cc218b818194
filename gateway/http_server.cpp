#include "gateway/http_server.hpp"

#include <spdlog/spdlog.h>

#include "gateway/http_session.hpp"

namespace ecgq::gateway {

using namespace detail;
namespace ssl = net::ssl;

namespace {

// Accepts connections, refusing those over max_connections at once with a short 503.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& ioc, tcp::acceptor acceptor, ssl::context* tls, SessionContext ctx)
      : ioc_(ioc), acceptor_(std::move(acceptor)), tls_(tls), ctx_(std::move(ctx)), retry_(ioc) {}

  void accept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
                             self->on_accept(ec, std::move(s));
                           });
  }

  void close() {
    beast::error_code ec;
    acceptor_.close(ec);
    retry_.cancel();
  }

 private:
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // Out of descriptors or memory: wait instead of spinning; connections close meanwhile.
      spdlog::warn("event=accept_failed reason=\"{}\"", ec.message());
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([self = shared_from_this()](beast::error_code e) {
        if (!e) self->accept();
      });
      return;
    }
    if (ctx_.stats->open.load() >= ctx_.limits->max_connections) {
      refuse(socket);
    } else {
      ctx_.stats->accepted.fetch_add(1);
      beast::error_code pe;
      const auto ep = socket.remote_endpoint(pe);
      const std::string peer =
          pe ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
      socket.set_option(tcp::no_delay(true), pe);
      if (tls_ != nullptr) {
        std::make_shared<Session<TlsStream>>(ctx_, peer, std::move(socket), *tls_)->run();
      } else {
        std::make_shared<Session<PlainStream>>(ctx_, peer, std::move(socket))->run();
      }
    }
    accept();
  }

  // A best-effort 503 that never waits: the socket's send buffer is empty, so it fits.
  void refuse(tcp::socket& socket) {
    ctx_.stats->refused.fetch_add(1);
    static const std::string kBody =
        "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"the gateway has too "
        "many connections open\",\"field\":\"\"}}";
    static const std::string kBusy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
        std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
    beast::error_code ec;
    if (tls_ == nullptr) {
      socket.non_blocking(true, ec);
      socket.write_some(net::buffer(kBusy), ec);
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  ssl::context* tls_;
  SessionContext ctx_;
  net::steady_timer retry_;
};

}  // namespace

struct HttpServer::Impl {
  explicit Impl(int threads) : ioc(threads), work(net::make_work_guard(ioc)) {}
  net::io_context ioc;
  // Keeps run() going while no socket operation is pending (after stop_accepting, answers to
  // requests that wait on the broker are posted into an otherwise idle context).
  net::executor_work_guard<net::io_context::executor_type> work;
  std::optional<ssl::context> tls;
  std::shared_ptr<Listener> listener;
};

HttpServer::HttpServer(ServerOptions options, HeadCheck head_check, RequestHandler handler)
    : options_(std::move(options)),
      head_check_(std::move(head_check)),
      handler_(std::move(handler)),
      stats_(std::make_shared<ServerStats>()),
      impl_(std::make_unique<Impl>(options_.threads)) {}

HttpServer::~HttpServer() {
  stop();
}

Status HttpServer::start() {
  ssl::context* tls = nullptr;
  if (!options_.tls_cert.empty()) {
    try {
      impl_->tls.emplace(ssl::context::tls_server);
      impl_->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                              ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                              ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
      impl_->tls->use_certificate_chain_file(options_.tls_cert);
      impl_->tls->use_private_key_file(options_.tls_key, ssl::context::pem);
    } catch (const std::exception& e) {
      return Status("bad_config",
                    "cannot load TLS certificate " + options_.tls_cert + " / key " +
                        options_.tls_key + ": " + e.what(),
                    "tls_cert");
    }
    tls = &*impl_->tls;
  }
  beast::error_code ec;
  const auto address = net::ip::make_address(options_.host, ec);
  if (ec) {
    return Status("bad_config", "bind address '" + options_.host + "' is not an IP address",
                  "bind");
  }
  tcp::acceptor acceptor(impl_->ioc);
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status("bind_failed",
                  "cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " +
                      ec.message(),
                  "bind");
  }
  port_ = acceptor.local_endpoint().port();
  SessionContext ctx{&options_.limits, &head_check_, &handler_, stats_};
  impl_->listener = std::make_shared<Listener>(impl_->ioc, std::move(acceptor), tls, ctx);
  impl_->listener->accept();
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] { impl_->ioc.run(); });
  }
  return Status::Ok();
}

void HttpServer::stop_accepting() {
  if (impl_->listener) {
    net::post(impl_->ioc, [l = impl_->listener] { l->close(); });
  }
}

void HttpServer::stop() {
  stop_accepting();
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace ecgq::gateway
