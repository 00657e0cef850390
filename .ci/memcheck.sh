#!/usr/bin/env bash
# valgrind memcheck over the compiled kernels (see memcheck_kernels.py).
# Usage: .ci/memcheck.sh PYTHON   (a python with elman's compiled module installed)
# CPython and the dynamic loader produce reports of their own under valgrind; only
# reports whose stack passes through elman's compiled module count.
set -euo pipefail
python=${1:?usage: memcheck.sh PYTHON}
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v valgrind >/dev/null; then
    apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
log=$(mktemp)
PYTHONMALLOC=malloc ELMAN_BACKEND=cython valgrind --log-file="$log" --num-callers=40 \
    "$python" "$here/memcheck_kernels.py"
total=$(grep -cE "Invalid (read|write)|uninitialised|Mismatched free|Invalid free" "$log" || true)
ours=$(awk '/^==[0-9]+== [A-Z]/{block=$0; next} /^==[0-9]+== +(at|by) /{block=block"\n"$0; next}
            /^==[0-9]+== *$/{if (block ~ /_kernels/ && block ~ /Invalid|uninitialised|free/) n++; block=""}
            END{print n+0}' "$log")
echo "memcheck: $total reports in all, $ours in elman's compiled module"
if [ "$ours" -ne 0 ]; then
    grep -B2 -A30 "_kernels" "$log" | head -120
    exit 1
fi
rm -f "$log"
