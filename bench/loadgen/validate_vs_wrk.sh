#!/usr/bin/env bash
# Validates loadgen against wrk on the same server, closed loop: the verdict below.
#
# Starts nginx with servers/reference/nginx (one process, pinned to the server CPU), then runs
# wrk and loadgen in turn, both pinned to the client CPU, closed loop, same connections and
# duration, interleaved (wrk loadgen, loadgen wrk, ...) so slow drifts of the machine hit both.
# Each client's CPU time comes from /usr/bin/time (user and system of the whole process), its
# requests and req/s from its own report. Prints one row per run and the medians with their
# spread ((max - min) / median), then the verdict:
#   loadgen req/s >= 0.97 x wrk req/s   and   loadgen user CPU/request <= wrk's.
# A req/s spread over 15% makes the comparison invalid (bench/compare.py's rule). The columns
# say why: CPU time went elsewhere (steal%, or a low cpu% with nginx_cpu% also low while other
# jobs ran), or both sides idled waiting for each other's cross-CPU wake-ups (expensive in VMs),
# a regime either client can fall into on a 2-CPU VM.
#
# Usage: bench/loadgen/validate_vs_wrk.sh [--runs 5] [--duration 5] [--connections 64]
#          [--path /ping] [--loadgen build/bin/loadgen] [--server-cpu 1] [--client-cpu 0]
#          [--nice N]
# --nice runs nginx and both clients at that niceness (negative needs root): on a machine shared
# with other jobs it keeps them from taking the measured CPUs; both clients get the same.
# Loopback only, bounded (runs <= 15, duration <= 30 s), and it stops the nginx it started.
# Exit status: 0 pass, 3 fail, 4 invalid (spread too large), 1 could not run.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=5
duration=5
connections=64
path=/ping
loadgen=$root/build/bin/loadgen
server_cpu=1
client_cpu=0
nice_level=0
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --path) path=$2; shift 2 ;;
    --loadgen) loadgen=$2; shift 2 ;;
    --server-cpu) server_cpu=$2; shift 2 ;;
    --client-cpu) client_cpu=$2; shift 2 ;;
    --nice) nice_level=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "validate_vs_wrk: unknown argument $1" >&2; exit 1 ;;
  esac
done
case $runs in ''|*[!0-9]*) echo "validate_vs_wrk: --runs must be a number" >&2; exit 1 ;; esac
case $nice_level in ''|*[!0-9-]*) echo "validate_vs_wrk: --nice must be a number" >&2; exit 1 ;; esac
case $duration in ''|*[!0-9]*) echo "validate_vs_wrk: --duration must be whole seconds" >&2; exit 1 ;; esac
if [ "$runs" -lt 1 ] || [ "$runs" -gt 15 ] || [ "$duration" -lt 1 ] || [ "$duration" -gt 30 ]; then
  echo "validate_vs_wrk: keep --runs in 1..15 and --duration in 1..30" >&2
  exit 1
fi

python=/usr/bin/python3
for tool in nginx wrk taskset; do
  if ! command -v "$tool" > /dev/null; then
    echo "validate_vs_wrk: $tool is not installed (apt-get install nginx-light wrk util-linux)" >&2
    exit 1
  fi
done
for file in /usr/bin/time "$python" "$loadgen"; do
  if [ ! -x "$file" ]; then echo "validate_vs_wrk: $file is missing" >&2; exit 1; fi
done

