#!/usr/bin/python3
"""flake8 and mypy over the project's Python, with Debian's tools (python3-flake8, mypy).

The Python is every *.py file under bench/, notebooks/, labs/, scripts/ and tests/, and every
file there without the suffix whose first line runs Python (the labs' `check` scripts). The
settings are the repository's: .flake8 (100 columns, as .clang-format) and mypy.ini
(--check-untyped-defs; where the imports live).

mypy takes one module name once per run, and twelve labs have a script called `check` (and lab 00
a validity.py in both exercise/ and solution/), so it runs in as few batches as keep the names
apart; its cache (--cache-dir, in the build tree under CTest) makes the later batches cheap.

Usage: tests/lint/python_checks.py flake8|mypy [--cache-dir DIR] [FILE...]
       (files given: only those, e.g. a deliberately bad one to see the check fail)
Exit status: 0 clean, 1 findings (printed), 2 the tool is missing.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("bench", "notebooks", "labs", "scripts", "tests")
SKIP_DIRS = {"__pycache__", ".mypy_cache", "build"}


def is_python_script(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def python_files() -> list[Path]:
    """The project's Python files, sorted (paths relative to the repository)."""
    found = []
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*")):
            if not path.is_file() or SKIP_DIRS & set(path.relative_to(ROOT).parts):
                continue
            if path.suffix == ".py" or (not path.suffix and is_python_script(path)):
                found.append(path.relative_to(ROOT))
    return found


def module_name(path: Path) -> str:
    """The name mypy gives a file: dotted through the folders that hold an __init__.py."""
    parts = [path.stem]
    folder = (ROOT / path).parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def batches(files: list[Path]) -> list[list[Path]]:
    """Files in batches in which no two have the same module name (the first of each name in the
    first batch, the second in the second, ...)."""
    out: list[list[Path]] = []
    seen: dict[str, int] = {}
    for path in files:
        name = module_name(path)
        index = seen.get(name, 0)
        seen[name] = index + 1
        if index == len(out):
            out.append([])
        out[index].append(path)
    return out


def run_flake8(files: list[Path]) -> int:
    return subprocess.run(["/usr/bin/flake8", "--config", str(ROOT / ".flake8"),
                           *map(str, files)], cwd=ROOT).returncode


# Where a None from Popen's pipes or a fresh re.match fails the test at once (mypy.ini).
RELAXED = ("tests", "labs", "scripts")


def run_mypy(files: list[Path], cache_dir: str | None) -> int:
    status = 0
    strict = [f for f in files if f.parts[0] not in RELAXED]
    relaxed = [f for f in files if f.parts[0] in RELAXED]
    plans: list[tuple[str, list[Path], list[str]]] = [
        ("strict", strict, []), ("relaxed", relaxed, ["--disable-error-code", "union-attr"])]
    for name, group, extra in plans:
        # One cache per set of options: a cache written with other options is thrown away.
        cache = ["--cache-dir", str(Path(cache_dir) / name)] if cache_dir else []
        for batch in batches(group):
            proc = subprocess.run(["/usr/bin/mypy", "--config-file", str(ROOT / "mypy.ini"),
                                   *cache, *extra, "--no-error-summary", *map(str, batch)],
                                  cwd=ROOT)
            status = max(status, proc.returncode)
    return status


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tool", choices=("flake8", "mypy"))
    p.add_argument("--cache-dir", help="mypy's cache (default: its own, .mypy_cache)")
    p.add_argument("files", nargs="*", type=Path)
    opts = p.parse_intermixed_args(argv)
    if not shutil.which(f"/usr/bin/{opts.tool}"):
        print(f"python_checks: /usr/bin/{opts.tool} is missing "
              f"(scripts/install-deps.sh test installs it)", file=sys.stderr)
        return 2
    files = [f.resolve().relative_to(ROOT) if f.is_absolute() or f.exists() else f
             for f in opts.files] or python_files()
    status = run_flake8(files) if opts.tool == "flake8" else run_mypy(files, opts.cache_dir)
    print(f"python_checks: {opts.tool} over {len(files)} files: "
          f"{'clean' if status == 0 else 'findings above'}")
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
