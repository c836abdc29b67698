#!/usr/bin/env bash
# How this kernel splits a task's CPU time into user and system, in one line: make doctor prints
# it, bench/compare.py prints and records it, and every run manifest records it.
#
# getrusage and /proc/<pid>/stat report user and system time, but how they are measured depends
# on the kernel's configuration:
#   CONFIG_TICK_CPU_ACCOUNTING      every timer tick (HZ per second) bills the whole tick to the
#                                   mode the interrupted task was in. A sample, not a measurement:
#                                   in a guest that takes its timer interrupt late, at the return
#                                   from a system call, kernel time is billed as user time.
#   CONFIG_VIRT_CPU_ACCOUNTING_GEN  time stamps at every kernel entry and exit, but only on CPUs
#                                   where context tracking runs: the nohz_full= CPUs (all CPUs
#                                   with CONFIG_CONTEXT_TRACKING_USER_FORCE). Elsewhere, ticks.
#   CONFIG_VIRT_CPU_ACCOUNTING_NATIVE  time stamps at every entry and exit (powerpc, s390).
# Reads the configuration from $IOLAB_KERNEL_CONFIG (a plain file, for tests), /proc/config.gz
# or /boot/config-$(uname -r), and the nohz_full CPUs from $IOLAB_NOHZ_FULL (tests) or sysfs.
# Prints "?" with the reason when no configuration is readable. Exit status 0.
set -u

config_text() {
  if [[ -n ${IOLAB_KERNEL_CONFIG:-} ]]; then
    cat "$IOLAB_KERNEL_CONFIG" 2>/dev/null
  elif [[ -r /proc/config.gz ]]; then
    zcat /proc/config.gz 2>/dev/null
  elif [[ -r /boot/config-$(uname -r) ]]; then
    cat "/boot/config-$(uname -r)"
  fi
}

config=$(config_text)
if [[ -z $config ]]; then
  echo "? (no kernel configuration: ${IOLAB_KERNEL_CONFIG:-/proc/config.gz or /boot/config-$(uname -r)} not readable)"
  exit 0
fi
has() { grep -qx "$1=y" <<<"$config"; }
hz=$(sed -n 's/^CONFIG_HZ=//p' <<<"$config")
ticks="sampled by the timer tick (${hz:-?} Hz)"

if has CONFIG_VIRT_CPU_ACCOUNTING_NATIVE; then
  echo "exact: time stamped at every kernel entry and exit (VIRT_CPU_ACCOUNTING_NATIVE)"
elif has CONFIG_VIRT_CPU_ACCOUNTING_GEN; then
  if has CONFIG_CONTEXT_TRACKING_USER_FORCE; then
    echo "exact on every CPU: time stamped at kernel entry and exit (VIRT_CPU_ACCOUNTING_GEN, forced)"
  else
    nohz_full=${IOLAB_NOHZ_FULL-$(cat /sys/devices/system/cpu/nohz_full 2>/dev/null)}
    nohz_full=$(tr -d '[:space:]' <<<"$nohz_full")
    if [[ -n $nohz_full && $nohz_full != "(null)" ]]; then
      echo "exact on nohz_full CPUs $nohz_full (VIRT_CPU_ACCOUNTING_GEN); on the others $ticks"
    else
      echo "$ticks: VIRT_CPU_ACCOUNTING_GEN is built in but no CPU is nohz_full"
    fi
  fi
elif has CONFIG_TICK_CPU_ACCOUNTING; then
  echo "$ticks, TICK_CPU_ACCOUNTING: on some VMs part of each system call is billed as user (the getppid billing shows how much)"
else
  echo "? (the configuration names no CPU accounting mode)"
fi