prefix=$(mktemp -d /tmp/iolab-validate.XXXXXX)
nginx_pid=
cleanup() {
  if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2> /dev/null; then
    kill -TERM "$nginx_pid" 2> /dev/null || true
    wait "$nginx_pid" 2> /dev/null || true
  fi
  rm -rf "$prefix"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: bind port 0, read it back, release it.
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$prefix/tmp"
nofile=$(ulimit -Hn)
if [ "$nofile" = unlimited ]; then nofile=1048576; fi
sed -e "s/@PORT@/$port/" -e "s/@NOFILE@/$nofile/" \
  "$root/servers/reference/nginx/nginx.conf.in" > "$prefix/nginx.conf"
nice -n "$nice_level" taskset -c "$server_cpu" nginx -p "$prefix/" -e "$prefix/error.log" -c "$prefix/nginx.conf" &
nginx_pid=$!
url=http://127.0.0.1:$port$path
for _ in $(seq 100); do
  if "$python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.1)" 2> /dev/null; then
    break
  fi
  sleep 0.05
done
"$loadgen" --url "$url" -c 4 -d 1s > /dev/null 2>&1 || { echo "validate_vs_wrk: nginx does not answer $url" >&2; exit 1; }

results=$prefix/results.tsv
: > "$results"
# Steal ticks (USER_HZ) of the client and the server CPU: time the host ran something else.
# Then nginx's CPU ticks (utime + stime): near 100% of a run, nginx and not the client was the
# bottleneck.
steal() {
  awk -v c="cpu$client_cpu" -v s="cpu$server_cpu" '$1 == c {a = $9} $1 == s {b = $9} END {printf "%s %s ", a, b}' /proc/stat
  awk '{print $14 + $15}' "/proc/$nginx_pid/stat"
}
run_wrk() {
  local before; before=$(steal)
  /usr/bin/time -f "%U %S" -o "$prefix/time" \
    nice -n "$nice_level" taskset -c "$client_cpu" wrk -t1 -c"$connections" -d"${duration}s" "$url" > "$prefix/wrk.out"
  "$python" - "$prefix/wrk.out" "$prefix/time" "$1" "$before" "$(steal)" >> "$results" <<'EOF'
import re, sys
out = open(sys.argv[1]).read()
user, sys_cpu = map(float, open(sys.argv[2]).read().split()[-2:])
requests = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
errors = re.search(r"(Socket errors|Non-2xx).*", out)
steal = [int(b) - int(a) for a, b in zip(sys.argv[4].split(), sys.argv[5].split())]
print(f"wrk\t{sys.argv[3]}\t{rps}\t{requests}\t{user}\t{sys_cpu}\t{1 if errors else 0}\t{steal[0]}\t{steal[1]}\t{steal[2]}")
EOF
}
run_loadgen() {
  local before; before=$(steal)
  /usr/bin/time -f "%U %S" -o "$prefix/time" \
    nice -n "$nice_level" taskset -c "$client_cpu" "$loadgen" --url "$url" -c "$connections" -t 1 -d "${duration}s" \
    --json "$prefix/lg.json" > /dev/null 2> "$prefix/lg.err"
  "$python" - "$prefix/lg.json" "$prefix/time" "$1" "$before" "$(steal)" >> "$results" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
user, sys_cpu = map(float, open(sys.argv[2]).read().split()[-2:])
steal = [int(b) - int(a) for a, b in zip(sys.argv[4].split(), sys.argv[5].split())]
print(f"loadgen\t{sys.argv[3]}\t{r['rps']}\t{r['requests']}\t{user}\t{sys_cpu}\t{r['errors']['total']}\t{steal[0]}\t{steal[1]}\t{steal[2]}")
EOF
}

echo "validate_vs_wrk: nginx on CPU $server_cpu, clients on CPU $client_cpu, $url," \
  "-c$connections, $runs x ${duration}s each, interleaved, nice $nice_level" >&2
for i in $(seq "$runs"); do
  if [ $((i % 2)) -eq 1 ]; then run_wrk "$i"; run_loadgen "$i"; else run_loadgen "$i"; run_wrk "$i"; fi
  echo "  run $i/$runs done" >&2
done

"$python" - "$results" "$runs" "$duration" "$connections" "$url" <<'EOF'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
print(f"# loadgen vs wrk: nginx 1 worker; closed loop -c{sys.argv[4]} -t1; {sys.argv[2]} interleaved runs of {sys.argv[3]} s; {sys.argv[5]}")
print("client   run      req/s   requests  user_s   sys_s   cpu%  user_us/req  cpu_us/req  errors  steal%(client,server)  nginx_cpu%")
table = {}
duration = float(sys.argv[3])
for tool, run, rps, requests, user, sys_cpu, errors, steal_c, steal_s, server in rows:
    rps, requests, user, sys_cpu = float(rps), int(requests), float(user), float(sys_cpu)
    u = user * 1e6 / requests if requests else float("inf")
    c = (user + sys_cpu) * 1e6 / requests if requests else float("inf")
    share = (user + sys_cpu) / duration * 100
    table.setdefault(tool, []).append((rps, u, c, int(errors)))
    steal = f"{int(steal_c) / duration:5.1f} {int(steal_s) / duration:5.1f}"  # ticks are 1/100 s
    print(f"{tool:8} {run:>3} {rps:10.0f} {requests:10d} {user:7.2f} {sys_cpu:7.2f} {share:5.0f}% {u:12.3f} {c:11.3f} {errors:>7}  {steal:>21}  {int(server) / duration:9.0f}%")
def summary(tool):
    rps = [r[0] for r in table[tool]]
    u = [r[1] for r in table[tool]]
    c = [r[2] for r in table[tool]]
    med = lambda v: statistics.median(v)
    spread = lambda v: (max(v) - min(v)) / med(v) if med(v) else 0
    return med(rps), spread(rps), med(u), spread(u), med(c), spread(c), sum(r[3] for r in table[tool])
print()
print("client     median req/s (spread)   median user_us/req (spread)   median cpu_us/req (spread)  errors")
s = {}
for tool in ("wrk", "loadgen"):
    s[tool] = summary(tool)
    m, ms, u, us, c, cs, e = s[tool]
    print(f"{tool:8} {m:14.0f} ({ms*100:4.1f}%) {u:20.3f} ({us*100:4.1f}%) {c:19.3f} ({cs*100:4.1f}%) {e:7d}")
ratio = s["loadgen"][0] / s["wrk"][0]
pairs = [l[0] / w[0] for w, l in zip(table["wrk"], table["loadgen"])]
print(f"per-run loadgen/wrk req/s: {' '.join(f'{p:.3f}' for p in pairs)} (median {statistics.median(pairs):.3f})")
cpu_ok = s["loadgen"][2] <= s["wrk"][2]
print()
print(f"loadgen/wrk req/s = {ratio:.3f} (need >= 0.97); user CPU/request {s['loadgen'][2]:.3f} vs {s['wrk'][2]:.3f} us (need <=)")
ok = ratio >= 0.97 and cpu_ok and s["loadgen"][6] == 0
print(f"criteria on the medians: {'PASS' if ok else 'FAIL'}")
if max(s["wrk"][1], s["loadgen"][1]) > 0.15:
    print("INVALID: a req/s spread is over 15% (CPU time was taken by other work or the host:")
    print("see the cpu% column and steal in /proc/stat); run again on a quiet machine")
    sys.exit(4)
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 3)
EOF
