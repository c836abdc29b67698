#!/usr/bin/env bash
# A CPU flame graph (SVG) of a running process or of a command, sampled by perf.
#
#   bench/perf/flamegraph.sh [-d SECONDS] [-F HZ] [-o OUT.svg] -p PID     (default 10 s, 199 Hz)
#   bench/perf/flamegraph.sh [-F HZ] [-o OUT.svg] -- COMMAND [ARGS...]
#   bench/perf/flamegraph.sh --folded STACKS.folded [-o OUT.svg]          (draw folded stacks)
#
# perf samples on the cpu-clock software event (hardware cycles are "not supported" in VMs) with
# DWARF unwinding (--call-graph dwarf: the servers are built without frame pointers, with debug
# info), `perf script` prints the samples, and bench/perf/flamegraph.py folds and draws them
# (Debian 12 has no flamegraph.pl; the folded file next to the SVG works with Brendan Gregg's
# tools too). CALL_GRAPH=fp picks frame pointers instead (smaller, shallower).
# When perf is missing or refused (perf_event_paranoid above 1 for a non-root user), it says so
# and exits 1: a flame graph needs samples, there is no fallback. PERF names the perf binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
perf=${PERF:-perf}
seconds=10 hz=199 pid= out= folded=
while (($#)); do
  case $1 in
    -d) seconds=${2:?}; shift 2 ;;
    -F) hz=${2:?}; shift 2 ;;
    -p) pid=${2:?}; shift 2 ;;
    -o) out=${2:?}; shift 2 ;;
    --folded) folded=${2:?}; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
if [[ -n $folded ]]; then
  out=${out:-${folded%.folded}.svg}
  /usr/bin/python3 "$here/flamegraph.py" render "$folded" --title "$(basename "$folded")" > "$out"
  echo "flamegraph: $out"
  exit 0
fi
[[ -n $pid || $# -gt 0 ]] || usage
[[ -z $pid || $# -eq 0 ]] || usage
if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
  echo "flamegraph: no process $pid" >&2; exit 2
fi
command -v "$perf" >/dev/null 2>&1 || {
  echo "flamegraph: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
if [[ -n $pid ]]; then
  what="$(cat /proc/"$pid"/comm 2>/dev/null || echo "pid $pid")"
else
  what="$(basename "$1")"
fi
out=${out:-flamegraph-${what// /_}-$(date +%Y%m%d-%H%M%S).svg}
work=$(mktemp -d /tmp/iolab-flamegraph.XXXXXX)
trap 'rm -rf "$work"' EXIT

record=("$perf" record -q -o "$work/perf.data" -e cpu-clock -F "$hz" --call-graph "${CALL_GRAPH:-dwarf}")
rc=0
if [[ -n $pid ]]; then
  "${record[@]}" -p "$pid" -- sleep "$seconds" 2>"$work/err" || rc=$?
else
  "${record[@]}" -- "$@" 2>"$work/err" || rc=$?
fi
if [[ ! -s $work/perf.data ]]; then
  echo "flamegraph: perf record failed (exit $rc: $(grep -v '^$' "$work/err" | head -n 1)); perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo ?): as root, or with sysctl kernel.perf_event_paranoid=1, it works" >&2
  exit 1
fi
"$perf" script -i "$work/perf.data" 2>/dev/null > "$work/script.txt"
/usr/bin/python3 "$here/flamegraph.py" fold "$work/script.txt" > "${out%.svg}.folded"
samples=$(awk '{n += $NF} END {print n + 0}' "${out%.svg}.folded")
if ((samples == 0)); then
  echo "flamegraph: perf recorded no samples (did the target use any CPU?)" >&2
  exit 1
fi
/usr/bin/python3 "$here/flamegraph.py" render "${out%.svg}.folded" \
  --title "$what: $samples samples at $hz Hz (cpu-clock)" > "$out"
echo "flamegraph: $out ($samples samples; stacks in ${out%.svg}.folded)"
