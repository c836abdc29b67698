#!/usr/bin/env bash
# clean_stale.sh: removes what a with_netns.sh run left behind when it could not clean up
# itself (SIGKILL, a power cut of the shell): namespaces named iolab-srv-PID / iolab-cli-PID
# whose PID no longer runs, the processes still inside them, and their veth pair. Namespaces of
# runs still in progress are left alone. `make netns-clean` runs it.
set -euo pipefail

if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null 2>&1; then
  echo "clean_stale.sh: needs root and iproute2's ip" >&2
  exit 77
fi

removed=0
for ns in $(ip netns list | awk '{print $1}' | grep -E '^iolab-(srv|cli)-[0-9]+$' || true); do
  pid=${ns##*-}
  if kill -0 "$pid" 2>/dev/null; then
    echo "netns: $ns belongs to a running run (pid $pid): kept"
    continue
  fi
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  ip netns del "$ns"
  ip link del "iolabs$pid" 2>/dev/null || true
  ip link del "iolabc$pid" 2>/dev/null || true
  echo "netns: removed stale $ns"
  removed=$((removed + 1))
done
echo "netns: $removed stale namespaces removed"
