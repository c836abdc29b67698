#!/usr/bin/python3
"""Model-specific behaviour that the shared conformance suite cannot express for every server.

- select: more connections than FD_SETSIZE are refused cleanly (a 503 or a close, never a hang
  or a crash) and counted, and the server keeps serving the connections it holds; a descriptor
  numbered >= FD_SETSIZE is never put in an fd_set (exercised by starting the server with the
  descriptor numbers above its own taken by inherited ones, so its first accepted socket is
  numbered past 1024); if its own listener or pipe would be past FD_SETSIZE it exits with a message.
- pooled: after a warm-up, 10,000 keep-alive requests move the allocation counter by zero;
  epoll_et's allocations per request are printed beside it.

Run by CTest as: /usr/bin/python3 models_test.py BIN_DIR
"""

import json
import os
import re
import resource
import socket
import subprocess
import sys
import unittest
from pathlib import Path

BIN_DIR = (Path(sys.argv.pop(1)) if len(sys.argv) > 1 else
           Path(__file__).resolve().parents[2] / "build/bin").resolve()
FD_SETSIZE = 1024


class Server:
    """A server started on port 0, with optional inherited descriptors; stopped on exit."""

    def __init__(self, model, *args, inherit_fds=()):
        self.cmd = [str(BIN_DIR / f"server_{model}"), "--port", "0", *args]
        self.inherit_fds = tuple(inherit_fds)

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, pass_fds=self.inherit_fds)
        line = self.proc.stdout.readline()
        match = re.search(r"listening on [0-9.]+:(\d+) ", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"no ready line: {line!r} {self.proc.stderr.read()}")
        self.port = int(match.group(1))
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr = self.proc.stderr.read()
        lines = self.proc.stdout.read().splitlines()
        self.final_stats = json.loads(lines[-1]) if lines else None
        self.proc.stdout.close()
        self.proc.stderr.close()


