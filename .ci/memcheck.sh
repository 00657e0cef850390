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
# Every compiled build this CPU runs: the portable one, and the AVX2 one if present.
for isa in baseline avx2; do
    if [ "$isa" = avx2 ] && ! ELMAN_ISA=avx2 "$python" -c "import elman._backend as b; b.get_kernels('cython')" 2>/dev/null; then
        echo "memcheck: no AVX2 build usable here, skipped"
        continue
    fi
    echo "memcheck: ELMAN_ISA=$isa"
    PYTHONMALLOC=malloc ELMAN_BACKEND=cython ELMAN_ISA=$isa valgrind --log-file="$log.$isa" \
        --num-callers=40 "$python" "$here/memcheck_kernels.py"
    cat "$log.$isa" >> "$log"
    rm -f "$log.$isa"
done
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
