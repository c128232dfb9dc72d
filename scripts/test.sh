#!/usr/bin/env bash
# The test command: formatting, the deployment files (Kubernetes manifests
# and docker-compose.yml, checked offline), lints, then every test (the domain's unit and
# property tests, the store conformance suite on SQLite and PostgreSQL, the
# real binary, the web server over HTTP, the browser tests in headless
# Chromium via scripts/e2e.sh, schemathesis against the API's OpenAPI
# document via scripts/schemathesis.sh) against a throwaway PostgreSQL this script
# starts, and removes when it exits. Idempotent; needs only the Rust
# toolchain (it installs PostgreSQL, Chromium and Node.js from Debian's
# packages, cargo-nextest, the e2e npm packages, schemathesis,
# kubernetes-validate, docker-compose, nginx and wrk (Debian), Node-RED
# (npm) and Langflow (uv) into .cache/runtimes/ if missing), and starts the
# real runtimes the connector tests drive.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/runtimes.sh
source scripts/lib/langflow.sh
source scripts/lib/kubernetes.sh
source scripts/lib/loadbalancer.sh

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest..." >&2
  cargo install cargo-nextest --locked
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

start_throwaway_postgres
# A real Node-RED for the runtime tests (exports STAGEHAND_NODE_RED_DIR;
# each test starts its own), and two real Langflow servers the Langflow
# tests share (they take a minute to boot, so they boot while cargo builds;
# stopped by PID when this script exits).
install_node_red
# nginx and wrk for the three-replica tests (crates/cli/tests/replicas.rs).
install_load_balancer_tools
install_langflow
start_langflow DEV
start_langflow PROD

cargo fmt --all -- --check
check_deploy_manifests
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-run
wait_langflow DEV
wait_langflow PROD
cargo nextest run --workspace --locked --no-fail-fast "$@"
# Free their ~2 GB before the browser and API-schema tests.
stop_langflows
scripts/e2e.sh
scripts/schemathesis.sh
