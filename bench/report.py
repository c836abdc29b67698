#!/usr/bin/python3
"""report.py: a run, a machine's runs or many machines as one HTML page (make report);
bench/iolab_bench/report.py holds it.

Usage: bench/report.py [--results results/latest]
"""

import sys

from iolab_bench.report import main

if __name__ == "__main__":
    sys.exit(main())
