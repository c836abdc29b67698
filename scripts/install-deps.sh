#!/usr/bin/env bash
# Installs (as root) or names (otherwise) the Debian packages a make target needs.
#
#   scripts/install-deps.sh [build|test|charts|bench|all] [--check]
#
# Only Debian packages, always with --no-install-recommends; nothing is downloaded from
# anywhere else. Idempotent: packages already installed are left alone, and apt-get runs only
# when something is missing. --check only reports (exit 1 when something is missing).
set -euo pipefail

target=${1:-all}
check_only=false
[[ ${2:-} == --check ]] && check_only=true

# What each target needs. `test` runs the unit and conformance suites; `bench` adds the load
# tools and the reference servers used to compare against.
build_pkgs=(g++ make cmake ninja-build ccache libgtest-dev libgmock-dev liburing-dev libbenchmark-dev)
# The tests also drive nginx (a reference client check) and the perf-tools scripts (strace,
# perf tracepoints, hyperfine), so they run rather than skip on a fresh machine.
# docker-compose (with python3-yaml) validates the compose file; iproute2 makes the netns
# test's namespaces. matplotlib draws the claims ledger's chart (make claims, tools.claims).
# The notebooks' tests execute them headless: pandas, nbconvert, nbclient and the kernel.
# `charts` is what make charts and make notebook need (jupyter-notebook for the latter only).
# flake8 and mypy check the project's Python (tools.flake8, tools.mypy); scipy is for the
# harness's interval statistics (bench/iolab_bench).
charts_pkgs=(python3 python3-matplotlib python3-pandas jupyter-nbconvert python3-nbclient
             python3-ipykernel jupyter-notebook)
test_pkgs=("${build_pkgs[@]}" python3 nginx-light strace linux-perf hyperfine docker-compose
           python3-yaml iproute2 python3-matplotlib python3-pandas jupyter-nbconvert
           python3-nbclient python3-ipykernel flake8 mypy python3-scipy
           clang libclang-rt-14-dev  # lab 05's TSan check; tests/fuzz's libFuzzer (clang)
           llvm  # llvm-symbolizer: sanitizer and fuzzer reports with file:line
           chromium chromium-driver python3-selenium)  # make report's pages in a browser (tests/report)
# libh2o-evloop0.13 exports picohttpparser's phr_parse_request: micro_http races our parser
# against it (bench/micro/http.cpp).
bench_pkgs=("${build_pkgs[@]}" python3 libbenchmark-dev libh2o-evloop0.13 wrk apache2-utils nginx-light curl
            strace linux-perf hyperfine valgrind iproute2 golang-go golang-github-gin-gonic-gin-dev
            libbenchmark-tools python3-scipy "${charts_pkgs[@]}")

case $target in
  build) pkgs=("${build_pkgs[@]}") ;;
  test) pkgs=("${test_pkgs[@]}") ;;
  charts) pkgs=("${charts_pkgs[@]}") ;;
  bench|all) pkgs=("${bench_pkgs[@]}") ;;
  *) echo "install-deps.sh: unknown target '$target' (build, test, charts, bench or all)" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps.sh: this is not a Debian-based system; install the equivalents of:" >&2
  echo "  ${pkgs[*]}" >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "deps ($target): all ${#pkgs[@]} packages present"
  exit 0
fi

if $check_only; then
  echo "deps ($target): missing ${missing[*]}" >&2
  exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps ($target): missing packages. Run this, then the make command again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "deps ($target): installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "deps ($target): installed ${#missing[@]} packages"
