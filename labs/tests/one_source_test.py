#!/usr/bin/python3
"""One source per lab: a lab builds the real servers and holds only what the student writes.

Fails when
  - a file in a lab folder is a copy of a file in servers/, or shares a run of RUN_LINES or more
    lines with one (a server forked into a lab: the copy and the server drift apart);
  - a file in exercise/ is identical to the file of the same name in solution/ (it is no part
    of the exercise: it belongs at the lab's root, or in servers/);
  - two files in labs/ share such a run (one lab forking another's server).

Lines are compared after stripping white space, and blank lines and comment-only lines are
passed over, so a copy with a new header comment is still a copy. RUN_LINES is the threshold of
`duplicates --min-lines 21`. Standard library only; well under a second.
"""

import unittest
from pathlib import Path

LABS = Path(__file__).resolve().parent.parent
ROOT = LABS.parent
RUN_LINES = 21
SOURCE_SUFFIXES = {".cpp", ".hpp", ".h", ".cc", ".py"}


def lab_dirs(labs=LABS):
    return sorted(p for p in labs.glob("[0-9][0-9]-*") if p.is_dir())


def code_lines(path):
    """The lines that count, stripped: no blank lines, no comment-only lines."""
    out = []
    comment = "#" if path.suffix == ".py" else "//"
    for line in path.read_text(errors="replace").splitlines():
        s = " ".join(line.split())
        if not s or s.startswith(comment) or s in {"{", "}", "};", ")", "});"}:
            continue
        out.append(s)
    return out


def runs(lines, n=RUN_LINES):
    """Every window of n consecutive lines, as a set of tuples."""
    return {tuple(lines[i:i + n]) for i in range(len(lines) - n + 1)}


def sources(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES)


def problems(labs=LABS, servers=ROOT / "servers"):
    """Each problem as a line."""
    out = []
    server_runs = {}
    for p in sources(servers):
        server_runs[p] = (p.read_bytes(), runs(code_lines(p)))

    lab_files = []
    for lab in lab_dirs(labs):
        exercise, solution = lab / "exercise", lab / "solution"
        if exercise.is_dir() and solution.is_dir():
            for e in sorted(p for p in exercise.rglob("*") if p.is_file()):
                s = solution / e.relative_to(exercise)
                if s.is_file() and s.read_bytes() == e.read_bytes():
                    out.append(f"{e.relative_to(labs)}: identical in exercise/ and solution/ "
                               f"(not the student's part: keep one copy at the lab's root, or "
                               f"build it from servers/)")
        # wrong/ holds patches (wrong/<fixture>.patch, no source): a full copy of the reference
        # put back there is caught like any other.
        lab_files += sources(lab)

    lab_runs = {p: runs(code_lines(p)) for p in lab_files}
    for p in lab_files:
        data = p.read_bytes()
        for q, (q_data, q_runs) in server_runs.items():
            name = f"{p.relative_to(labs)} ~ servers/{q.relative_to(servers)}"
            if data == q_data:
                out.append(f"{name}: a copy of a server file (build the server's own)")
            elif lab_runs[p] & q_runs:
                out.append(f"{name}: {RUN_LINES} or more lines in a row are the same (split the "
                           f"server file and build its part, or add a flag)")
    for i, p in enumerate(lab_files):
        for q in lab_files[i + 1:]:
            if lab_runs[p] & lab_runs[q]:
                out.append(f"{p.relative_to(labs)} ~ {q.relative_to(labs)}: {RUN_LINES} or more "
                           f"lines in a row are the same (one copy, shared)")
    return out


class OneSourceTest(unittest.TestCase):
    def test_labs_hold_only_the_students_part(self):
        found = problems()
        self.assertEqual(found, [], "\n" + "\n".join(found))

    def test_a_forked_lab_is_caught(self):
        # The check itself must be able to fail: a lab holding a copy of a server file (with a
        # new header comment), and a file identical in exercise/ and solution/.
        import tempfile
        with tempfile.TemporaryDirectory(prefix="labs-one-source-") as tmp:
            labs, servers = Path(tmp) / "labs", Path(tmp) / "servers"
            body = "".join(f"int f{i}() {{ return {i}; }}\n" for i in range(30))
            (servers / "m").mkdir(parents=True)
            (servers / "m" / "main.cpp").write_text("// server m\n" + body)
            lab = labs / "99-fork"
            for variant in ("exercise", "solution"):
                (lab / variant).mkdir(parents=True)
                (lab / variant / "same.hpp").write_text("int g();\n")
            (lab / "solution" / "main.cpp").write_text("// lab 99: a fork\n\n" + body)
            (lab / "exercise" / "main.cpp").write_text("int main() {}\n")
            found = "\n".join(problems(labs, servers))
        self.assertIn("exercise/same.hpp: identical in exercise/ and solution/", found)
        self.assertIn("solution/main.cpp ~ servers/m/main.cpp: 21 or more lines", found)


if __name__ == "__main__":
    unittest.main(verbosity=2)
