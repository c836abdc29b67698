#!/usr/bin/env bash
# make doctor: what this machine can do for iolab, and what will limit its measurements.
# Reads only; changes nothing (the netem probe runs in a throwaway network namespace).
set -u

row() { printf '  %-28s %s\n' "$1" "$2"; }
readf() { cat "$1" 2>/dev/null || echo "?"; }

echo "iolab doctor: $(hostname) $(uname -r) $(date -u +%Y-%m-%dT%H:%M:%SZ)"

echo "CPU"
row "model" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
row "online CPUs" "$(readf /sys/devices/system/cpu/online) ($(nproc) usable here)"
siblings=$(cat /sys/devices/system/cpu/cpu*/topology/thread_siblings_list 2>/dev/null | sort -u | tr '\n' ' ')
smt=no
for s in $siblings; do [[ $s == *[,-]* ]] && smt=yes; done
row "SMT siblings" "$smt (groups: ${siblings:-?})"
if [[ -d /sys/devices/cpu_core && -d /sys/devices/cpu_atom ]]; then
  row "hybrid cores" "P: $(readf /sys/devices/cpu_core/cpus) E: $(readf /sys/devices/cpu_atom/cpus)"
else
  row "hybrid cores" "no"
fi
row "frequency governor" "$(readf /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor)"
row "vulnerability status" "$(cat /sys/devices/system/cpu/vulnerabilities/* 2>/dev/null | cut -d: -f1 | cut -d' ' -f1-2 | sort | uniq -c | awk '{c=$1; $1=""; printf "%s%d%s", (n++ ? ", " : ""), c, $0}')"
read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ < /proc/stat
sleep 1
read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ < /proc/stat
total=$(( (u2+n2+s2+i2+w2+q2+sq2+st2) - (u1+n1+s1+i1+w1+q1+sq1+st1) ))
steal=$(( st2 - st1 ))
busy=$(( total - (i2 - i1) - (w2 - w1) ))
row "steal over 1 s" "$(( total > 0 ? 100 * steal / total : 0 ))% (busy $(( total > 0 ? 100 * busy / total : 0 ))%): a VM neighbour taking CPU invalidates timings"
# How the kernel bills a system call that does no user work (getppid): user time here is not
# user work, and every server's user CPU per request carries it once per system call.
root=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${IOLAB_BIN_DIR:-$root/build/bin}  # IOLAB_BIN_DIR: another build
billing=$(PYTHONPATH="$root/bench" /usr/bin/python3 - "$bin_dir" <<'PY' 2>/dev/null
import sys
from iolab_bench import machine  # the measurement bench/compare.py makes before its fixed rate
b = machine.syscall_billing(sys.argv[1], None)
if isinstance(b, str):
    print(f"? ({b})")
else:
    note = ": this kernel bills part of each round trip as user time" if b["user_us"] > 0.05 else ""
    print(f"{b['user_us']:.3f} us user + {b['sys_us']:.3f} us system{note}")
PY
)
row "CPU time accounting" "$("$root/scripts/cpu_accounting.sh")"
row "one getppid is billed" "${billing:-? (python3 failed)}"

echo "Kernel features"
case $(readf /proc/sys/kernel/io_uring_disabled) in
  0) row "io_uring" "allowed (kernel.io_uring_disabled=0)" ;;
  1) row "io_uring" "restricted to a group (kernel.io_uring_disabled=1)" ;;
  2) row "io_uring" "DISABLED (kernel.io_uring_disabled=2): server_io_uring exits 77" ;;
  *) row "io_uring" "no io_uring_disabled sysctl (older kernel): assumed allowed" ;;
esac
seccomp=$(awk '/^Seccomp:/ {print $2}' /proc/self/status)
row "seccomp on this shell" "$([[ $seccomp == 0 ]] && echo none || echo "mode $seccomp (containers may block io_uring)")"
paranoid=$(readf /proc/sys/kernel/perf_event_paranoid)
if command -v perf >/dev/null 2>&1; then
  if perf stat -e instructions -x, true 2>&1 | grep -q 'not supported\|<not'; then hw="not supported (use cachegrind)"; else hw="available"; fi
  if perf stat -e context-switches -x, true >/dev/null 2>&1; then sw="available"; else sw="refused"; fi
  row "perf" "paranoid=$paranoid; software events $sw; hardware counters $hw"
else
  row "perf" "not installed (linux-perf); paranoid=$paranoid"
fi
if [[ $(id -u) -eq 0 ]] && command -v ip >/dev/null && command -v tc >/dev/null; then
  ns=iolab-doctor-$$
  if ip netns add "$ns" 2>/dev/null; then
    if ip netns exec "$ns" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then netem="available"; else netem="not available (CONFIG_NET_SCH_NETEM off): loadgen --think-ms emulates round trips"; fi
    ip netns del "$ns"
    row "network namespaces" "available"
  else
    netem="unknown"; row "network namespaces" "not available"
  fi
  row "netem" "$netem"
else
  row "netem / namespaces" "unknown (needs root and iproute2)"
fi

echo "Limits"
row "descriptors (soft/hard)" "$(ulimit -Sn)/$(ulimit -Hn) (servers and loadgen raise soft to hard)"
row "net.core.somaxconn" "$(readf /proc/sys/net/core/somaxconn)"
row "tcp_max_syn_backlog" "$(readf /proc/sys/net/ipv4/tcp_max_syn_backlog)"
row "ephemeral ports" "$(readf /proc/sys/net/ipv4/ip_local_port_range | tr '\t' '-') per source address"
row "listen overflows so far" "$(awk '/^TcpExt:/ {if (!h) {for (i=1;i<=NF;i++) if ($i=="ListenOverflows") c=i; h=1} else print $c}' /proc/net/netstat)"

echo "Tools"
for t in cmake g++ clang++ ninja ccache wrk ab nginx go hyperfine strace valgrind perf; do
  if p=$(command -v "$t" 2>/dev/null); then row "$t" "$p"; else row "$t" "missing"; fi
done
if /usr/bin/python3 -c 'import matplotlib, pandas' 2>/dev/null; then
  row "/usr/bin/python3 plotting" "matplotlib and pandas present"
else
  row "/usr/bin/python3 plotting" "missing (make deps installs python3-matplotlib python3-pandas)"
fi
