#!/usr/bin/env bash
# Runs every fuzz target for a while: fuzz/run.sh [seconds per target] [targets...]
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Builds optimized with debug assertions (overflow checks on) and no
# sanitizer: the crate has no unsafe code in these paths, so speed buys
# more executions. A crash leaves its input in fuzz/artifacts/<target>/;
# turn it into a regression test beside the code it broke.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(warc extract)
python=${PYTHON:-python3}
"$python" seeds.py
cargo +nightly fuzz build -O -a -s none
status=0
for t in "${targets[@]}"; do
    extra=(-max_len=65536)
    # Pages cost milliseconds each: keep them small enough for many runs.
    [[ $t == extract ]] && extra=(-max_len=16384)
    [[ $t == warc ]] && extra+=(-dict=warc.dict)
    rc=0
    nice -n 10 cargo +nightly fuzz run -O -a -s none "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${extra[@]}" >"fuzz-$t.log" 2>&1 || rc=$?
    echo "== $t: exit $rc"
    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|==[0-9]+==|SUMMARY)" "fuzz-$t.log" || true
    [[ $rc -eq 0 ]] || status=$rc
done
exit $status
