"""helm: table tests (command lines from helm.sh/docs/helm/*, the helm reference; helm is not
installed here, so facts come from reference/cli-grammars.md section 4 and the docs).
"""

from __future__ import annotations

import pytest

from tests.classify.support import Row, check_row, parse, rows_params

ROWS: list[Row] = [
    # help anywhere before `--`; `--help=false` is no help request
    Row("install web ./chart --help", "allow", "install", "helm/help", source="helm install -h"),
    Row("upgrade web ./chart -h", "allow", "upgrade", "helm/help"),
    Row("help upgrade", "allow", "help", "helm/help"),
    Row("-h", "allow", "", "helm/help"),
    Row("", "allow", "help", "helm/help"),
    Row("uninstall web --help=false", "ask", "uninstall", "helm/mutate"),
    # global flags in every spelling, before or after the verb
    Row("-n prod list", "allow", "list", "helm/read"),
    Row("-nprod ls", "allow", "list", "helm/read"),
    Row("-n=prod list", "allow", "list", "helm/read"),
    Row("--namespace=prod list", "allow", "list", "helm/read"),
    Row("list -n prod", "allow", "list", "helm/read"),
    Row("--kube-context prod status web", "allow", "status", "helm/read"),
    Row("--kube-context=prod uninstall web", "ask", "uninstall", "helm/mutate"),
    Row("--kubeconfig /tmp/k -n prod history web", "allow", "history", "helm/read"),
    Row("--debug list", "allow", "list", "helm/read"),
    Row("repo --debug update", "allow", "repo update", "helm/local-write"),
    # reads
    Row("list --filter 'ara[a-z]+'", "allow", "list", "helm/read", source="helm list -h"),
    Row("list --all-namespaces", "allow", "list", "helm/read"),
    Row("ls -A", "allow", "list", "helm/read"),
    Row("status web --revision 2", "allow", "status", "helm/read"),
    Row("status web -o json", "ask", "status", "helm/secret-read"),
    Row("status web --output=yaml", "ask", "status", "helm/secret-read"),
    Row("status web -o table", "allow", "status", "helm/read"),
    Row("history angry-bird --max=4", "allow", "history", "helm/read"),
    Row("hist web", "allow", "history", "helm/read"),
    Row("get notes web", "allow", "get notes", "helm/read"),
    Row("get metadata web", "allow", "get metadata", "helm/read"),
    Row("show values bitnami/nginx", "allow", "show values", "helm/read"),
    Row("show chart bitnami/nginx --version 15.0.0", "allow", "show chart", "helm/read"),
    Row("inspect values bitnami/nginx", "allow", "show values", "helm/read"),
    Row("show all ./chart", "allow", "show all", "helm/read"),
    Row("search hub wordpress", "allow", "search hub", "helm/read"),
    Row("search repo nginx", "allow", "search repo", "helm/read"),
    Row("version --short", "allow", "version", "helm/read"),
    Row("env", "allow", "env", "helm/read"),
    Row("verify mychart-0.1.0.tgz", "allow", "verify", "helm/read"),
    Row("lint ./mychart", "allow", "lint", "helm/read"),
    Row("completion bash", "allow", "completion", "helm/read"),
    Row("plugin list", "allow", "plugin list", "helm/read"),
    Row("dependency list ./chart", "allow", "dependency list", "helm/read"),
    Row("dep ls ./chart", "allow", "dependency list", "helm/read"),
    # local writes
    Row(
        "repo add bitnami https://charts.bitnami.com/bitnami",
        "allow",
        "repo add",
        "helm/local-write",
    ),
    Row("repo update", "allow", "repo update", "helm/local-write"),
    Row("repo up", "allow", "repo update", "helm/local-write"),
    Row("repo list", "allow", "repo list", "helm/local-write"),
    Row("repo rm bitnami", "allow", "repo remove", "helm/local-write"),
    Row("repo index ./charts", "allow", "repo index", "helm/local-write"),
    Row("pull bitnami/nginx --untar --untardir ./charts", "allow", "pull", "helm/local-write"),
    Row("fetch bitnami/nginx", "allow", "pull", "helm/local-write"),
    Row("package ./mychart", "allow", "package", "helm/local-write"),
    Row("create mychart", "allow", "create", "helm/local-write"),
    Row("dependency build ./chart", "allow", "dependency build", "helm/local-write"),
    Row("dep up ./chart", "allow", "dependency update", "helm/local-write"),
    Row("template web ./chart -f values.yaml", "allow", "template", "helm/template"),
    Row("template --output-dir ./out web ./chart", "allow", "template", "helm/template"),
    Row("template web ./chart --dry-run=server", "ask", "template", "helm/dry-run-server"),
    # secrets
    Row("get values web", "ask", "get values", "helm/secret-read", source="helm get values -h"),
    Row("get values web --all", "ask", "get values", "helm/secret-read"),
    Row("get all web -n prod", "ask", "get all", "helm/secret-read"),
    Row("get manifest web", "ask", "get manifest", "helm/secret-read"),
    Row("get hooks web", "ask", "get hooks", "helm/secret-read"),
    # dry-run: every row of the reference's value table (section 4.4)
    Row("install web ./chart --dry-run", "allow", "install", "helm/dry-run"),
    Row("install web ./chart --dry-run=client", "allow", "install", "helm/dry-run"),
    Row("install web ./chart --dry-run=server", "ask", "install", "helm/dry-run-server"),
    Row("install web ./chart --dry-run=true", "allow", "install", "helm/dry-run"),
    Row("install web ./chart --dry-run=false", "ask", "install", "helm/mutate"),
    Row("install web ./chart --dry-run=none", "ask", "install", "helm/mutate"),
    Row("install web ./chart --dry-run server", "allow", "install", "helm/dry-run"),
    Row("install web ./chart --dry-run=server --dry-run=false", "ask", "install", "helm/mutate"),
    Row("upgrade --install web ./chart --dry-run=server", "ask", "upgrade", "helm/dry-run-server"),
    Row(
        "upgrade --dry-run --debug --install nginx --namespace=default "
        "--set image.name=nurlan1992/app:tagname -f values.yaml .",
        "allow",
        "upgrade",
        "helm/dry-run",
    ),
    Row("uninstall web --dry-run", "allow", "uninstall", "helm/dry-run"),
    Row("uninstall web --dry-run=false", "ask", "uninstall", "helm/mutate"),
    Row("rollback web 2 --dry-run", "allow", "rollback", "helm/dry-run"),
    Row(
        "install web ./chart --dry-run --post-renderer ./hook.sh",
        "ask",
        "install",
        "helm/post-renderer",
    ),
    Row("template web ./chart --post-renderer ./hook.sh", "ask", "template", "helm/post-renderer"),
    # changes (examples of helm install/upgrade/uninstall/... -h)
    Row("install web ./chart", "ask", "install", "helm/mutate"),
    Row("install --set name=prod myredis ./redis", "ask", "install", "helm/mutate"),
    Row("install -f myvalues.yaml myredis ./redis", "ask", "install", "helm/mutate"),
    Row("upgrade -f myvalues.yaml -f override.yaml redis ./redis", "ask", "upgrade"),
    Row("upgrade --install web ./chart -n prod", "ask", "upgrade", "helm/mutate"),
    Row("upgrade -i web ./chart", "ask", "upgrade", "helm/mutate"),
    Row("uninstall web", "ask", "uninstall", "helm/mutate"),
    Row("uninstall web --keep-history", "ask", "uninstall", "helm/mutate"),
    Row("delete web", "ask", "uninstall", "helm/mutate"),
    Row("del web", "ask", "uninstall", "helm/mutate"),
    Row("un web", "ask", "uninstall", "helm/mutate"),
    Row("rollback web 2", "ask", "rollback", "helm/mutate"),
    Row("test web", "ask", "test", "helm/mutate"),
    Row("push mychart-0.1.0.tgz oci://localhost:5000/helm-charts", "ask", "push", "helm/mutate"),
    Row("registry login -u myuser localhost:5000", "ask", "registry login", "helm/mutate"),
    Row("registry logout localhost:5000", "ask", "registry logout", "helm/mutate"),
    Row("plugin install https://github.com/databus23/helm-diff", "ask", "plugin install"),
    Row("plugin update diff", "ask", "plugin update", "helm/mutate"),
    Row("plugin rm diff", "ask", "plugin uninstall", "helm/mutate"),
    # unknown: `remove` and `rm` only suggest uninstall; plugins; unknown flags before the verb
    Row("remove web", "ask", "remove", None),
    Row("rm web", "ask", "rm", None),
    Row("diff upgrade web ./chart", "ask", "diff", None),
    Row("secrets view secrets.yaml", "ask", "secrets", None),
    Row("--no-such-flag=1 list", "ask", "list", None),
    Row("repo frob", "ask", "repo frob", None),
    Row("docs --dir ./d", "ask", "docs", None),
    # an upgrade dry run renders with the live release's values when it is given none
    Row("upgrade web ./chart --dry-run", "ask", "upgrade", "helm/secret-read"),
    Row("upgrade web ./chart --dry-run -o json", "ask", "upgrade", "helm/secret-read"),
    Row("upgrade web ./chart -f v.yaml --reuse-values --dry-run", "ask", "upgrade"),
    Row("upgrade web ./chart -f v.yaml --dry-run", "allow", "upgrade", "helm/dry-run"),
    Row("upgrade web ./chart --reset-values --dry-run", "allow", "upgrade", "helm/dry-run"),
    # template --validate talks to the cluster (helm v4: a server dry run)
    Row("template web ./chart --validate", "ask", "template", "helm/dry-run-server"),
    Row("template web ./chart --dry-run=false --validate", "ask", "template"),
    Row("template web ./chart --validate=false", "allow", "template", "helm/template"),
    # a URL with a plugin scheme runs a downloader plugin (helm-secrets decrypts with it)
    Row("template web ./chart -f secrets://s.yaml", "ask", "template", "helm/getter-plugin"),
    Row("lint ./chart -f secrets://s.yaml", "ask", "lint", "helm/getter-plugin"),
    Row("pull s3://bucket/charts/web-1.0.0.tgz", "ask", "pull", "helm/getter-plugin"),
    Row("show values secrets://x", "ask", "show values", "helm/getter-plugin"),
    Row("template web ./chart -f https://example.com/v.yaml", "allow", "template"),
    Row("pull oci://registry.example.com/charts/web", "allow", "pull", "helm/local-write"),
    # flag kinds and shorts checked against helm 3.19 and 4.1-4.3 binaries
    Row("get values -a web", "ask", "get values", "helm/secret-read"),
    Row("search repo -l nginx", "allow", "search repo", "helm/read"),
    Row("create web -p mystarter", "allow", "create", "helm/local-write"),
    Row("list -f 'web.*' -l app=web", "allow", "list", "helm/read"),
    Row("package ./chart -u", "allow", "package", "helm/local-write"),
    Row("install web ./chart --skip-schema-validation --dry-run", "allow", "install"),
    Row("upgrade web ./chart -f v.yaml --server-side auto --dry-run", "allow", "upgrade"),
    Row("rollback web 2 --dry-run=client", "allow", "rollback", "helm/dry-run"),
    # klog's hidden flags are real root flags
    Row("--logtostderr list", "allow", "list", "helm/read"),
    Row("--log-file=/tmp/h.log status web", "allow", "status", "helm/read"),
]


