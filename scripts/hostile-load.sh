#!/usr/bin/env bash
# hostile-load.sh runs the hostile load test (hostile_load_test.go): the real
# binary on 127.0.0.1 takes 10,000 mixed requests (valid, malformed, bombs,
# missing) while 64 slow clients dribble headers, and prints the figures.
# Loopback only; bounded to 4 minutes by the test itself.
set -euo pipefail
cd "$(dirname "$0")/.."
KATANA_LOAD=1 CGO_ENABLED=0 go test -tags nodynamic -count=1 -run '^TestHostileLoad$' -v . \
  | grep -E '^\s+hostile_load_test|^(--- |ok|FAIL|PASS)'
