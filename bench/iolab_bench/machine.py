"""This machine: CPU topology and the CPUs chosen for server and client, steal and background
load, listen overflows, memory counters, and how the kernel bills CPU time."""

import json
import os
import subprocess
from pathlib import Path

from . import ROOT

CLK_TCK = os.sysconf("SC_CLK_TCK")
MEMINFO_KEYS = ("Slab", "KernelStack", "PageTables")


def cpu_topology() -> dict[int, str]:
    """{cpu: core id key} for online CPUs; SMT siblings share a key."""
    cpus = {}
    for path in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")):
        cpu = int(path.name[3:])
        online = path / "online"
        if online.exists() and online.read_text().strip() == "0":
            continue
        siblings = path / "topology" / "thread_siblings_list"
        cpus[cpu] = siblings.read_text().strip() if siblings.exists() else str(cpu)
    allowed = os.sched_getaffinity(0)
    return {c: k for c, k in cpus.items() if c in allowed}


def choose_cpus(server_cpu: int | None = None,
                client_cpu: int | None = None) -> tuple[int, int, str]:
    """Server and client on different physical cores when there are two; the choice is recorded."""
    topo = cpu_topology()
    cpus = sorted(topo)
    if server_cpu is not None and client_cpu is not None:
        return server_cpu, client_cpu, "given on the command line"
    if len(cpus) < 2:
        return cpus[0], cpus[0], "one CPU: server and client share it (figures are client-bound)"
    server = cpus[-1]
    others = [c for c in cpus if topo[c] != topo[server]]
    if others:
        return server, others[0], "different physical cores"
    return server, cpus[0], "SMT siblings only: server and client share a core"


def read_steal() -> tuple[int, int]:
    """(all ticks, steal ticks) since boot, over all CPUs (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]), fields[7]


def read_busy_s() -> float:
    """CPU seconds spent in user, nice and system mode by all CPUs since boot (/proc/stat).

    Interrupt and softirq time is left out: on loopback the load's own packet processing lands
    there, so it would count the measured pair as someone else."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2]) / os.sysconf("SC_CLK_TCK")


def background_cpus(marks: dict, server_cpu_s: float, client_cpu_s: float,
                    wall_s: float) -> float:
    """CPUs' worth of time used by other processes between the window marks (0 when idle)."""
    busy = marks["end_busy"] - marks["start_busy"]
    return float(max(0.0, busy - server_cpu_s - client_cpu_s) / max(wall_s, 1e-9))


def listen_overflows_in(lines: list[str]) -> int | None:
    """TcpExt ListenOverflows from the lines of a netstat file, None if it has no TcpExt."""
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return None


def listen_overflows() -> int:
    """SYNs this network namespace dropped on a full listen queue since boot."""
    with open("/proc/net/netstat") as f:
        return listen_overflows_in(f.read().splitlines()) or 0


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def meminfo_kb() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        if key in MEMINFO_KEYS:
            out[key] = int(value.split()[0])
    return out


def tcp_mem_kb() -> int:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            pages = int(fields[fields.index("mem") + 1])
            return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    return 0


def read_first(path: str | Path, default: str = "?") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def command_output(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def syscall_billing(bin_dir: str | Path, cpu: int | None) -> dict[str, float] | str:
    """What the kernel bills one bare system call on `cpu`: {"user_us", "sys_us"}, or a string
    saying why it could not be measured. micro_syscalls' BM_Getppid loops on getppid for about a
    second and reports the thread's user and system time per call (getrusage)."""
    micro = Path(bin_dir) / "micro_syscalls"
    if not micro.exists():
        return f"{micro} not built"
    try:
        out = subprocess.run(
            [str(micro), "--benchmark_filter=^BM_Getppid$", "--benchmark_min_time=1",
             "--benchmark_format=json"], capture_output=True, text=True, timeout=60,
            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None)
        runs = [b for b in json.loads(out.stdout)["benchmarks"] if b.get("run_type") != "aggregate"]
        return {"user_us": runs[-1]["user_ns"] / 1000.0, "sys_us": runs[-1]["sys_ns"] / 1000.0}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as e:
        return f"micro_syscalls gave no billing ({e.__class__.__name__}: {e})"


def cpu_accounting() -> str:
    """How this kernel splits CPU time into user and system, in one line: tick-sampled (a VM may
    bill part of each system call as user) or exact. scripts/cpu_accounting.sh reads it from the
    kernel configuration; "?" if the script could not run."""
    try:
        return subprocess.run([str(ROOT / "scripts/cpu_accounting.sh")], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def netns_env() -> dict[str, str] | None:
    """The namespaces with_netns.sh made for this run, or None outside one."""
    names = ("IOLAB_NETNS_SERVER", "IOLAB_NETNS_CLIENT", "IOLAB_NETNS_SERVER_ADDR",
             "IOLAB_NETNS_CLIENT_ADDR", "IOLAB_NETNS_NETEM")
    if not all(os.environ.get(n) for n in names):
        return None
    return {n[len("IOLAB_NETNS_"):].lower(): os.environ[n] for n in names}
