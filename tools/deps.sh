# deps.sh - sourced by tools/test.sh and tools/bench.sh: installs the Debian 12 packages
# fsbench builds and runs with, only those missing, as root or through sudo.
FSB_DEPS=(build-essential cmake pkg-config libopenblas-dev libpng-dev libjpeg62-turbo-dev
          liblinear-dev check zlib1g-dev libxxhash-dev xxhash gnuplot-nox dataset-fashion-mnist
          libopenmpi-dev openmpi-bin clang-format clang libclang-rt-14-dev libdnnl-dev)

fsb_install_deps() {
    local missing=() p
    for p in "${FSB_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    echo "installing Debian packages: ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    # through sudo as an argument: sudo's env_reset would drop it from the environment
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >&2
}
