"""What the rendered Kubernetes manifests must keep, beyond their schema.

    python kubernetes_assert.py Dockerfile NAME=DIR=RENDERED.yaml ...

Run by check_deploy_manifests (scripts/lib/kubernetes.sh) with the
kubernetes-validate venv's Python, which has PyYAML. Prints one line per
broken rule, naming the overlay and the object, and exits 1 if any.
"""

import re
import sys
from urllib.parse import urlsplit

import yaml

# Replicas each overlay must render; an overlay not listed may run any count.
REPLICAS = {"base": 1, "dev": 1, "prod": 3}
HTTP_PORT, METRICS_PORT = 8080, 9464
SECRET_ENV = ("DATABASE_URL", "STAGEHAND_SECRET_KEY")
CONFIG_ENV = {
    "STAGEHAND_BIND": "0.0.0.0:8080",
    "STAGEHAND_METRICS_BIND": "0.0.0.0:9464",
    "STAGEHAND_LOG_FORMAT": "json",
}
# Seconds of the drain after the shutdown delay that the grace period must cover.
DRAIN_SECS = 25

problems = []


def check(ok, where, message):
    if not ok:
        problems.append(f"{where}: {message}")


def dockerfile_user(path):
    users = re.findall(r"^USER\s+(\S+)", open(path).read(), re.M)
    return users[-1].split(":")[0] if users else None


