#!/usr/bin/python3
"""The notebooks as committed: without outputs, opening with their question, on the project's
kernel, and each chart they save registered in iolab_plots.TABLES.

  clean_test.py [NOTEBOOK_DIR]     (default notebooks/; the test's broken variants use a copy)

Standard library only (the .ipynb format is JSON), so it runs before Jupyter is installed.
"""

import json
import re
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = Path(sys.argv.pop(1)) if len(sys.argv) > 1 else ROOT / "notebooks"
KERNEL = json.loads((ROOT / "notebooks/jupyter/kernels/iolab-python3/kernel.json").read_text())


def notebooks():
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]-*.ipynb"))


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


class CommittedNotebooks(unittest.TestCase):
    def test_there_are_nine(self) -> None:
        self.assertEqual(len(notebooks()), 9, [p.name for p in notebooks()])

    def test_no_outputs(self) -> None:
        for nb in notebooks():
            doc = json.loads(nb.read_text())
            for i, cell in enumerate(doc["cells"]):
                with self.subTest(notebook=nb.name, cell=i):
                    if cell["cell_type"] == "code":
                        self.assertEqual(cell.get("outputs"), [],
                                         "commit notebooks without outputs "
                                         "(Kernel > Restart & Clear Output)")
                        self.assertIsNone(cell.get("execution_count"))
                    self.assertNotIn("attachments", cell)
            self.assertNotIn("widgets", doc["metadata"])

    def test_opens_with_its_question(self) -> None:
        for nb in notebooks():
            with self.subTest(notebook=nb.name):
                first = json.loads(nb.read_text())["cells"][0]
                self.assertEqual(first["cell_type"], "markdown")
                text = source(first)
                self.assertTrue(text.startswith(f"# {nb.name[:2]} · "), text[:40])
                question = re.search(r"\*\*([^*]+\?)\*\*", text)
                self.assertIsNotNone(question, "the first cell states its question in bold")

    def test_runs_on_the_project_kernel(self) -> None:
        self.assertEqual(KERNEL["argv"][0], "/usr/bin/python3")
        for nb in notebooks():
            with self.subTest(notebook=nb.name):
                meta = json.loads(nb.read_text())["metadata"]
                self.assertEqual(meta["kernelspec"]["name"], "iolab-python3")

    def test_only_loads_plots_and_explains(self) -> None:
        # The figures come from the run folders through iolab_plots; no number is typed into a
        # notebook's code (titles may name fixed settings such as the pipelining depth).
        for nb in notebooks():
            with self.subTest(notebook=nb.name):
                cells = json.loads(nb.read_text())["cells"]
                code = [source(c) for c in cells if c["cell_type"] == "code"]
                self.assertIn("ip.load()", code[0])
                saved = re.findall(r'ip\.save\(fig, t, (?:"([^"]+)"|name)', "\n".join(code))
                self.assertTrue(saved, "a notebook saves at least one chart")
                for stem in [s for s in saved if s]:
                    self.assertTrue(stem.startswith(nb.name[:3]), stem)
                for line in "\n".join(code).splitlines():
                    self.assertNotRegex(line.split("#")[0], r"=\s*\d+\.\d+",
                                        "a figure typed into a notebook")


if __name__ == "__main__":
    unittest.main(verbosity=2)
