"""Starting and stopping servers, and reading their counters: local ones (iolab models and the
references nginx, gin, nethttp, floor), a --target someone else started, and an iolab model in
a network namespace (the netns mode).

A --target's /proc is not the runner's to read (it is on another machine), nor is the netns
server's (the runner stands in for a client on another host), so both are measured through the
server's own /stats: rusage for CPU time and context switches, statm for RSS, and the counters
its syscall wrappers keep. Those are the same numbers a local run already prefers for iolab
servers, which is what makes a target's per-request figures comparable with a normal run's. What
the client cannot see (the server's listen queue on another machine) is left empty and said so,
never filled with the client's own counters.
"""

import http.client
import ipaddress
import json
import os
import re
import resource
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Union

from . import ROOT, HarnessError, machine

REFERENCES = ("nginx", "gin", "nethttp", "floor")
READY_TIMEOUT_S = 10.0
STATS_TIMEOUT_S = 5.0
NETNS_WRAPPER = ROOT / "bench" / "netns" / "with_netns.sh"

# Where each figure of a row comes from, by kind of server.
LOCAL_SOURCES: dict[str, Any] = {
    "cpu": "/stats rusage (RUSAGE_SELF: every thread, also exited ones)",
    "ctx_switches": "/stats rusage", "syscalls": "/stats counters", "allocs": "/stats counters",
    "rss": "/proc/PID/statm", "listen_overflows": "/proc/net/netstat", "steal": "/proc/stat",
    "client": "loadgen's report",
}
REFERENCE_SOURCES = dict(LOCAL_SOURCES, cpu="/proc/PID/stat (utime, stime)",
                         ctx_switches="/proc/PID/task/*/status", syscalls=None, allocs=None)
REMOTE_SOURCES = dict(LOCAL_SOURCES, rss="/stats rss_kb (the server's /proc/self/statm)",
                      listen_overflows=None, steal="/proc/stat of the client's machine")

