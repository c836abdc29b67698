#!/usr/bin/python3
"""claims.py: the claims ledger for a run (make claims); bench/iolab_bench/claims.py holds it.

Usage: bench/claims.py [--results results/latest] [--only C01,C08] [--no-write] [--out DIR]
       bench/claims.py --readme README.md [--reference results/reference] [--machine NAME]

Writing the chart (claims.png/.svg) takes notebooks/iolab_plots.py, found with
PYTHONPATH=bench:notebooks as `make claims` sets it.
"""

import sys

from iolab_bench.claims import main

if __name__ == "__main__":
    sys.exit(main())
