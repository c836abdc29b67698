// The request path of micro_http, behind an opaque type so it can be compiled twice (see
// CMakeLists.txt): once as iolab::micro::RequestPath at -O2 and once as
// iolab_o0::micro::RequestPath at -O0. No include guard on purpose: http.cpp includes it a second
// time with `iolab` defined to `iolab_o0` to declare the -O0 copy. Include nothing project-wide
// here (those headers have guards and would not be declared again).
#include <cstddef>
#include <memory>
#include <string_view>

namespace iolab::micro {

class RequestPath {
 public:
  RequestPath();
  ~RequestPath();
  RequestPath(const RequestPath&) = delete;
  RequestPath& operator=(const RequestPath&) = delete;

  // Parses `request` (one whole head), builds the Request as the plain servers do (views of the
  // head), routes it and serialises the response head and body. Returns the
  // response's size in bytes, or 0 when the request did not parse.
  std::size_t serve(std::string_view request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iolab::micro
