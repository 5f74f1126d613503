#!/usr/bin/env bash
# The bench suite: Sluice against the upstream itself, nginx, HAProxy and a plain Node proxy,
# measured side by side in one run. See bench/README.md.
#
#   scripts/bench.sh [--quick] [--scenario NAME] [--contenders a,b,c] [--rounds N] [--duration S]
#                    [other options: scripts/bench.sh --help]
#
# Bootstraps what it needs (Debian packages nginx-light, haproxy, wrk; then scripts/bootstrap.sh:
# the build dependencies, node_modules, the TypeScript build), then runs dist/bench/runner.js
# with the same arguments. The report lands in bench/results/YYYY-MM-DD-<name>.md (+ .svg),
# raw per-run JSON in bench/results/raw/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
command_line="scripts/bench.sh${*:+ $*}"

log() { printf '[bench.sh] %s\n' "$*" >&2; }

# --help needs only the built runner; --from-raw re-renders a report and measures nothing.
skip_bootstrap=0
case " $* " in
  *" --help "* | *" -h "* | *" --from-raw "*) [ -f dist/bench/runner.js ] && skip_bootstrap=1 ;;
esac

if [ "$skip_bootstrap" = 0 ]; then
  # System packages, only when something is missing.
  missing=()
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
  [ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
  if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null 2>&1 || { log "need root (or sudo) to install: ${missing[*]}"; exit 1; }
      sudo="sudo"
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}"; then
      $sudo apt-get update
      $sudo apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    # Debian starts the packaged services on install: the bench runs its own instances, so
    # stop the system ones (they would hold port 80 and take CPU).
    for svc in nginx haproxy; do
      if [[ " ${missing[*]} " == *" $svc"* ]]; then
        $sudo service "$svc" stop >/dev/null 2>&1 || true
      fi
    done
  fi

  # Debian build dependencies, npm ci (the addon and the Kafka client build from source) and
  # the TypeScript build: the same bootstrap as run.sh and test.sh. A Sluice build error must
  # not stop the baselines from being measured: tsc still emits, the Sluice rows then fail
  # (and say why) while the others run.
  if ! bash scripts/bootstrap.sh; then
    [ -f dist/bench/runner.js ] || { log "bootstrap failed and there is no runner to run"; exit 1; }
    log "warning: the bootstrap reported errors; continuing with what was built"
  fi
fi

# 1,000 connections through a proxy need ~2,100 descriptors in one process: raise the soft
# limit as far as the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

export BENCH_COMMAND="$command_line"
# Kafka scenarios need the local broker (the full suite includes them; --quick does not).
args=" $* "
case "$args" in
  *kafka*) need_kafka=1 ;;
  *" --scenario "* | *" --quick "* | *" --from-raw "* | *" --help "*) need_kafka=0 ;;
  *) need_kafka=1 ;;
esac
if [ "$need_kafka" = 1 ] && [ -z "${SLUICE_KAFKA_BROKERS:-}" ]; then
  bash scripts/kafka.sh start
  # The runner pins the broker off the proxy's CPU for the run (bench/README.md, "Method").
  BENCH_KAFKA_PID="$(bash scripts/kafka.sh status | sed -n 's/^kafka: running (pid \([0-9]*\).*/\1/p')"
  export BENCH_KAFKA_PID
fi

exec node dist/bench/runner.js "$@"
