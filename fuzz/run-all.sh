#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, one after another, on the stable toolchain with
# AddressSanitizer (RUSTC_BOOTSTRAP=1). Exits non-zero if any target found a crash, after
# printing the command that reproduces each one.
#
#   fuzz/run-all.sh 20                      # what CI runs (after fuzz/install.sh)
#   fuzz/run-all.sh 600 ws_frames           # a longer campaign on one target
#
# Needs cargo-fuzz (fuzz/install.sh). Works from any directory; the corpus grows in
# fuzz/corpus/<target>/ (only the committed seed-* files are tracked), crashes land in
# fuzz/artifacts/<target>/, the full libFuzzer log of each target in fuzz/artifacts/<target>.log.
set -uo pipefail

seconds=${1:-60}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(ws_frames http_upgrade protocol_decode engine_ops)
fi

cd "$(dirname "$0")/.." || exit 2
export RUSTC_BOOTSTRAP=1
export RUST_BACKTRACE=1

# Per-target input size bounds (bytes): large enough for fragmented and over-cap messages.
max_len() {
    case "$1" in
        ws_frames | http_upgrade) echo 65536 ;;
        protocol_decode) echo 16384 ;;
        *) echo 8192 ;;
    esac
}

echo "building fuzz targets (cargo fuzz build, AddressSanitizer, debug assertions)"
if ! cargo fuzz build; then
    echo "FAILED: cargo fuzz build" >&2
    exit 1
fi

failed=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/artifacts/$target" "fuzz/corpus/$target"
    log="fuzz/artifacts/$target.log"
    before=$(find "fuzz/artifacts/$target" -type f | sort)
    echo "== $target: ${seconds}s (log: $log)"
    # -timeout: one input may take at most 30 s (virtual time makes server timeouts instant).
    # -malloc_limit_mb: one allocation over 256 MiB from a 64 KiB input is a bug.
    cargo fuzz run "$target" -- \
        -max_total_time="$seconds" \
        -max_len="$(max_len "$target")" \
        -timeout=30 \
        -rss_limit_mb=2048 \
        -malloc_limit_mb=256 \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$status" -eq 0 ]; then
        echo "   ok: ${execs:-?} executions, ${rate:-?} exec/s"
        summary+=("$target: ok, ${execs:-?} execs, ${rate:-?} exec/s")
        continue
    fi
    failed=1
    tail -n 60 "$log"
    new=$(comm -13 <(echo "$before") <(find "fuzz/artifacts/$target" -type f | sort) | grep -v '^$' || true)
    if [ -z "$new" ]; then
        echo "FAILED: $target exited with status $status and left no artifact (see $log)"
        summary+=("$target: FAILED (status $status, no artifact)")
        continue
    fi
    for artifact in $new; do
        echo "FAILED: $target found $artifact"
        echo "  reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $target $artifact"
        echo "  minimize:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin $target $artifact"
        summary+=("$target: FAILED, reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $target $artifact")
    done
done

echo "== summary (${seconds}s per target)"
printf '  %s\n' "${summary[@]}"
exit "$failed"
