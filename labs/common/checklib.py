"""checklib: what the lab checks share (labs/NN-topic/check imports it).

A check judges a reader's exercise by behaviour and mechanism: does the server pass the
conformance suite, does /stats show the system calls the lab asks for, does it survive the
situation the lab is about. It never judges a timing. This module gives the checks one command
line (--variant exercise|solution, --build-dir), one way to report (each step PASS or FAIL
with what went wrong, exit 0/1; 2 for a setup problem; 77 when the machine cannot run a step),
and the plumbing: starting a server binary and reading its ready line, HTTP requests and
/stats, many raw connections, and the conformance suite run against one binary through
IOLAB_SERVER_UNDER_TEST. Every wait is bounded. Standard library only.
"""

import argparse
import http.client
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[2]
SETUP, CANNOT = 2, 77


class SetupError(Exception):
    """The check cannot run (binary not built...): exit 2 with the message."""


class CannotRun(Exception):
    """This machine cannot run the check (exit 77, with the reason)."""


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--variant", type=variant_arg, default="exercise",
                   help="exercise, solution or wrong-NAME (known wrong solution wrong/NAME.patch)")
    p.add_argument("--build-dir", default=str(ROOT / "build"))
    p.add_argument("--full", action="store_true", help="the whole conformance suite (slower)")
    opts = p.parse_args(argv)
    opts.build_dir = Path(opts.build_dir).resolve()
    return opts


def variant_arg(text: str) -> str:
    """--variant: exercise, solution, or wrong-NAME, a known wrong solution kept in the lab's
    wrong/NAME.patch (a hole the check once had; make test proves the check fails it)."""
    if text in ("exercise", "solution") or (text.startswith("wrong-") and len(text) > 6):
        return text
    raise argparse.ArgumentTypeError(f"'{text}': exercise, solution or wrong-NAME")


def variant_dir(lab: Path, variant: str, build_dir: Path) -> Path:
    """The folder of a variant's sources: exercise/ or solution/ in the lab, or for wrong-NAME
    the file the configure step made from the lab's wrong/NAME.patch (labs/lab.cmake), in
    <build>/labs/NN-topic/wrong/NAME/."""
    if variant.startswith("wrong-"):
        return build_dir / "labs" / lab.name / "wrong" / variant[len("wrong-"):]
    return lab / variant


def lab_binary(opts: argparse.Namespace, name: str) -> Path:
    path = opts.build_dir / "labs" / "bin" / opts.variant / name
    if not path.exists():
        raise SetupError(f"{path} is not built: run `make build` first (a compile error in "
                         f"{opts.variant}/ shows there)")
    return path


def tool(opts: argparse.Namespace, name: str) -> Path:
    path = opts.build_dir / "bin" / name
    if not path.exists():
        raise SetupError(f"{path} is not built: run `make build` first")
    return path


