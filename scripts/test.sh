#!/usr/bin/env bash
# The whole test suite: bootstrap, lint, type check, Rust unit tests, then unit and
# integration tests (real worker threads, real sockets) with node's test runner.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1

fail=0
step() { printf '\n=== %s\n' "$*"; }

step "lint (eslint)"
npx eslint src test bench || fail=1

step "import cycles (madge; type-only imports count)"
npx madge --circular --extensions ts --ts-config tsconfig.json src || fail=1

step "type check (tsc --noEmit)"
npx tsc -p tsconfig.json --noEmit || fail=1

step "native (cargo test: every Rust test; they live in core, see docs/native.md)"
(cd native && cargo test --quiet) || fail=1

step "Kafka broker jars (Maven Central, cached outside the repo)"
bash scripts/kafka.sh fetch || fail=1

step "unit and integration tests (node --test)"
# Integration tests boot the real Sluice process, real upstream sockets and a real Kafka
# broker of their own (127.0.0.1:29092, see test/kafka-helpers.ts); files run one at a time.
mapfile -t files < <(ls dist/test/unit/*.test.js dist/test/integration/*.test.js dist/test/regress/*.test.js 2>/dev/null)
node --test --test-concurrency=1 "${files[@]}" || fail=1

# The test broker is ours: stop it (data stays in the cache dir for the next run).
SLUICE_KAFKA_PORT=29092 SLUICE_KAFKA_CONTROLLER_PORT=29093 SLUICE_KAFKA_DATA_DIR="${SLUICE_CACHE_DIR:-$HOME/.cache/sluice}/kafka-data-it" \
  bash scripts/kafka.sh stop >/dev/null 2>&1 || true

if [ "$fail" -ne 0 ]; then
  printf '\nSOME CHECKS FAILED\n'
  exit 1
fi
printf '\nall checks passed\n'
