#!/usr/bin/env bash
# Autobahn|Testsuite cases 1-10 (kosoku, from PyPI) against the echo example, which serves the
# chat server's real connection layer. Fails on any FAILED case; prints the verdict counts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.ci/out/autobahn"
PORT="${AUTOBAHN_PORT:-9001}"
cd "$ROOT"

python3 -m pip install --quiet --disable-pip-version-check kosoku
cargo build --release -p chat-server --example echo

rm -rf "$OUT" && mkdir -p "$OUT"
target/release/examples/echo --addr "127.0.0.1:$PORT" > "$OUT/echo.log" 2>&1 &
ECHO_PID=$!
trap 'kill $ECHO_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

status=0
timeout 900 python3 -c "from kosoku._cli import main; main()" "127.0.0.1:$PORT" -p 2 -o "$OUT/reports" \
  -i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*' -i '9.*' -i '10.*' \
  > "$OUT/kosoku.log" 2>&1 || status=$?
tail -n 3 "$OUT/kosoku.log"

python3 - "$OUT/reports" <<'PY'
import collections, glob, json, sys
counts = collections.Counter()
failed = []
for path in glob.glob(sys.argv[1] + "/*.json"):
    case = json.load(open(path))
    if "behavior" not in case:
        continue
    for verdict in {case["behavior"], case.get("behaviorClose", "OK")}:
        if verdict == "FAILED":
            failed.append(case["id"])
    counts[case["behavior"]] += 1
print("autobahn verdicts:", dict(sorted(counts.items())), "failed cases:", sorted(set(failed)) or "none")
sys.exit(1 if failed or not counts else 0)
PY
exit "$status"