NO_OVERHEAD = {"syscalls": 0, "ctx": 0, "allocations": 0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A started server: pid, port, and how to read its counters. Use as a context manager."""

    host = "127.0.0.1"
    # Where its figures come from when not the usual local ones (remote servers), and where it is.
    sources: dict[str, Any] | None = None
    where: str | None = None

    def __init__(self, spec: str, cpu: int | None, bin_dir: str | Path) -> None:
        self.spec = spec
        self.name, _, extra = spec.partition(":")
        self.extra = extra.split() if extra else []
        self.cpu = cpu
        self.bin_dir = Path(bin_dir)
        self.proc: subprocess.Popen[str] | None = None
        self.drain: threading.Thread | None = None
        self.port: int | None = None
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        self.iolab = self.name not in REFERENCES
        # What one /stats snapshot costs the server, subtracted from its counts (stats_overhead).
        self.overhead: dict[str, int] = dict(NO_OVERHEAD)

    def command(self) -> list[str]:
        if self.iolab:
            binary = self.bin_dir / f"server_{self.name}"
            if not binary.exists():
                raise HarnessError(f"{self.spec}: {binary} not built (make build)")
            pin = ["--pin", str(self.cpu)] if self.cpu is not None else []
            return [str(binary), "--port", "0", *pin, *self.extra]
        taskset = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        if self.name == "nginx":
            nginx = "/usr/sbin/nginx"
            if not os.path.exists(nginx):
                raise HarnessError("nginx: not installed (apt-get install nginx-light)")
            self.tmp = tempfile.TemporaryDirectory(prefix="iolab-nginx-")
            prefix = Path(self.tmp.name)
            (prefix / "tmp").mkdir()
            self.port = free_port()
            template = (ROOT / "servers/reference/nginx/nginx.conf.in").read_text()
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            conf = template.replace("@PORT@", str(self.port)).replace("@NOFILE@", str(hard))
            (prefix / "nginx.conf").write_text(conf)
            return taskset + [nginx, "-p", f"{prefix}/", "-e", str(prefix / "error.log"),
                              "-c", str(prefix / "nginx.conf")]
        if self.name == "floor":
            binary = self.bin_dir / "server_floor"
            if not binary.exists():
                raise HarnessError(f"floor: {binary} not built (make build)")
            return taskset + [str(binary), "--port", "0"]
        build = subprocess.run([str(ROOT / "servers/reference/build.sh"), str(self.bin_dir.parent)],
                               capture_output=True, text=True)
        if build.returncode != 0:
            raise HarnessError(f"{self.name}: {build.stderr.strip() or 'build failed'}")
        return taskset + [str(self.bin_dir / f"server_{self.name}"), "-port", "0", *self.extra]

    def __enter__(self) -> "Server":
        cmd = self.command()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        if self.name == "nginx":
            self._wait_for_port()
        else:
            self._wait_for_ready_line()
        return self

    def _started(self) -> "subprocess.Popen[str]":
        if self.proc is None:
            raise HarnessError(f"{self.spec}: not started")
        return self.proc

    def _wait_for_ready_line(self) -> None:
        proc = self._started()
        assert proc.stdout is not None
        stdout = proc.stdout
        line: list[str] = []
        self.drain = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        self.drain.start()
        self.drain.join(READY_TIMEOUT_S)
        text = line[0] if line else ""
        match = re.search(r"listening on [0-9.]+:(\d+) ", text)
        if not match:
            self.stop()
            err = proc.stderr.read().strip() if proc.stderr else ""
            self.close_pipes()
            code = proc.returncode
            if code == 77:
                raise HarnessError(f"{self.spec}: not supported here (exit 77): {err}")
            raise HarnessError(f"{self.spec}: never printed its ready line within "
                               f"{READY_TIMEOUT_S:.0f} s (exit {code}) {err}")
        self.port = int(match.group(1))
        # Drain stdout so a chatty server never blocks on a full pipe.
        self.drain = threading.Thread(target=stdout.read, daemon=True)
        self.drain.start()

    def _wait_for_port(self) -> None:
        proc = self._started()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().strip() if proc.stderr else ""
                self.stop()  # removes the prefix directory
                self.close_pipes()
                raise HarnessError(f"{self.spec}: exited at start: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port or 0), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        self.close_pipes()
        raise HarnessError(f"{self.spec}: not accepting on port {self.port} after "
                           f"{READY_TIMEOUT_S:.0f} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.tmp:
            self.tmp.cleanup()
            self.tmp = None

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.close_pipes()

    def close_pipes(self) -> None:
        """Closes this end of the stopped server's stdout and stderr. Not while the drain thread
        still reads stdout (closing a file under a blocked read would wait for it): the server
        is dead, so the thread sees end of file at once, unless something it started holds the
        pipe, and then the pipe is left to the garbage collector."""
        if self.proc is None or self.proc.poll() is None:
            return
        if self.drain is not None:
            self.drain.join(1.0)
            if self.drain.is_alive():
                return
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def pid(self) -> int | None:
        # taskset execs the server, so the child's pid is the server's.
        return self._started().pid

    def listen_overflows(self) -> int | None:
        """SYNs dropped on full listen queues in the server's network namespace, so far."""
        return machine.listen_overflows()

    def exit_note(self) -> str:
        return f"exit {self._started().returncode}"

    def snapshot(self) -> dict[str, Any]:
        """Counters at one moment: CPU seconds, context switches, and /stats for iolab servers."""
        snap: dict[str, Any] = {"t": time.monotonic()}
        pid = self._started().pid
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        snap["user_s"] = int(fields[11]) / machine.CLK_TCK
        snap["sys_s"] = int(fields[12]) / machine.CLK_TCK
        switches = 0
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                for line in status.read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
            except OSError:
                pass  # a thread that ended meanwhile
        snap["ctx"] = switches
        snap["rss_kb"] = machine.rss_kb(pid)
        if self.iolab:
            # A server that answers /stats with something else is reported, not a traceback.
            try:
                url = f"http://127.0.0.1:{self.port}/stats"
                with urllib.request.urlopen(url, timeout=5) as r:
                    stats = json.loads(r.read())
                snap["stats"] = stats
                # rusage counts threads that have exited too (thread-per-connection).
                snap["user_s"] = stats["cpu_user_us"] / 1e6
                snap["sys_s"] = stats["cpu_sys_us"] / 1e6
                snap["cpu_clock_s"] = cpu_clock_s(stats)
                snap["ctx"] = (stats["voluntary_context_switches"]
                               + stats["involuntary_context_switches"])
            except urllib.error.HTTPError as e:
                # A server at its connection limit (select's FD_SETSIZE wall, --max-conns)
                # refuses the harness's own /stats connection like any other: 503.
                why = (" (a server at its connection limit refuses new connections so)"
                       if e.code == 503 else "")
                raise HarnessError(f"{self.spec}: /stats did not answer with its counters: "
                                   f"HTTP {e.code} {e.reason}{why}") from None
            except (OSError, ValueError, KeyError, TypeError, http.client.HTTPException) as e:
                raise HarnessError(f"{self.spec}: /stats did not answer with its counters: "
                                   f"{type(e).__name__}: {ascii(str(e))[:120]}") from None
        return snap


def parse_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise HarnessError(f"--target '{text}': expected HOST:PORT, e.g. 192.0.2.7:8080")
    return host, int(port)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError) as e:
        raise HarnessError(f"cannot resolve '{host}': {e}")


def fetch_stats(host: str, port: int | None) -> Any:
    with urllib.request.urlopen(f"http://{host}:{port}/stats", timeout=STATS_TIMEOUT_S) as r:
        return json.loads(r.read())


