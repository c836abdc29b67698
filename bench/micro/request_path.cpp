// The request path timed by micro_http; compiled at -O2 and at -O0 (see request_path.hpp).
#include "request_path.hpp"

#include <memory_resource>
#include <string>

#include "app.hpp"
#include "http_parser.hpp"

namespace iolab::micro {

struct RequestPath::Impl {
  ContentSource content;
  App app{"micro", content};
  http::RequestHead head;
  std::pmr::string out{std::pmr::new_delete_resource()};
};

RequestPath::RequestPath() : impl_(std::make_unique<Impl>()) {}
RequestPath::~RequestPath() = default;

std::size_t RequestPath::serve(std::string_view request) {
  std::pmr::memory_resource* mr = std::pmr::new_delete_resource();
  const http::ParseResult parsed = http::parse_request_head(request, impl_->head);
  if (parsed.status != http::ParseStatus::kComplete) return 0;
  const Request req(impl_->head, mr);
  Response resp(mr);
  impl_->app.handle(req, resp);
  impl_->out.clear();
  // As Connection::emit(): a fixed route on a keep-alive HTTP/1.1 request copies its prebuilt
  // response.
  if (impl_->head.keep_alive && !impl_->head.connection_keep_alive && impl_->head.method != "HEAD" &&
      resp.fixed()) {
    if (const std::string_view whole = impl_->app.fixed_response(resp); !whole.empty()) {
      impl_->out.append(whole);
      return impl_->out.size();
    }
  }
  impl_->app.append_head(resp, impl_->head.keep_alive, impl_->head.connection_keep_alive,
                         impl_->out);
  impl_->out.append(resp.body);
  impl_->out.append(resp.text);
  return impl_->out.size();
}

}  // namespace iolab::micro
