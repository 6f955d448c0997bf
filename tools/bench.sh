#!/usr/bin/env bash
# The README's main-job command: installs what fsbench needs (Debian 12, as root or via
# sudo), builds it once (Release, warnings as errors) and runs `bench` with the given
# arguments, e.g. `tools/bench.sh --shots 1,5,10,30 --way 5`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/deps.sh"
fsb_install_deps
if [ ! -x "$here/build-release/bench" ] || [ -n "$(find "$here/src" "$here/include" \
        "$here/episodes" "$here/baselines" "$here/CMakeLists.txt" -newer "$here/build-release/bench" \
        -print -quit)" ]; then
    cmake -S "$here" -B "$here/build-release" -DCMAKE_BUILD_TYPE=Release -DFSB_TESTS=OFF \
        -DFSB_WERROR=ON >&2
    cmake --build "$here/build-release" -j"$(nproc)" >&2
fi
# the committed MiniImageNet teacher is the default --teacher (the demo uses its own)
if [ -z "${FSB_TEACHER:-}" ] && [ -f "$here/results/teacher-conv4/teacher.fsbt" ]; then
    export FSB_TEACHER="$here/results/teacher-conv4/teacher.fsbt"
fi
exec "$here/build-release/bench" "$@"
