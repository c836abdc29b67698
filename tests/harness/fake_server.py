#!/usr/bin/python3
"""A deliberately bad HTTP server for the harness robustness tests.

It takes the iolab server flags (--port 0, --pin N, ...; only --port is used), writes its pid to
$FAKE_PID_DIR/<pid> so a test can check by PID that nothing was left running, and misbehaves as
$FAKE_MODE says:

  good       answers /ping and /stats like an iolab server (a control: the harness must pass)
  crash      like good, then kills itself with SIGKILL after $FAKE_CRASH_AFTER /ping requests
  silent     never prints its ready line, never listens: just waits to be killed
  garbage    prints its ready line, then answers every request with bytes that are not HTTP
  garbage_ping  answers /stats properly but /ping with garbage
  leak_fd    like good, but opens /dev/null for every accepted connection and keeps it open (a
             descriptor leak; the connection itself still closes)
  leak_mem   like good, but keeps 4 KiB per request (a memory leak)

Requests are read up to the blank line (no bodies); keep-alive unless "Connection: close".
"""

import json
import os
import signal
import socket
import sys
import threading
from typing import Any

MODE = os.environ.get("FAKE_MODE", "good")
CRASH_AFTER = int(os.environ.get("FAKE_CRASH_AFTER", "300"))
lock = threading.Lock()
served = 0
kept: list[Any] = []  # leak_fd: sockets; leak_mem: buffers


def record_pid():
    pid_dir = os.environ.get("FAKE_PID_DIR")
    if pid_dir:
        with open(os.path.join(pid_dir, str(os.getpid())), "w") as f:
            f.write(" ".join(sys.argv))


def stats_body():
    t = os.times()
    return json.dumps({
        "requests": served, "cpu_user_us": int(t.user * 1e6), "cpu_sys_us": int(t.system * 1e6),
        "voluntary_context_switches": 0, "involuntary_context_switches": 0,
        "syscalls": {"read": 0, "write": 0}, "allocations": 0, "allocated_bytes": 0,
        "connections_open": 0, "model_counters": {"pool_reserved_bytes": 0}}).encode()


def response(body, close, content_type="text/plain"):
    head = (f"HTTP/1.1 200 OK\r\nServer: fake\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "")
            + "\r\n")
    return head.encode() + body


def serve(conn):
    global served
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            path = line.split(" ")[1] if line.count(" ") >= 2 else "/"
            close = b"connection: close" in head.lower()
            if MODE == "garbage" or (MODE == "garbage_ping" and not path.startswith("/stats")):
                out = b"\x00\xffNOT HTTP AT ALL\r\n\r\n\x16\x03\x01"
            elif path.startswith("/stats"):
                out = response(stats_body(), close, "application/json")
            else:
                with lock:
                    served += 1
                    n = served
                    if MODE == "leak_mem":
                        kept.append(bytearray(4096))
                if MODE == "crash" and n >= CRASH_AFTER:
                    os.kill(os.getpid(), signal.SIGKILL)
                out = response(b'{"message":"pong"}', close, "application/json")
            try:
                conn.sendall(out)
            except OSError:
                return
            if close:
                return


def main():
    record_pid()
    if MODE == "silent":
        while True:
            signal.pause()
    port = 0
    args = sys.argv[1:]
    if "--port" in args:
        port = int(args[args.index("--port") + 1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    print(f"server_fake listening on 127.0.0.1:{listener.getsockname()[1]} threads=1 "
          f"pid={os.getpid()}", flush=True)
    while True:
        conn, _ = listener.accept()
        if MODE == "leak_fd":
            kept.append(open(os.devnull, "rb"))
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
