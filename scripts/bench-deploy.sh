#!/usr/bin/env bash
# Deploy benchmark: play dev → prod between two real Node-RED processes
# through Stagehand (release build) on a throwaway PostgreSQL started with
# durable settings (fsync and synchronous commit on, as in production).
#   scripts/bench-deploy.sh            # typical (50 flows) and large (2,000 flows, ~20 MB)
#   scripts/bench-deploy.sh typical    # one size
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/runtimes.sh
install_node_red
start_throwaway_postgres --durable
cargo bench -p stagehand-web --bench deploy --locked -- "$@"
