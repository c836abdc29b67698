#!/usr/bin/env bash
# Mutation check of the conformance suite: proves that its cases can fail.
#
# Each NN-name.patch in this directory is a small, deliberate bug in a server or the core (a
# "mutant"). Its header says which conformance cases must catch it:
#
#   # kills: CaseA CaseB        required: the cases that must FAIL against this mutant
#   # server: threads           optional: the server binary/mode to run them on (default threads)
#   # bug: ...                  what the mutant breaks (for people)
#   diff --git ...              the patch itself (git apply ignores the lines above)
#
# The script copies the working tree (tracked and untracked files, as `git ls-files` lists
# them: uncommitted changes included, ignored build directories left out) into a temporary
# directory, builds the suite and the servers there once, checks that every declared case
# passes on the unmutated code, then for each patch: applies it (git apply), rebuilds the
# server incrementally, runs only the declared cases, and reverts it (git apply -R). A mutant
# is "killed" when every declared case failed, else "SURVIVED". Exit status: 0 when every
# mutant was killed, 1 otherwise, 2 on a setup error. The temporary directory is removed at
# the end and no process is left behind (servers die with the suite: PR_SET_PDEATHSIG).
#
# Usage:  tests/conformance/mutants/run.sh [PATCH...]      (default: every NN-*.patch here)
# Env:    JOBS (2) build jobs; MUTANTS_REV=<rev> mutates that commit instead of the working
#         tree; MUTANT_TIMEOUT (300) seconds per test run; MUTANTS_KEEP=1 keeps the work dir.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel) || { echo "run.sh: not in a git checkout" >&2; exit 2; }
jobs=${JOBS:-2}
rev=${MUTANTS_REV:-}
case_timeout=${MUTANT_TIMEOUT:-300}
started=$(date +%s)

patches=()
if (($#)); then
  for p in "$@"; do
    [[ -e $p ]] || p=$here/$p
    if [[ -d $p ]]; then  # a directory: every patch in it (e.g. "survivors")
      for f in "$p"/*.patch; do [[ -f $f ]] && patches+=("$(cd "$p" && pwd)/$(basename "$f")"); done
      continue
    fi
    [[ -f $p ]] || { echo "run.sh: no such patch: $p" >&2; exit 2; }
    patches+=("$(cd "$(dirname "$p")" && pwd)/$(basename "$p")")
  done
else
  shopt -s nullglob
  patches=("$here"/[0-9]*.patch)
  shopt -u nullglob
fi
((${#patches[@]})) || { echo "run.sh: no patches" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/iolab-mutants.XXXXXX")
wt=$work/src
build=$work/build
logs=$work/logs
mkdir -p "$logs"
child=
exec 3>&2  # the real stderr, for traps that fire inside a redirected run_bounded

cleanup() {
  if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  if [[ ${MUTANTS_KEEP:-0} == 1 ]]; then
    echo "run.sh: kept $work" >&3
    return
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&3; exit 130' INT TERM

# Runs a command in the background and waits, so a signal to this script is handled at once.
run_bounded() {
  timeout -k 10 "$case_timeout" "$@" &
  child=$!
  wait "$child"
  local rc=$?
  child=
  return $rc
}

header() {  # header FIELD FILE: the value of "# FIELD: ..." before the diff starts
  sed -n "/^diff --git/q; s/^# $1: *//p" "$2" | head -n 1
}

filter_for() {  # filter_for SERVER CASE...: a gtest filter naming these cases on this server
  local server=$1 f=
  shift
  for c in "$@"; do f+="Servers/Conformance.$c/$server:"; done
  printf '%s' "${f%:}"
}

# Which cases of the log failed/passed: prints "CASE STATE" lines (killed, survived, not-run).
judge() {  # judge LOG SERVER CASE...
  local log=$1 server=$2
  shift 2
  for c in "$@"; do
    if grep -q "^\[  FAILED  \] Servers/Conformance\.$c/$server\b" "$log"; then
      echo "$c failed"
    elif grep -q "^\[       OK \] Servers/Conformance\.$c/$server\b" "$log"; then
      echo "$c passed"
    else
      echo "$c not-run"
    fi
  done
}

servers_needed() {
  for p in "${patches[@]}"; do
    s=$(header server "$p")
    echo "${s:-threads}"
  done | sort -u
}

binary_of() {  # the suite's server name -> its binary target: epoll_et_2loops -> server_epoll_et
  local s=$1
  echo "server_${s%_*loops}"
}

mkdir -p "$wt"
if [[ -n $rev ]]; then
  what="commit $(git -C "$root" rev-parse --short "$rev")"
  git -C "$root" archive "$rev" | tar -C "$wt" -xf - || { echo "run.sh: git archive $rev failed" >&2; exit 2; }
else
  what="the working tree of $root"
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
     xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
     tar --null -T - -cf -) | tar -C "$wt" -xf - ||
    { echo "run.sh: copying the working tree failed" >&2; exit 2; }
