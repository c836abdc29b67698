# The run as one page (bench/iolab_bench/report.py; make bench ends with it).
#   make report [RESULTS=dir]    write DIR/report.html: manifest, summary with intervals, charts, ledger
#
# RESULTS (default results/latest) is recognised by what is in it: a run folder has
# manifest.json; a machine folder (results/reference/<machine>/, results/runs/) has run folders
# directly inside; a folder of machine folders (results/reference/, a class's hand-ins) has
# machine folders directly inside, and gets one page with the machines in columns besides each
# machine's own. Each page is one file (images embedded, no script, nothing fetched) linking the
# raw files, chart CSVs and the executed notebooks (DIR/notebooks/*.html, written by make
# charts) by relative paths. Standard library only: about a second.
RESULTS ?= results/latest

.PHONY: report

report:
	@/usr/bin/python3 bench/report.py --results $(RESULTS)
