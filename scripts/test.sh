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

step "type check (tsc --noEmit)"
npx tsc -p tsconfig.json --noEmit || fail=1

step "native core (cargo test)"
(cd native && cargo test --quiet -p sluice-core) || fail=1

step "unit and integration tests (node --test)"
mapfile -t files < <(ls dist/test/unit/*.test.js dist/test/integration/*.test.js dist/test/regress/*.test.js 2>/dev/null)
node --test --test-concurrency=1 "${files[@]}" || fail=1

if [ "$fail" -ne 0 ]; then
  printf '\nSOME CHECKS FAILED\n'
  exit 1
fi
printf '\nall checks passed\n'
