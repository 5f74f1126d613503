#!/usr/bin/env bash
# Sluice's main job: bootstrap, then run the proxy with the example configuration and the
# embedded demo upstreams. Pass another config as the first argument (or SLUICE_CONFIG);
# every SLUICE_* variable overrides its option. Ctrl-C (SIGINT) or SIGTERM drains and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
config="${1:-${SLUICE_CONFIG:-examples/sluice.yaml}}"
# The local Kafka broker, unless SLUICE_KAFKA_BROKERS points elsewhere or nothing uses Kafka.
if [ -z "${SLUICE_KAFKA_BROKERS:-}" ] && node dist/src/main/index.js --config "$config" --uses-kafka; then
  bash scripts/kafka.sh start
fi
demo="--demo"
[ "${SLUICE_DEMO:-1}" = "0" ] && demo=""
exec node dist/src/main/index.js --config "$config" $demo
