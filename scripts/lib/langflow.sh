# shellcheck shell=bash
# Real Langflow servers for the runtime crate's tests: installed once into a
# venv under .cache/runtimes/langflow (uv resolves Langflow in ~30 s where
# pip did not finish in 10 minutes), started each on a free port of
# 127.0.0.1 with a fresh database, a fresh Fernet secret and a static API
# key, and stopped by PID when the calling script exits.
#
#   source scripts/lib/langflow.sh
#   install_langflow                 # idempotent
#   start_langflow DEV               # returns at once: the server boots in the background
#   start_langflow PROD
#   ... cargo build ...
#   wait_langflow DEV; wait_langflow PROD   # polls /health_check (180 s)
#   # tests read STAGEHAND_LANGFLOW_DEV_URL / _KEY, STAGEHAND_LANGFLOW_PROD_URL / _KEY
#   stop_langflows                   # also installed as an EXIT trap by start_langflow
#
# A Langflow takes ~1.1 GB and 40-60 s of CPU to start: start them early,
# in the background, while cargo builds, and wait right before the tests.

LANGFLOW_VERSION=${LANGFLOW_VERSION:-1.13.0}
LANGFLOW_HOME=${LANGFLOW_HOME:-$PWD/.cache/runtimes/langflow}
LANGFLOW_VENV=$LANGFLOW_HOME/venv
# Every server this shell started: "NAME PID DIR" per line.
STAGEHAND_LANGFLOWS=${STAGEHAND_LANGFLOWS:-}

_langflow_uv() {
  if command -v uv >/dev/null 2>&1; then command -v uv; return; fi
  if [ -x "$LANGFLOW_HOME/uv-venv/bin/uv" ]; then echo "$LANGFLOW_HOME/uv-venv/bin/uv"; return; fi
  # A venv of its own, so neither Debian's "externally managed" Python nor
  # anyone else's packages are touched.
  echo "installing uv (PyPI)..." >&2
  mkdir -p "$LANGFLOW_HOME"
  python3 -m venv "$LANGFLOW_HOME/uv-venv" >&2 || return 1
  "$LANGFLOW_HOME/uv-venv/bin/pip" install -q uv >&2 || return 1
  echo "$LANGFLOW_HOME/uv-venv/bin/uv"
}

# Installs Langflow $LANGFLOW_VERSION into $LANGFLOW_VENV unless it is there.
install_langflow() {
  if [ -x "$LANGFLOW_VENV/bin/langflow" ] \
    && [ "$(cat "$LANGFLOW_VENV/.stagehand-langflow-version" 2>/dev/null)" = "$LANGFLOW_VERSION" ]; then
    return 0
  fi
  local uv python
  uv=$(_langflow_uv) || { echo "cannot install uv" >&2; return 1; }
  # Langflow 1.13 supports Python 3.10-3.13. Use $LANGFLOW_PYTHON, else a
  # local python3.11 (Debian 12's python3 is 3.11); with neither, uv tries
  # to download one, which fails without internet, so say so.
  python=${LANGFLOW_PYTHON:-$(command -v python3.11 || true)}
  [ -n "$python" ] || python=3.11
  echo "installing Langflow $LANGFLOW_VERSION into $LANGFLOW_VENV (~30 s, ~1.8 GB)..." >&2
  "$uv" venv -q --allow-existing --python "$python" "$LANGFLOW_VENV" >&2 \
    || { echo "uv found no Python 3.11: install python3.11 (or set LANGFLOW_PYTHON)" >&2; return 1; }
  "$uv" pip install -q --python "$LANGFLOW_VENV/bin/python" "langflow==$LANGFLOW_VERSION" >&2 || return 1
  echo "$LANGFLOW_VERSION" >"$LANGFLOW_VENV/.stagehand-langflow-version"
}

_langflow_free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  return 1
}

