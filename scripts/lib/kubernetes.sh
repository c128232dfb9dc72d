# shellcheck shell=bash
# Offline checks of the deployment files, cheap enough to run first: no
# cluster and no Docker engine needed.
#
#   source scripts/lib/kubernetes.sh
#   check_deploy_manifests      # fails loudly, naming the overlay and object
#
# - renders deploy/kubernetes/base and every overlay with `kubectl
#   kustomize` (into target/deploy-manifests/, kept for a look after a
#   failure);
# - validates each rendering with kubernetes-validate (PyPI, installed into
#   a venv under .cache/ if missing) in strict mode (an unknown or mistyped
#   field is an error) against Kubernetes $K8S_SCHEMA_VERSION, the newest
#   version that kubernetes-validate $K8S_VALIDATE_VERSION ships schemas for;
#   a kind it has no schema for is an error too, not a warning;
# - asserts what the manifests must keep (scripts/lib/kubernetes_assert.py):
#   replicas per overlay, the pod's security settings, the probes, the
#   Secret references, the ports, the NetworkPolicy's sources, the PDB;
# - validates docker-compose.yml with `docker-compose config -q` (Debian's
#   docker-compose, installed if missing; it needs no engine), with dummy
#   values for the variables the file requires.

K8S_VALIDATE_VERSION=${K8S_VALIDATE_VERSION:-1.37.0}
K8S_SCHEMA_VERSION=${K8S_SCHEMA_VERSION:-1.37.0}
K8S_VALIDATE_VENV=${K8S_VALIDATE_VENV:-$PWD/.cache/kubernetes-validate}

# Installs kubernetes-validate $K8S_VALIDATE_VERSION into its venv unless it
# is there (PyYAML comes with it; the assertions use the same Python).
install_kubernetes_validate() {
  if [ "$("$K8S_VALIDATE_VENV/bin/kubernetes-validate" --version 2>/dev/null)" = "$K8S_VALIDATE_VERSION" ]; then
    return 0
  fi
  echo "installing kubernetes-validate $K8S_VALIDATE_VERSION (PyPI) into $K8S_VALIDATE_VENV..." >&2
  if ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  fi
  python3 -m venv "$K8S_VALIDATE_VENV" >&2 || return 1
  "$K8S_VALIDATE_VENV/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==$K8S_VALIDATE_VERSION" >&2 || return 1
}

# Installs Debian's docker-compose (v1, which validates a file without an
# engine) unless a docker-compose is on the PATH. Without
# --no-install-recommends it would pull in the whole Docker engine.
install_docker_compose() {
  if command -v docker-compose >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "docker-compose is not installed and this is not root: run 'sudo apt-get install -y --no-install-recommends docker-compose'" >&2
    return 1
  fi
  echo "installing docker-compose (Debian package)..." >&2
  # The package lists are refreshed only if apt does not know the package.
  if ! apt-cache show docker-compose >/dev/null 2>&1; then
    apt-get update -qq >&2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >&2
}

check_deploy_manifests() {
  local root=deploy/kubernetes out=target/deploy-manifests
  if ! command -v kubectl >/dev/null 2>&1; then
    echo "check_deploy_manifests: kubectl is not installed (it renders $root with 'kubectl kustomize')" >&2
    return 1
  fi
  install_kubernetes_validate || { echo "check_deploy_manifests: cannot install kubernetes-validate" >&2; return 1; }
  install_docker_compose || { echo "check_deploy_manifests: cannot install docker-compose" >&2; return 1; }

  rm -rf "$out"
  mkdir -p "$out"
  local dir name report failed=0 rendered=()
  for dir in "$root/base" "$root"/overlays/*/; do
    dir=${dir%/}
    name=$(basename "$dir")
    if ! kubectl kustomize "$dir" >"$out/$name.yaml" 2>"$out/$name.err"; then
      echo "check_deploy_manifests: $dir does not render:" >&2
      cat "$out/$name.err" >&2
      failed=1
      continue
    fi
    # --quiet prints only problems: any line (ERROR, WARN for a kind or
    # apiVersion without a schema, FATAL) fails the check.
    report=$("$K8S_VALIDATE_VENV/bin/kubernetes-validate" --strict --quiet \
      --kubernetes-version "$K8S_SCHEMA_VERSION" "$out/$name.yaml" 2>&1) || failed=1
    if [ -n "$report" ]; then
      echo "check_deploy_manifests: $dir (rendered to $out/$name.yaml) does not validate against Kubernetes $K8S_SCHEMA_VERSION:" >&2
      echo "$report" >&2
      failed=1
      continue
    fi
    rendered+=("$name=$dir=$out/$name.yaml")
    echo "deploy manifests: $dir renders and validates (strict, Kubernetes $K8S_SCHEMA_VERSION)" >&2
  done
  if [ "${#rendered[@]}" -gt 0 ]; then
    "$K8S_VALIDATE_VENV/bin/python" scripts/lib/kubernetes_assert.py Dockerfile "${rendered[@]}" || failed=1
  fi

  if ! env POSTGRES_PASSWORD=check-only STAGEHAND_SECRET_KEY=check-only \
    docker-compose -f docker-compose.yml config -q; then
    echo "check_deploy_manifests: docker-compose.yml does not validate (docker-compose config -q)" >&2
    failed=1
  else
    echo "deploy manifests: docker-compose.yml validates (docker-compose config -q)" >&2
  fi

  if [ "$failed" -ne 0 ]; then
    echo "check_deploy_manifests: FAILED (see above)" >&2
    return 1
  fi
}
