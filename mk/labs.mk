# The labs (labs/README.md) and the claims ledger.
#
#   make lab-NN          build, run lab NN's measurement into results/runs/<stamp>-lab-NN/, chart it
#   make lab-NN-check    check your work on lab NN's exercise/   (SOLUTION=1: the reference)
#   make labs-check      check every lab's solution/
#   make lab-figures     fill the labs' figures and README's claims ledger from results/reference/
#                        $(REFERENCE_MACHINE) (REFERENCE_MACHINE=<slug> for another machine folder)
#   make claims [RESULTS=dir]  claims ledger C01-C20 of a run or folder of runs; writes ledger.md + chart
#                        (a folder of machine folders: the machines side by side, machines.md)
#   make claims-probes   the ledger's probes (C07 startup, C20 descriptors, C15 scheduler) into
#                        results/runs/; PROBES=scheduler to run one, PROBE_REPEATS=N to shorten
#
# Generic pattern rules: a new folder labs/NN-topic/ needs nothing here. For `lab-01-check` make
# picks lab-%-check over lab-% (the rule with the shorter stem wins).

SOLUTION ?=
FIG_ARGS ?=
# The machine folder of results/reference/ whose figures the README and the labs quote (the
# others are shown beside it by make report RESULTS=results/reference).
REFERENCE_MACHINE ?= amd-epyc-2cpu-vm
LAB_VARIANT = $(if $(SOLUTION),solution,exercise)
# `make charts` belongs to the notebooks; the labs use it when it exists.
HAVE_CHARTS := $(shell grep -ls '^charts:' Makefile $(MAKEFILE_PARTS))

RESULTS ?= results/latest
CLAIMS_ARGS ?=

PROBES ?= scheduler descriptors startup
PROBE_REPEATS ?=

.PHONY: labs-check lab-figures claims claims-probes

lab-%-check:
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory build
	@/usr/bin/python3 labs/run_check.py --lab $* --variant $(LAB_VARIANT) --build-dir $(BUILD_DIR)

lab-%:
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory build
	@/usr/bin/python3 labs/run_lab.py $* --build-dir $(BUILD_DIR) --machine $(REFERENCE_MACHINE) $(if $(HAVE_CHARTS),--charts)

labs-check:
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory build
	@/usr/bin/python3 labs/run_check.py --all --variant solution --build-dir $(BUILD_DIR)

lab-figures:
	/usr/bin/python3 labs/fill_figures.py --machine $(REFERENCE_MACHINE) $(FIG_ARGS)
	/usr/bin/python3 bench/claims.py --readme README.md --machine $(REFERENCE_MACHINE)

claims:
	@scripts/install-deps.sh test
	/usr/bin/python3 bench/claims.py --results $(RESULTS) $(CLAIMS_ARGS)

claims-probes:
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory build
	@for p in $(PROBES); do \
	  /usr/bin/python3 bench/claims.py --probe $$p --bin-dir $(BUILD_DIR)/bin \
	    $(if $(PROBE_REPEATS),--repeats $(PROBE_REPEATS)) || exit 1; done
