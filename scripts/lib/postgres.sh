# shellcheck shell=bash
# Starts a throwaway PostgreSQL cluster on 127.0.0.1 and a free port, exports
# DATABASE_URL, and stops and deletes it when the calling script exits.
# Installs Debian's postgresql package if no server binaries are found.
#
#   source scripts/lib/postgres.sh
#   start_throwaway_postgres [--durable]
#
# Without --durable, fsync and synchronous commit are off (fast tests, no
# crash safety); benchmarks that claim production figures pass --durable.

pg_bin_dir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$found" ] && [ -x "$found/initdb" ]; then echo "$found"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
}

ensure_postgres_installed() {
  if [ -n "$(pg_bin_dir)" ]; then return; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed and this is not root: run 'sudo apt-get install -y postgresql'" >&2
    return 1
  fi
  echo "installing PostgreSQL (Debian package)..." >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  return 1
}

start_throwaway_postgres() {
  local durable=""
  [ "${1:-}" = "--durable" ] && durable=1
  ensure_postgres_installed
  local bin port dir as=()
  bin=$(pg_bin_dir)
  port=$(free_port)
  dir=$(mktemp -d /tmp/stagehand-pg.XXXXXX)
  mkdir -p "$dir/sock"
  # initdb refuses to run as root: run the cluster as the postgres user.
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown -R postgres "$dir"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  local opts="-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c max_connections=300"
  if [ -z "$durable" ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  # More server settings, for a diagnosis (see README, Performance).
  opts="$opts ${STAGEHAND_PG_OPTS:-}"
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/server.log" -w -t 30 start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  STAGEHAND_PG_DIR=$dir
  STAGEHAND_PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop)
  trap stop_throwaway_postgres EXIT
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "throwaway PostgreSQL on 127.0.0.1:$port ($dir)" >&2
}

stop_throwaway_postgres() {
  if [ -n "${STAGEHAND_PG_DIR:-}" ]; then
    "${STAGEHAND_PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$STAGEHAND_PG_DIR"
    STAGEHAND_PG_DIR=""
  fi
}

# Creates an empty database on the throwaway server and prints its URL.
fresh_database() {
  local name="$1"
  "$(pg_bin_dir)/psql" -q "$DATABASE_URL" -c "create database $name" >/dev/null
  echo "${DATABASE_URL%/*}/$name"
}
