#!/usr/bin/env bash
# Side-by-side load comparisons in one sitting: one chat-load scenario against several servers,
# in alternating order, each run on a fresh server, with the same generator. Prints one row per
# run and keeps every run's JSON line in $OUT/compare.jsonl.
#
#   sim/compare.sh SCENARIO ROUNDS SERVER...
#   sim/compare.sh 1 3 ours go        # scenario 1, three alternating pairs: this build, Go hub
#   sim/compare.sh 3c 3 base ours     # before/after: base is BASE_SERVER (an older build)
#
# Servers:
#   ours  this tree's release build ($CARGO_TARGET_DIR/release/chat-server), as people run it:
#         the message store on (strict), in a fresh $OUT/data per run
#   mem   the same build with --in-memory (no store), for the store's cost side by side
#   cluster two nodes of this build with --broker on one redis-server (persistence off), the
#         clients split across them (client i on node i mod 2); CPU is both nodes' and Redis's
#   base  BASE_SERVER (default /work/baseline-bin/chat-server), e.g. a build of an older commit,
#         started as ours is (its store in a fresh $OUT/data per run)
#   go    the classic Go hub, ../shared/peers/go-seed (built into /tmp/go-seed if missing; needs
#         Debian's golang-go and golang-github-gorilla-websocket-dev, see its README)
# Scenarios (everyone in one room unless the name says otherwise; nothing pinned):
#   1   100 clients, 10 senders at 10 messages/s each, 10 s (within the default rate limit)
#   3   50 clients, 5 senders as fast as they can (open loop), 5 s, up to 30 s to drain
#   3c  50 clients, 5 senders as fast as they can, at most 32 unacknowledged each, 5 s
#       (rate limit off on our servers, or the senders would only see rate_limited)
#   4   10,000 idle connections, ten per room (1,000 rooms), held 5 s (not for go: no rooms)
#   4r  10,000 idle connections in one room, held 5 s
#   6   19,000 clients connect into one room and are held 5 s
#   7   5,000 clients in one room, 1 sender at 20 messages/s for 10 s (rate limit off)
#   h0  1,000 clients in one room, 20 senders at 2 messages/s each, 60 s (hostile baseline)
#   h   h0 plus 20 attackers (history poisoners across rooms, reconnect loops, typing and ping
#       floods, room switchers); ours only
#   soak 400 clients in one room (40 senders at 1 message/s) plus 100 churners that connect,
#       chat and leave at random, 600 s, the server's RSS every 30 s; ours only
# Environment: CARGO_TARGET_DIR (default /work/target-load), PORT (18480), OUT
# (/tmp/chat-load-compare), BUILD=0 to skip building, OURS_FLAGS="--flag value ..." for extra
# flags to our servers (label such runs), STORE_DIR=DIR to run ours and base on that existing
# store (kept, and grown, across runs) instead of a fresh one per run.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-load}"
PORT="${PORT:-18480}"
OUT="${OUT:-/tmp/chat-load-compare}"
BASE_SERVER="${BASE_SERVER:-/work/baseline-bin/chat-server}"
GO_SERVER=/tmp/go-seed/chat-seed
LOAD="$CARGO_TARGET_DIR/release/chat-load"
mkdir -p "$OUT"

[ $# -ge 3 ] || { sed -n '2,31p' "$0" >&2; exit 2; }
scenario=$1
rounds=$2
shift 2
servers=("$@")

if [ "${BUILD:-1}" = 1 ]; then
    cargo build --release -p chat-server -p chat-sim --bin chat-server --bin chat-load >&2
fi
for s in "${servers[@]}"; do
    case $s in
        go) [ -x "$GO_SERVER" ] || bash ../shared/peers/go-seed/build.sh >&2 ;;
        base) [ -x "$BASE_SERVER" ] || { echo "no $BASE_SERVER" >&2; exit 1; } ;;
        ours|mem) ;;
        cluster) command -v redis-server >/dev/null || { echo "cluster needs redis-server" >&2; exit 1; } ;;
        *) echo "unknown server $s" >&2; exit 2 ;;
    esac
done

# Both processes hold one end of every connection: 19,000 need about 19,100 open files each.
ulimit -n "$(ulimit -Hn)"

# Our servers' flags for this scenario, and chat-load's.
load_args=()
ours_args=(--max-connections 20000)
case $scenario in
    1) load_args=(--clients 100 --senders 10 --rate 10 --duration 10) ;;
    3c) load_args=(--clients 50 --senders 5 --rate 0 --window 32 --duration 5)
        ours_args+=(--rate-limit-per-second 0) ;;
    3) load_args=(--clients 50 --senders 5 --rate 0 --duration 5 --drain 30)
       ours_args+=(--rate-limit-per-second 0) ;;
    4) load_args=(--clients 10000 --rooms 1000 --connect-only --duration 5) ;;
    4r) load_args=(--clients 10000 --connect-only --duration 5) ;;
    6) load_args=(--clients 19000 --connect-only --duration 5) ;;
    7) load_args=(--clients 5000 --senders 1 --rate 20 --duration 10)
       ours_args+=(--rate-limit-per-second 0) ;;
    h0) load_args=(--clients 1000 --senders 20 --rate 2 --duration 60 --drain 10) ;;
    h) load_args=(--clients 1000 --senders 20 --rate 2 --duration 60 --drain 10 --attackers 20
                  --rss-every 5) ;;
    soak) load_args=(--clients 400 --senders 40 --rate 1 --duration 600 --drain 10 --churn 100
                     --rss-every 30) ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
