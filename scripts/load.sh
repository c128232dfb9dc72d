#!/usr/bin/env bash
# Load benchmark of the web UI (crates/web/benches/load.rs): the release
# binary against a throwaway PostgreSQL with durable settings, loaded by wrk
# (installed from Debian's packages if missing) over loopback.
#   scripts/load.sh            # everything
#   scripts/load.sh pipeline   # or: history
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
fi
start_throwaway_postgres --durable
cargo build --release --locked --bin stagehand
export STAGEHAND_BIN="$PWD/target/release/stagehand"
cargo bench -p stagehand-web --bench load --locked -- "$@"
