#!/usr/bin/env bash
# The restart benchmark (BENCHMARKS.md, "Restart with a full store"): fills a data directory with
# ROOMS rooms of PER_ROOM messages (once; kept in DIR), then starts the release binary on it
# RUNS times, each time measuring from the spawn to the first `200` of /readyz (serving), and
# stops it with SIGTERM. BINS (space-separated paths) compares builds: each run starts every one
# of them in turn on the same store, so a before/after is alternating, in one sitting.
# COLD=1 evicts the file from the page cache before each start (posix_fadvise, no root needed),
# as after a reboot; STOP=KILL stops each run with SIGKILL, so every later start is a crash
# recovery (the first start after the fill is a clean one). FLAGS adds flags to every start
# (for example FLAGS=--quick-repair). QUIET=S waits S seconds once it serves before stopping it
# (with STOP=KILL: a crash after a quiet spell, which --quiet-checkpoint covers). RESUME=N has
# N clients come back once it serves, each into a room of its own (room-0 .. room-N-1, rooms of
# the store that sleep until joined), as a whole community reconnecting after a deploy, and
# reports how long until every one of them was welcomed (chat-load's connect time).
#
#   ROOMS=10000 PER_ROOM=10000 DIR=/tmp/chat-restart RUNS=3 sim/restart_bench.sh
#   BINS="/tmp/chat-server-before /work/target-load/release/chat-server" sim/restart_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-load}"
ROOMS="${ROOMS:-10000}"
PER_ROOM="${PER_ROOM:-10000}"
DIR="${DIR:-/tmp/chat-restart-$ROOMS-$PER_ROOM}"
RUNS="${RUNS:-3}"
PORT="${PORT:-18490}"
BINS="${BINS:-$CARGO_TARGET_DIR/release/chat-server}"
COLD="${COLD:-0}"
STOP="${STOP:-TERM}"
FLAGS="${FLAGS:-}"
QUIET="${QUIET:-0}"
RESUME="${RESUME:-0}"
cargo build --release -p chat-server -p chat-sim --bin chat-server --bin chat-load --example fill_store >&2
ulimit -n "$(ulimit -Hn)"
if [ ! -f "$DIR/chat.redb" ]; then
    "$CARGO_TARGET_DIR/release/examples/fill_store" --data-dir "$DIR" --rooms "$ROOMS" --per-room "$PER_ROOM"
fi
echo "store: $(du -sh "$DIR/chat.redb" | cut -f1) for $ROOMS rooms x $PER_ROOM messages"
for run in $(seq "$RUNS"); do
    for bin in $BINS; do
        if [ "$COLD" = 1 ]; then
            python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$DIR/chat.redb"
        fi
        start=$(date +%s.%N)
        RUST_LOG=info "$bin" --addr "127.0.0.1:$PORT" --data-dir "$DIR" \
            --retention-messages "$PER_ROOM" --max-connections 20000 $FLAGS >/tmp/chat-restart-server.log 2>&1 &
        pid=$!
        for _ in $(seq 6000); do
            if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)" = 200 ]; then break; fi
            sleep 0.01
        done
        end=$(date +%s.%N)
        opened=$(grep -o 'opened the message store.*' /tmp/chat-restart-server.log | head -1)
        printf 'run %s, %s: serving after %.2f s (%s)\n' "$run" "$bin" "$(echo "$end - $start" | bc)" "$opened"
        if [ "$RESUME" -gt 0 ]; then
            "$CARGO_TARGET_DIR/release/chat-load" --url "ws://127.0.0.1:$PORT/ws" --clients "$RESUME" \
                --rooms "$RESUME" --room-prefix room- --connect-only --duration 1 >/tmp/chat-restart-load.log 2>&1 || true
            summary=$(tail -1 /tmp/chat-restart-load.log | python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["connected"], "connected, all welcomed after", r["connect_s"], "s")' 2>/dev/null || echo "no summary: see /tmp/chat-restart-load.log")
            printf '  %s clients back, one per room: %s\n' "$RESUME" "$summary"
        fi
        sleep "$QUIET"
        kill -"$STOP" "$pid"; wait "$pid" || true
    done
done
