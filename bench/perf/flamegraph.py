#!/usr/bin/python3
"""flamegraph.py: folds `perf script` output into stacks and draws them as an SVG flame graph.

Debian 12 has no flamegraph.pl, so this is a small stand-in in the standard library, in the
format Brendan Gregg's tools use, so their folded files work here and ours work there:

  folded stacks   one line per distinct stack: "comm;outer;...;leaf COUNT"
  flame graph     x = share of samples (sorted by name, not time), y = stack depth; each frame's
                  width is the samples in which it was on the stack. Hover a frame for its name,
                  samples and percentage (an SVG <title>; no script needed).

Usage:
  bench/perf/flamegraph.py fold [perf-script.txt]          > stacks.folded   (stdin if no file)
  bench/perf/flamegraph.py render [stacks.folded] [--title T] [--width PX] > graph.svg
bench/perf/flamegraph.sh records with perf and runs both.
"""

import argparse
import collections
import hashlib
import re
import sys
from typing import Iterable, Mapping
from xml.sax.saxutils import escape

FRAME_HEIGHT = 16
FONT_SIZE = 12
MIN_WIDTH_PX = 0.1     # narrower frames are not drawn (they would be invisible)
CHAR_WIDTH = 0.59      # of the font size, to decide whether a name fits in its frame

_OFFSET = re.compile(r"\+0x[0-9a-fA-F]+$")


def _frame_name(line: str) -> str | None:
    """`  7f12 do_syscall_64+0x5c ([kernel.kallsyms])` -> `do_syscall_64`."""
    parts = line.strip().split(None, 1)
    if len(parts) < 2:
        return None
    rest = parts[1]
    dso = ""
    m = re.search(r"\s\(([^()]*)\)$", rest)
    if m:
        dso = m.group(1)
        rest = rest[:m.start()]
    sym = _OFFSET.sub("", rest.strip())
    if not sym or sym == "[unknown]":
        base = dso.rsplit("/", 1)[-1] if dso else "unknown"
        return f"[{base}]"
    return sym


def fold(lines: Iterable[str]) -> "collections.Counter[str]":
    """perf script text -> Counter {"comm;outer;...;leaf": samples}."""
    stacks: collections.Counter[str] = collections.Counter()
    comm: str | None = None
    frames: list[str] = []

    def flush() -> None:
        if comm is not None:
            stacks[";".join([comm] + frames[::-1])] += 1

    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            flush()
            comm, frames = None, []
        elif line[0] in " \t":
            if comm is not None:
                name = _frame_name(line)
                if name:
                    frames.append(name.replace(";", ":"))
        elif not line.startswith("#"):
            flush()
            # The command name may contain spaces; it ends where "PID/TID" or "PID" starts.
            m = re.match(r"^(.*?)\s+(\d+)(/\d+)?\s", line)
            comm = (m.group(1) if m else line.split()[0]).strip().replace(";", ":") or "?"
            frames = []
    flush()
    return stacks


def read_folded(lines: Iterable[str]) -> "collections.Counter[str]":
    stacks: collections.Counter[str] = collections.Counter()
    for line in lines:
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            raise ValueError(f"not a folded stack line: {line!r}")
        stacks[stack] += int(count)
    return stacks


class Node:
    __slots__ = ("name", "count", "children")

    def __init__(self, name: str) -> None:
        self.name, self.count = name, 0
        self.children: dict[str, Node] = {}


def build_tree(stacks: Mapping[str, int]) -> Node:
    root = Node("all")
    for stack, count in stacks.items():
        root.count += count
        node = root
        for name in stack.split(";"):
            node = node.children.setdefault(name, Node(name))
            node.count += count
    return root


def _color(name: str) -> str:
    """A warm colour chosen by the name, so the same function has the same colour everywhere."""
    h = hashlib.md5(name.encode()).digest()
    return f"rgb({205 + h[0] % 50},{h[1] % 230},{h[2] % 55})"


def render(stacks: Mapping[str, int], title: str = "Flame graph",
           width: int = 1200) -> str:
    root = build_tree(stacks)
    total = max(root.count, 1)

    def depth(node: Node) -> int:
        return 1 + max((depth(c) for c in node.children.values()), default=0)

    levels = depth(root)
    top = 3 * FONT_SIZE
    height = top + levels * FRAME_HEIGHT + 2 * FONT_SIZE
    scale = (width - 20) / total
    out = [
        '<?xml version="1.0" standalone="no"?>',
        f'<svg version="1.1" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f8f8f8"/>',
        f'<text x="{width / 2:.1f}" y="{2 * FONT_SIZE}" font-size="{FONT_SIZE + 4}" '
        f'font-family="Verdana" text-anchor="middle">{escape(title)}</text>',
        f'<text x="10" y="{height - FONT_SIZE / 2:.1f}" font-size="{FONT_SIZE}" '
        f'font-family="Verdana">{root.count} samples</text>',
    ]

    def draw(node: Node, x: float, level: int) -> None:
        w = node.count * scale
        if w < MIN_WIDTH_PX:
            return
        y = height - 2 * FONT_SIZE - (level + 1) * FRAME_HEIGHT
        pct = 100.0 * node.count / total
        label = f"{node.name} ({node.count} samples, {pct:.2f}%)"
        fill = "rgb(230,230,230)" if level == 0 else _color(node.name)
        out.append(f'<g><title>{escape(label)}</title>'
                   f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{FRAME_HEIGHT - 1}" '
                   f'fill="{fill}" rx="2" ry="2"/>')
        chars = int(w / (FONT_SIZE * CHAR_WIDTH))
        if chars >= 3:
            text = node.name if len(node.name) <= chars else node.name[:chars - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + FRAME_HEIGHT - 4}" font-size="{FONT_SIZE}" '
                       f'font-family="Verdana">{escape(text)}</text>')
        out.append("</g>")
        child_x = x
        for name in sorted(node.children):
            child = node.children[name]
            draw(child, child_x, level + 1)
            child_x += child.count * scale

    draw(root, 10.0, 0)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fold", help="perf script output -> folded stacks")
    f.add_argument("input", nargs="?")
    r = sub.add_parser("render", help="folded stacks -> SVG")
    r.add_argument("input", nargs="?")
    r.add_argument("--title", default="Flame graph")
    r.add_argument("--width", type=int, default=1200)
    opts = p.parse_args(argv)
    src = open(opts.input, errors="replace") if opts.input else sys.stdin
    with src:
        if opts.cmd == "fold":
            for stack, count in sorted(fold(src).items()):
                sys.stdout.write(f"{stack} {count}\n")
        else:
            stacks = read_folded(src)
            if not stacks:
                print("flamegraph.py: no stacks to draw", file=sys.stderr)
                return 1
            sys.stdout.write(render(stacks, opts.title, opts.width))
    return 0


if __name__ == "__main__":
    sys.exit(main())
