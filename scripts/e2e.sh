#!/usr/bin/env bash
# Real-client end-to-end suite (crates/bridge-e2e): install the pinned clients, build the tests, then run them
# inside a loopback-only network namespace, so no client can reach the internet.
#
# Needs root (for `unshare -n`), node >= 20 and npm, python3 with pip (the openai SDK), cargo-nextest, and
# the package registries for the first two steps (and apt when `ip` from iproute2 is missing). Exits non-zero on any failure. The real-client tests
# are required here (CODEX_BRIDGE_REQUIRE_CLIENTS=1 unless set), so a missing client or namespace fails.
# Env: CODEX_BRIDGE_CLIENTS_DIR (where to install the clients; default target/clients). The bridge binary the
# tests start is built here and passed as CODEX_BRIDGE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

step "install clients"
CODEX_BRIDGE_CLIENTS_BIN="$(scripts/install-clients.sh | tail -n 1)"
export CODEX_BRIDGE_CLIENTS_BIN
export CODEX_BRIDGE_REQUIRE_CLIENTS="${CODEX_BRIDGE_REQUIRE_CLIENTS:-1}"
echo "CODEX_BRIDGE_CLIENTS_BIN=$CODEX_BRIDGE_CLIENTS_BIN"

step "build"
cargo build -p codex-bridge
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
CODEX_BRIDGE_BIN="$target_dir/debug/codex-bridge"
export CODEX_BRIDGE_BIN
cargo nextest run -p bridge-e2e --no-run

step "run in a loopback-only network namespace"
if ! command -v ip >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi
CODEX_BRIDGE_CLIENTS_BIN="$CODEX_BRIDGE_CLIENTS_BIN" CODEX_BRIDGE_REQUIRE_CLIENTS="$CODEX_BRIDGE_REQUIRE_CLIENTS" \
  CODEX_BRIDGE_BIN="$CODEX_BRIDGE_BIN" unshare -n bash -c 'ip link set lo up && exec cargo nextest run -p bridge-e2e --offline'

step "done"