class KeepAlive:
    """One keep-alive connection that sends requests in batches and reads whole responses."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def close(self):
        self.sock.close()

    def requests(self, path, n):
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode() * n)
        return [self.response() for _ in range(n)]

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(rest) < length:
            self.buf = head + b"\r\n\r\n" + rest
            self._fill()
            head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest[length:]
        return int(head.split()[1]), rest[:length]

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_outcome(sock):
    """'served', 'refused' (a 503 or an orderly close) or 'hung'."""
    sock.settimeout(2)
    try:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        data = sock.recv(4096)
    except socket.timeout:
        return "hung"
    except OSError:
        return "refused"  # reset after the refusal
    if data.startswith(b"HTTP/1.1 200"):
        return "served"
    if not data or data.startswith(b"HTTP/1.1 503"):
        return "refused"
    return "unexpected: " + data[:40].decode(errors="replace")


class SelectTest(unittest.TestCase):
    def setUp(self) -> None:
        if raise_fd_limit() < 2 * FD_SETSIZE + 200:
            self.skipTest("descriptor limit too low to open more than FD_SETSIZE connections")

    def open_many(self, port, n):
        socks = []
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        return socks

    def test_more_connections_than_fd_setsize_refused_cleanly(self) -> None:
        with Server("select") as server:
            socks = self.open_many(server.port, FD_SETSIZE + 100)
            try:
                outcomes = [connection_outcome(s) for s in socks]
                served = outcomes.count("served")
                refused = outcomes.count("refused")
                self.assertEqual(served + refused, len(socks), set(outcomes))
                self.assertGreater(refused, 100)
                self.assertGreater(served, 900)
                # The survivors keep being served.
                first = next(s for s, o in zip(socks, outcomes) if o == "served")
                first.sendall(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
                stats = KeepAlive.__new__(KeepAlive)
                stats.sock, stats.buf = first, b""
                status, body = stats.response()
                self.assertEqual(status, 200)
                self.assertEqual(json.loads(body)["connections_refused"], refused)
            finally:
                for s in socks:
                    s.close()

    def own_descriptor_count(self):
        """Descriptors the select server opens before its first accept (listener, pipe,
        memfd...)."""
        with Server("select") as server:
            return len(os.listdir(f"/proc/{server.proc.pid}/fd")) - 3

    def test_descriptor_past_fd_setsize_never_enters_an_fd_set(self) -> None:
        # Inherited descriptors fill every number from just above the server's own descriptors
        # to past FD_SETSIZE, so its first accepted socket is numbered past 1024.
        first_free = 3 + self.own_descriptor_count()
        with InheritedFillers(first_free, FD_SETSIZE + 10) as fillers:
            with Server("select", "--max-conns", "900", inherit_fds=fillers) as server:
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                self.assertEqual(connection_outcome(sock), "refused")
                sock.close()
        self.assertEqual(server.proc.returncode, 0, server.stderr)
        self.assertIn(">= FD_SETSIZE", server.stderr)
        self.assertEqual(server.final_stats["model_counters"]["fd_setsize_refused"], 1)
        self.assertEqual(server.final_stats["connections_accepted"], 0)

    def test_own_descriptors_past_fd_setsize_stop_the_server_at_start(self) -> None:
        # With every number below FD_SETSIZE taken, the listener itself cannot enter an fd_set:
        # the server must say so and exit, not abort inside FD_SET.
        with InheritedFillers(3, FD_SETSIZE + 10) as fillers:
            proc = subprocess.run([str(BIN_DIR / "server_select"), "--port", "0"], pass_fds=fillers,
                                  capture_output=True, text=True, timeout=10)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(">= FD_SETSIZE", proc.stderr)


class InheritedFillers:
    """Makes every descriptor number in [first, end) open in this process (dups of /dev/null where
    free) so that a child started with pass_fds=the returned tuple holds exactly those numbers."""

    def __init__(self, first, end):
        self.first, self.end = first, end

    def __enter__(self):
        self.null = os.open("/dev/null", os.O_RDONLY)
        self.created = []
        for fd in range(self.first, self.end):
            if fd == self.null:
                continue
            try:
                os.fstat(fd)
            except OSError:
                os.dup2(self.null, fd, inheritable=False)
                self.created.append(fd)
        return tuple(range(self.first, self.end))

    def __exit__(self, *exc):
        for fd in self.created:
            os.close(fd)
        os.close(self.null)


class PooledTest(unittest.TestCase):
    def allocations_per_request(self, model):
        with Server(model) as server:
            conns = [KeepAlive(server.port) for _ in range(8)]
            try:
                for c in conns:  # warm-up: pools and buffers grow to the load
                    for status, _ in c.requests("/ping", 100):
                        self.assertEqual(status, 200)
                (_, before), = conns[0].requests("/stats", 1)
                for _ in range(25):
                    for c in conns:
                        for status, _ in c.requests("/ping", 50):
                            self.assertEqual(status, 200)
                (_, after), = conns[0].requests("/stats", 1)
            finally:
                for c in conns:
                    c.close()
        a, b = json.loads(before), json.loads(after)
        requests = b["requests"] - a["requests"]
        self.assertEqual(requests, 10_000)
        return (b["allocations"] - a["allocations"]) / requests, b

    def test_pooled_makes_zero_allocations_per_request(self) -> None:
        plain, _ = self.allocations_per_request("epoll_et")
        pooled, stats = self.allocations_per_request("pooled")
        print(f"\nallocations per request over 10,000 keep-alive requests: "
              f"epoll_et {plain:.2f}, pooled {pooled:.2f} "
              f"(pool_hits {stats['model_counters']['pool_hits']}, "
              f"pool_reserved_bytes {stats['model_counters']['pool_reserved_bytes']})")
        self.assertEqual(pooled, 0.0)
        # The plain server takes at least one response string from operator new per batch of
        # 50 pipelined requests (the batch's answers share it): the same path allocates, so the
        # pooled server's zero is the pools' doing, not a counter that misses.
        self.assertGreaterEqual(plain, 1 / 50)


if __name__ == "__main__":
    unittest.main(verbosity=2)
