#!/usr/bin/env bash
# check_layers.sh - the include rule of docs/architecture.md, checked: every module of
# fsbench has a place in the order below (lowest first), and a header or source file may
# include only the headers of its own module and of modules placed before it. That forbids
# every include cycle between modules and every include of a higher layer from a lower one.
# Usage: tools/check_layers.sh   (from anywhere; exit 1 and one line per violation)
set -euo pipefail
cd "$(dirname "$0")/.."

# layer: modules in order (a module may include any module listed before it)
ORDER=(
    # core: status, memory, threads, files, BLAS, tensor files
    status rng arena threads fileio progress blas plot dist version tensorfile journal
    # engine: layers, networks, optimisers, MAML's meta-gradient, losses
    layers attention featloss model optim maml protoloss
    # data: listings, decoding, transforms, the packed cache
    dataset image transform cache idx datacheck
    # episodes: the sampler and manifests
    episodes
    # features: a network's embeddings of packed images
    features
    # methods: the method interface, the baselines, REFILLED's students, MAML's adaptation
    refilled method baselines student student_methods maml_method
    # run folder: reports, shards, the folder's files, merging, comparing two runs
    report shard runfolder merge compare
    # jobs: the runner, pre-training, tuning, measurements, the demo
    run pretrain_dist pretrain tune perf perf_methods demo
    # the command line
    cli
)

declare -A RANK
for i in "${!ORDER[@]}"; do RANK[${ORDER[$i]}]=$i; done

# the module a file belongs to
module_of() {
    local f=$1 b
    b=$(basename "$f")
    b=${b%.*}
    case "$f" in
    src/cli/*) echo cli ;;
    src/mpi/*) echo dist ;;
    episodes/*) echo episodes ;;
    baselines/method.c) echo method ;;
    baselines/student_methods.c) echo student_methods ;;
    baselines/maml_method.c) echo maml_method ;;
    baselines/*) echo baselines ;;
    *)
        case "$b" in
        model_io | model_run) echo model ;;
        pretrain_maml) echo pretrain ;;
        conv_small | conv_dnnl) echo layers ;;
        *) echo "$b" ;;
        esac
        ;;
    esac
}

bad=0
files=$(ls include/fsb/*.h src/*.c src/mpi/*.c src/cli/*.c baselines/*.c episodes/*.c 2>/dev/null)
for f in $files; do
    m=$(module_of "$f")
    if [ -z "${RANK[$m]+x}" ]; then
        echo "$f: module '$m' has no place in tools/check_layers.sh's ORDER (add it)"
        bad=1
        continue
    fi
    for dep in $(grep -o '#include "fsb/[a-z_0-9]*\.h"' "$f" | sed 's/#include "fsb\///; s/\.h"//'); do
        if [ -z "${RANK[$dep]+x}" ]; then
            echo "$f: includes fsb/$dep.h, a module with no place in ORDER"
            bad=1
        elif [ "${RANK[$dep]}" -gt "${RANK[$m]}" ]; then
            echo "$f: $m includes fsb/$dep.h, a module placed after it (docs/architecture.md)"
            bad=1
        fi
    done
done
[ $bad -eq 0 ] && echo "layers: every include goes to the same module or one placed before it"
exit $bad
