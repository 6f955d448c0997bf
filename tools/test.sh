#!/usr/bin/env bash
# The README's test command: on a fresh Debian 12 it installs the Debian packages fsbench
# needs (as root, or through sudo); checks the house rules (clang-format on every C file,
# the include layers of docs/architecture.md); configures with warnings as errors, builds
# (with the C programs under tools/), and runs every test; then it builds again with
# AddressSanitizer + UBSan and runs every test again; then an Open MPI build (-DFSB_MPI=ON)
# runs the shard and mpirun suites; then every libFuzzer target runs 300,000 seeded inputs on
# its seed corpus under ASan + UBSan (tools/fuzz.sh, clang).
# Usage: tools/test.sh  (FSB_SKIP_ASAN=1 skips the sanitizer pass, FSB_SKIP_MPI=1 the MPI one,
# FSB_SKIP_FUZZ=1 the fuzzing one)
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
fsb_install_deps

tools/check_format.sh
tools/check_layers.sh

jobs=$(nproc)
cmake -S . -B build -DFSB_WERROR=ON -DFSB_TOOLS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

if [ "${FSB_SKIP_ASAN:-0}" != 1 ]; then
    cmake -S . -B build-asan -DFSB_WERROR=ON -DFSB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    cmake --build build-asan -j"$jobs"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir build-asan --output-on-failure -j"$jobs"
fi

if [ "${FSB_SKIP_MPI:-0}" != 1 ]; then
    # only the suites with mpirun cases (they skip them in the other builds); mpirun as root
    # is allowed by the tests themselves
    cmake -S . -B build-mpi -DFSB_WERROR=ON -DFSB_MPI=ON -DCMAKE_BUILD_TYPE=Release
    cmake --build build-mpi -j"$jobs" --target bench test_shard test_sharded_run \
        test_pretrain_protonet
    ctest --test-dir build-mpi --output-on-failure -R 'shard|mpi|pretrain_protonet'
fi

if [ "${FSB_SKIP_FUZZ:-0}" != 1 ]; then
    # a fixed, seeded amount of work per target (reproducible: the same binary explores the
    # same inputs; about 2 minutes in all); tests/fuzz/README.md has the long, timed run
    FSB_FUZZ_RUNS=300000 tools/fuzz.sh 15
fi