# Starts a Langflow named NAME (DEV, PROD, …) in the background and returns
# at once; exports STAGEHAND_LANGFLOW_<NAME>_URL and _KEY. Each server gets
# its own temp dir (config, SQLite database, log), so no state survives it.
# The API key is static (LANGFLOW_API_KEY_SOURCE=env): it needs no login
# round trip, and it authenticates as the superuser.
start_langflow() {
  local name=${1:?start_langflow NAME}
  name=$(echo "$name" | tr '[:lower:]-' '[:upper:]_')
  install_langflow || return 1
  local port dir key secret
  port=$(_langflow_free_port) || { echo "no free port for Langflow $name" >&2; return 1; }
  dir=$(mktemp -d "/tmp/stagehand-langflow-${name,,}.XXXXXX")
  key="sk-stagehand-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  secret=$("$LANGFLOW_VENV/bin/python" -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
  # Everything not needed to serve flows and variables is off: no starter
  # projects or assistant flows to seed (faster start, and no flows or
  # variables the tests did not make), no environment variables copied into
  # global variables, no telemetry or MCP composer (no internet here).
  # Langflow allows 5 logins a minute per IP, and every test tenant logs
  # in once (to make its API key), all from 127.0.0.1: a full test run
  # makes more than that, so the limit is raised (not removed: it is the
  # same code path production runs).
  (
    cd "$dir" || exit 1
    exec env \
      LANGFLOW_CONFIG_DIR="$dir/config" \
      LANGFLOW_SAVE_DB_IN_CONFIG_DIR=true \
      LANGFLOW_DATABASE_URL="sqlite:///$dir/config/langflow.db" \
      LANGFLOW_AUTO_LOGIN=false \
      LANGFLOW_SUPERUSER="${STAGEHAND_LANGFLOW_SUPERUSER:-stagehand}" \
      LANGFLOW_SUPERUSER_PASSWORD="${STAGEHAND_LANGFLOW_SUPERUSER_PASSWORD:-stagehand-test-only}" \
      LANGFLOW_SECRET_KEY="$secret" \
      LANGFLOW_API_KEY_SOURCE=env \
      LANGFLOW_API_KEY="$key" \
      LANGFLOW_CREATE_STARTER_PROJECTS=false \
      LANGFLOW_UPDATE_STARTER_PROJECTS=false \
      LANGFLOW_AGENTIC_EXPERIENCE=false \
      LANGFLOW_STORE_ENVIRONMENT_VARIABLES=false \
      LANGFLOW_FALLBACK_TO_ENV_VAR=false \
      LANGFLOW_MCP_COMPOSER_ENABLED=false \
      LANGFLOW_ADD_PROJECTS_TO_MCP_SERVERS=false \
      LANGFLOW_WORKERS=1 \
      LANGFLOW_RATE_LIMIT_PER_MINUTE=600 \
      DO_NOT_TRACK=true \
      LITELLM_LOCAL_MODEL_COST_MAP=True \
      "$LANGFLOW_VENV/bin/langflow" run --host 127.0.0.1 --port "$port" --backend-only
  ) >"$dir/langflow.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/pid"
  STAGEHAND_LANGFLOWS="${STAGEHAND_LANGFLOWS}${name} ${pid} ${dir}"$'\n'
  export "STAGEHAND_LANGFLOW_${name}_URL=http://127.0.0.1:$port"
  export "STAGEHAND_LANGFLOW_${name}_KEY=$key"
  # Keep an EXIT trap someone else set (postgres.sh sets one).
  local previous
  previous=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
  case "$previous" in
    *stop_langflows*) ;;
    "") trap stop_langflows EXIT ;;
    *) trap "stop_langflows; $previous" EXIT ;;
  esac
  echo "Langflow $name starting on 127.0.0.1:$port (pid $pid, $dir)" >&2
}

# Waits until Langflow NAME answers /health_check, at most
# $LANGFLOW_START_TIMEOUT seconds (180); on failure prints its log's tail.
wait_langflow() {
  local name=${1:?wait_langflow NAME}
  name=$(echo "$name" | tr '[:lower:]-' '[:upper:]_')
  local url_var="STAGEHAND_LANGFLOW_${name}_URL" line pid dir
  line=$(printf '%s' "$STAGEHAND_LANGFLOWS" | grep "^$name " | tail -n 1)
  pid=$(echo "$line" | cut -d' ' -f2)
  dir=$(echo "$line" | cut -d' ' -f3)
  local deadline=$(( SECONDS + ${LANGFLOW_START_TIMEOUT:-180} ))
  while (( SECONDS < deadline )); do
    if curl -fsS -m 5 "${!url_var}/health_check" >/dev/null 2>&1; then
      # Log in once, as a person would: Langflow creates a user's default
      # project at the first login, and until it exists GET /api/v1/flows/
      # answers 500 ("Starter project and default project not found").
      if ! curl -fsS -m 30 -o /dev/null -X POST "${!url_var}/api/v1/login" \
        --data-urlencode "username=${STAGEHAND_LANGFLOW_SUPERUSER:-stagehand}" \
        --data-urlencode "password=${STAGEHAND_LANGFLOW_SUPERUSER_PASSWORD:-stagehand-test-only}"; then
        echo "Langflow $name is up but its superuser cannot log in" >&2
        return 1
      fi
      echo "Langflow $name ready at ${!url_var}" >&2
      return 0
    fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "Langflow $name exited while starting; its log:" >&2
      tail -n 40 "$dir/langflow.log" >&2
      return 1
    fi
    sleep 2
  done
  echo "Langflow $name did not answer /health_check in ${LANGFLOW_START_TIMEOUT:-180} s; its log:" >&2
  tail -n 40 "$dir/langflow.log" >&2
  return 1
}

# Signals PID and all its descendants, children first collected so none is
# orphaned before it is found (Langflow forks a server worker).
_langflow_kill_tree() {
  local sig=$1 pid=$2 child
  for child in $(pgrep -P "$pid" 2>/dev/null); do _langflow_kill_tree "$sig" "$child"; done
  kill "-$sig" "$pid" 2>/dev/null || true
}

# Stops every Langflow this shell started, by PID (the server and the
# processes it forked), and deletes their temp dirs. Safe to call twice.
stop_langflows() {
  local name pid dir
  while read -r name pid dir; do
    [ -n "$pid" ] || continue
    _langflow_kill_tree TERM "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    _langflow_kill_tree KILL "$pid"
    case "$dir" in /tmp/stagehand-langflow-*) rm -rf "$dir" ;; esac
  done <<<"$STAGEHAND_LANGFLOWS"
  STAGEHAND_LANGFLOWS=""
}
