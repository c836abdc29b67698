# Reliability: fuzzing, sanitizers, soak (tests/fuzz, tests/soak, tests/harness; README.md).
#   make fuzz            libFuzzer targets one after another, long: FUZZ_SECONDS=600 per target, FUZZ_RUNS=N
#   make fuzz-mutants    prove each fuzz invariant fires on a deliberately broken core
#   make test-asan       unit + conformance suites built with clang ASan+UBSan (build-asan/)
#   make test-tsan       threads, epoll_et 2 loops, coro (1 and 2 workers), io_uring 2 loops, the scheduler, under clang TSan (build-tsan/)
#   make test-full       soak: descriptors and RSS before/after 100k keep-alive requests and 10k short connections per server, c10k per model
#
# Sanitizer builds use clang: g++ 12 does not make symmetric transfer a tail call under
# sanitizers, so the coroutine server would overflow its stack there. The ASan build
# is the root project's (IOLAB_SANITIZE), whose clang runtimes are shared libraries
# (-shared-libsan, see CMakeLists.txt); the rpath below lets its binaries find them. The TSan
# build is tests/sanitizers' own project (tests/sanitizers/CMakeLists.txt says why).

FUZZ_SECONDS ?= 600
FUZZ_RUNS ?=
FUZZ_TARGETS ?= parser,chunked,connection
SOAK_ARGS ?=
CLANG_RT_DIR = $(shell clang++ -print-resource-dir 2>/dev/null)/lib/linux
SANITIZER_CMAKE = -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath,$(CLANG_RT_DIR)
# halt_on_error: a UBSan report fails the test (it only prints by default); the servers under
# test inherit these, so a report inside a server makes its conformance case fail.
ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_SYMBOLIZER_PATH=$$(command -v llvm-symbolizer)
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1 \
  TSAN_SYMBOLIZER_PATH=$$(command -v llvm-symbolizer)
# UBSan's checks one by one: "undefined" minus vptr (and function, which clang 14 cannot build
# with coroutines). The vptr check validates a vtable by writing it through a pipe, so under the
# descriptor-exhaustion cases (EMFILE) every virtual call was reported as a bad vptr.
UBSAN_CHECKS = alignment,bool,builtin,bounds,enum,float-cast-overflow,integer-divide-by-zero,nonnull-attribute,null,object-size,pointer-overflow,return,returns-nonnull-attribute,shift,signed-integer-overflow,unreachable,vla-bound
# The models and modes test-tsan runs: those with more than one thread touching shared state.
# (a race inside a server makes it exit 66, which its conformance case reports).
TSAN_FILTER = */threads:*/epoll_et_2loops:*/coro:*/coro_2workers:*/io_uring_coop_2loops

.PHONY: fuzz fuzz-mutants test-asan test-tsan test-full

fuzz:
	@scripts/install-deps.sh test
	/usr/bin/python3 tests/fuzz/run_fuzz.py run --targets $(FUZZ_TARGETS) --seconds $(FUZZ_SECONDS) \
	  $(if $(FUZZ_RUNS),--runs $(FUZZ_RUNS)) --nice 10

fuzz-mutants:
	@scripts/install-deps.sh test
	/usr/bin/python3 tests/fuzz/run_fuzz.py mutant --nice 10

test-asan:
	@scripts/install-deps.sh test
	cmake -S . -B build-asan $(GENERATOR) $(SANITIZER_CMAKE) -DIOLAB_SANITIZE=address,$(UBSAN_CHECKS)
	cmake --build build-asan -j $(JOBS)
	cd build-asan && $(ASAN_ENV) ctest --output-on-failure -j $(JOBS) -L 'unit|conformance' $(CTEST_ARGS)

test-tsan:
	@scripts/install-deps.sh test
	cmake -S tests/sanitizers -B build-tsan $(GENERATOR) -DCMAKE_CXX_COMPILER=clang++
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && $(TSAN_ENV) bin/scheduler_test
	cd build-tsan && $(TSAN_ENV) IOLAB_BIN_DIR=$(CURDIR)/build-tsan/bin bin/conformance_test \
	  --gtest_filter='$(TSAN_FILTER)' --gtest_brief=1

test-full:
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 tests/soak/soak.py --bin-dir $(BUILD_DIR)/bin $(SOAK_ARGS)
