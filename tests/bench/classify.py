"""Benchmark classification in process: parse + resolve context + decide over a realistic mix.

Run: .venv/bin/python tests/bench/classify.py [--seconds S]

Prints `name: value` lines; `classify_per_second` is the figure SPEC "How fast" asks for
(target: at least 20,000). The mix is the four tools' common calls (reads, secret reads,
mutations, dry runs, help, unknown verbs), with the compiled rules loaded once as a shim does,
and the context resolved from kubeconfig / aws config text held in memory (a shim reads one
small file per call; that IO is not what this measures). `parse_decide_per_second` leaves the
context out.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from shim.classify.argv import parse_argv  # noqa: E402
from shim.classify.context import resolve_context  # noqa: E402
from shim.classify.decide import decide  # noqa: E402
from shim.rules.compile import compile_layers  # noqa: E402
from shim.rules.load import defaults_dir  # noqa: E402

MIX = """
kubectl get pods
kubectl -n prod get pods -o wide
kubectl --context prod-eu get deploy web -o yaml
kubectl get secret db -o jsonpath={.data.password}
kubectl describe pod web-7d4b9c
kubectl logs -f deploy/web -c app --since=10m
kubectl apply -f deploy.yaml
kubectl apply -f deploy.yaml --dry-run=server
kubectl delete pod web-7d4b9c -n prod
kubectl rollout restart deploy/web
kubectl rollout status deploy/web
kubectl exec -it web -- sh -c 'ls --help'
kubectl config view --raw
kubectl config use-context prod
kubectl top pod -A
kubectl ctx prod
kubectl scale deploy/web --replicas=3
aws sts get-caller-identity
aws ec2 describe-instances --filters Name=tag:env,Values=prod --region eu-west-1
aws s3 ls s3://bucket/prefix/ --recursive
aws s3 cp s3://bucket/key ./key
aws s3 sync ./site s3://bucket --delete
aws ec2 terminate-instances --instance-ids i-1 i-2 --dry-run
aws ssm get-parameter --name /db/password --with-dec
aws secretsmanager get-secret-value --secret-id prod/db
aws --profile prod lambda invoke --function-name f out.json
aws ec2 describe-instances help
aws whoami
terraform plan -out=tfplan
terraform -chdir=infra apply -auto-approve
terraform init -upgrade
terraform output -json
terraform state list
terraform state rm aws_instance.web
terraform fmt -recursive
terraform aply
helm list -A
helm -n prod upgrade --install web ./chart -f values.yaml
helm upgrade --install web ./chart --dry-run=server
helm get values web
helm repo update
helm template web ./chart
helm uninstall web
helm diff upgrade web ./chart
"""

KUBECONFIG = """apiVersion: v1
kind: Config
contexts:
- context:
    cluster: prod-eu
    namespace: shop
    user: deploy-bot
  name: prod-eu
- context:
    cluster: kind
    user: kind
  name: kind-dev
current-context: prod-eu
"""
AWS_CONFIG = "[default]\nregion = eu-west-1\n[profile prod]\nregion = us-east-1\n"


def _read(path: str) -> str | None:
    if path.endswith("config") and ".kube" in path:
        return KUBECONFIG
    if path.endswith("config") and ".aws" in path:
        return AWS_CONFIG
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = ap.parse_args()
    tools = compile_layers([defaults_dir()])
    calls = []
    for line in MIX.strip().splitlines():
        tool, *argv = shlex.split(line)
        calls.append((tool, argv, tools[tool]["grammar"], tools[tool]["rules"]))
    env = {"HOME": "/home/agent", "PATH": "/usr/bin"}
    decisions = {"allow": 0, "ask": 0, "deny": 0}
    for _tool, argv, grammar, rules in calls:
        inv = parse_argv(grammar, argv, env)
        decisions[
            decide(
                inv, rules, resolve_context(grammar, inv, env, "/w", read=_read), "deploy-bot", env
            ).decision
        ] += 1

    def run(with_context: bool) -> float:
        n = 0
        start = time.perf_counter()
        deadline = start + args.seconds
        while True:
            for _tool, argv, grammar, rules in calls:
                inv = parse_argv(grammar, argv, env)
                ctx = resolve_context(grammar, inv, env, "/w", read=_read) if with_context else {}
                decide(inv, rules, ctx, "deploy-bot", env)
            n += len(calls)
            now = time.perf_counter()
            if now >= deadline:
                return n / (now - start)

    full = run(True)
    bare = run(False)
    print(f"mix_calls: {len(calls)} ({decisions['allow']} allow, {decisions['ask']} ask)")
    print(f"classify_per_second: {full:,.0f}")
    print(f"parse_decide_per_second: {bare:,.0f}")
    print(f"microseconds_per_call: {1e6 / full:.1f}")
    print(f"target_classify_per_second: 20,000 ({'met' if full >= 20_000 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
