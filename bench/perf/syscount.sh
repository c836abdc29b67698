#!/usr/bin/env bash
# System calls by kind, for a running process or for a command.
#
#   bench/perf/syscount.sh [-d SECONDS] [--json] -p PID        (default 5 s)
#   bench/perf/syscount.sh [--json] -- COMMAND [ARGS...]
#   e.g. bench/perf/syscount.sh -d 3 -p $(pgrep -n server_epoll_et)   while a load runs
#
# Counts come from perf's syscall tracepoints (`perf trace -s`): every call is counted and the
# target is never stopped, so it is fine during a measurement. When perf is missing or refused
# (perf_event_paranoid above 1 for a non-root user, no access to tracefs), it says so and falls
# back to `strace -c -f`, which stops the target at every system call: the counts stay right,
# the target's timing does not, so use it only outside measured windows. Neither tool: exit 2
# with what to install. Threads are summed; with -p, only threads of PID.
# Output: "calls name" lines, most frequent first, and the total; --json one JSON object
# {source, total, syscalls: {name: calls}, note}. PERF and STRACE name the tools (tests use fakes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
perf=${PERF:-perf}
strace=${STRACE:-strace}
seconds=5 pid= json=
while (($#)); do
  case $1 in
    -d) seconds=${2:?}; shift 2 ;;
    -p) pid=${2:?}; shift 2 ;;
    --json) json=--json; shift ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) usage ;;
  esac
done
[[ -n $pid || $# -gt 0 ]] || usage
[[ -z $pid || $# -eq 0 ]] || usage
if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
  echo "syscount: no process $pid" >&2; exit 2
fi
work=$(mktemp -d /tmp/iolab-syscount.XXXXXX)
trap 'rm -rf "$work"' EXIT

note=
if command -v "$perf" >/dev/null 2>&1; then
  rc=0
  if [[ -n $pid ]]; then
    timeout -s INT "$seconds" "$perf" trace -s -p "$pid" -o "$work/out" 2>"$work/err" || rc=$?
    ((rc == 124)) && rc=0   # stopped by the timeout: that is the normal end
  else
    "$perf" trace -s -o "$work/out" -- "$@" 2>"$work/err" || rc=$?
  fi
  if /usr/bin/python3 "$here/perf_parse.py" syscalls perf-trace "$work/out" $json 2>/dev/null; then
    exit 0
  fi
  why=$(grep -v '^$' "$work/err" 2>/dev/null | head -n 2 | tr '\n' ' ')
  note="perf trace gave no counts (exit $rc: ${why:-no output}; perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo ?))"
else
  note="perf is not installed (apt-get install linux-perf)"
fi
echo "syscount: $note; falling back to strace -c (it slows the target: do not time this run)" >&2

command -v "$strace" >/dev/null 2>&1 || {
  echo "syscount: strace is not installed either (apt-get install strace linux-perf)" >&2; exit 2; }
if [[ -n $pid ]]; then
  rc=0
  timeout -s INT "$seconds" "$strace" -c -f -p "$pid" -o "$work/out" 2>/dev/null || rc=$?
else
  "$strace" -c -f -o "$work/out" -- "$@" || true
fi
/usr/bin/python3 "$here/perf_parse.py" syscalls strace "$work/out" $json --note "$note; strace -c stops the target at every call"
