#!/usr/bin/env bash
# Promotion-apply benchmark on SQLite and on a throwaway PostgreSQL started
# with durable settings (fsync and synchronous commit on, as in production).
#   scripts/bench.sh            # both backends
#   scripts/bench.sh sqlite     # one backend
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
start_throwaway_postgres --durable
cargo bench -p stagehand-store --bench promotion --locked -- "$@"
