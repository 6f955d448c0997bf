#!/usr/bin/env bash
# check_format.sh - every C file of the repository (git ls-files) is formatted as
# .clang-format says (Debian 12's clang-format 14). Prints the files that are not, with the
# command that fixes them, and exits 1.
# Usage: tools/check_format.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h')
if [ ${#bad[@]} -gt 0 ]; then
    printf 'not clang-formatted: %s\n' "${bad[@]}"
    echo "fix: clang-format -i ${bad[*]}"
    exit 1
fi
echo "format: every C file is clang-formatted"
