#!/usr/bin/env bash
# Build neuron_emu._C with AddressSanitizer + UBSan (NEMU_SANITIZE=1, see setup.py) in a throw-away
# copy of the repository -- the main in-place build is never touched -- and run the engine-kernel
# tests against it with libasan preloaded into the (uninstrumented) Python interpreter.
#
# Exits non-zero on any test failure or any sanitizer report (ASan aborts the process; UBSan is
# built with -fno-sanitize-recover and run with halt_on_error=1; as a belt-and-braces check the
# output is also grepped for sanitizer report headers).
#
# Usage: tests/run_sanitized.sh [extra pytest args...]
#   slow fuzz target (>= 10,000 cases): NEMU_SAN_TESTS=tests/test_fuzz.py tests/run_sanitized.sh -m slow
#   NEMU_SAN_KEEP=1   keep the temporary build tree (path is printed)
#   NEMU_SAN_TESTS="tests/a.py tests/b.py"   run these test files (paths relative to the repo)
#                                            instead of the kernel-test list
#   NEMU_SAN_ASAN_OPTIONS=...                extra ASAN_OPTIONS, appended
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
START=$(date +%s)

KERNEL_TESTS=(test_tensor_engine.py test_vector_engine.py test_scalar_engine.py
              test_gpsimd_engine.py test_dma.py test_dtype_convert.py test_artifact.py test_untrusted.py
              test_fuzz.py test_native_forward.py)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/nemu-sanitize.XXXXXX")"
cleanup() {
    if [[ "${NEMU_SAN_KEEP:-0}" == "1" ]]; then echo "[sanitize] kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# 1. Copy the source tree: tracked files plus untracked-but-not-ignored ones (new tests, new csrc
#    files not yet committed), never build products (*.so, build/ are ignored by .gitignore).
echo "[sanitize] copying $REPO -> $WORK"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done \
        | xargs -0 cp --parents -t "$WORK") || { echo "[sanitize] copy failed"; exit 2; }
else
    rsync -a --exclude '*.so' --exclude 'build/' --exclude '__pycache__/' --exclude '.git/' \
        "$REPO/" "$WORK/" || { echo "[sanitize] copy failed"; exit 2; }
fi
find "$WORK" -name '*.so' -delete

# 2. Build the sanitized extension in place inside the copy.
echo "[sanitize] building with NEMU_SANITIZE=1"
(cd "$WORK" && NEMU_SANITIZE=1 "$PYTHON" setup.py build_ext --inplace >"$WORK/build.log" 2>&1)
rc=$?
if [[ $rc -ne 0 ]]; then
    tail -n 60 "$WORK/build.log"
    echo "[sanitize] BUILD FAILED (rc=$rc)"
    exit 2
fi
SO="$(ls "$WORK"/neuron_emu/_C*.so 2>/dev/null | head -n1)"
[[ -n "$SO" ]] || { echo "[sanitize] no extension built"; exit 2; }
if ! nm -D "$SO" 2>/dev/null | grep __asan_init >/dev/null; then  # no -q: SIGPIPE + pipefail
    echo "[sanitize] $SO is not ASan-instrumented"; exit 2
fi
BUILD_END=$(date +%s)
echo "[sanitize] built $(basename "$SO") in $((BUILD_END - START))s"

# 3. Locate the runtimes. libasan must come first in the process; libubsan is linked in via
#    -fsanitize=undefined and resolved by the extension's own DT_NEEDED.
LIBASAN="$(gcc -print-file-name=libasan.so)"
if [[ ! -e "$LIBASAN" || "$LIBASAN" == "libasan.so" ]]; then
    echo "[sanitize] libasan.so not found (gcc -print-file-name=libasan.so)"; exit 2
fi
LIBASAN="$(readlink -f "$LIBASAN")"
# libstdc++ must be loaded when ASan starts, or its __cxa_throw interceptor finds no real __cxa_throw and
# every C++ exception (our ValueErrors) aborts the process ("CHECK failed: real___cxa_throw != 0").
LIBSTDCXX="$(readlink -f "$(g++ -print-file-name=libstdc++.so)")"
PRELOAD="$LIBASAN $LIBSTDCXX"

# 4. Collect whichever kernel tests exist (from the copy, so they import the sanitized build).
TESTS=()
if [[ -n "${NEMU_SAN_TESTS:-}" ]]; then
    for t in $NEMU_SAN_TESTS; do
        if [[ "$t" == /* && -f "$t" ]]; then TESTS+=("$t"); continue; fi
        [[ -f "$WORK/$t" ]] || { echo "[sanitize] $t not in the copied tree"; exit 2; }
        TESTS+=("$t")
    done
else
    for t in "${KERNEL_TESTS[@]}"; do
        [[ -f "$WORK/tests/$t" ]] && TESTS+=("tests/$t")
    done
fi
if [[ ${#TESTS[@]} -eq 0 ]]; then
    echo "[sanitize] no kernel tests exist yet (looked for: ${KERNEL_TESTS[*]}); build OK"
    exit 0
fi
echo "[sanitize] running: ${TESTS[*]}"

# The copy must shadow the editable install of the main tree.
got="$(cd "$WORK" && PYTHONPATH="$WORK" LD_PRELOAD="$PRELOAD" ASAN_OPTIONS=detect_leaks=0 \
       "$PYTHON" -c 'import neuron_emu._C as c; print(c.__file__)' 2>&1 | tail -n1)"
if [[ "$got" != "$WORK"/* ]]; then
    echo "[sanitize] sanitized extension does not import from the copy: $got"; exit 2
fi

LOG="$WORK/pytest.log"
(
    cd "$WORK"
    export PYTHONPATH="$WORK${PYTHONPATH:+:$PYTHONPATH}"
    export LD_PRELOAD="$PRELOAD"
    # allocator_may_return_null + max_allocation_size_mb: an oversized allocation fails cleanly (the fuzzer's
    # children cannot use RLIMIT_AS under ASan)
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=8192${NEMU_SAN_ASAN_OPTIONS:+:$NEMU_SAN_ASAN_OPTIONS}"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
    export PYTHONFAULTHANDLER=1
    # Route Python object allocations through malloc so ASan also guards the buffers of
    # bytes/array/numpy objects the kernels read and write.
    export PYTHONMALLOC=malloc
    # -p no:cacheprovider: the copy is throw-away; -x is not used so every failure is listed.
    "$PYTHON" -m pytest -p no:cacheprovider -q "${TESTS[@]}" "$@"
) 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}

END=$(date +%s)
if grep -qE '^(==[0-9]+==ERROR: (Address|Undefined|Leak)Sanitizer|SUMMARY: (Address|Undefined)BehaviorSanitizer|SUMMARY: AddressSanitizer)|runtime error: ' "$LOG"; then
    echo "[sanitize] SANITIZER REPORT found (see above)"
    [[ $rc -eq 0 ]] && rc=3
fi
echo "[sanitize] pytest rc=$rc; build $((BUILD_END - START))s, tests $((END - BUILD_END))s, total $((END - START))s"
exit $rc
