#!/usr/bin/env bash
# Unit tests of the web client's pure modules (static/protocol.js, session.js, roster.js,
# config.js) with Node's own test runner: no browser, no server, no npm packages.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../apt.sh
source "$ROOT/.ci/apt.sh"
need_node

cd "$ROOT"
node --version
node --import ./.ci/client/static-modules.mjs --test --test-reporter=spec .ci/client/*.test.mjs