# shellcheck disable=SC2206
ours_args+=(${OURS_FLAGS:-})
# Ours keeps its messages as people run it (the store on, strict): in a fresh directory per run,
# so runs do not grow one file. OURS_FLAGS=--in-memory measures it without the store.
store_args=()
case " ${OURS_FLAGS:-} " in
    *" --in-memory "*) ;;
    *) store_args=(--data-dir "${STORE_DIR:-$OUT/data}") ;;
esac

PID=""
EXTRA_PIDS=()
stop() {
    for extra in "${EXTRA_PIDS[@]}"; do
        kill -TERM "$extra" 2>/dev/null || true
    done
    for extra in "${EXTRA_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$extra" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$extra" 2>/dev/null || true
        wait "$extra" 2>/dev/null || true
    done
    EXTRA_PIDS=()
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=""
    fi
}
trap stop EXIT

start() {
    case $1 in
        ours) [ -n "${STORE_DIR:-}" ] || rm -rf "$OUT/data"
              RUST_LOG=warn "$CARGO_TARGET_DIR/release/chat-server" --addr "127.0.0.1:$PORT" "${ours_args[@]}" "${store_args[@]}" >"$OUT/server.log" 2>&1 & ;;
        mem) RUST_LOG=warn "$CARGO_TARGET_DIR/release/chat-server" --addr "127.0.0.1:$PORT" "${ours_args[@]}" --in-memory >"$OUT/server.log" 2>&1 & ;;
        base) [ -n "${STORE_DIR:-}" ] || rm -rf "$OUT/data"
              RUST_LOG=warn "$BASE_SERVER" --addr "127.0.0.1:$PORT" "${ours_args[@]}" "${store_args[@]}" >"$OUT/server.log" 2>&1 & ;;
        go) "$GO_SERVER" -port "$PORT" >"$OUT/server.log" 2>&1 & ;;
        cluster)
            redis-server --port "$((PORT + 100))" --bind 127.0.0.1 --save '' --appendonly no \
                >"$OUT/redis.log" 2>&1 &
            EXTRA_PIDS+=($!)
            for _ in $(seq 100); do
                (exec 3<>"/dev/tcp/127.0.0.1/$((PORT + 100))") 2>/dev/null && break
                sleep 0.1
            done
            RUST_LOG=warn "$CARGO_TARGET_DIR/release/chat-server" --addr "127.0.0.1:$((PORT + 1))" \
                "${ours_args[@]}" --broker "redis://127.0.0.1:$((PORT + 100))" >"$OUT/server-b.log" 2>&1 &
            EXTRA_PIDS+=($!)
            RUST_LOG=warn "$CARGO_TARGET_DIR/release/chat-server" --addr "127.0.0.1:$PORT" \
                "${ours_args[@]}" --broker "redis://127.0.0.1:$((PORT + 100))" >"$OUT/server.log" 2>&1 & ;;
    esac
    PID=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$1 did not start" >&2
    exit 1
}

# CPU seconds (user + system) of the processes given.
cpu_of() {
    local hz total=0 pid
    hz=$(getconf CLK_TCK)
    for pid in "$@"; do
        total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
    done
    python3 -c "print($total / $hz)"
}

for round in $(seq "$rounds"); do
    for s in "${servers[@]}"; do
        if [ "$s" = go ] && [ "$scenario" = 4 ]; then continue; fi
        peer=chat
        [ "$s" = go ] && peer=go-seed
        start "$s"
        sleep 0.5
        urls=(--url "ws://127.0.0.1:$PORT/ws")
        [ "$s" = cluster ] && urls+=(--url "ws://127.0.0.1:$((PORT + 1))/ws")
        cpu_before=$(cpu_of "$PID" "${EXTRA_PIDS[@]}")
        line=$(timeout 900 "$LOAD" "${urls[@]}" --server-pid "$PID" \
            --peer "$peer" --label "$scenario/$s/$round" "${load_args[@]}" | tail -n 1)
        cpu_after=$(cpu_of "$PID" "${EXTRA_PIDS[@]}")
        # Every process of the server under test (both nodes and Redis for a cluster).
        line=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["all_cpu_s"]=float(sys.argv[3])-float(sys.argv[2]); print(json.dumps(r))' "$line" "$cpu_before" "$cpu_after")
        stop
        echo "$line" >>"$OUT/compare.jsonl"
        python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
def cpu(a, b):
    return None if not (r.get(a) and r.get(b)) else r[b]["cpu_s"] - r[a]["cpu_s"]
if r["mode"] == "connect":
    connect = cpu("server_idle", "server_held")
    run = cpu("server_idle", "server_end")
    print(f'{r["label"]:>12}: {r["connected"]}/{r["clients"]} connected in {r["connect_s"]:.2f} s '
          f'({r["connected"] / max(r["connect_s"], 1e-9):,.0f}/s), all counted at {r["joined_s"]:.2f} s, '
          f'{r["stayed"]} held, {r["disconnected"] + r["evicted"]} dropped; server CPU '
          f'{connect:.2f} s to connect, {run:.2f} s in all; '
          f'{r["rss_per_connection_kb"]:.2f} KiB RSS per connection')
else:
    lat = r["latency_ms"] or {}
    print(f'{r["label"]:>12}: {r["delivered"]:,} deliveries ({r["deliveries_per_s"]:,.0f}/s), '
          f'p50 {lat.get("p50", 0):.2f} p90 {lat.get("p90", 0):.2f} p99 {lat.get("p99", 0):.2f} '
          f'max {lat.get("max", 0):.1f} ms, lost {r["lost"]}, evicted {r["evicted"]}; server '
          f'{r["all_cpu_s"]:.2f} CPU-s, {r["all_cpu_s"] * 1e6 / max(r["delivered"], 1):.2f} per M '
          f'deliveries, peak RSS {r["server_end"]["hwm_kb"] / 1024:.1f} MiB')
PY
    done
done
echo "runs: $OUT/compare.jsonl"
