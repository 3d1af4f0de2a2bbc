#!/usr/bin/env bash
# End-to-end test of the browser client in headless Chromium against the real server.
# Idempotent and non-interactive: installs what is missing (Debian), builds the server, runs the test.
# Screenshots and the server log land in .ci/out/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../apt.sh
source "$ROOT/.ci/apt.sh"

CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
export CHROMIUM_PATH
if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "e2e: installing chromium"
  apt_install chromium
fi
need_node

cd "$HERE"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

cd "$ROOT"
if [ -z "${CHAT_SERVER_BIN:-}" ]; then
  echo "e2e: building the server (release)"
  cargo build --release -p chat-server
fi

mkdir -p "$ROOT/.ci/out"
cd "$HERE"
echo "e2e: running the browser test"
node --test --test-concurrency=1 --test-reporter=spec e2e.mjs
