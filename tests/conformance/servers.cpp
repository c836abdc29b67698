// The servers the conformance suite runs against, and the suite instantiated once for all of them
// (the cases are in the *_test.cpp files of this folder, on the fixture in conformance.hpp).
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "conformance.hpp"

namespace iolab::test {

// One line per server binary and mode.
const std::vector<ServerSpec> kServers = {
    {"threads", "server_threads", {}},
    {"epoll_et", "server_epoll_et", {}},
    {"epoll_et_2loops", "server_epoll_et", {"--threads", "2"}},
    {"coro", "server_coro", {}},
    {"coro_2workers", "server_coro", {"--threads", "2"}},
    {"io_uring", "server_io_uring", {}},
    {"io_uring_oneshot", "server_io_uring", {"--recv-multishot", "0"}},
    {"io_uring_coop_2loops", "server_io_uring", {"--defer-taskrun", "0", "--threads", "2"}},
    {"io_uring_sqpoll", "server_io_uring", {"--sqpoll", "1"}},
    {"select", "server_select", {}},
    {"select_2loops", "server_select", {"--threads", "2"}},
    {"pooled", "server_pooled", {}},
    {"pooled_2loops", "server_pooled", {"--threads", "2"}},
};

// IOLAB_SERVER_UNDER_TEST=/path/to/server_x replaces kServers by that one binary, named "lab"
// (the lab checks use it); its folder becomes the bin directory (bin_dir() below).
std::vector<ServerSpec> servers_under_test() {
  const char* env = std::getenv("IOLAB_SERVER_UNDER_TEST");
  if (env == nullptr || *env == '\0') return kServers;
  return {{"lab", std::filesystem::path(env).filename().string(), {}}};
}

std::string ParamName(const ::testing::TestParamInfo<ServerSpec>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Servers, Conformance, ::testing::ValuesIn(servers_under_test()),
                         ParamName);

}  // namespace iolab::test
