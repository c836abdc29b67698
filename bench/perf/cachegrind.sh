#!/usr/bin/env bash
# Instructions and simulated cache misses per request of a server, under valgrind.
#
#   bench/perf/cachegrind.sh MODEL [REQUESTS] [PATH]      e.g. bench/perf/cachegrind.sh pooled 20000 /ping
#
# The name bench/micro/README.md and lab 07 use for instructions_per_request.sh, which
# does the work (callgrind with its cache simulator, counting exactly REQUESTS requests; see its
# header). Deterministic, and needs no hardware counters: this VM has none.
exec "$(dirname "$0")/instructions_per_request.sh" "$@"
