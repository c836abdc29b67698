#!/usr/bin/python3
"""The reference servers are configured as below, so comparisons are fair.

nginx: one process (master_process off, daemon off, 1 worker), no access log, a keep-alive
request limit that never closes a benchmark connection, every temp path under the run's prefix,
reuseport. Gin: gin.New() in release mode without middleware. net/http: the standard library
only. When nginx is installed, the rendered configuration must also pass `nginx -t`.
"""

import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "servers/reference"


def directives(conf):
    """(name, args) for every simple directive, comments dropped."""
    text = re.sub(r"#[^\n]*", "", conf)
    return [(m.group(1), m.group(2).split()) for m in re.finditer(r"(\w+)\s+([^;{}]*);", text)]


class NginxConfigTest(unittest.TestCase):
    def setUp(self) -> None:
        self.conf = (REFERENCE / "nginx/nginx.conf.in").read_text()
        self.d = directives(self.conf)

    def values(self, name):
        return [args for n, args in self.d if n == name]

    def test_single_foreground_process(self) -> None:
        self.assertEqual(self.values("master_process"), [["off"]])
        self.assertEqual(self.values("daemon"), [["off"]])
        self.assertEqual(self.values("worker_processes"), [["1"]])

    def test_no_access_log(self) -> None:
        self.assertEqual(self.values("access_log"), [["off"]])

    def test_keepalive_requests_never_end_a_benchmark(self) -> None:
        (limit,), = self.values("keepalive_requests")
        self.assertGreaterEqual(int(limit), 1_000_000)

    def test_temp_paths_under_prefix(self) -> None:
        names = ["client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
                 "uwsgi_temp_path", "scgi_temp_path"]
        for name in names:
            (args,) = self.values(name)
            self.assertFalse(args[0].startswith("/"), f"{name} {args[0]} is not under -p")
        self.assertFalse(any(a[0].startswith("/") for a in self.values("pid")))

    def test_reuseport_listener_with_port_placeholder(self) -> None:
        (listen,) = self.values("listen")
        self.assertEqual(listen[0], "127.0.0.1:@PORT@")
        self.assertIn("reuseport", listen)

    @unittest.skipUnless(shutil.which("nginx") or Path("/usr/sbin/nginx").exists(),
                         "nginx not installed (apt-get install nginx-light)")
    def test_rendered_config_is_accepted_by_nginx(self) -> None:
        with tempfile.TemporaryDirectory() as prefix:
            (Path(prefix) / "tmp").mkdir()
            conf = Path(prefix) / "nginx.conf"
            conf.write_text(self.conf.replace("@PORT@", "18080").replace("@NOFILE@", "1024"))
            result = subprocess.run(["/usr/sbin/nginx", "-t", "-p", prefix + "/", "-e",
                                     str(Path(prefix) / "error.log"), "-c", str(conf)],
                                    capture_output=True, text=True, timeout=20)
            self.assertEqual(result.returncode, 0, result.stderr)


class GoReferenceTest(unittest.TestCase):
    def test_gin_is_bare_and_in_release_mode(self) -> None:
        src = (REFERENCE / "gin/main.go").read_text()
        self.assertIn("gin.SetMode(gin.ReleaseMode)", src)
        self.assertIn("gin.New()", src)
        self.assertNotIn("gin.Default()", src)
        self.assertNotRegex(src, r"\.Use\(")
        body = src[src.index("func main"):]
        self.assertLess(body.index("gin.SetMode"), body.index("gin.New()"))

    def test_nethttp_uses_only_the_standard_library(self) -> None:
        src = (REFERENCE / "nethttp/main.go").read_text()
        imports = re.search(r"import \((.*?)\)", src, re.S).group(1)
        for line in imports.split():
            self.assertNotIn(".", line.strip('"'), f"non-standard import {line}")

    def test_both_print_the_ready_line(self) -> None:
        for name in ("gin", "nethttp"):
            src = (REFERENCE / f"{name}/main.go").read_text()
            self.assertIn(f"server_{name} listening on %s:%d threads=%d pid=%d", src)


if __name__ == "__main__":
    unittest.main(verbosity=2)
