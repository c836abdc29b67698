#!/usr/bin/env bash
# perf stat for a running process or a command, degrading gracefully where perf cannot count.
#
#   bench/perf/perfstat.sh [-d SECONDS] [-e EVENTS] [--json] -p PID      (default 5 s)
#   bench/perf/perfstat.sh [-e EVENTS] [--json] -- COMMAND [ARGS...]
#   e.g. bench/perf/perfstat.sh -d 3 -p $(pgrep -n server_pooled)   while a load runs
#
# Default events: software (task-clock, context-switches, cpu-migrations, page-faults) and
# hardware (cycles, instructions, cache-misses, branch-misses). Three levels:
#   1. perf counts everything: the table as perf prints it.
#   2. perf runs but the hardware counters are "not supported" (VMs, this machine): the
#      software events still count; the hardware ones are listed as such, with a pointer to
#      bench/perf/cachegrind.sh for instructions and cache misses.
#   3. perf is missing or refused (perf_event_paranoid above 1 for a non-root user): CPU time
#      and context switches from /proc (with -p, all threads) or from the command's rusage.
# Output: a table, or with --json {source: perf|proc|rusage, events: [...], not_supported, note}.
# PERF names the perf binary (tests use a fake one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
perf=${PERF:-perf}
events=task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions,cache-misses,branch-misses
seconds=5 pid= json=
while (($#)); do
  case $1 in
    -d) seconds=${2:?}; shift 2 ;;
    -p) pid=${2:?}; shift 2 ;;
    -e) events=${2:?}; shift 2 ;;
    --json) json=--json; shift ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[[ -n $pid || $# -gt 0 ]] || usage
[[ -z $pid || $# -eq 0 ]] || usage
if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
  echo "perfstat: no process $pid" >&2; exit 2
fi
work=$(mktemp -d /tmp/iolab-perfstat.XXXXXX)
trap 'rm -rf "$work"' EXIT

why="perf is not installed (apt-get install linux-perf)"
if command -v "$perf" >/dev/null 2>&1; then
  if [[ -n $pid ]]; then
    rc=0
    "$perf" stat -x, -o "$work/out" -e "$events" -p "$pid" -- sleep "$seconds" 2>"$work/err" || rc=$?
    if /usr/bin/python3 "$here/perf_parse.py" stat perf "$work/out" $json 2>/dev/null; then exit 0; fi
  else
    # The command's own exit status is passed on; perf's refusal shows as no output file.
    rc=0
    "$perf" stat -x, -o "$work/out" -e "$events" -- "$@" 2>"$work/err" || rc=$?
    if [[ -s $work/out ]] && /usr/bin/python3 "$here/perf_parse.py" stat perf "$work/out" $json 2>/dev/null; then
      exit "$rc"
    fi
  fi
  why="perf stat refused or failed (exit $rc: $(grep -v '^$' "$work/err" 2>/dev/null | head -n 1); perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo ?))"
fi
echo "perfstat: $why; falling back to /proc and rusage (CPU time and context switches only)" >&2
if [[ -n $pid ]]; then
  before=$(/usr/bin/python3 "$here/perf_parse.py" snapshot "$pid")
  sleep "$seconds"
  after=$(/usr/bin/python3 "$here/perf_parse.py" snapshot "$pid")
  exec /usr/bin/python3 "$here/perf_parse.py" stat proc "$before" "$after" "$seconds" $json --note "$why"
fi
exec /usr/bin/python3 "$here/perf_parse.py" stat rusage $json --note "$why" -- "$@"