def check_overlay(name, source, docs, image_user):
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    where = lambda doc: f"{source}: {doc['kind']}/{doc['metadata']['name']}"

    check(not by_kind.get("Secret"), source,
          "renders a Secret: secret values are created by hand, never committed")
    before = len(problems)
    for kind in ("Deployment", "Service", "Ingress", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap"):
        check(len(by_kind.get(kind, [])) == 1, source, f"renders {len(by_kind.get(kind, []))} {kind}, expected 1")
    if len(problems) > before:
        return  # the rules below need one of each

    config = by_kind["ConfigMap"][0]
    env = config.get("data", {})
    for key, value in CONFIG_ENV.items():
        check(env.get(key) == value, where(config), f"{key} must be {value!r}, is {env.get(key)!r}")
    for key in ("STAGEHAND_PUBLIC_URL", "STAGEHAND_TRUSTED_PROXIES"):
        check(env.get(key), where(config), f"{key} must be set")
    delay = int(env.get("STAGEHAND_SHUTDOWN_DELAY_SECS", "-1"))
    check(delay >= 1, where(config), "STAGEHAND_SHUTDOWN_DELAY_SECS must be at least 1")

    deployment = by_kind["Deployment"][0]
    d = where(deployment)
    spec = deployment["spec"]
    if name in REPLICAS:
        check(spec.get("replicas") == REPLICAS[name], d,
              f"replicas must be {REPLICAS[name]} in {name}, is {spec.get('replicas')}")
    rolling = spec.get("strategy", {}).get("rollingUpdate", {})
    check(spec.get("strategy", {}).get("type") == "RollingUpdate"
          and rolling.get("maxUnavailable") == 0 and rolling.get("maxSurge") == 1,
          d, "strategy must be RollingUpdate with maxUnavailable 0, maxSurge 1")
    pod = spec["template"]["spec"]
    pod_sc = pod.get("securityContext", {})
    check(pod.get("automountServiceAccountToken") is False, d, "automountServiceAccountToken must be false")
    check(pod.get("terminationGracePeriodSeconds", 30) >= delay + DRAIN_SECS, d,
          f"terminationGracePeriodSeconds must be >= STAGEHAND_SHUTDOWN_DELAY_SECS + {DRAIN_SECS}")
    check(spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(), d,
          "the selector must match the pod template's labels")

    containers = pod.get("initContainers", []) + pod.get("containers", [])
    for c in containers:
        w = f"{d}: container {c['name']}"
        sc = {**pod_sc, **c.get("securityContext", {})}
        check(sc.get("runAsNonRoot") is True, w, "runAsNonRoot must be true")
        uid = sc.get("runAsUser")
        check(isinstance(uid, int) and uid > 0, w, "runAsUser must be a numeric non-root uid")
        check(image_user is not None and image_user.isdigit() and str(uid) == image_user, w,
              f"runAsUser {uid} must be the Dockerfile's numeric USER ({image_user})")
        csc = c.get("securityContext", {})
        check(csc.get("readOnlyRootFilesystem") is True, w, "readOnlyRootFilesystem must be true")
        check(csc.get("allowPrivilegeEscalation") is False, w, "allowPrivilegeEscalation must be false")
        check("ALL" in csc.get("capabilities", {}).get("drop", []), w, "capabilities must drop ALL")
        check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", w,
              "seccompProfile must be RuntimeDefault")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            check({"cpu", "memory"} <= set(res.get(part, {})), w, f"resources.{part} must set cpu and memory")

    c = pod["containers"][0]
    w = f"{d}: container {c['name']}"
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", None)):
        got = c.get(probe, {}).get("httpGet", {}).get("path")
        check(got is not None and (path is None or got == path), w, f"{probe} must be an httpGet on {path or 'a path'}, is {got}")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    check(ports == {"http": HTTP_PORT, "metrics": METRICS_PORT}, w,
          f"ports must be http {HTTP_PORT} and metrics {METRICS_PORT}, are {ports}")
    secret_env = {e["name"]: e for e in c.get("env", [])}
    for key in SECRET_ENV:
        ref = secret_env.get(key, {}).get("valueFrom", {}).get("secretKeyRef")
        check(ref is not None and "value" not in secret_env.get(key, {}), w, f"{key} must come from a Secret")
    check(any(e.get("configMapRef", {}).get("name") == config["metadata"]["name"] for e in c.get("envFrom", [])),
          w, f"envFrom must reference the ConfigMap {config['metadata']['name']}")

    service = by_kind["Service"][0]
    sports = {p.get("name"): p["port"] for p in service["spec"]["ports"]}
    check(sports == {"http": HTTP_PORT, "metrics": METRICS_PORT}, where(service),
          f"ports must be http {HTTP_PORT} and metrics {METRICS_PORT}, are {sports}")

    ingress = by_kind["Ingress"][0]
    public_host = urlsplit(env.get("STAGEHAND_PUBLIC_URL", "")).hostname
    hosts = [r.get("host") for r in ingress["spec"].get("rules", [])]
    check(hosts == [public_host], where(ingress),
          f"rule hosts {hosts} must be the host of STAGEHAND_PUBLIC_URL ({public_host})")
    for rule in ingress["spec"].get("rules", []):
        for p in rule.get("http", {}).get("paths", []):
            port = p["backend"]["service"]["port"]
            check(port.get("name") == "http" or port.get("number") == HTTP_PORT, where(ingress),
                  "the ingress must route to the http port only, never to metrics")

    pdb = by_kind["PodDisruptionBudget"][0]
    replicas = spec.get("replicas", 1)
    ps = pdb["spec"]
    if name == "prod":
        check(ps.get("maxUnavailable") == 1 or ps.get("minAvailable") == replicas - 1, where(pdb),
              "prod must keep all but one pod through a disruption (maxUnavailable 1)")
    check(ps["selector"]["matchLabels"] == spec["selector"]["matchLabels"], where(pdb),
          "the selector must be the Deployment's")

    netpol = by_kind["NetworkPolicy"][0]
    n = where(netpol)
    ns = netpol["spec"]
    check(set(ns.get("policyTypes", [])) == {"Ingress", "Egress"}, n, "policyTypes must be Ingress and Egress")
    check(ns["podSelector"]["matchLabels"] == spec["selector"]["matchLabels"], n,
          "podSelector must be the Deployment's selector")
    opened = set()
    for rule in ns.get("ingress", []):
        sources = rule.get("from", [])
        check(sources and all(set(s) == {"namespaceSelector"} for s in sources), n,
              "every ingress rule must admit named namespaces only")
        for p in rule.get("ports", []):
            opened.add(p["port"])
            check(len(rule.get("ports", [])) == 1, n, f"port {p['port']} must have a rule of its own")
    check(opened == {HTTP_PORT, METRICS_PORT}, n,
          f"ingress must open {HTTP_PORT} and {METRICS_PORT} only, opens {sorted(opened)}")
    egress_ports = {(p.get("protocol", "TCP"), p["port"]) for r in ns.get("egress", []) for p in r.get("ports", [])}
    check(all(r.get("ports") for r in ns.get("egress", [])), n, "every egress rule must name its ports")
    check({("UDP", 53), ("TCP", 53), ("TCP", 5432)} <= egress_ports, n,
          "egress must allow DNS (53 UDP and TCP) and PostgreSQL (5432)")


def main():
    image_user = dockerfile_user(sys.argv[1])
    for arg in sys.argv[2:]:
        name, source, rendered = arg.split("=", 2)
        before = len(problems)
        with open(rendered) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        check_overlay(name, source, docs, image_user)
        if len(problems) == before:
            print(f"deploy manifests: {source} keeps its rules", file=sys.stderr)
    for p in problems:
        print(f"check_deploy_manifests: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
