#!/usr/bin/python3
"""make doctor: the CPU time accounting line read from kernel configurations written here, and
one whole run on this machine with the given build (every section printed, exit status 0, the
system call billing measured).

Usage: doctor_test.py BUILD_BIN_DIR
"""

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTING = ROOT / "scripts/cpu_accounting.sh"
DOCTOR = ROOT / "scripts/doctor.sh"


def accounting(config_lines, nohz_full=""):
    """cpu_accounting.sh's line for a kernel configuration made of these lines, on a machine whose
    nohz_full CPUs are `nohz_full` (sysfs's format: "" or "(null)" for none)."""
    with tempfile.NamedTemporaryFile("w", suffix=".config") as f:
        f.write("\n".join(config_lines) + "\n")
        f.flush()
        env = dict(os.environ, IOLAB_KERNEL_CONFIG=f.name, IOLAB_NOHZ_FULL=nohz_full)
        r = subprocess.run([ACCOUNTING], env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class AccountingTest(unittest.TestCase):
    def test_tick_sampling_names_the_rate(self) -> None:
        line = accounting(["CONFIG_HZ=250", "CONFIG_TICK_CPU_ACCOUNTING=y",
                           "# CONFIG_VIRT_CPU_ACCOUNTING_GEN is not set"])
        self.assertTrue(line.startswith("sampled by the timer tick (250 Hz)"), line)
        self.assertIn("TICK_CPU_ACCOUNTING", line)

    def test_gen_without_nohz_full_is_still_ticks(self) -> None:
        # Context tracking (and so exact accounting) runs only on nohz_full CPUs.
        for none in ("", "(null)\n"):
            line = accounting(["CONFIG_HZ=1000", "CONFIG_VIRT_CPU_ACCOUNTING_GEN=y"], none)
            self.assertTrue(line.startswith("sampled by the timer tick (1000 Hz)"), line)
            self.assertIn("no CPU is nohz_full", line)

    def test_gen_is_exact_on_nohz_full_cpus_only(self) -> None:
        line = accounting(["CONFIG_HZ=1000", "CONFIG_VIRT_CPU_ACCOUNTING_GEN=y"], "1-3\n")
        self.assertTrue(line.startswith("exact on nohz_full CPUs 1-3"), line)
        self.assertIn("on the others sampled by the timer tick (1000 Hz)", line)

    def test_gen_forced_is_exact_everywhere(self) -> None:
        line = accounting(["CONFIG_HZ=1000", "CONFIG_VIRT_CPU_ACCOUNTING_GEN=y",
                           "CONFIG_CONTEXT_TRACKING_USER_FORCE=y"])
        self.assertTrue(line.startswith("exact on every CPU"), line)

    def test_native_is_exact(self) -> None:
        line = accounting(["CONFIG_HZ=100", "CONFIG_VIRT_CPU_ACCOUNTING_NATIVE=y"])
        self.assertTrue(line.startswith("exact:"), line)

    def test_unknown_and_missing_say_question_mark(self) -> None:
        self.assertTrue(accounting(["CONFIG_HZ=100"]).startswith("? (the configuration names"))
        env = dict(os.environ, IOLAB_KERNEL_CONFIG="/nonexistent/config")
        r = subprocess.run([ACCOUNTING], env=env, capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn("? (no kernel configuration: /nonexistent/config not readable)", r.stdout)


class DoctorRunTest(unittest.TestCase):
    def test_whole_run(self) -> None:
        env = dict(os.environ, IOLAB_BIN_DIR=BIN_DIR)
        r = subprocess.run([DOCTOR], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        for section in ("CPU", "Kernel features", "Limits", "Tools"):
            self.assertIn(section, lines)
        rows = {line[2:30].strip(): line[31:] for line in lines if line.startswith("  ")}
        self.assertTrue(rows.get("CPU time accounting"), r.stdout)
        # micro_syscalls is built before this test runs: the billing must be measured.
        billing = rows.get("one getppid is billed", "")
        self.assertRegex(billing, r"^\d+\.\d{3} us user \+ \d+\.\d{3} us system", r.stdout)


if __name__ == "__main__":
    BIN_DIR = str(Path(sys.argv.pop(1)).resolve()) if len(sys.argv) > 1 else str(ROOT / "build/bin")
    unittest.main(verbosity=2)
