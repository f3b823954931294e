#!/usr/bin/env bash
# Install the pinned real clients (OpenCode, Codex CLI, the openai Python SDK) for the end-to-end suite
# (crates/bridge-e2e).
#
# usage: scripts/install-clients.sh [DIR]
#   DIR defaults to $CODEX_BRIDGE_CLIENTS_DIR, else target/clients in the repository (git-ignored).
# Idempotent: skips npm when `opencode --version` and `codex --version` already print the pinned versions.
# Prints both versions, and the clients' .bin directory on the last line (use it as CODEX_BRIDGE_CLIENTS_BIN).
# The Python SDK goes into DIR/python (pip --target, no venv needed; tests put it on PYTHONPATH).
# Needs node >= 20 and npm, python3 with pip, and the npm and PyPI registries (run it before entering a
# loopback-only namespace).
set -euo pipefail

OPENCODE_VERSION="1.18.33"
CODEX_VERSION="0.169.0"
OPENAI_PYTHON_VERSION="3.51.0"

repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-${CODEX_BRIDGE_CLIENTS_DIR:-$repo/target/clients}}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
bin="$dir/node_modules/.bin"

installed() {
  [ -x "$bin/opencode" ] && [ -x "$bin/codex" ] || return 1
  [ "$("$bin/opencode" --version 2>/dev/null)" = "$OPENCODE_VERSION" ] || return 1
  [ "$("$bin/codex" --version 2>/dev/null)" = "codex-cli $CODEX_VERSION" ] || return 1
}

if installed; then
  echo "clients already installed in $dir" >&2
else
  command -v npm >/dev/null 2>&1 || { echo "install-clients: npm not found (needs node >= 20 and npm)" >&2; exit 1; }
  echo "installing opencode-ai@$OPENCODE_VERSION and @openai/codex@$CODEX_VERSION into $dir" >&2
  start=$(date +%s)
  # The directory gets its own package.json, so npm treats it as the project root even inside the repo.
  [ -f "$dir/package.json" ] || (cd "$dir" && npm init -y >/dev/null)
  (cd "$dir" && npm install --no-audit --no-fund --save-exact --loglevel=error \
    "opencode-ai@$OPENCODE_VERSION" "@openai/codex@$CODEX_VERSION" >&2)
  echo "npm install took $(( $(date +%s) - start )) s" >&2
  if ! installed; then
    echo "install-clients: wrong or missing client versions after npm install in $dir" >&2
    "$bin/opencode" --version >&2 || true
    "$bin/codex" --version >&2 || true
    exit 1
  fi
fi

python_installed() {
  [ -f "$dir/python/openai/__init__.py" ] || return 1
  [ "$(PYTHONPATH="$dir/python" python3 -c 'import openai; print(openai.__version__)' 2>/dev/null)" = "$OPENAI_PYTHON_VERSION" ]
}
if python_installed; then
  echo "openai Python SDK already installed in $dir/python" >&2
else
  echo "installing openai==$OPENAI_PYTHON_VERSION (Python SDK) into $dir/python" >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --upgrade \
    --target "$dir/python" "openai==$OPENAI_PYTHON_VERSION" >&2
  python_installed || { echo "install-clients: openai $OPENAI_PYTHON_VERSION missing after pip install" >&2; exit 1; }
fi

echo "opencode $("$bin/opencode" --version)"
echo "openai-python $(PYTHONPATH="$dir/python" python3 -c 'import openai; print(openai.__version__)')"
echo "$("$bin/codex" --version)"
echo "$bin"