class Report:
    """Collects steps; run() prints each as it finishes and returns the exit status."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.failed: list[str] = []
        self.started = time.monotonic()

    def step(self, name: str, fn: Callable[[], Any]) -> bool:
        t0 = time.monotonic()
        try:
            detail = fn()
        except (AssertionError, OSError) as e:  # OSError: talking to the server failed
            indented = str(e).replace("\n", "\n      ")
            print(f"FAIL  {name} ({time.monotonic() - t0:.1f} s)\n      {indented}", flush=True)
            self.failed.append(name)
            return False
        print(f"ok    {name} ({time.monotonic() - t0:.1f} s)" + (f": {detail}" if detail else ""),
              flush=True)
        return True

    def finish(self) -> int:
        took = time.monotonic() - self.started
        if self.failed:
            print(f"{self.title}: FAIL ({len(self.failed)} step(s): {', '.join(self.failed)}) "
                  f"in {took:.1f} s")
            return 1
        print(f"{self.title}: PASS in {took:.1f} s")
        return 0


def main(title: str, steps_fn: Callable[[Report], Any], opts: argparse.Namespace) -> int:
    """Runs steps_fn(report) and turns exceptions into the exit statuses of the contract."""
    report = Report(title)
    try:
        steps_fn(report)
    except SetupError as e:
        print(f"{title}: setup error: {e}")
        return SETUP
    except CannotRun as e:
        print(f"{title}: cannot run here: {e}")
        return CANNOT
    return report.finish()


# ---- a server process -----------------------------------------------------------------------

class Server:
    """A server binary on port 0, read its ready line; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, binary: str | Path, args: Sequence[str] = (), nofile: int | None = None,
                 ready_timeout: float = 5.0, env: dict[str, str] | None = None,
                 prefix: Sequence[str] = ()) -> None:
        self.binary = Path(binary)
        self.args = list(args)
        self.nofile = nofile
        self.ready_timeout = ready_timeout
        self.env = env
        self.prefix = list(prefix)  # a command the server runs under (strace ...)
        self.proc: Any = None
        self.port = self.pid = 0  # set from the ready line (pid: the server's, under a prefix too)
        self.final_stats: Any = None

    def __enter__(self) -> "Server":
        def limits() -> None:
            if self.nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        self.proc = subprocess.Popen([*self.prefix, str(self.binary), "--port", "0", *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=limits, start_new_session=True, env=self.env)
        line = self._read_line(self.ready_timeout)
        m = re.match(r"(\S+) listening on 127\.0\.0\.1:(\d+) threads=\d+ pid=(\d+)", line or "")
        if not m:
            err = self._stop(kill=True)
            if self.proc.returncode == CANNOT:
                raise CannotRun(err.strip()[-500:])
            raise AssertionError(f"{self.binary.name} printed no ready line within "
                                 f"{self.ready_timeout:.0f} s (got {line!r}); stderr: {err[-500:]}")
        self.port, self.pid = int(m.group(2)), int(m.group(3))
        return self

    def _read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        out = b""
        fd = self.proc.stdout.fileno()
        while not out.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1)
            if not chunk:
                return None
            out += chunk
        return out.decode(errors="replace").strip()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _stop(self, kill: bool = False) -> str:
        if self.proc.poll() is None:
            try:
                os.kill(self.pid or self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            out, err = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, err = self.proc.communicate()
        lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
        if lines:
            try:
                self.final_stats = json.loads(lines[-1])
            except json.JSONDecodeError:
                pass
        return err.decode(errors="replace")

    def __exit__(self, *exc: object) -> None:  # ended by a signal we did not send: a crash
        err, died = self._stop().strip(), -self.proc.returncode
        if died > 0 and died not in (signal.SIGTERM, signal.SIGKILL):
            raise AssertionError(f"{self.binary.name} died: {signal.strsignal(died)}. {err[-500:]}")

    def connect(self, timeout: float = 3.0) -> socket.socket:
        """A raw connection (TCP_NODELAY), for requests written by hand."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """(status, body) of one GET on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def stats(self, conn: Any = None) -> Any:
        """/stats as a dict, on a fresh connection or on `conn` (from keep_alive())."""
        if conn is None:
            status, body = self.get("/stats")
        else:
            conn.request("GET", "/stats")
            r = conn.getresponse()
            status, body = r.status, r.read()
        assert status == 200, f"/stats answered {status}"
        return json.loads(body)

    def keep_alive(self, timeout: float = 5.0) -> Any:
        """A keep-alive connection made now (a low descriptor in the server), for /stats
        later when new connections may be refused."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request("GET", "/ping")
        r = conn.getresponse()
        r.read()
        assert r.status == 200, f"/ping answered {r.status}"
        return conn


def raise_own_fd_limit(needed: int) -> None:
    """Raises this process's soft RLIMIT_NOFILE to hold `needed` descriptors, or CannotRun."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise CannotRun(f"the hard descriptor limit here is {hard}, below the {needed} this "
                        f"check needs (raise it: ulimit -Hn, or /etc/security/limits.conf)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


PING = b"GET /ping HTTP/1.1\r\nHost: lab\r\n\r\n"
PONG = b'{"message":"pong"}'


class Http:
    """One keep-alive connection: requests sent as they come (pipelined or not), whole
    responses read back (Content-Length framed). A close mid-response is an AssertionError."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, path: str, method: str = "GET") -> None:
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: lab\r\n\r\n".encode())

    def fill(self, limit: int = 1 << 16) -> None:
        data = self.sock.recv(limit)
        if not data:
            raise AssertionError("the server closed a keep-alive connection in mid-response")
        self.buf += data

    def head(self) -> tuple[int, int]:
        """(status, Content-Length) of the next response; its body stays to be read."""
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
        return int(head.split(b" ", 2)[1]), int(m.group(1)) if m else 0

    def body(self, length: int) -> bytes:
        while len(self.buf) < length:
            self.fill()
        out, self.buf = self.buf[:length], self.buf[length:]
        return out

    def response(self, head_only: bool = False) -> tuple[int, bytes]:
        status, length = self.head()
        return status, self.body(0 if head_only else length)

    def get(self, path: str, head_only: bool = False) -> tuple[int, bytes]:
        self.send(path, "HEAD" if head_only else "GET")
        return self.response(head_only)

    def stats(self) -> Any:
        status, body = self.get("/stats")
        assert status == 200, f"/stats answered {status}"
        return json.loads(body)


def read_responses(sock: Any, count: int, what: str, expect: Sequence[bytes] = (b"200",),
                   hang_s: float = 3.0, hint: str = "") -> None:
    """Reads `count` whole responses (Content-Length framed) from a raw socket, their statuses
    expect[i] (the last one repeats); `hang_s` of silence is a hang, reported with `hint`."""
    buf = b""
    got = 0
    deadline = time.monotonic() + hang_s
    while True:
        while (head_end := buf.find(b"\r\n\r\n")) >= 0:
            m = re.search(rb"(?i)content-length: *(\d+)", buf[:head_end])
            total = head_end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) < total:
                break
            want = expect[min(got, len(expect) - 1)]
            assert buf.startswith(b"HTTP/1.1 " + want), (
                f"{what}: response {got + 1} is not {want.decode()}: {buf[:80]!r}")
            buf = buf[total:]
            got += 1
        if got >= count:
            return
        left = deadline - time.monotonic()
        assert left > 0, (f"{what}: HANG: {got} of {count} responses after {hang_s:.0f} s, then "
                          f"silence. {hint}")
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            continue
        assert b, f"{what}: the server closed the connection after {got} of {count} responses"
        buf += b


def keep_alive_rounds(server: Server, conns: int, rounds: int, hint: str = "") -> None:
    """`conns` keep-alive connections, `rounds` times a GET /ping sent on each and every answer
    read (read_responses: a hang is reported with `hint`)."""
    socks = [server.connect() for _ in range(conns)]
    try:
        for _ in range(rounds):
            for s in socks:
                s.sendall(PING)
            for s in socks:
                read_responses(s, 1, f"{conns} keep-alive connection(s), a request each in "
                               "flight", hint=hint)
    finally:
        for s in socks:
            s.close()


def read_status(sock: Any, deadline: float) -> int | None:
    """The status code of one response on a blocking socket, or None on close/time-out."""
    data = b""
    while b"\r\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except (socket.timeout, OSError):
            return None
        if not chunk:
            return None
        data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else None


def open_connections(port: int, n: int, timeout: float = 10.0) -> list[Any]:
    """n connected sockets (blocking, with time-outs); raises AssertionError if one fails."""
    socks = []
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            socks.append(s)
    except OSError as e:
        for s in socks:
            s.close()
        raise AssertionError(f"connection {len(socks) + 1} of {n} failed: {e}") from e
    return socks


def ping_many(server: Server, n: int, wait: float = 10.0) -> tuple[list[int | None], Any]:
    """n connections open at once, a GET /ping sent on each: their statuses (None: closed or no
    answer within `wait` s), and /stats read meanwhile on a connection made before them."""
    raise_own_fd_limit(n + 100)
    control = server.keep_alive()
    socks = open_connections(server.port, n)
    try:
        for sock in socks:
            sock.sendall(PING)
        deadline = time.monotonic() + wait
        return [read_status(sock, deadline) for sock in socks], server.stats(control)
    finally:
        for sock in socks:
            sock.close()
        control.close()


# ---- the conformance suite against one binary -----------------------------------------------

# Timer and exhaustion tests take 1-2 s each; the quick run leaves them out (--full runs all).
SLOW_CONFORMANCE = ["HeaderTimeoutNotExtendedByDrippedBytes", "SlowlorisClosedAndFdsRecovered",
                    "IdleTimeoutClosesIdleConnection", "HeaderTimerStartsAtFirstByteOfLaterRequest",
                    "BlockingSleepDoesNotDelayPing", "IdleTimerStopsAtFirstByte",
                    "DescriptorExhaustionKeepsServingAndRecovers"]


# Cases the model servers pass and no lab teaches: lab solutions close the way the labs show.
# Lingering close (servers/core/os/linger.hpp) is not asked of the labs.
NOT_IN_LABS = ["Status413ReachesAClientStillSending"]


def conformance(opts: argparse.Namespace, binary: Path, include: Iterable[str] | None = None,
                exclude: Iterable[str] = (), timeout: float = 120,
                env: dict[str, str] | None = None) -> str:
    """Runs build/bin/conformance_test against `binary` (named "lab"); returns a one-line
    summary, or raises AssertionError naming the failed tests and their first messages."""
    test = tool(opts, "conformance_test")
    positive = ":".join(f"*.{t}/lab" for t in include) if include else "*/lab"
    negative = ":".join(f"*.{t}/lab" for t in [*exclude, *NOT_IN_LABS])
    gfilter = positive + (f"-{negative}" if negative else "")
    env = dict(env or os.environ, IOLAB_SERVER_UNDER_TEST=str(binary))
    try:
        proc = subprocess.run([str(test), f"--gtest_filter={gfilter}", "--gtest_color=no"],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the conformance suite did not finish within {timeout} s "
                             f"(a hang in the server?)") from None
    out = proc.stdout
    passed = re.search(r"\[  PASSED  \] (\d+) test", out)
    failed = re.findall(r"\[  FAILED  \] Servers/Conformance\.(\w+)/lab", out)
    if proc.returncode == 0 and passed:
        return f"{passed.group(1)} conformance tests pass"
    failed = list(dict.fromkeys(failed))
    lines = [f"{len(failed)} conformance test(s) failed: {', '.join(failed) or '(crash?)'}"]
    # The first failure message of each failed test, for a start.
    for name in failed[:5]:
        block = re.search(
            rf"\[ RUN      \] Servers/Conformance\.{name}/lab\n(.*?)\[  FAILED  \]", out, re.S)
        if block:
            msg = [ln for ln in block.group(1).splitlines() if ln.strip()][:6]
            lines.append(f"  {name}: " + " | ".join(m.strip() for m in msg)[:600])
    lines.append(f"  rerun: IOLAB_SERVER_UNDER_TEST={binary} {test} --gtest_filter='{gfilter}'")
    raise AssertionError("\n".join(lines))
