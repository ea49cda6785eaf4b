#!/usr/bin/env bash
# Runs the HTTP cache conformance suite against Katana with cache-tests.toml
# and fails on any regression against the accepted result in
# scripts/cache-tests-accepted.json. Needs node and npm.
#
#   scripts/cache-tests.sh              compare with the accepted result
#   scripts/cache-tests.sh --accept     store this run as the accepted result
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
suite=${CACHE_TESTS_RUN:-$repo/../shared/tools/cache-tests/run.sh}
accepted=$repo/scripts/cache-tests-accepted.json
port=${KATANA_PORT:-8002}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

(cd "$repo" && CGO_ENABLED=0 go build -tags nodynamic -o "$work/katana" .)
cd "$work"
./katana --config "$repo/cache-tests.toml" --listen "127.0.0.1:$port" 2>katana.log &
pid=$!
# Wait for the port without a request: one now would reach the suite's
# origin before it runs, and the failure would back the node off.
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

if [[ ${1:-} == --accept ]]; then
  "$suite" "http://127.0.0.1:$port" "$accepted" --list fail
  exit 0
fi
# The suite pauses between requests to let entries go stale, so a loaded
# machine can make a timing test miss once; a second run must then pass.
for try in 1 2; do
  if "$suite" "http://127.0.0.1:$port" "$work/results.json" --baseline "$accepted"; then
    exit 0
  fi
  echo "cache-tests: run $try regressed against the accepted result" >&2
done
exit 1
