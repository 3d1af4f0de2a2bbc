#!/usr/bin/env bash
# The mutation-testing stage: cargo-mutants on the engine, failing under a 95 % mutation score
# (caught / (caught + missed), equivalent mutants listed in .ci/mutants-equivalent.txt excluded),
# or on the server's frame reader (server/src/ws_read.rs) and the hub's accounting
# (server/src/hub.rs) together, failing under the same floor; which one, and which share of its
# mutants, the commit's hash picks. Installs cargo-mutants if missing.
#
#   .ci/mutants.sh              # what CI runs: the engine or the server, by the commit's hash
#   .ci/mutants.sh engine       # only the engine (this commit's eighth of its mutants)
#   .ci/mutants.sh engine-full  # every engine mutant (about 20 minutes on 2 cores)
#   .ci/mutants.sh server-full  # every server mutant of the two files (about 18 minutes)
#
# Each run's outcomes land in .ci/out/mutants/<part>/mutants.out/ (missed.txt, caught.txt, ...).
set -uo pipefail
cd "$(dirname "$0")/.."
VERSION=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$VERSION"; then
    cargo install cargo-mutants --locked --version "$VERSION" || exit 1
fi
OUT=.ci/out/mutants
mkdir -p "$OUT"
: >"$OUT/scores.txt"
# The reference model's case count per mutant: enough to catch what it catches at 256 (checked
# on the whole engine), at a quarter of the time.
export PROPTEST_CASES="${PROPTEST_CASES:-64}"
parts=("$@")

# run PART FLOOR cargo-mutants-args... -- test-args...
run() {
    local part=$1 floor=$2
    shift 2
    rm -rf "${OUT:?}/$part"
    echo "== mutants: $part (floor ${floor} %)"
    local start=$SECONDS
    cargo mutants --no-shuffle -o "$OUT/$part" "$@" >"$OUT/$part.log" 2>&1
    local status=$?
    # 0: every mutant caught; 2: some missed; 3: some timed out. Anything else is a failure to
    # run at all (the unmutated tree failing its tests is 4).
    case $status in
        0 | 2 | 3) ;;
        *)
            echo "cargo mutants failed with status $status:"
            tail -n 40 "$OUT/$part.log"
            return 1
            ;;
    esac
    echo "   $((SECONDS - start)) s"
    python3 .ci/mutants.py "$OUT/$part/mutants.out/outcomes.json" "$floor" .ci/mutants-equivalent.txt \
        | tee "$OUT/$part.score"
    local verdict=${PIPESTATUS[0]}
    echo "$part: $(tail -n 1 "$OUT/$part.score")" >>"$OUT/scores.txt"
    return "$verdict"
}

run_server() {
    run server 95 -p chat-server -f server/src/ws_read.rs -f server/src/hub.rs \
        --re 'ws_read\.rs:|Hub::(flush|flushed|queue_for|feed|replay_held|dispatch)' \
        --timeout 10 "$@" -C --lib -- -- ws_read:: hub::
}

hash=$(printf '%d' "0x$(git rev-parse --short=7 HEAD 2>/dev/null || echo 0)")
# One part per commit, by the hash's parity: each part alone took 7 minutes of the 45 at
# `034d35c` (its build and baseline are most of that), both together too many.
if [ ${#parts[@]} -eq 0 ]; then
    case $((hash % 2)) in
        0) parts=(engine) ;;
        *) parts=(server) ;;
    esac
fi
failed=0
for part in "${parts[@]}"; do
    case $part in
        # -C args reach the build as well as the test run: without them every mutant would
        # also build (and link) every integration test and bench of the package.
        # An eighth of the engine's mutants or a seventh of the server's per commit (which
        # share: the commit's hash), so CI stays inside its time budget (an eighth and a seventh
        # both took 14 of a 45-minute run at `034d35c`); consecutive commits cover the rest.
        # engine-full and server-full run all (about 40 and 27 minutes on 2 cores).
        engine)
            shard=$((hash / 2 % 8))
            echo "   engine shard $shard/8"
            MUTANTS_SHARD="$shard/8" run engine 95 -p chat-engine -j 2 --shard "$shard/8" \
                -C --lib -C --test=model -C --test=cluster || failed=1 ;;
        engine-full) run engine 95 -p chat-engine -j 2 -C --lib -C --test=model -C --test=cluster || failed=1 ;;
        # The frame reader and the hub's accounting (what it tells the engine was written, held
        # and read), in one run so the server is built from scratch once.
        server)
            shard=$((hash / 16 % 7))
            echo "   server shard $shard/7"
            MUTANTS_SHARD="$shard/7" run_server --shard "$shard/7" || failed=1 ;;
        server-full) run_server || failed=1 ;;
        *) echo "unknown part $part" >&2; exit 2 ;;
    esac
done
exit "$failed"
