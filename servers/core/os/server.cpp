#include "server.hpp"

#include <sys/socket.h>

#include <cstdio>
#include <span>

#include "stats.hpp"

namespace iolab {

void refuse(const SharedState& shared, UniqueFd socket) {
  ::send(socket.get(), shared.refusal.data(), shared.refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  count(Counter::kConnectionsRefused);
}

void pin_worker(const Options& options, int index) {
  if (options.pin.empty()) return;
  const int cpu = options.pin[static_cast<std::size_t>(index) % options.pin.size()];
  pin_current_thread(std::span<const int>(&cpu, 1));
}

void count_connection_error(std::string_view model, std::string_view what) {
  std::fprintf(stderr, "server_%.*s: closing a connection: %.*s\n", static_cast<int>(model.size()),
               model.data(), static_cast<int>(what.size()), what.data());
  count(Counter::kConnectionErrors);
}

void print_final_stats(std::string_view model) {
  std::printf("%s\n", stats_json(model).c_str());
  std::fflush(stdout);
}

}  // namespace iolab
