#!/usr/bin/env bash
# with_netns.sh: two hosts on one machine, for as long as one command runs.
#
#   bench/netns/with_netns.sh -- COMMAND [ARGS...]
#
# Loopback hides the network: both ends share one stack, and the receiver's TCP work runs in the
# sender's context. This script builds the smallest real network instead: two network namespaces
# ("server" and "client"), each with its own stack, joined by a veth pair, a virtual cable whose
# packets cross the kernel's full transmit and receive paths. COMMAND runs inside the client
# namespace, so everything it does (loadgen, reading /stats) goes over that cable exactly as it
# would from another machine; it starts its server with `ip netns exec $IOLAB_NETNS_SERVER ...`.
#
# It exports to COMMAND:
#   IOLAB_NETNS_SERVER, IOLAB_NETNS_CLIENT   the namespace names (suffixed with this pid, so
#                                            parallel runs never collide)
#   IOLAB_NETNS_SERVER_ADDR, ..._CLIENT_ADDR the two ends' addresses, in 198.18.0.0/15, the block
#                                            RFC 2544 sets aside for benchmarking networks: no
#                                            real host is ever there, and the namespaces route
#                                            nothing else
#   IOLAB_NETNS_NETEM                        "yes", or "no: <why>" (probed on the client's end)
#
# Delay: netem (`tc qdisc add dev X root netem delay 5ms`) is how one adds latency to a link,
# but it needs CONFIG_NET_SCH_NETEM, which this project's kernels lack ("Specified qdisc kind
# is unknown"). The script probes it and reports; the harness then emulates the round trip in
# loadgen (--think-ms), which it does in either case so runs stay comparable across kernels.
#
# Clean-up is unconditional: a trap on EXIT, INT and TERM ends whatever still runs inside the
# two namespaces (only processes in namespaces this script created) and deletes them, which
# also deletes the veth pair. A SIGKILL of this script cannot be trapped: `make netns-clean`
# removes what such a run left. Exit status: COMMAND's, or 77 when this machine cannot do it
# (not root, no `ip`), with the reason on stderr.
set -euo pipefail

if [[ ${1:-} != -- || $# -lt 2 ]]; then
  echo "usage: $0 -- COMMAND [ARGS...]" >&2
  exit 2
fi
shift

if [[ $(id -u) -ne 0 ]]; then
  echo "with_netns.sh: network namespaces need root (ip netns add); run as root" >&2
  exit 77
fi
if ! command -v ip >/dev/null 2>&1; then
  echo "with_netns.sh: no 'ip' command (install iproute2)" >&2
  exit 77
fi

suffix=$$
server_ns=iolab-srv-$suffix
client_ns=iolab-cli-$suffix
# Interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL): 6 + up to 7 pid digits.
server_if=iolabs$suffix
client_if=iolabc$suffix
server_addr=198.18.0.1
client_addr=198.18.0.2
child=

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for ns in "$server_ns" "$client_ns"; do
    if ip netns pids "$ns" >/dev/null 2>&1; then
      # Processes still inside a namespace keep it alive after `ip netns del`: end them first.
      local pids
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      if [[ -n $pids ]]; then
        kill -TERM $pids 2>/dev/null || true
        sleep 0.5
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
      fi
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  # Only present if setup failed between creating the pair and moving it into the namespaces.
  ip link del "$server_if" 2>/dev/null || true
  ip link del "$client_if" 2>/dev/null || true
  echo "netns: removed $server_ns, $client_ns and the veth pair" >&2
  exit "$status"
}

# A signal is passed on to COMMAND as SIGTERM (an asynchronous child of a non-interactive shell
# ignores SIGINT, and run.py treats SIGTERM as Ctrl-C: it stops its servers and keeps its rows),
# then this script waits for it and cleans up.
on_signal() {
  local code=$1
  if [[ -n $child ]]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

ip netns add "$server_ns"
ip netns add "$client_ns"
ip link add "$server_if" type veth peer name "$client_if"
ip link set "$server_if" netns "$server_ns"
ip link set "$client_if" netns "$client_ns"
ip -n "$server_ns" addr add "$server_addr/30" dev "$server_if"
ip -n "$client_ns" addr add "$client_addr/30" dev "$client_if"
for pair in "$server_ns:$server_if" "$client_ns:$client_if"; do
  ip -n "${pair%%:*}" link set lo up
  ip -n "${pair%%:*}" link set "${pair#*:}" up
done
echo "netns: $server_ns ($server_addr, $server_if) <-veth-> $client_ns ($client_addr, $client_if)" >&2

if probe=$(ip netns exec "$client_ns" tc qdisc add dev "$client_if" root netem delay 1ms 2>&1); then
  ip netns exec "$client_ns" tc qdisc del dev "$client_if" root 2>/dev/null || true
  netem=yes
else
  netem="no: tc qdisc add ... netem: ${probe:-tc failed}"
  netem=${netem//$'\n'/ }
fi
echo "netns: netem $netem; the round trip is emulated with loadgen --think-ms" >&2

export IOLAB_NETNS_SERVER=$server_ns IOLAB_NETNS_CLIENT=$client_ns
export IOLAB_NETNS_SERVER_ADDR=$server_addr IOLAB_NETNS_CLIENT_ADDR=$client_addr
export IOLAB_NETNS_NETEM=$netem

# `ip netns exec` switches namespace and execs COMMAND in place, so $! is COMMAND's own pid.
ip netns exec "$client_ns" "$@" &
child=$!
set +e
wait "$child"
status=$?
set -e
child=
exit "$status"
