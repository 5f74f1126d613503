#!/usr/bin/env bash
# Brings a fresh machine to the point where Sluice builds and runs: Debian packages (the
# Kafka client's build dependencies, Java for the broker), npm packages (npm ci also builds
# the Rust addon and the Kafka client from source), and the TypeScript build.
# Idempotent and quick when everything is already there. Sourced or run by run.sh/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

DEB_PACKAGES=(libssl-dev libsasl2-dev libzstd-dev liblz4-dev zlib1g-dev libcurl4-openssl-dev
  g++ make python3 pkg-config openjdk-17-jre-headless maven openssl)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || { [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"; }
command -v cargo >/dev/null 2>&1 || { log "cargo (Rust) is required to build native/; install rustup's stable toolchain"; exit 1; }

# The Kafka client has no reachable prebuilt binary here: build librdkafka from source,
# linked against Debian's OpenSSL, SASL, zstd and lz4.
export CKJS_LINKING=dynamic
# node-gyp must use the installed Node headers: their download site is not reachable here.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then
  export npm_config_nodedir=/usr
fi

stamp=node_modules/.sluice-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  log "npm ci (builds the native addon and the Kafka client; a few minutes on a fresh machine)"
  npm ci --no-audit --no-fund
  touch "$stamp"
fi

log "building TypeScript"
npx tsc -p tsconfig.json