def cpu_clock_s(stats: dict[str, Any]) -> float | None:
    """The process CPU clock from /stats (CLOCK_PROCESS_CPUTIME_ID: the scheduler's run time,
    exact where the user/system split is tick-sampled); None from a server built before it."""
    clock = stats.get("cpu_clock_us")
    return None if clock is None else clock / 1e6


def stats_snapshot(server: "Server | RemoteServer") -> dict[str, Any]:
    """Server.snapshot's keys, all from /stats (nothing from this machine's /proc)."""
    snap: dict[str, Any] = {"t": time.monotonic()}
    stats = fetch_stats(server.host, server.port)
    snap["stats"] = stats
    snap["user_s"] = stats["cpu_user_us"] / 1e6
    snap["sys_s"] = stats["cpu_sys_us"] / 1e6
    snap["cpu_clock_s"] = cpu_clock_s(stats)
    snap["ctx"] = stats["voluntary_context_switches"] + stats["involuntary_context_switches"]
    snap["rss_kb"] = stats["rss_kb"]
    return snap


class RemoteServer:
    """--target HOST:PORT: a server someone else started. Entering checks that its /stats
    answers like an iolab server's; the runner never starts, stops or signals it."""

    iolab = True

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.spec: str | None = None
        self.stats_at_start: dict[str, Any] | None = None
        self.overhead = dict(NO_OVERHEAD)
        self.sources: dict[str, Any] | None = dict(REMOTE_SOURCES)
        self.where: str | None = f"{host}:{port}"

    def __enter__(self) -> "RemoteServer":
        try:
            stats = fetch_stats(self.host, self.port)
        except (OSError, urllib.error.URLError) as e:
            raise HarnessError(f"target {self.where}: /stats did not answer ({e}); is the server "
                               f"running and bound to an address this machine reaches?")
        except json.JSONDecodeError:
            raise HarnessError(f"target {self.where}: /stats is not JSON; --target measures iolab "
                               f"servers (make serve MODEL=x BIND=0.0.0.0), whose /stats carries "
                               f"their CPU time and system calls")
        missing = [k for k in ("model", "cpu_user_us", "cpu_sys_us", "syscalls", "rss_kb")
                   if k not in stats]
        if missing:
            raise HarnessError(f"target {self.where}: /stats lacks {', '.join(missing)}")
        self.spec = stats["model"]
        self.stats_at_start = stats
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return stats_snapshot(self)

    def alive(self) -> bool:
        try:
            fetch_stats(self.host, self.port)
            return True
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            return False

    def pid(self) -> int | None:
        return None  # a pid on another machine means nothing here

    def listen_overflows(self) -> int | None:
        return None  # the server's kernel counts them, out of this client's sight

    def exit_note(self) -> str:
        return "the target stopped answering /stats"


class NetnsServer(Server):
    """An iolab server this runner starts in the server namespace of with_netns.sh, bound to the
    veth address; measured over the veth like a target, from the client namespace."""

    def __init__(self, spec: str, cpu: int | None, bin_dir: str | Path, netns: str,
                 addr: str) -> None:
        super().__init__(spec, cpu, bin_dir)
        self.netns, self.host = netns, addr
        self.sources = dict(REMOTE_SOURCES, listen_overflows="/proc/PID/net/netstat (the server's "
                            "namespace)", steal="/proc/stat (one machine for both namespaces)")
        self.where = None

    def command(self) -> list[str]:
        if not self.iolab:
            raise HarnessError(f"{self.name}: the netns mode runs iolab models only (the reference "
                               f"configurations listen on 127.0.0.1)")
        # `ip netns exec` enters the namespace and execs the server, so the pid stays the server's.
        return ["ip", "netns", "exec", self.netns, *super().command(), "--bind", self.host]

    def __enter__(self) -> "NetnsServer":
        super().__enter__()
        self.where = f"{self.host}:{self.port} (netns {self.netns})"
        return self

    def snapshot(self) -> dict[str, Any]:
        return stats_snapshot(self)

    def listen_overflows(self) -> int | None:
        # /proc/PID/net/ shows the network namespace of PID, not the reader's.
        try:
            lines = Path(f"/proc/{self.pid()}/net/netstat").read_text().splitlines()
        except OSError:
            return None
        return machine.listen_overflows_in(lines)


AnyServer = Union[Server, RemoteServer]


def stats_overhead(server: AnyServer) -> dict[str, int]:
    """Syscalls, allocations and context switches one /stats snapshot costs, to subtract."""
    if not server.iolab:
        return dict(NO_OVERHEAD)
    a = server.snapshot()
    b = server.snapshot()
    return {"syscalls": sum(b["stats"]["syscalls"].values()) - sum(a["stats"]["syscalls"].values()),
            "ctx": b["ctx"] - a["ctx"],
            "allocations": b["stats"]["allocations"] - a["stats"]["allocations"]}
