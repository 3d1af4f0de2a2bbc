#!/usr/bin/env bash
# Load benchmarks of chat-server with chat-load (see BENCHMARKS.md, "Load"): builds both release
# binaries, starts a server on 127.0.0.1 for each group of scenarios, runs every scenario with a
# time bound, stops the server. Each run prints a summary and one JSON line; the JSON lines are
# also collected in $OUT/results.jsonl. Takes about five minutes.
#
#   sim/bench.sh                 # every scenario
#   sim/bench.sh 1 3c 4          # only these (1 1u 2 3 3c 3q 3cq 3w 3cw 4 4b 5)
#
# Environment: CARGO_TARGET_DIR (default /work/target-load), PORT (default 18480), OUT (default
# /tmp/chat-load-bench).
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-load}"
PORT="${PORT:-18480}"
OUT="${OUT:-/tmp/chat-load-bench}"
URL="ws://127.0.0.1:$PORT/ws"
SERVER="$CARGO_TARGET_DIR/release/chat-server"
LOAD="$CARGO_TARGET_DIR/release/chat-load"
mkdir -p "$OUT"
: >"$OUT/results.jsonl"

cargo build --release -p chat-server -p chat-sim --bin chat-server --bin chat-load >&2

# The server and the generator each hold one end of every connection: 19,000 connections need
# about 19,100 open files in each process (the hard limit here is 20,000).
ulimit -n "$(ulimit -Hn)"

SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT

# start_server [extra flags...]: a fresh server with the rate limit off and room for 20,000.
start_server() {
    stop_server
    rm -rf "$OUT/data"
    RUST_LOG=warn ${SERVER_CPUS:+taskset -c "$SERVER_CPUS"} "$SERVER" --addr "127.0.0.1:$PORT" --rate-limit-per-second 0 --data-dir "$OUT/data" \
        --max-connections 20000 "$@" >"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server did not start" >&2
    exit 1
}

# run NAME [chat-load flags...]
run() {
    local name=$1
    shift
    echo "== scenario $name: chat-load $* (load average $(cut -d' ' -f1-3 /proc/loadavg))${LOAD_CPUS:+ (server on CPU $SERVER_CPUS, chat-load on CPU $LOAD_CPUS)}"
    timeout 120 ${LOAD_CPUS:+taskset -c "$LOAD_CPUS"} "$LOAD" --url "$URL" --server-pid "$SERVER_PID" --label "$name" \
        --room-prefix "s${name}-" "$@" | tee "$OUT/$name.txt"
    tail -n 1 "$OUT/$name.txt" >>"$OUT/results.jsonl"
}

wanted() {
    [[ ${#SELECTED[@]} -eq 0 ]] && return 0
    local s
    for s in "${SELECTED[@]}"; do [[ "$s" == "$1" ]] && return 0; done
    return 1
}
SELECTED=("$@")

# Scenario 1 is about latency, and on loopback the generator's reading threads are woken by the
# server's own sends: Linux then queues them on the server's CPU (a "sync" wake-up), where they
# wait for the server to finish the whole fan-out while the other CPU idles (BENCHMARKS.md,
# "Scenario 1 and the scheduler"). Real clients are on other machines, so the recorded run puts
# the server on CPU 0 and the generator on the others; 1u is the same run left to the scheduler.
SCENARIO_1=(--clients 100 --senders 10 --rate 10 --duration 10)
if wanted 1 && [[ $(nproc) -ge 2 ]]; then
    SERVER_CPUS=0 start_server
    others=1
    [[ $(nproc) -gt 2 ]] && others="1-$(($(nproc) - 1))"
    LOAD_CPUS="$others" SERVER_CPUS=0 run 1 "${SCENARIO_1[@]}"
fi
if wanted 1u; then
    start_server
    run 1u "${SCENARIO_1[@]}"
fi

# Server defaults (queue 256 frames, high water 128, one runtime thread), rate limit off.
if wanted 3 || wanted 3c; then
    start_server
    # Open loop: what the senders' sockets hold when sending stops takes seconds to deliver.
    wanted 3 && run 3 --clients 50 --senders 5 --rate 0 --duration 5 --drain 30
    wanted 3c && run 3c --clients 50 --senders 5 --rate 0 --window 32 --duration 5
fi

# 2 and 5 each on a fresh server, so their peak RSS (VmHWM) compares the two and nothing else.
if wanted 2; then
    start_server
    run 2 --clients 1000 --senders 2 --rate 20 --duration 10
fi
if wanted 5; then
    start_server
    run 5 --clients 1000 --senders 2 --rate 20 --slow 100 --duration 10
fi

# The same fan-out scenarios with a deeper outbound queue (4,096 frames per client).
if wanted 3q || wanted 3cq; then
    start_server --queue-frames 4096
    wanted 3q && run 3q --clients 50 --senders 5 --rate 0 --duration 5 --drain 30
    wanted 3cq && run 3cq --clients 50 --senders 5 --rate 0 --window 32 --duration 5
fi

# The same fan-out scenarios with two runtime threads instead of one.
if wanted 3w || wanted 3cw; then
    start_server --worker-threads 2
    wanted 3w && run 3w --clients 50 --senders 5 --rate 0 --duration 5 --drain 30
    wanted 3cw && run 3cw --clients 50 --senders 5 --rate 0 --window 32 --duration 5
fi

# Idle connections, each on a fresh server so the RSS baseline is a server that never had any.
# Ten clients per room keep the join notices (quadratic in a room's size) negligible.
if wanted 4; then
    start_server
    run 4 --clients 10000 --rooms 1000 --connect-only --duration 5
fi
if wanted 4b; then
    start_server
    run 4b --clients 19000 --rooms 1900 --connect-only --duration 5
fi
stop_server
echo "results: $OUT/results.jsonl"