@pytest.mark.parametrize("row", rows_params(ROWS))
def test_helm_table(row: Row) -> None:
    check_row("helm", row)


def test_a_plugin_gets_its_argv_unparsed() -> None:
    inv = parse("helm", "diff upgrade web ./chart --dry-run")
    assert inv.kind == "unknown" and not inv.dry_run


@pytest.mark.parametrize("line", ["-n prod list", "-nprod list", "--namespace prod list"])
def test_every_namespace_spelling_reads_the_same_value(line: str) -> None:
    assert parse("helm", line).flag("--namespace") == "prod"


def test_a_global_flag_hidden_as_another_flags_value_still_counts() -> None:
    # helm's early pass over the root flags reads -nprod; cobra then takes it as --description
    inv = parse("helm", "uninstall web --description -nprod")
    assert inv.flag("--description") == "-nprod" and inv.flag("--namespace") == "prod"
    inv = parse("helm", "uninstall web --description --kube-context=prod-eu")
    assert inv.flag("--kube-context") == "prod-eu"
    # an unknown flag skips its next word in that pass, unless the word starts with '-'
    assert parse("helm", "list --frob -n x").flag("--namespace") == "x"
    # what cobra's own pass sets wins
    assert parse("helm", "uninstall web -n a --description -nb").flag("--namespace") == "a"


def test_helms_early_pass_stops_where_pflag_stops() -> None:
    # pflag's early pass ends at the help flag it does not define, and at bad flag syntax
    inv = parse("helm", "uninstall web --description -nprod --help=false --description -nsandbox")
    assert inv.flag("--namespace") == "prod"
    assert parse("helm", "uninstall web ---x --description -nprod").flag("--namespace") is None
