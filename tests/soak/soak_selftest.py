#!/usr/bin/python3
"""The soak's checks, shown to bite: soak.py against tests/harness/fake_server.py in three
modes, with small counts (a few seconds):
  good      must pass;
  leak_fd   keeps a descriptor open per accepted connection: must fail on descriptors;
  leak_mem  keeps 4 KiB per request: must fail on RSS (keep-alive phase, and the last c10k round).

  /usr/bin/python3 soak_selftest.py BIN_DIR
"""

import io
import sys
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

import soak  # beside this file

HERE = Path(__file__).resolve().parent

BIN_DIR = (Path(sys.argv.pop(1)) if len(sys.argv) > 1 else HERE.parents[1] / "build/bin").resolve()
FAKE = HERE.parent / "harness" / "fake_server.py"


class SoakSelfTest(unittest.TestCase):
    def soak(self, mode, *extra):
        with tempfile.TemporaryDirectory(prefix="reliability-soak-") as tmp:
            (Path(tmp) / "loadgen").symlink_to(BIN_DIR / "loadgen")
            shim = Path(tmp) / f"server_{mode}"
            shim.write_text(f'#!/bin/sh\nFAKE_MODE={mode} exec /usr/bin/python3 {FAKE} "$@"\n')
            shim.chmod(0o755)
            out = io.StringIO()
            with redirect_stdout(out):
                code = soak.main(["--bin-dir", tmp, "--servers", mode, "--keepalive", "3000",
                                  "--short", "300", "--warmup", "1000", "--no-c10k",
                                  "--settle-s", "3", *extra])
        return code, out.getvalue()

    def test_good_server_passes(self) -> None:
        code, out = self.soak("good")
        self.assertEqual(code, 0, out)
        self.assertIn("all passed", out)

    def test_descriptor_leak_fails(self) -> None:
        code, out = self.soak("leak_fd")
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"leak_fd +keep-alive .*FAILED: descriptors \d+ -> \d+")

    def test_memory_leak_fails_the_last_c10k_round(self) -> None:
        # 400 idle connections a round, one request each: 1.6 MB more every round, which never
        # halves like an allocator settling does.
        code, out = self.soak("leak_mem", "--c10k", "400", "--c10k-rounds", "3",
                              "--c10k-rss-slack-kb", "800", "--keepalive", "100", "--warmup", "100")
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"leak_mem +c10k-1 .*: ok")
        self.assertRegex(out, r"leak_mem +c10k-3 .*FAILED: RSS grew \d+ KB")

    def test_memory_leak_fails(self) -> None:
        code, out = self.soak("leak_mem")
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"leak_mem +keep-alive .*FAILED: RSS grew \d+ KB")


if __name__ == "__main__":
    unittest.main(verbosity=2)
