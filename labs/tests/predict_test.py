#!/usr/bin/python3
"""Predict before you see: no lab README shows a measured figure above its Predict section, and
every lab with figures has a predictions.md whose keys are those of its figures.json.

A measured figure is a `<!-- fig:KEY -->` marker (labs/fill_figures.py fills them from the
reference run); the claim's own figure, quoted from the claims ledger, is plain text and may
stay in "Claim under test". Also checks that run_lab.py reads a predictions file and prints
prediction, this machine's figure and the reference side by side. Standard library only.
"""

import io
import re
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

import fill_figures  # labs/ and bench/ on PYTHONPATH (CTest sets it)
import run_lab

LABS = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- fig:([A-Za-z0-9_.-]+) -->")


def lab_dirs() -> list:
    return fill_figures.lab_dirs(LABS)


def figures_before_predict(text: str) -> list:
    """The figure keys that appear before the '## Predict' heading (all of them if none)."""
    cut = re.search(r"^## Predict\s*$", text, re.M)
    head = text[:cut.start()] if cut else text
    return MARKER.findall(head)


class PredictTest(unittest.TestCase):
    def test_no_measured_figure_above_predict(self) -> None:
        problems = []
        for lab in lab_dirs():
            keys = figures_before_predict((lab / "README.md").read_text())
            if keys:
                problems.append(f"{lab.name}/README.md: {len(keys)} measured figure(s) above "
                                f"Predict (move them to Observe): {', '.join(keys)}")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_a_figure_carries_at_most_a_mark(self) -> None:
        # Validity reasons go in the README's footnotes (labs/fill_figures.py), not inside the
        # sentence: a marker holds a value, a unit and at most "! [^N]".
        problems = []
        for lab in lab_dirs():
            for key, value in fill_figures.MARKER.findall((lab / "README.md").read_text()):
                if key != "machine" and "(" in value and not value.startswith("(run make"):
                    problems.append(f"{lab.name}: fig:{key} carries its reasons: {value}")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_the_rule_can_fail(self) -> None:
        text = "## Claim under test\nx <!-- fig:a -->1<!-- /fig -->\n## Predict\n1.\n"
        self.assertEqual(figures_before_predict(text), ["a"])
        self.assertEqual(figures_before_predict("## Predict\n<!-- fig:b -->2<!-- /fig -->"), [])

    def test_predictions_file_has_the_figure_keys(self) -> None:
        problems = []
        for lab in lab_dirs():
            sources = fill_figures.load_sources(lab)
            if not sources:
                continue
            path = lab / "predictions.md"
            if not path.exists():
                problems.append(f"{lab.name}: no predictions.md")
                continue
            keys = list(run_lab.read_predictions(path))
            if keys != list(sources):
                problems.append(f"{lab.name}/predictions.md: keys {keys} are not those of "
                                f"figures.json, in order: {list(sources)}")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_side_by_side(self) -> None:
        lab = run_lab.find_lab("05")
        with tempfile.TemporaryDirectory(prefix="predict-") as tmp:
            path = Path(tmp) / "predictions.md"
            path.write_text(run_lab.prediction_template(lab).replace(
                "threads_user_kb:", "threads_user_kb: 2 MB"))
            preds = run_lab.read_predictions(path)
            self.assertEqual(preds["threads_user_kb"], "2 MB")
            self.assertEqual(preds["coro_user_kb"], "")
            reference = LABS.parent / "results" / "reference"
            out = io.StringIO()
            with redirect_stdout(out):
                run_lab.print_side_by_side(lab, preds, reference, reference, "amd-epyc-2cpu-vm")
            text = out.getvalue()
        self.assertNotIn("none committed", text)
        self.assertIn("prediction", text)
        self.assertIn("reference", text)
        row = [line for line in text.splitlines() if line.startswith("threads_user_kb")]
        self.assertEqual(len(row), 1, text)
        self.assertIn("2 MB", row[0])

    def test_unfilled_file_prints_the_template(self) -> None:
        lab = run_lab.find_lab("05")
        with tempfile.TemporaryDirectory(prefix="predict-") as tmp:
            path = Path(tmp) / "predictions.md"
            out = io.StringIO()
            with redirect_stdout(out):
                preds = run_lab.announce_predictions(lab, path)
            self.assertIn("threads_user_kb:", out.getvalue())
            self.assertEqual(preds, {})


if __name__ == "__main__":
    unittest.main(verbosity=2)
