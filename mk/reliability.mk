# Reliability: fuzzing, sanitizers, soak (tests/fuzz, tests/soak, tests/robustness; DESIGN 9, 12).
#   make fuzz            libFuzzer targets one after another, long: FUZZ_SECONDS=600 per target, FUZZ_RUNS=N
#   make fuzz-mutants    prove each fuzz invariant fires on a deliberately broken core
#   make test-asan       unit + conformance suites built with clang ASan+UBSan (build-asan/)
#   make test-tsan       threads, epoll_et 2 loops, coro (1 and 2 workers), io_uring 2 loops, the scheduler, under clang TSan (build-tsan/)
#   make test-full       soak: descriptors and RSS before/after 100k keep-alive requests and 10k short connections per server, c10k per model
#
# Sanitizer builds use clang: g++ 12 does not make symmetric transfer a tail call under
# sanitizers (DESIGN 12), so the coroutine server would overflow its stack there. clang links
# the sanitizer runtimes as shared libraries (-shared-libsan, see CMakeLists.txt); the rpath
# below lets the test binaries find them without LD_LIBRARY_PATH.

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
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  TSAN_SYMBOLIZER_PATH=$$(command -v llvm-symbolizer)
# UBSan's checks one by one: "undefined" minus vptr (and function, which clang 14 cannot build
# with coroutines). The vptr check validates a vtable by writing it through a pipe, so under the
# descriptor-exhaustion cases (EMFILE) every virtual call was reported as a bad vptr.
UBSAN_CHECKS = alignment,bool,builtin,bounds,enum,float-cast-overflow,integer-divide-by-zero,nonnull-attribute,null,object-size,pointer-overflow,return,returns-nonnull-attribute,shift,signed-integer-overflow,unreachable,vla-bound
# The models and modes test-tsan runs: those with more than one thread touching shared state.
TSAN_MODELS = threads|epoll_et_2loops|coro|coro_2workers|io_uring_coop_2loops

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
	cmake -S . -B build-tsan $(GENERATOR) $(SANITIZER_CMAKE) -DIOLAB_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS) --target conformance_test scheduler_test server_threads \
	  server_epoll_et server_coro server_io_uring
	cd build-tsan && $(TSAN_ENV) ctest --output-on-failure -j $(JOBS) \
	  -R '^conformance\..*/($(TSAN_MODELS))$$|^coro\.' $(CTEST_ARGS)

test-full:
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 tests/soak/soak.py --bin-dir $(BUILD_DIR)/bin $(SOAK_ARGS)
