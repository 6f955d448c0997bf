#!/usr/bin/env bash
# fuzz.sh - builds the libFuzzer targets (build-fuzz: clang, -DFSB_FUZZ=ON, ASan + UBSan) and
# runs every tests/fuzz/fuzz_<name>.c for SECONDS (default 20) on a temporary copy of its seed
# corpus tests/fuzz/corpus/<name>/ (the committed corpus is never modified), with the
# dictionary tests/fuzz/dict/<name>.dict when there is one. Prints executions and coverage per
# target; fails on any crash, leak, UB, timeout or out-of-memory, whose input is kept in
# build-fuzz/crashes/<name>/. tools/test.sh runs it as its 4th pass; tests/fuzz/README.md
# describes longer runs, minimising a crash and adding a regression input.
# Usage: tools/fuzz.sh [SECONDS [NAME...]]   (FSB_FUZZ_JOBS=N: build jobs, default nproc;
# FSB_FUZZ_RUNS=N: instead of SECONDS, exactly N inputs per target from libFuzzer seed 1, so
# that a pass is reproducible: what tools/test.sh does)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "usage: tools/fuzz.sh [SECONDS [NAME...]]" >&2; exit 2; }
if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for f in tests/fuzz/fuzz_*.c; do
        n=${f##*/fuzz_}
        names+=("${n%.c}")
    done
fi
for n in "${names[@]}"; do
    [ -f "tests/fuzz/fuzz_$n.c" ] || { echo "fuzz.sh: no target tests/fuzz/fuzz_$n.c" >&2; exit 2; }
done

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DFSB_FUZZ=ON -DFSB_TESTS=OFF -DFSB_WERROR=ON \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" >/dev/null
cmake --build build-fuzz -j"${FSB_FUZZ_JOBS:-$(nproc)}" --target fuzz

# the corpus copies and the targets' scratch files (gone even after a crash), on tmpfs when
# there is one: on ext4 a file rewritten per input is flushed on every close
tmp=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
printf '%-12s %10s %8s %8s %8s  %s\n' target execs exec/s cov ft result
for n in "${names[@]}"; do
    mkdir -p "$tmp/corpus/$n" "build-fuzz/crashes/$n"
    cp -r "tests/fuzz/corpus/$n/." "$tmp/corpus/$n/"
    dict=()
    [ -f "tests/fuzz/dict/$n.dict" ] && dict=("-dict=tests/fuzz/dict/$n.dict")
    log="build-fuzz/crashes/$n/last-run.log"
    rc=0
    budget=(-max_total_time="$secs")
    [ -n "${FSB_FUZZ_RUNS:-}" ] && budget=(-runs="$FSB_FUZZ_RUNS" -seed=1)
    "build-fuzz/fuzz_$n" "${dict[@]}" "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$n/" "$tmp/corpus/$n" \
        >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    result=ok
    if [ "$rc" -ne 0 ]; then
        result="FAILED (exit $rc): $(grep -m1 -o 'ERROR: [A-Za-z]*: [^ ]*\|fuzz property violated: .*' "$log" || true)"
        failed+=("$n")
    fi
    printf '%-12s %10s %8s %8s %8s  %s\n' "$n" "${execs:--}" "${rate:--}" "${cov:--}" \
        "${ft:--}" "$result"
done
if [ ${#failed[@]} -gt 0 ]; then
    for n in "${failed[@]}"; do
        echo "--- fuzz_$n (build-fuzz/crashes/$n/last-run.log):" >&2
        grep -A25 -m1 'ERROR\|fuzz property violated\|==[0-9]*==' "build-fuzz/crashes/$n/last-run.log" >&2 || tail -30 "build-fuzz/crashes/$n/last-run.log" >&2
        ls "build-fuzz/crashes/$n" | grep -v last-run.log | sed "s|^|    input: build-fuzz/crashes/$n/|" >&2 || true
    done
    echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]} (tests/fuzz/README.md)" >&2
    exit 1
fi
