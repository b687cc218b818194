// One HTTP connection of the gateway's server (plain or TLS): read the headers, let the head check
// answer early, read the body within its limits, hand the request over, write the answer, repeat
// while keep-alive. Internal to http_server.cpp.
#pragma once

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "gateway/http_server.hpp"

namespace ecgq::gateway::detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// What every session needs from its server (owned by the server, which outlives its sessions'
// I/O).
struct SessionContext {
  const ServerLimits* limits = nullptr;
  const HeadCheck* head_check = nullptr;
  const RequestHandler* handler = nullptr;
  std::shared_ptr<ServerStats> stats;
};

// Time a closing connection keeps reading (and dropping) an unread body, so that the client reads
// our early answer (413, 401) instead of a reset.
inline constexpr std::chrono::seconds kLingerTime{2};

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  // Takes the accepted socket (and for TLS the context) as `args` of the stream.
  template <class... Args>
  Session(SessionContext context, std::string peer, Args&&... args)
      : stream_(std::forward<Args>(args)...), context_(std::move(context)), peer_(std::move(peer)) {
    context_.stats->open.fetch_add(1);
  }
  ~Session() { context_.stats->open.fetch_sub(1); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts the connection on its strand.
  void run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->start(); });
  }

 private:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  void start() {
    if constexpr (kTls) {
      lowest().expires_after(context_.limits->header_timeout);
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->on_error(ec, "tls_handshake");
                                self->read_header();
                              });
    } else {
      read_header();
    }
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(context_.limits->max_header_bytes));
    // Checked by hand after the header, for a clear 413 (Boost 1.74 mis-compares boost::none).
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    lowest().expires_after(first_ ? context_.limits->header_timeout
                                  : context_.limits->keep_alive_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    first_ = false;
    if (ec == http::error::header_limit) return fail(431, "request headers are too large");
    if (ec) return on_error(ec, "header");
    auto& msg = parser_->get();
    head_ = HttpRequest{};
    head_.method = std::string(msg.method_string());
    head_.target = std::string(msg.target());
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      head_.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    head_.peer = peer_;
    head_.tls = kTls;
    parse_target(head_);
    keep_alive_ = msg.keep_alive();
    const bool has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;
    if (parser_->content_length() &&
        *parser_->content_length() > static_cast<uint64_t>(context_.limits->max_body_bytes)) {
      return fail(413, "the body is " + std::to_string(*parser_->content_length()) +
                           " bytes; the limit is " +
                           std::to_string(context_.limits->max_body_bytes));
    }
    if (auto early = (*context_.head_check)(head_)) {
      if (has_body) early->close = true;
      return write(std::move(*early));
    }
    if (!has_body) return dispatch();
    if (beast::iequals(head_.header("expect"), "100-continue")) return send_continue();
    read_body();
  }

  void send_continue() {
    auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    lowest().expires_after(context_.limits->body_timeout);
    http::async_write(stream_, *cont,
                      [self = this->shared_from_this(), cont](beast::error_code ec, size_t) {
                        if (ec) return self->on_error(ec, "continue");
                        self->read_body();
                      });
  }

  void read_body() {
    parser_->body_limit(static_cast<uint64_t>(context_.limits->max_body_bytes));
    lowest().expires_after(context_.limits->body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec == http::error::body_limit) {
                         return self->fail(
                             413, "the body is larger than " +
                                      std::to_string(self->context_.limits->max_body_bytes) +
                                      " bytes");
                       }
                       // A timeout (beast has closed the socket: no 408 can be sent) or a
                       // client that went away ends the connection.
                       if (ec) return self->on_error(ec, "body");
                       self->dispatch();
                     });
  }

  void dispatch() {
    lowest().expires_never();
    HttpRequest request = std::move(head_);
    request.body = parser_->release().body();
    watch_ = std::make_shared<ClientWatch>();
    request.watch = watch_;
    watch_client();
    auto self = this->shared_from_this();
    Respond respond = [self](HttpResponse response) {
      net::post(self->stream_.get_executor(),
                [self, r = std::move(response)]() mutable { self->write(std::move(r)); });
    };
    (*context_.handler)(std::move(request), std::move(respond));
  }

  // While the request waits for its answer, a closed connection (the client gave up) is told to
  // the handler through the watch. Readable with bytes means the client pipelined (or TLS sent a
  // record): it is still there, stop watching; readable with nothing to read means it left.
  void watch_client() {
    lowest().socket().async_wait(
        tcp::socket::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
          if (ec || !self->watch_) return;  // cancelled: the answer is being written
          char byte;
          const ssize_t n =
              ::recv(self->lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            spdlog::debug("event=client_gone peer={}", self->peer_);
            self->watch_->gone();
            self->watch_.reset();
          } else if (n < 0) {
            self->watch_client();  // spurious wake-up
          }
        });
  }

  // Answers a request that cannot go on and closes the connection.
  void fail(int status, const std::string& message) {
    HttpResponse r;
    r.status = status;
    r.close = true;
    r.body = std::string("{\"error\":{\"code\":\"") +
             (status == 413 ? "body_too_large" : "bad_request") + "\",\"message\":\"" + message +
             "\",\"field\":\"\"}}";
    write(std::move(r));
  }

  void write(HttpResponse r) {
    if (watch_) {
      watch_.reset();
      beast::error_code ignored;
      lowest().socket().cancel(ignored);  // ends watch_client's wait
    }
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    res->reason(reason_phrase(r.status));
    res->set(http::field::server, "ecgq-gateway");
    if (!r.content_type.empty()) res->set(http::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res->set(k, v);
    res->body() = std::move(r.body);
    const bool close = r.close || !keep_alive_;
    res->keep_alive(!close);
    res->prepare_payload();
    lowest().expires_after(context_.limits->body_timeout);
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res, close](beast::error_code ec, size_t) {
                        if (ec) return self->on_error(ec, "write");
                        if (close) return self->linger();
                        self->read_header();
                      });
  }

  // Half-closes, then drops whatever the client still sends for a short while, so it can read
  // the answer before the connection goes.
  void linger() {
    if constexpr (kTls) {
      lowest().expires_after(std::chrono::seconds(1));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
      lowest().expires_after(kLingerTime);
      scratch_ = std::make_unique<char[]>(kScratchBytes);  // only lingering sessions pay for it
      drain();
    }
  }

  void drain() {
    lowest().async_read_some(net::buffer(scratch_.get(), kScratchBytes),
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               if (!ec) self->drain();
                             });
  }

  void on_error(beast::error_code ec, const char* where) {
    if (ec == beast::error::timeout) context_.stats->timeouts.fetch_add(1);
    if (ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == beast::error::timeout ||
        ec == net::error::connection_reset) {
      spdlog::debug("event=connection_closed peer={} during={} reason=\"{}\"", peer_, where,
                    ec.message());
      return;
    }
    if (ec.category() == beast::error_code(http::error::bad_target).category() &&
        std::string(where) == "header") {
      return fail(400, "malformed HTTP request: " + ec.message());
    }
    spdlog::debug("event=connection_error peer={} during={} reason=\"{}\"", peer_, where,
                  ec.message());
  }

  Stream stream_;
  SessionContext context_;
  std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest head_;
  std::shared_ptr<ClientWatch> watch_;  // of the request waiting for its answer
  bool first_ = true;
  bool keep_alive_ = true;
  static constexpr size_t kScratchBytes = 16384;
  std::unique_ptr<char[]> scratch_;  // where a lingering connection drops what still arrives
};

}  // namespace ecgq::gateway::detail
