# shellcheck shell=bash
# nginx (the load balancer in front of three replicas) and wrk (the load
# during their rolling restart) for crates/cli/tests/replicas.rs, from
# Debian's packages. Idempotent. The tests run nginx with their own config
# on loopback; the package's own service is stopped if it started.
#
#   source scripts/lib/loadbalancer.sh
#   install_load_balancer_tools

install_load_balancer_tools() {
  local missing=()
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${missing[*]}: run 'sudo apt-get install -y --no-install-recommends ${missing[*]}'" >&2
    return 1
  fi
  echo "installing ${missing[*]} (Debian packages)..." >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  # The package may have started the system nginx on port 80: not ours.
  /usr/sbin/nginx -s quit >/dev/null 2>&1 || true
}
