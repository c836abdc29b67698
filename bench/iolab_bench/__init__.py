"""iolab_bench: the harness as a package. bench/compare.py and bench/run.py are thin command
lines over it; the lab checks, the notebooks' plotting module and the tests import it.

  machine     this machine: CPU topology and placement, steal, background load, listen
              overflows, memory counters, how the kernel bills CPU time
  servers     starting and stopping servers: local (iolab models and the references), a
              --target someone else started, a server in a network namespace
  measure     one measured run of one kind against any of those servers, and the memory and
              instruction points
  validity    what makes a run invalid and which metrics each problem marks; the summaries
              (mean, 95% interval, paired ratio to the baseline, validity); the precision
              each kind of metric is held to
  intervals   95% intervals of a metric's rounds and of its ratio to the baseline (scipy)
  scenarios   scenario files, the cells of their matrix, CPU placement per cell
  runfolder   the run folder: manifest, rows and their schema
  sweeps      connections needed to reach the peak (closed-loop sweeps)
  tables      the printed tables and notes
  runner      a scenario, cell by cell and round by round (more rounds where intervals are
              still wide), into a run folder (bench/run.py)
  figures     where a figure of a run folder comes from (claims ledger, lab READMEs)
  claims      the claims ledger (bench/claims.py)

A script in bench/ finds this package beside it (Python puts a script's own folder on
sys.path); anything else runs with PYTHONPATH=<repository>/bench, which the Makefile, CTest and
.ci/run set. Standard library only (claims' chart and the notebooks add matplotlib; intervals
imports scipy when it computes an interval).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class HarnessError(Exception):
    """A run that cannot go on: reported with its reason, never hidden."""
