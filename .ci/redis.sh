#!/usr/bin/env bash
# CI stage: the Redis broker's tests (server/src/broker/redis/, server/tests/cluster.rs) against a
# real redis-server.
# Each test spawns its own throwaway server on a free 127.0.0.1 port (no persistence), so this
# stage only needs the binary. The tests are #[ignore]d in a plain `cargo test`; this runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/apt.sh

if ! command -v redis-server >/dev/null 2>&1; then
  echo "ci: installing redis-server"
  apt_install redis-server
  # Debian's package starts a system service on 6379; the tests never use it.
fi
echo "ci: redis stage with $(redis-server --version)"

echo "ci: cargo test -p chat-server --lib -- --ignored broker::redis"
cargo test -p chat-server --lib -- --ignored broker::redis
# Nodes (chat_server::run in one process) sharing a real Redis.
echo "ci: cargo test -p chat-server --test cluster -- --ignored"
cargo test -p chat-server --test cluster -- --ignored
