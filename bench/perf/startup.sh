#!/usr/bin/env bash
# Start-up time of the same server linked statically and dynamically, timed with hyperfine (C07).
#
#   bench/perf/startup.sh [--runs N] [--model epoll_et] [--export FILE.json]
#   STARTUP_DYNAMIC=path STARTUP_STATIC=path bench/perf/startup.sh      (time binaries you built)
#
# C07 claims a static binary starts in 2-5 ms and a dynamic one in 15-30 ms. This script builds
# server_MODEL twice from this source tree, in scratch build directories under /tmp, one pair per
# user (Release; one with -DCMAKE_EXE_LINKER_FLAGS=-static), checks with ldd which is which, and times
# whole processes (hyperfine -N, no shell in between), in two ways:
#   help:  `server --help`: exec, dynamic loading and relocation, static initialisers, exit;
#   ready: a bash coproc starts `server --port 0`, reads its ready line, stops it (this adds
#          bash and the server's own set-up, e.g. its 16 MiB content file); the line
#          `wrapper` is the same bash with /bin/echo instead of the server, to subtract.
# If the static link fails, it prints the linker's reason and exits 1 (glibc links statically
# for these servers; a library without a static archive would be the usual cause).
# HYPERFINE names the hyperfine binary (tests use a missing one).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
usage() { sed -n '4,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
hyperfine=${HYPERFINE:-hyperfine}
runs=30 model=epoll_et export=
while (($#)); do
  case $1 in
    --runs) runs=${2:?}; shift 2 ;;
    --model) model=${2:?}; shift 2 ;;
    --export) export=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
command -v "$hyperfine" >/dev/null 2>&1 || {
  echo "startup: hyperfine is not installed (apt-get install hyperfine)" >&2; exit 1; }

build_variant() {  # build_variant NAME EXTRA_CMAKE_ARGS... -> path of the binary on stdout
  local name=$1; shift
  # Kept between runs (rebuilds are quick), one per user and source tree: CMake refuses a build
  # folder configured from another checkout (a second clone, a git worktree).
  local tree
  tree=$(printf '%s' "$root" | md5sum | cut -c1-8)
  local dir=/tmp/iolab-startup-$(id -u)-$tree-$name
  echo "startup: building server_$model ($name) in $dir" >&2
  if ! { cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" &&
         cmake --build "$dir" -j 2 --target "server_$model"; } > "$dir.log" 2>&1; then
    echo "startup: the $name build failed; the end of $dir.log:" >&2
    grep -E 'error|warning|undefined' "$dir.log" | tail -n 8 >&2 || tail -n 8 "$dir.log" >&2
    return 1
  fi
  echo "$dir/bin/server_$model"
}

dynamic=${STARTUP_DYNAMIC:-}
static=${STARTUP_STATIC:-}
if [[ -z $dynamic ]]; then dynamic=$(build_variant dynamic) || exit 1; fi
if [[ -z $static ]]; then
  static=$(build_variant static -DCMAKE_EXE_LINKER_FLAGS=-static) || {
    echo "startup: no static variant, so no comparison (C07 untested here)" >&2; exit 1; }
fi
for b in "$dynamic" "$static"; do
  [[ -x $b ]] || { echo "startup: $b is not an executable" >&2; exit 1; }
  if ldd "$b" >/dev/null 2>&1; then kind="dynamic ($(ldd "$b" | wc -l) libraries)"; else kind=static; fi
  echo "startup: $b: $kind" >&2
done

work=$(mktemp -d /tmp/iolab-startup.XXXXXX)
trap 'rm -rf "$work"' EXIT
ready() {  # the command that starts $1 and stops it once it prints its ready line
  printf "bash -c 'coproc S { exec %s; }; read -r line <&\"\${S[0]}\"; kill \$S_PID 2>/dev/null; wait \$S_PID; [[ \$line == *listening* ]]'" "$1"
}
"$hyperfine" -N --warmup 3 --runs "$runs" --export-json "$work/h.json" --style basic \
  -n help-dynamic "$dynamic --help" -n help-static "$static --help" \
  -n ready-dynamic "$(ready "$dynamic --port 0")" -n ready-static "$(ready "$static --port 0")" \
  -n wrapper "$(ready "/bin/echo listening")" >&2
[[ -z $export ]] || cp "$work/h.json" "$export"
/usr/bin/python3 - "$work/h.json" "$dynamic" "$static" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
ms = lambda k: round(1000 * res[k]["mean"], 3)
sd = lambda k: round(1000 * (res[k]["stddev"] or 0), 3)
out = {"claim": "C07", "dynamic": sys.argv[2], "static": sys.argv[3],
       "runs": len(res["help-dynamic"]["times"]),
       "mean_ms": {k: ms(k) for k in res}, "stddev_ms": {k: sd(k) for k in res},
       "help_dynamic_minus_static_ms": round(ms("help-dynamic") - ms("help-static"), 3),
       "ready_dynamic_minus_static_ms": round(ms("ready-dynamic") - ms("ready-static"), 3),
       "ready_minus_wrapper_ms": {"dynamic": round(ms("ready-dynamic") - ms("wrapper"), 3),
                                  "static": round(ms("ready-static") - ms("wrapper"), 3)}}
for k in ("help-dynamic", "help-static", "ready-dynamic", "ready-static", "wrapper"):
    print(f"{k:>14}: {ms(k):8.3f} ms +- {sd(k):.3f}", file=sys.stderr)
print(json.dumps(out, sort_keys=True))
PY