fi
echo "== mutants: ${#patches[@]} patches against $what (work dir $work)"
# The work directory changes every run; let ccache reuse objects across runs anyway.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$wt} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

targets=(conformance_test)
for s in $(servers_needed); do targets+=("$(binary_of "$s")"); done
echo "== building ${targets[*]} (-j$jobs)"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# No labs: a mutant of a file that a lab's wrong/*.patch fixture applies to (keep_alive.cpp,
# send_file.cpp) would make that fixture fail to apply, a configure error unrelated to the mutant.
if ! cmake -S "$wt" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOLAB_LABS=OFF \
     >"$logs/configure.log" 2>&1 ||
   ! cmake --build "$build" -j "$jobs" --target "${targets[@]}" >"$logs/build.log" 2>&1; then
  tail -n 30 "$logs/configure.log" "$logs/build.log" 2>/dev/null
  echo "run.sh: building the unmutated tree failed" >&2
  exit 2
fi
suite=$build/bin/conformance_test

# Baseline: every declared case passes on the unmutated code, else a "kill" would prove nothing.
baseline_ok=1
for s in $(servers_needed); do
  cases=$(for p in "${patches[@]}"; do
    ps=$(header server "$p")
    [[ ${ps:-threads} == "$s" ]] && header kills "$p" | tr ' ' '\n'
  done | sed '/^$/d' | sort -u)
  # shellcheck disable=SC2086
  run_bounded "$suite" --gtest_filter="$(filter_for "$s" $cases)" >"$logs/baseline-$s.log" 2>&1
  # shellcheck disable=SC2086
  bad=$(judge "$logs/baseline-$s.log" "$s" $cases | grep -v ' passed$')
  if [[ -n $bad ]]; then
    baseline_ok=0
    echo "== BASELINE on $s: these declared cases do not pass on the unmutated code:"
    sed 's/^/     /' <<<"$bad"
  else
    echo "== baseline on $s: all $(wc -w <<<"$cases") declared cases pass"
  fi
done
((baseline_ok)) || { echo "run.sh: fix the baseline first (or a typo in a '# kills:' line)" >&2; exit 2; }

killed=0
failed=0
results=()
for p in "${patches[@]}"; do
  name=$(basename "$p" .patch)
  read -r -a cases <<<"$(header kills "$p")"
  server=$(header server "$p")
  server=${server:-threads}
  t0=$(date +%s)
  verdict=
  detail=
  if ((${#cases[@]} == 0)); then
    verdict=ERROR detail="no '# kills:' line"
  elif ! (cd "$wt" && GIT_CEILING_DIRECTORIES=$work git apply "$p") 2>"$logs/$name.apply.log"; then
    verdict=ERROR detail="does not apply: $(head -n 1 "$logs/$name.apply.log")"
  elif ! cmake --build "$build" -j "$jobs" --target "$(binary_of "$server")" >"$logs/$name.build.log" 2>&1; then
    verdict=ERROR detail="does not build: $(grep -m 1 'error' "$logs/$name.build.log")"
  else
    run_bounded "$suite" --gtest_filter="$(filter_for "$server" "${cases[@]}")" >"$logs/$name.log" 2>&1
    states=$(judge "$logs/$name.log" "$server" "${cases[@]}")
    alive=$(sed -n 's/ passed$//p' <<<"$states" | tr '\n' ' ')
    lost=$(sed -n 's/ not-run$//p' <<<"$states" | tr '\n' ' ')
    alive=${alive% } lost=${lost% }
    if [[ -n $lost ]]; then
      verdict=ERROR detail="no result for: $lost (a typo, or the suite crashed or timed out)"
    elif [[ -n $alive ]]; then
      verdict=SURVIVED detail="still passing: $alive"
    else
      verdict=killed detail="${#cases[@]}/${#cases[@]} cases failed"
    fi
  fi
  if [[ $detail != "does not apply"* ]] && ((${#cases[@]})) && ! (cd "$wt" && GIT_CEILING_DIRECTORIES=$work git apply -R "$p"); then
    echo "run.sh: could not revert $name; stopping" >&2
    exit 2
  fi
  [[ $verdict == killed ]] && killed=$((killed + 1)) || failed=$((failed + 1))
  line=$(printf '%-9s %-48s %4ss  %s' "$verdict" "$name" "$(($(date +%s) - t0))" "$detail")
  results+=("$line")
  echo "$line"
  if [[ $verdict != killed && -f $logs/$name.log ]]; then
    grep -E '^\[  FAILED  \]|Failure$' "$logs/$name.log" | head -n 5 | sed 's/^/          /'
  fi
done

echo "== $killed of ${#patches[@]} mutants killed, $failed not; $(($(date +%s) - started)) s in all"
((failed == 0))
