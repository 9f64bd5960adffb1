#!/usr/bin/env bash
# Run fuzz targets against the instrumented build (make fuzz builds it).
#   FUZZ_TARGETS  space-separated target names (default: every fuzz/fuzz_*.py)
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_ARGS     extra libFuzzer flags, e.g. "-runs=1000"
#   FUZZ_INPUT    a saved input: run the target (FUZZ_TARGETS) on it once, to reproduce
#   FUZZ_JOBS     targets run at a time (default 1)
# Corpora grow in fuzz/corpus/<target>/; fixed regression inputs committed in
# fuzz/seeds/<target>/ (if any) are read with it on every run.  An input that
# finds a defect is saved as fuzz/findings/<target>-crash-*, -timeout-* or
# -oom-*, and the run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)  # targets change directory: every path given to them is absolute

python=${FUZZ_PYTHON:-.venv-fuzz/bin/python}
lib=$(realpath "${FUZZ_LIB:-build/fuzz/lib}")
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-}
jobs_max=${FUZZ_JOBS:-1}
if [ -z "$targets" ]; then
    targets=$(for f in fuzz/fuzz_*.py; do basename "$f" .py | sed 's/^fuzz_//'; done)
fi
runtime=$("$python" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')
mkdir -p fuzz/findings

# one target's run and its report; non-zero on a finding or a failure
run_target() {
    local target=$1 script log start inputs limits rc runs cov
    script=fuzz/fuzz_$target.py
    if [ ! -f "$script" ]; then
        echo "no fuzz target $target ($script)" >&2
        return 1
    fi
    mkdir -p "fuzz/corpus/$target"
    log=fuzz/findings/$target.log
    echo "== fuzz $target: ${FUZZ_INPUT:-${seconds}s} (log: $log)"
    start=$(date +%s)
    # the libFuzzer runtime (with ASan) must be the first library loaded;
    # PYTHONMALLOC=malloc lets ASan see every Python allocation too
    if [ -n "${FUZZ_INPUT:-}" ]; then
        # one input, once: no corpus, no time limit
        inputs=("$(realpath "$FUZZ_INPUT")")
        limits=()
    else
        inputs=("$root/fuzz/corpus/$target")
        # new inputs go to the first directory: the seeds stay as committed
        if [ -d "fuzz/seeds/$target" ]; then
            inputs+=("$root/fuzz/seeds/$target")
        fi
        limits=(-max_total_time="$seconds")
    fi
    env LD_PRELOAD="$runtime" \
        ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:handle_abort=1:symbolize=1" \
        PYTHONMALLOC=malloc PYTHONPATH="$lib:$root/fuzz" FASTSOCK_FUZZ_LIB="$lib" \
        timeout --signal=KILL $((seconds * 2 + 120)) \
        "$python" "$script" "${inputs[@]}" ${limits[@]+"${limits[@]}"} -timeout=20 -rss_limit_mb=4096 -max_len=4096 \
        -artifact_prefix="$root/fuzz/findings/$target-" -print_final_stats=1 ${FUZZ_ARGS:-} \
        >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    echo "   exit $rc, $(( $(date +%s) - start ))s, ${runs:-?} executions, ${cov:-cov: ?}"
    if [ $rc -ne 0 ]; then
        grep -E -m 5 -A 15 'Defect|Uncaught Python exception|ERROR: AddressSanitizer|ALARM|deadly signal|out-of-memory' "$log" | head -n 40
        ls fuzz/findings/"$target"-* 2>/dev/null | grep -v '\.log$' | sed 's/^/   saved: /'
        return 1
    fi
}

# FUZZ_JOBS targets at a time (each runs on one core); their reports in order
failed=()
pids=()
names=()
for target in $targets; do
    if [ "$jobs_max" -le 1 ]; then
        run_target "$target" || failed+=("$target")
        continue
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
    run_target "$target" >"fuzz/findings/$target.report" 2>&1 &
    pids+=($!)
    names+=("$target")
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
    cat "fuzz/findings/${names[$i]}.report"
    rm -f "fuzz/findings/${names[$i]}.report"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: findings or failures in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: no findings"
