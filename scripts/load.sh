#!/usr/bin/env bash
# Load benchmark of the web UI (crates/web/benches/load.rs): the release
# binary against a throwaway PostgreSQL with durable settings, loaded by wrk
# (with nginx, installed from Debian's packages if missing) over loopback.
#   scripts/load.sh            # everything
#   scripts/load.sh pipeline   # or: promote, history, metrics, json
#   scripts/load.sh replicas   # 3 replicas vs 1 behind nginx, rolling restart
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/loadbalancer.sh
install_load_balancer_tools
start_throwaway_postgres --durable
cargo build --release --locked --bin stagehand
export STAGEHAND_BIN="$PWD/target/release/stagehand"
cargo bench -p stagehand-web --bench load --locked -- "$@"
