# Charts and notebooks (notebooks/, README.md; the folders are described in results/README.md).
#   make charts [RESULTS=dir]     draw a run's charts (default results/latest) into DIR/charts: PNG, SVG, CSV
#   make notebook [RESULTS=dir]   open the notebooks in Jupyter on 127.0.0.1 (NOTEBOOK_PORT=8888)
#   make reference MACHINE=slug RUNS='results/runs/<run> ...'   keep finished runs as results/reference/<slug>/
#
# `charts` executes every notebooks/NN-*.ipynb headless (Debian's Jupyter, the project's
# kernelspec in notebooks/jupyter) against RESULTS, one run folder or a folder of run folders,
# printing one line per notebook; a notebook whose data is not in RESULTS is skipped with the
# reason, one that fails makes the target fail. `reference` copies the small files of finished
# runs (one per scenario, e.g. the full-<scenario> runs of make bench-full) into
# results/reference/<slug>/<scenario>/ and draws results/reference/<slug>/charts/.
RESULTS ?= results/latest
NOTEBOOK_PORT ?= 8888
MACHINE ?=
RUNS ?=

.PHONY: charts notebook reference

charts:
	@scripts/install-deps.sh charts
	@/usr/bin/python3 notebooks/charts.py draw --results $(RESULTS) --jobs $(JOBS)

notebook:
	@scripts/install-deps.sh charts
	JUPYTER_PATH=$(CURDIR)/notebooks/jupyter RESULTS=$(abspath $(RESULTS)) PYDEVD_DISABLE_FILE_VALIDATION=1 \
	  /usr/bin/jupyter notebook --ip=127.0.0.1 --port=$(NOTEBOOK_PORT) --no-browser \
	  --notebook-dir=$(CURDIR)/notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

reference:
	@test -n "$(MACHINE)" || { echo "reference: MACHINE=<slug> is required (e.g. laptop-i7-8565u)" >&2; exit 2; }
	@test -n "$(RUNS)" || { echo "reference: RUNS='results/runs/<run> ...' is required" >&2; exit 2; }
	@scripts/install-deps.sh charts
	/usr/bin/python3 notebooks/charts.py reference $(MACHINE) $(RUNS)
