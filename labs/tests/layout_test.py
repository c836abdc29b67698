#!/usr/bin/python3
"""Every lab folder keeps the shape of the lab contract (labs/README.md).

For each labs/NN-topic/: the README has the ten sections in order and names `make lab-NN` and
`make lab-NN-check`; every figure marker has a source in figures.json and every source is used
and well formed; a check is executable and comes with exercise/ and solution/ (or a
REFERENCE file in servers/); wrong/ holds only NAME.patch files, each with a `# bug:` line
and a diff of one reference file (solution/<file> or the REFERENCE's); a scenario.json
names an existing scenario, fields it really has, and existing micro suites. Standard library
only; a second or so.
"""

import json
import re
import unittest
from pathlib import Path

import fill_figures  # labs/ and bench/ on PYTHONPATH (CTest sets it)
import run_lab
from iolab_bench import HarnessError, scenarios

LABS = Path(__file__).resolve().parent.parent
ROOT = LABS.parent

SECTIONS = ["Goal", "Background", "Claim under test", "Predict", "Run", "Observe", "Explain",
            "Exercise", "Check", "Going further"]


def lab_dirs():
    return sorted(p for p in LABS.glob("[0-9][0-9]-*") if p.is_dir())


def layout_problems(lab):
    out = []
    nn = lab.name[:2]
    readme = lab / "README.md"
    if not readme.exists():
        return [f"{lab.name}: no README.md"]
    text = readme.read_text()
    headings = [h.strip() for h in re.findall(r"^## (.+)$", text, re.M)]
    found = [h for h in headings if h in SECTIONS]
    missing = [s for s in SECTIONS if s not in found]
    if missing:
        out.append(f"{lab.name}/README.md: missing sections: {', '.join(missing)} "
                   f"(as '## Name' headings)")
    elif found != SECTIONS:
        out.append(f"{lab.name}/README.md: sections out of order: {', '.join(found)}")
    if f"make lab-{nn}" not in text:
        out.append(f"{lab.name}/README.md: does not say how to run it (make lab-{nn})")
    if (lab / "check").exists() and f"make lab-{nn}-check" not in text:
        out.append(f"{lab.name}/README.md: does not say how to check it (make lab-{nn}-check)")
    try:
        out += fill_figures.problems(lab)
    except fill_figures.figures.SourceError as e:
        out.append(str(e))

    check = lab / "check"
    if check.exists():
        if not check.stat().st_mode & 0o111:
            out.append(f"{lab.name}/check: not executable")
        cmake = lab / "CMakeLists.txt"
        # A lab whose reference is the real server's own file (REFERENCE in its CMakeLists.txt,
        # see labs/lab.cmake) holds no solution/ of its own.
        reference = cmake.exists() and re.search(r"\bREFERENCE((\s+[a-z]\S*)+)", cmake.read_text())
        for variant in ("exercise",) if reference else ("exercise", "solution"):
            if not (lab / variant).is_dir():
                out.append(f"{lab.name}: has a check but no {variant}/")
        out += wrong_problems(lab, reference.group(1).split() if reference else [])

    scenario = lab / "scenario.json"
    if scenario.exists():
        try:
            spec = json.loads(scenario.read_text())
        except json.JSONDecodeError as e:
            return out + [f"{lab.name}/scenario.json: not JSON: {e}"]
        if "scenario" not in spec and "micro" not in spec:
            out.append(f"{lab.name}/scenario.json: names neither \"scenario\" nor \"micro\"")
        for name in run_lab.scenario_names(spec):
            try:
                base = scenarios.load_scenario(name)
            except HarnessError as e:
                out.append(f"{lab.name}/scenario.json: {e}")
            else:
                unknown = [k for k in spec.get("set", {}) if k not in base]
                if unknown:
                    out.append(f"{lab.name}/scenario.json: scenario {name} has no "
                               f"field {', '.join(unknown)} (bench/run.py --set would refuse it)")
        for suite in spec.get("micro", {}).get("suites", []):
            if not any((ROOT / "bench" / "micro").glob(f"{suite}.cpp")) and \
                    not (ROOT / "bench" / "micro" / suite).is_dir():
                out.append(f"{lab.name}/scenario.json: no micro suite '{suite}' in bench/micro/")
        extra = set(spec) - {"scenario", "set", "micro", "claims", "description"}
        if extra:
            out.append(f"{lab.name}/scenario.json: unknown keys {', '.join(sorted(extra))}")
    return out


def wrong_problems(lab: Path, references: list[str]) -> list[str]:
    """wrong/: only NAME.patch files (labs/lab.cmake makes variant wrong-NAME from each), each
    saying what the bug is (`# bug:`) and patching one file: the lab's reference."""
    out: list[str] = []
    wrong = lab / "wrong"
    if not wrong.is_dir():
        return out
    for p in sorted(wrong.iterdir()):
        where = f"{lab.name}/wrong/{p.name}"
        if not p.is_file() or p.suffix != ".patch":
            out.append(f"{where}: wrong/ holds only NAME.patch files (a diff against the "
                       f"reference, see labs/README.md)")
            continue
        text = p.read_text()
        if not re.search(r"^# bug: ", text, re.M):
            out.append(f"{where}: no `# bug:` line saying what is wrong")
        targets = re.findall(r"^\+\+\+ b/(\S+)$", text, re.M)
        if len(targets) != 1:
            out.append(f"{where}: patches {len(targets)} files, not one")
            continue
        path = Path(targets[0])
        allowed = {(lab / "solution" / path.name).relative_to(ROOT)}
        allowed |= {Path(reference) / path.name for reference in references}
        if path not in allowed or not (ROOT / path).is_file():
            out.append(f"{where}: patches {path}, not the lab's reference "
                       f"({' or '.join(sorted(map(str, allowed)))})")
    return out


class LayoutTest(unittest.TestCase):
    def test_every_lab_keeps_the_contract(self) -> None:
        problems = []
        for lab in lab_dirs():
            problems += layout_problems(lab)
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_lab_numbers_are_unique(self) -> None:
        numbers = [p.name[:2] for p in lab_dirs()]
        self.assertEqual(len(numbers), len(set(numbers)), numbers)

    def test_a_broken_lab_is_caught(self) -> None:
        # The checker itself must be able to fail: a README missing sections and a marker
        # without a source, in a temporary lab folder.
        import tempfile
        with tempfile.TemporaryDirectory(prefix="labs-layout-") as tmp:
            lab = Path(tmp) / "99-broken"
            lab.mkdir()
            (lab / "README.md").write_text("## Goal\nx <!-- fig:k -->1<!-- /fig -->\n")
            (lab / "check").write_text("#!/bin/sh\nexit 0\n")
            (lab / "wrong" / "copy").mkdir(parents=True)
            problems = "\n".join(layout_problems(lab))
        self.assertIn("missing sections", problems)
        self.assertIn("fig:k has no source", problems)
        self.assertIn("not executable", problems)
        self.assertIn("no solution/", problems)
        self.assertIn("make lab-99", problems)
        self.assertIn("wrong/ holds only NAME.patch files", problems)


if __name__ == "__main__":
    unittest.main(verbosity=2)
