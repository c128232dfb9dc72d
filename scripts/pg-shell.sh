#!/usr/bin/env bash
# Starts a throwaway PostgreSQL and runs a command (default: a shell) with
# DATABASE_URL pointing at it; the cluster is removed when the command ends.
#   scripts/pg-shell.sh cargo nextest run -p stagehand-store
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
start_throwaway_postgres ${PG_DURABLE:+--durable}
"${@:-bash}"
