// The gateway's route table: method and path pattern ("/jobs/{id}") to a handler, with what each
// route needs (a token, a body type). The OpenAPI test reads the same table.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/time.hpp"
#include "gateway/http_server.hpp"

namespace ecgq::gateway {

// What a handler knows about its request besides the request itself.
struct RequestContext {
  std::string request_id;                     // X-Request-Id (the client's, or ours)
  std::string token;                          // the token's name ("" without tokens)
  std::string route;                          // the matched pattern, the metrics' endpoint label
  std::map<std::string, std::string> params;  // path parameters by name
  SteadyClock::time_point start;              // when the request was complete
};

// Handles one matched request; must not block (see RequestHandler).
using RouteFn =
    std::function<void(HttpRequest& request, const RequestContext& ctx, Respond respond)>;

// One endpoint.
struct Route {
  std::string method;                      // GET, POST, DELETE
  std::string pattern;                     // "/v2/models/{model}/infer"
  bool open = false;                       // answers without a token (health probes)
  std::vector<std::string> content_types;  // body types accepted (prefixes); empty = no body
  RouteFn fn;
};

// Routes by method and path.
class Router {
 public:
  // The outcome of a lookup.
  struct Match {
    const Route* route = nullptr;               // null: no route for this method and path
    std::map<std::string, std::string> params;  // path parameters
    std::vector<std::string> allowed;           // methods of the path when the method is wrong
  };
  // Adds a route.
  void add(Route route) { routes_.push_back(std::move(route)); }
  // Finds the route of `method` and `path`.
  Match match(const std::string& method, const std::string& path) const;
  // Every route, in the order added.
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace ecgq::gateway
