#!/usr/bin/env bash
# The browser tests: the real `stagehand` binary driven through real headless
# Chromium by playwright-core (e2e/ui.test.mjs). Installs what is missing
# (Debian's chromium, Node.js, the npm packages of e2e/) and is idempotent.
# With DATABASE_URL (scripts/test.sh sets it) the server runs on a fresh
# PostgreSQL database; without, on SQLite. Screenshots go to
# target/e2e-artifacts/, outside git.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing $*: run 'sudo apt-get install -y $*'" >&2
    return 1
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

command -v chromium >/dev/null 2>&1 || apt_install chromium
command -v node >/dev/null 2>&1 || apt_install nodejs npm
# npm ci again whenever a pinned devDependency is missing or at another
# version (a new one such as axe-core, or a bump), not only on a first run.
if ! (cd e2e && node -e '
  const pinned = require("./package.json").devDependencies;
  for (const [name, version] of Object.entries(pinned)) {
    if (require(`./node_modules/${name}/package.json`).version !== version) process.exit(1);
  }' 2>/dev/null); then
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --locked --bin stagehand
export STAGEHAND_BIN="$PWD/target/debug/stagehand"
export E2E_ARTIFACTS="$PWD/target/e2e-artifacts"
rm -rf "$E2E_ARTIFACTS"

if [ -n "${DATABASE_URL:-}" ]; then
  STAGEHAND_E2E_DATABASE_URL=$(fresh_database "e2e_$$_$RANDOM")
  export STAGEHAND_E2E_DATABASE_URL
fi

cd e2e
node --test --test-concurrency=1 ui.test.mjs
