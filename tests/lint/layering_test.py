#!/usr/bin/python3
"""The core's layering: servers/core/http/ never reaches the operating system.

Rule: a file under servers/core/http/ includes only
  - its siblings in http/ ("connection.hpp"), never a file of servers/core/os/ or elsewhere;
  - C++ standard library headers, except those whose purpose is the operating system (threads,
    signals, files, the C clock and stdio): see OS_CXX_HEADERS;
  - <sys/uio.h> (struct iovec, the shape the I/O layer writes) and the compiler's SIMD
    intrinsics (<emmintrin.h>), which are instructions, not system calls.
Any other <...h> header (POSIX, Linux, <sys/...>) or a path into os/ is a violation. The I/O
layer (os/, the servers) may include http/; the other way round is what this test refuses.

The script first checks itself on files it writes with each kind of wrong include (each must be
reported) and a file with only allowed ones (must pass), then checks the real tree. Exit 0 when
http/ keeps the rule, 1 when it does not (each violation printed as file:line: include).

Usage: tests/lint/layering_test.py [CORE_DIR]   (default: servers/core of this checkout)
"""
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
ALLOWED_SYSTEM = {"sys/uio.h"}
INTRINSICS = re.compile(r"^[a-z0-9]*intrin\.h$")
OS_CXX_HEADERS = {"thread", "ctime", "csignal", "cstdio", "filesystem", "fstream", "iostream",
                  "future", "stop_token"}


def violations(http_dir: Path) -> list[str]:
    siblings = {p.name for p in http_dir.iterdir() if p.is_file()}
    found = []
    for path in sorted(http_dir.rglob("*")):
        if path.suffix not in (".hpp", ".cpp", ".h", ".cc"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            kind, name = m.groups()
            where = f"{path}:{number}: {line.strip()}"
            if kind == '"':
                if "/" in name or name not in siblings:
                    found.append(f"{where}  (http/ includes only its own files)")
            elif name in ALLOWED_SYSTEM or INTRINSICS.match(name):
                continue
            elif name.endswith(".h") or "/" in name:
                found.append(f"{where}  (a system header: only <sys/uio.h> is allowed)")
            elif name in OS_CXX_HEADERS:
                found.append(f"{where}  (a C++ header for the operating system's services)")
    return found


def self_check() -> list[str]:
    """Each wrong include must be reported; allowed ones must not be."""
    wrong = ['#include <sys/socket.h>', '#include <unistd.h>', '#include "net.hpp"',
             '#include "../os/sys.hpp"', '#include <thread>', '#include <netinet/in.h>']
    allowed = ['#include <sys/uio.h>', '#include <emmintrin.h>', '#include <string_view>',
               '#include "sibling.hpp"']
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        http = Path(tmp) / "http"
        http.mkdir()
        (http / "sibling.hpp").write_text("#pragma once\n")
        (http / "good.cpp").write_text("\n".join(allowed) + "\n")
        if violations(http):
            problems.append(f"allowed includes reported: {violations(http)}")
        for i, include in enumerate(wrong):
            bad = http / f"bad{i}.cpp"
            bad.write_text(include + "\n")
            if len(violations(http)) != 1:
                problems.append(f"not reported: {include}")
            bad.unlink()
    return problems


def main() -> int:
    core = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "servers" / "core"
    problems = self_check()
    if problems:
        print("layering: the check itself is broken:", *problems, sep="\n  ")
        return 1
    found = violations(core / "http")
    for v in found:
        print(v)
    if found:
        print(f"layering: {len(found)} include(s) in {core / 'http'} break the rule "
              "(see this script's docstring)")
        return 1
    print(f"layering: {core / 'http'} includes only itself, the C++ library and <sys/uio.h>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
