# iolab's user interface. `make bench` and `make test` are the two commands in the README.
#
#   make bench           set up, build, run the quick scenario into results/runs/, print the summary,
#                        draw the charts and write the run's page (report.html: make report)
#   make bench SCENARIO=c10k   (bench/run.py --list shows them)   make bench-full (all, resumable)
#   make bench TARGET=host:port [LABEL=name]   measure a server started elsewhere (make serve BIND=0.0.0.0)
#   make deps            install (as root) or name the Debian packages
#   make build           configure and build everything into build/
#   make test            unit + conformance tests (installs/checks deps, builds first)
#   make serve MODEL=threads [BIND=127.0.0.1] [PORT=8080] [ARGS='--threads 2']
#   make micro           Google Benchmark suites (syscalls, switches, cache, IPC, alloc, http): MICRO_FULL=1
#   make compare-servers SERVERS='epoll_et threads nginx' [COMPARE_ARGS='--repeats 5']
#   make compare A=run1 B=run2   two run folders side by side (harness medians, micro via gbench)
#   make doctor          what this machine can do (io_uring, perf, netem, topology, limits)
#   make test-mutants    prove each conformance case fails against a deliberately broken server
#   make format          clang-format the C++ sources
#   make clean           remove build/

BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=
MODEL ?= threads
BIND ?= 127.0.0.1
PORT ?= 8080
ARGS ?=
GENERATOR := $(if $(shell command -v ninja 2>/dev/null),-G Ninja,)
JOBS ?= $(shell nproc)
CTEST_ARGS ?=
SCENARIO ?= quick
TARGET ?=
LABEL ?=
BENCH_ARGS ?=
FULL_SCENARIOS ?= quick models c10k blocking affinity pooling keepalive pipelining payload zerocopy cache rtt scaling
SERVERS ?= epoll_et threads nginx floor
COMPARE_ARGS ?=
comma := ,
empty :=
space := $(empty) $(empty)
# Python: bench/iolab_bench (the harness), notebooks/ (iolab_plots) and labs/ (common/checklib)
# for every script make runs, CTest (which sets the same) and the notebooks' kernel.
IOLAB_PYTHONPATH := $(CURDIR)/bench:$(CURDIR)/notebooks:$(CURDIR)/labs
export PYTHONPATH := $(IOLAB_PYTHONPATH)$(if $(filter-out $(IOLAB_PYTHONPATH),$(PYTHONPATH)),:$(PYTHONPATH))

.PHONY: help bench bench-full deps build configure test test-mutants compare compare-servers doctor serve format clean micro

help:
	@sed -n '3,17p' Makefile | sed 's/^# \{0,1\}//'
	@for f in $(MAKEFILE_PARTS); do sed -n 's/^#   make /  make /p' $$f; done

bench:
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 bench/run.py --scenario $(SCENARIO) $(if $(TARGET),--target $(TARGET)) $(if $(LABEL),--label $(LABEL)) $(BENCH_ARGS)
	@if [ "$(SCENARIO)" = quick ] && [ -z "$(TARGET)" ]; then \
	  echo "bench: quick micro suites into $$(readlink -f results/latest)/micro"; \
	  /usr/bin/python3 bench/micro/run_micro.py --bin-dir $(BUILD_DIR)/bin --run-dir results/latest; \
	fi
	@echo "bench: charts of $$(readlink -f results/latest) into results/latest/charts"
	@$(MAKE) --no-print-directory charts RESULTS=results/latest
	@$(MAKE) --no-print-directory report RESULTS=results/latest >/dev/null && \
	  echo "bench: the run as one page: $$(readlink -f results/latest)/report.html"

bench-full:
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory build
	@for s in $(FULL_SCENARIOS); do \
	  /usr/bin/python3 bench/run.py --scenario $$s --label full-$$s --resume $(BENCH_ARGS) || exit $$?; \
	done

deps:
	@scripts/install-deps.sh all

$(BUILD_DIR)/CMakeCache.txt:
	@scripts/install-deps.sh build
	cmake -S . -B $(BUILD_DIR) $(GENERATOR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

configure: $(BUILD_DIR)/CMakeCache.txt

build: configure
	@start=$$(date +%s); \
	cmake --build $(BUILD_DIR) -j $(JOBS) && \
	echo "build: done in $$(( $$(date +%s) - start )) s"

test:
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-mutants:
	@scripts/install-deps.sh test
	tests/conformance/mutants/run.sh

compare-servers:
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 bench/compare.py --servers $(subst $(space),$(comma),$(strip $(SERVERS))) $(COMPARE_ARGS)

compare:
	@test -n "$(A)" -a -n "$(B)" || { echo "compare: usage: make compare A=<run> B=<run> (folders, or names under results/runs/)" >&2; exit 2; }
	@scripts/install-deps.sh bench
	/usr/bin/python3 bench/compare_runs.py $(A) $(B)

doctor:
	@scripts/doctor.sh

serve: build
	@test -x $(BUILD_DIR)/bin/server_$(MODEL) || { echo "serve: no server model '$(MODEL)' (see servers/)" >&2; exit 2; }
	exec $(BUILD_DIR)/bin/server_$(MODEL) --bind $(BIND) --port $(PORT) $(ARGS)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR)

# make micro: every Google Benchmark suite (bench/micro, build/bin/micro_*), quick (about 30 s
# here); MICRO_FULL=1 runs each longer with 3 repetitions (about 5 min). Writes
# results/runs/<timestamp>-micro/{manifest.json,micro/*.json} and repoints results/latest
# unless NO_LATEST=1.
MICRO_FULL ?=
NO_LATEST ?=
micro:
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 bench/micro/run_micro.py --bin-dir $(BUILD_DIR)/bin $(if $(MICRO_FULL),--full) $(if $(NO_LATEST),--no-latest)

# Each area keeps its own targets in mk/<area>.mk (charts, reliability, labs, containers); the
# lines starting '#   make ' at the top of each part are shown by `make help`.
MAKEFILE_PARTS := $(sort $(wildcard mk/*.mk))
include $(MAKEFILE_PARTS)
