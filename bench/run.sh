#!/usr/bin/env bash
# Run every benchmark of bench/ with modest defaults: about half an hour on 2 cores.
# Benchmarks never run in the test suite; this is their command.
#
#   bench/run.sh           the full run (figures for bench/RESULTS.md)
#   bench/run.sh --quick   tiny parameters, to check that every script works (its figures
#                          mean nothing, and it overwrites bench/results/*.json with them)
#
# Builds the release binaries first, then runs each scenario (each one prints its table and
# writes bench/results/<name>.json), then prints the binary sizes of the cross build
# (dist/sizes.tsv from cross/build.sh) when there is one. Baselines the scripts need
# (grep, tail, rg, monit) are installed from apt when missing and possible; a script says
# which one it had to do without. Run it on a quiet machine: every figure is shared with
# whatever else runs.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

quick=0
case "${1:-}" in
    --quick) quick=1 ;;
    "") ;;
    *) echo "usage: bench/run.sh [--quick]" >&2; exit 2 ;;
esac

if [ "$quick" = 1 ]; then
    scan_args=(--mb 20 --runs 1)
    live_args=(--marks 20 --seconds 1)
    footprint_args=(--idle-seconds 3 --load-seconds 3 --starts 2 --settle 1)
    service_args=(--crashes 2)
    command_args=(--lines 200000 --runs 1)
    server_args=(--devices 50 --concurrency 8 --seconds 2)
    storage_args=(--seconds 10 --interval 3s)
    stalled_args=(--samples 10 --stall 2s --baseline-samples 1)
    sampled_args=(--seconds 31 --settle 1)
    scaling_args=(--sizes 1,50,500 --idle-seconds 3 --load-seconds 3 --starts 1 --settle 1)
else
    scan_args=(--mb 300 --runs 3)
    live_args=(--marks 100 --seconds 5)
    footprint_args=(--idle-seconds 60 --load-seconds 30 --starts 5)
    service_args=(--crashes 10)
    command_args=(--lines 2000000 --runs 3)
    server_args=(--devices 2000 --concurrency 64 --seconds 20)
    storage_args=(--seconds 60 --interval 10s)
    stalled_args=(--samples 100 --stall 5s --baseline-samples 5)
    sampled_args=(--seconds 300)
    scaling_args=(--sizes 1,50,500,5000 --idle-seconds 30 --load-seconds 20 --starts 3)
fi

echo "== machine: $(nproc) cores, kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%M:%SZ)," \
    "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "== building the release binaries"
cargo build --release --locked -p monitor --bins || exit 1

failed=()
run() {
    local name=$1
    shift
    echo
    echo "== $name: $*"
    local started=$SECONDS
    if ! "$@"; then
        failed+=("$name")
        echo "!! $name failed" >&2
    fi
    echo "   ($name took $((SECONDS - started)) s)"
}

run "log scanning throughput" python3 bench/log_throughput.py --no-build "${scan_args[@]}"
run "live log latency" python3 bench/live_latency.py --no-build "${live_args[@]}"
run "footprint and startup" python3 bench/footprint.py --no-build "${footprint_args[@]}"
run "sampled checks" python3 bench/sampled_checks.py --no-build "${sampled_args[@]}"
# MONITOR_BASELINE_DIR: an older build's monitord and monitorctl to measure alternately.
if [ -n "${MONITOR_BASELINE_DIR:-}" ]; then
    scaling_args+=(--before "$MONITOR_BASELINE_DIR")
fi
run "scaling with the number of checks" python3 bench/scaling.py --no-build "${scaling_args[@]}"
run "service failure latency" python3 bench/service_latency.py "${service_args[@]}"
run "@command throughput" python3 bench/command_throughput.py "${command_args[@]}"
# Builds monitor-server and its load generator (release) itself; PostgreSQL is skipped,
# and said so, when MONITOR_TEST_POSTGRES_URL (or the default local role) does not answer.
run "monitor-server load" python3 bench/server_load.py "${server_args[@]}"
# Needs strace. MONITOR_BASELINE_MONITORD: an older monitord to measure next to this one
# (e.g. commit 09a5579's, built in its own worktree); MONITOR_BASELINE_LABEL names it.
if [ -n "${MONITOR_BASELINE_MONITORD:-}" ]; then
    storage_args+=(--baseline-monitord "$MONITOR_BASELINE_MONITORD"
        --baseline-label "${MONITOR_BASELINE_LABEL:-baseline}")
fi
run "state folder writes" python3 bench/storage_writes.py --no-build "${storage_args[@]}"
# Needs /dev/fuse and root (or fusermount3); builds the faultfs example (release) itself.
# The baseline (with a 5 s stall, about 30 s per alert) only with MONITOR_BASELINE_MONITORD.
if [ -n "${MONITOR_BASELINE_MONITORD:-}" ]; then
    stalled_args+=(--baseline-monitord "$MONITOR_BASELINE_MONITORD"
        --baseline-label "${MONITOR_BASELINE_LABEL:-baseline}")
fi
run "alert latency on a stalled state folder" python3 bench/stalled_disk_latency.py "${stalled_args[@]}"

echo
echo "== binary sizes"
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-target}
for binary in monitord monitorctl; do
    if [ -f "$target_dir/release/$binary" ]; then
        printf '%-32s %-11s %10s bytes (%s MiB; host release build, not stripped)\n' "host" "$binary" \
            "$(stat -c %s "$target_dir/release/$binary")" \
            "$(awk -v b="$(stat -c %s "$target_dir/release/$binary")" 'BEGIN { printf "%.2f", b / 1048576 }')"
    fi
done
sizes=${MONITOR_DIST:-dist}/sizes.tsv
if [ -f "$sizes" ]; then
    # Columns: target, binary, bytes (written by cross/build.sh; stripped binaries).
    awk -F '\t' 'NR > 1 { printf "%-32s %-11s %10d bytes (%.2f MiB)\n", $1, $2, $3, $3 / 1048576 }' "$sizes"
else
    echo "no cross build ($sizes is missing; cross/build.sh writes it)"
fi

if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
