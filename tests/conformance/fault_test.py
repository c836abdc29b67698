#!/usr/bin/python3
"""fault_test.py: every model keeps serving when system calls on one connection's path fail.

  fault_test.py BIN_DIR CASE [--suffix _faults]

Runs one case (a model and mode, below) against BIN_DIR/server_<model><suffix>, a build with
fault injection compiled in (IOLAB_FAULT_INJECTION, servers/core/os/sys.hpp; the _faults binaries
of the main build, or the plain binaries of build-tsan, where the whole build has it). The server
runs with IOLAB_FAULTS set, so every 2nd EPOLL_CTL_ADD of an accepted socket fails with ENOSPC,
every 3rd accept4 with ENOMEM and every 2nd (or every) start of an on-demand thread with
EAGAIN; or (coro_pids) the release binary runs in a pids cgroup at its thread count, so the
kernel refuses every new thread.
Then, on fresh connections one after another: /ping and /sleep?ms=20, each answered, refused
(503) or closed, never a dead server; afterwards every request is answered within three tries;
/stats shows the failures were met and counted; SIGTERM ends the server with status 0.
Before issue 29, server_epoll_et and server_pooled terminated on the first failed EPOLL_CTL_ADD
and server_coro on the first blocking-pool thread that could not start (coro_no_threads,
coro_pids).
About 1 s per case.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import NoReturn, Optional

# case: (binary model, extra flags, IOLAB_FAULTS, counters that must be > 0)
CASES: dict[str, tuple[str, list[str], Optional[str], list[str]]] = {
    "threads": ("threads", [], "accept4=3,thread=2", ["connections_refused", "accept_backoffs"]),
    "select": ("select", [], "accept4=3", ["accept_backoffs"]),
    "epoll_et": ("epoll_et", [], "epoll_ctl_add=2,accept4=3",
                 ["connection_errors", "accept_backoffs"]),
    "epoll_et_2loops": ("epoll_et", ["--threads", "2"], "epoll_ctl_add=2,accept4=3",
                        ["connection_errors"]),
    "pooled": ("pooled", [], "epoll_ctl_add=2,accept4=3", ["connection_errors", "accept_backoffs"]),
    "coro": ("coro", [], "epoll_ctl_add=2,accept4=3,thread=2", ["connection_errors"]),
    "coro_no_threads": ("coro", ["--threads", "2"], "thread=1", ["blocking_inline"]),
    "io_uring": ("io_uring", [], "accept4=3", []),
    # No injection: the release binary in a pids cgroup at its thread count, so the kernel
    # itself refuses every new thread (EAGAIN). As root, RLIMIT_NPROC would not be enforced.
    "coro_pids": ("coro", [], None, ["blocking_inline"]),
}
PIDS_CASES = {"coro_pids"}


def pids_cgroup(pid: int) -> Optional[str]:
    """Moves `pid` into a new pids cgroup (v1, or v2 with the pids controller) whose limit is its
    current thread count; returns the folder to remove, or None when there is none to make."""
    tasks = len(os.listdir(f"/proc/{pid}/task"))
    for base in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        if not os.path.exists(os.path.join(base, "cgroup.procs")) or not os.access(base, os.W_OK):
            continue
        path = os.path.join(base, f"iolab-fault-{os.getpid()}")
        try:
            os.mkdir(path)
            with open(os.path.join(path, "pids.max"), "w") as f:
                f.write(str(tasks))
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(pid))
            return path
        except OSError:
            try:
                os.rmdir(path)
            except OSError:
                pass
    return None


ROUNDS = 24


def fail(msg: str) -> NoReturn:
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def request(port: int, path: str, timeout: float = 3.0) -> tuple[Optional[int], bytes]:
    """One request on a fresh connection: (status or None, body); None when closed or reset."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:  # a reset, or no close within the timeout
        return None, b""
    if not data.startswith(b"HTTP/1.1 "):
        return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head[9:12]), body


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[2] not in CASES:
        fail(f"usage: fault_test.py BIN_DIR CASE [--suffix S]; cases: {', '.join(CASES)}")
    bin_dir, case = sys.argv[1], sys.argv[2]
    suffix = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--suffix" else "_faults"
    model, flags, faults, counters = CASES[case]
    if case in PIDS_CASES:
        suffix = ""  # the release binary: the kernel makes the failure
    binary = os.path.join(bin_dir, f"server_{model}{suffix}")
    env = dict(os.environ)
    if faults:
        env["IOLAB_FAULTS"] = faults
    cgroup = None
    proc = subprocess.Popen([binary, "--port", "0", "--header-timeout-ms", "2000", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline().decode() if ready else ""
        if proc.poll() == 77:
            print(f"SKIP: {binary} cannot run here: {proc.stderr.read().decode().strip()}")
            return 77
        if "listening on" not in line:
            fail(f"no ready line from {binary} (got {line!r}, status {proc.poll()})")
        port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        print(f"{case}: server_{model}{suffix} {' '.join(flags)} IOLAB_FAULTS={faults} port {port}")
        if case in PIDS_CASES:
            cgroup = pids_cgroup(proc.pid)
            if cgroup is None:
                print("SKIP: no pids cgroup can be made here (not root, or no pids controller)")
                return 77
            threads = len(os.listdir(f"/proc/{proc.pid}/task"))
            print(f"{case}: in {cgroup}, pids.max = its {threads} threads")

        outcomes = {"answered": 0, "refused": 0, "closed": 0}
        for i in range(ROUNDS):
            status, _ = request(port, "/sleep?ms=20" if i % 3 == 2 else "/ping")
            outcomes["answered" if status == 200 else "refused" if status == 503 else "closed"] += 1
            if proc.poll() is not None:
                fail(f"the server died after {i + 1} connections ({proc.returncode}): "
                     f"{proc.stderr.read().decode()[-2000:]}")
        print(f"{case}: {ROUNDS} connections with faults: {outcomes}")
        if outcomes["answered"] < ROUNDS // 4:
            try:
                proc.wait(timeout=2)  # a dying process may still be writing its core dump
            except subprocess.TimeoutExpired:
                pass
            fail(f"too few answered: {outcomes}; server status {proc.poll()}: "
                 f"{proc.stderr.read1(4000).decode() if proc.poll() is not None else 'running'}")

        for path in ["/ping", "/sleep?ms=20", "/plaintext", "/sleep?ms=20", "/ping"]:
            for attempt in range(3):
                status, body = request(port, path)
                if status == 200:
                    break
            else:
                fail(f"{path} not answered in three tries: the server stopped serving")
        stats = None
        for attempt in range(3):
            status, body = request(port, "/stats")
            if status == 200:
                stats = json.loads(body)
                break
        if stats is None:
            fail("/stats not answered in three tries")
        model_counters = stats["model_counters"]
        shown = {k: model_counters.get(k, stats.get(k)) for k in counters}
        print(f"{case}: counters {shown}")
        for k in counters:
            if not shown[k]:
                fail(f"counter {k} is {shown[k]}: the injected failure was not met or not counted")

        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fail("no exit within 10 s of SIGTERM")
        if code != 0:
            fail(f"exit status {code} after SIGTERM: {proc.stderr.read().decode()[-2000:]}")
        print(f"{case}: OK")
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if cgroup is not None:
            for _ in range(50):  # empty once the killed process is reaped
                try:
                    os.rmdir(cgroup)
                    break
                except OSError:
                    time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
