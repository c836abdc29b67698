#!/usr/bin/env bash
# Instructions and cache misses per request of a server, counted (not timed) by valgrind.
#
#   bench/perf/instructions_per_request.sh MODEL [REQUESTS] [PATH]     e.g. pooled 20000 /ping
#   SERVER_FLAGS="--defer-taskrun 0 --recv-multishot 0" bench/perf/instructions_per_request.sh io_uring
#
# server_io_uring with its defaults (SINGLE_ISSUER|DEFER_TASKRUN, multishot recv on a provided-
# buffer ring) blocks in io_uring_enter under valgrind 3.19 before it is ready or before it
# answers; with COOP_TASKRUN and one-shot recv (the flags above) it runs: the same core per
# request, a different submission per read.
#
# Runs build/bin/server_MODEL under callgrind with instrumentation off, warms it up, switches
# counting on (callgrind_control -i on) for exactly REQUESTS keep-alive requests from loadgen,
# switches it off, and prints Ir (instructions), D1 and LL misses per request from the
# simulated caches. Deterministic for a given binary and request stream: the way to compare
# servers on a machine without hardware counters. Loopback only; it stops the server it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
model=${1:?usage: instructions_per_request.sh MODEL [REQUESTS] [PATH]}
requests=${2:-20000}
path=${3:-/ping}
bin=${BIN_DIR:-$root/build/bin}
for tool in valgrind callgrind_control callgrind_annotate; do
  command -v "$tool" >/dev/null || { echo "instructions_per_request: $tool missing (apt-get install valgrind)" >&2; exit 1; }
done
[[ -x $bin/server_$model && -x $bin/loadgen ]] || { echo "instructions_per_request: build first (make build)" >&2; exit 1; }

work=$(mktemp -d /tmp/iolab-callgrind.XXXXXX)
pid=
# Stops the server: SIGTERM, then SIGKILL after 10 s (a process blocked in a system call valgrind
# cannot interrupt never sees the SIGTERM: server_io_uring waiting in io_uring_enter did that).
stop_server() {
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
cleanup() { [[ -n ${KEEP:-} ]] && echo "kept $work" >&2 && return; stop_server; rm -rf "$work"; }
trap cleanup EXIT
valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes --callgrind-out-file="$work/out" \
  "$bin/server_$model" --port 0 ${SERVER_FLAGS:-} > "$work/stdout" 2> "$work/stderr" &
pid=$!
for _ in $(seq 300); do grep -q listening "$work/stdout" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\) .*/\1/p' "$work/stdout")
[[ -n $port ]] || { echo "instructions_per_request: server_$model printed no listening line within 30 s under valgrind: $(grep -v '^==' "$work/stderr" | tail -n 5)" >&2; exit 1; }
# Bounded: a server that stops answering under valgrind fails the run instead of hanging it.
timeout 300 "$bin/loadgen" --url "http://127.0.0.1:$port$path" --requests 2000 --connections 4 --json /dev/null >/dev/null 2>&1 ||
  { echo "instructions_per_request: warm-up against server_$model under valgrind failed" >&2; exit 1; }
callgrind_control -i on "$pid" >/dev/null 2>&1
timeout 900 "$bin/loadgen" --url "http://127.0.0.1:$port$path" --requests "$requests" --connections 4 --json "$work/lg.json" >/dev/null 2>&1 ||
  { echo "instructions_per_request: the counted run against server_$model under valgrind failed" >&2; exit 1; }
callgrind_control -i off "$pid" >/dev/null 2>&1
# Dump the counts now: a server that dies by SIGKILL below (server_io_uring blocked in
# io_uring_enter) writes no profile at exit. The exit profile, when there is one, adds nothing:
# instrumentation is off from here. Totals are summed over every profile file.
callgrind_control -d "$pid" >/dev/null 2>&1 || true
stop_server
totals=$(for f in "$work"/out*; do [[ -s $f ]] && callgrind_annotate "$f" 2>/dev/null | grep "PROGRAM TOTALS" | head -n 1 | tr -d ','; done |
  awk '{for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) { s[i] += $i; n = (i > n ? i : n) }} END {for (i = 1; i <= n; i++) if (i in s) printf "%d ", s[i]}' || true)
/usr/bin/python3 - "$model" "$requests" "$path" "$work/lg.json" $totals <<'PY'
import json, sys
model, requests, path, lg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
vals = [int(v) for v in sys.argv[5:] if v.isdigit()]
names = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]  # callgrind's order
t = dict(zip(names, vals))
done = json.load(open(lg))
assert done["requests"] == requests and done["errors"]["total"] == 0, "loadgen run incomplete"
per = lambda k: t.get(k, 0) / requests
print(json.dumps({"model": model, "path": path, "requests": requests,
                  "instructions_per_request": round(per("Ir"), 1),
                  "d1_misses_per_request": round(per("D1mr") + per("D1mw"), 2),
                  "ll_misses_per_request": round(per("DLmr") + per("DLmw") + per("ILmr"), 3)}))
PY
