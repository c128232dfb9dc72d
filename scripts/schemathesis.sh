#!/usr/bin/env bash
# Property-based tests of the JSON API against its OpenAPI document: starts
# the real server (on a fresh PostgreSQL database when DATABASE_URL is set,
# as scripts/test.sh does; else SQLite), creates a team and an admin token
# with the CLI, and runs schemathesis (PyPI, installed into a venv under
# target/ if missing): no 5xx, and every status code, content type and body
# conforms to the document. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/st" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5"
fi

cargo build --locked --bin stagehand
bin="$PWD/target/debug/stagehand"
data=$(mktemp -d /tmp/stagehand-st.XXXXXX)
export STAGEHAND_DATA_DIR="$data" RUST_LOG=warn
if [ -n "${DATABASE_URL:-}" ]; then
  DATABASE_URL=$(fresh_database "st_$$_$RANDOM")
  export DATABASE_URL
fi
"$bin" team create api-check >/dev/null
token=$("$bin" token create --team api-check --role admin --name schemathesis 2>/dev/null)
port=$(free_port)
"$bin" serve --bind "127.0.0.1:$port" &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"; }
trap 'cleanup; stop_throwaway_postgres' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

# Real resources for the path parameters, so most requests reach a handler
# with data instead of a 404.
api() { # METHOD PATH [JSON]
  python3 - "$1" "http://127.0.0.1:$port/api/v1$2" "${3:-}" "$token" <<'PY'
import json, sys, urllib.request
method, url, body, token = sys.argv[1:5]
req = urllib.request.Request(url, method=method, data=body.encode() if body else None,
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
print(urllib.request.urlopen(req).read().decode())
PY
}
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
audit=$(api GET "/audit?kind=token.created")
export ST_TEAM=$(echo "$audit" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["team_id"])')
export ST_INSTANCE=$(api POST "/teams/$ST_TEAM/instances" '{"name": "dev"}' | id_of id)
prod=$(api POST "/teams/$ST_TEAM/instances" '{"name": "prod"}' | id_of id)
api PUT "/instances/$ST_INSTANCE/flows/orders" '{"steps": ["charge"]}' >/dev/null
api PUT "/instances/$ST_INSTANCE/env/API_TOKEN" '{"value": "not-a-real-secret"}' >/dev/null
export ST_PIPELINE=$(api POST "/teams/$ST_TEAM/pipelines" '{"name": "checkout"}' | id_of id)
api POST "/pipelines/$ST_PIPELINE/stages" "{\"instance\": \"$ST_INSTANCE\"}" >/dev/null
export ST_STAGE=$(api POST "/pipelines/$ST_PIPELINE/stages" "{\"instance\": \"$prod\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["stages"][0]["id"])')
export ST_PROMOTION=$(api POST "/pipelines/$ST_PIPELINE/stages/$ST_STAGE/promote" | id_of id)
config="$data/schemathesis.toml"
cat >"$config" <<'TOML'
[parameters]
"path.team" = "${ST_TEAM}"
"path.instance" = "${ST_INSTANCE}"
"path.pipeline" = "${ST_PIPELINE}"
"path.stage" = "${ST_STAGE}"
"path.promotion" = "${ST_PROMOTION}"
"path.flow" = "orders"
"path.key" = "API_TOKEN"
TOML

"$venv/bin/st" --config-file "$config" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port/api/v1" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${STAGEHAND_ST_EXAMPLES:-25}" \
  --generation-deterministic
