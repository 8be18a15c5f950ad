"""terraform: table tests (command lines from the terraform CLI docs, developer.hashicorp.com
/terraform/cli/commands, and `terraform <cmd> -help`), checked against the policy; help, version
and parse-error rows are also run through the real terraform (which then runs nothing).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.classify.support import Row, check_row, parse, rows_params

ROWS: list[Row] = [
    # help anywhere before `--` (terraform checks every word, also after a positional)
    Row("-help", "allow", "help", "terraform/help", source="terraform -help"),
    Row("-h", "allow", "help", "terraform/help"),
    Row("--help", "allow", "help", "terraform/help"),
    Row("", "allow", "help", "terraform/help"),
    Row("-chdir=infra", "allow", "help", "terraform/help"),
    Row("apply -help", "allow", "apply", "terraform/help"),
    Row("state rm -h", "allow", "state rm", "terraform/help"),
    Row("destroy --help", "allow", "destroy", "terraform/help"),
    Row("apply tfplan -help", "allow", "apply", "terraform/help"),
    Row("apply -var -help", "allow", "apply", "terraform/help"),
    Row("-help plan", "allow", "plan", "terraform/help"),
    Row("apply -- -help", "ask", "apply", "terraform/mutate"),
    Row("apply -help=false", "ask", "apply", None),
    Row("-version", "allow", "version", "terraform/read"),
    Row("-v", "allow", "version", "terraform/read"),
    Row("--version", "allow", "version", "terraform/read"),
    Row("version -json", "allow", "version", "terraform/read"),
    Row("apply -v", "ask", "apply", None),  # terraform prints its version; shield holds it
    # plan is the dry run; -chdir= is the one global option, and it needs '='
    Row("plan", "allow", "plan", "terraform/read"),
    Row("plan -destroy", "allow", "plan", "terraform/read"),
    Row("plan -refresh-only", "allow", "plan", "terraform/read"),
    Row("plan -out=tfplan", "allow", "plan", "terraform/read"),
    Row("plan -out tfplan -var 'region=us-west-2'", "allow", "plan", "terraform/read"),
    Row("plan -var-file=testing.tfvars", "allow", "plan", "terraform/read"),
    Row("--plan", "ask", "", None),
    Row("-chdir=environments/production plan", "allow", "plan", "terraform/read"),
    Row("-chdir=infra apply -auto-approve", "ask", "apply", "terraform/mutate"),
    Row("-chdir infra plan", "ask", "", None),
    Row("--chdir=infra plan", "ask", "", None),
    Row("-no-color plan", "ask", "", None),
    # reads and local writes
    Row("validate", "allow", "validate", "terraform/read"),
    Row("validate -json", "allow", "validate", "terraform/read"),
    Row("fmt", "allow", "fmt", "terraform/local-write"),
    Row("fmt -check -recursive", "allow", "fmt", "terraform/local-write"),
    Row("get -update", "allow", "get", "terraform/local-write"),
    Row("graph -type=plan", "allow", "graph", "terraform/read"),
    Row("providers", "allow", "providers", "terraform/read"),
    Row("providers schema -json", "allow", "providers schema", "terraform/read"),
    Row(
        "providers lock -platform=linux_amd64 -platform=darwin_arm64",
        "allow",
        "providers lock",
        "terraform/local-write",
    ),
    Row("providers mirror ./mirror", "allow", "providers mirror", "terraform/local-write"),
    Row("show", "allow", "show", "terraform/show"),
    Row("show tfplan", "allow", "show", "terraform/show"),
    Row("show -no-color", "allow", "show", "terraform/show"),
    Row("show -json=false", "allow", "show", "terraform/show"),
    Row("output", "allow", "output", "terraform/output"),
    Row("output -no-color", "allow", "output", "terraform/output"),
    Row("state list", "allow", "state list", "terraform/read"),
    Row("state show 'packet_device.worker'", "allow", "state show", "terraform/read"),
    Row("workspace list", "allow", "workspace list", "terraform/read"),
    Row("workspace show", "allow", "workspace show", "terraform/read"),
    Row("env list", "allow", "workspace list", "terraform/read"),
    Row("modules -json", "allow", "modules", "terraform/read"),
    Row("metadata functions -json", "allow", "metadata functions", "terraform/read"),
    # secrets
    Row("show -json", "ask", "show", "terraform/secret-read"),
    Row("show -json tfplan", "ask", "show", "terraform/secret-read"),
    Row("output lb_url", "ask", "output", "terraform/secret-read"),
    Row("output -json", "ask", "output", "terraform/secret-read"),
    Row("output -raw lb_url", "ask", "output", "terraform/secret-read"),
    Row("state pull", "ask", "state pull", "terraform/secret-read"),
    Row("console", "ask", "console", "terraform/secret-read"),
    # init, and what TF_CLI_ARGS / TF_CLI_ARGS_<cmd> insert after the subcommand
    Row("init", "allow", "init", "terraform/init"),
    Row("init -upgrade", "allow", "init", "terraform/init"),
    Row("init -backend-config=prod.hcl", "allow", "init", "terraform/init"),
    Row("init -migrate-state=false", "allow", "init", "terraform/init"),
    Row("init -migrate-state", "ask", "init", "terraform/init-migrate"),
    Row("init --migrate-state", "ask", "init", "terraform/init-migrate"),
    Row("init -force-copy", "ask", "init", "terraform/init-force-copy"),
    Row(
        "init", "ask", "init", "terraform/init-migrate", env={"TF_CLI_ARGS_init": "-migrate-state"}
    ),
    Row("init", "ask", "init", "terraform/init-force-copy", env={"TF_CLI_ARGS": "-force-copy"}),
    Row("output", "ask", "output", "terraform/secret-read", env={"TF_CLI_ARGS_output": "-json"}),
    Row("show", "ask", "show", "terraform/secret-read", env={"TF_CLI_ARGS_show": "-json"}),
    Row("plan", "allow", "plan", "terraform/read", env={"TF_CLI_ARGS_plan": "-destroy"}),
    Row("apply", "allow", "apply", "terraform/help", env={"TF_CLI_ARGS": "-help"}),
    Row(
        "state rm x",
        "ask",
        "state rm",
        "terraform/mutate",
        env={"TF_CLI_ARGS_state_rm": "-lock=false"},
    ),
    Row("init", "ask", "init", None, env={"TF_CLI_ARGS_init": "'unbalanced"}),
    # terraform inserts TF_CLI_ARGS_<cmd> first, then TF_CLI_ARGS (both after the subcommand)
    Row(
        "apply",
        "ask",
        "apply",
        "terraform/mutate",
        env={"TF_CLI_ARGS": "-help", "TF_CLI_ARGS_apply": "--"},
    ),
    Row(
        "output",
        "ask",
        "output",
        "terraform/secret-read",
        env={"TF_CLI_ARGS": "-json", "TF_CLI_ARGS_output": "-json=false"},
    ),
    Row(
        "init -input=false",
        "ask",
        "init",
        "terraform/init-force-copy",
        env={"TF_CLI_ARGS": "-force-copy", "TF_CLI_ARGS_init": "-force-copy=false"},
    ),
    # no subcommand: the inserted words come first and become the command
    Row("", "ask", "?", None, env={"TF_CLI_ARGS": "apply -auto-approve"}),
    Row("-chdir=infra", "ask", "?", None, env={"TF_CLI_ARGS": "apply -auto-approve"}),
    Row("--", "ask", "?", None, env={"TF_CLI_ARGS": "apply -auto-approve"}),
    Row("-chdir=infra", "ask", "?", None, env={"TF_CLI_ARGS_": "apply -auto-approve"}),
    # ... and they can still pick a nested subcommand
    Row("state", "ask", "state rm", "terraform/mutate", env={"TF_CLI_ARGS": "rm aws_instance.x"}),
    # go-shellwords stops at ; | & < > and reads backslashes its own way: not understood
    Row("init -input=false", "ask", "init", None, env={"TF_CLI_ARGS_init": "-force-copy;"}),
    Row("output", "ask", "output", None, env={"TF_CLI_ARGS_output": '"-js\\on"'}),
    Row("show", "ask", "show", None, env={"TF_CLI_ARGS_show": "-json|x"}),
    Row(
        "plan",
        "allow",
        "plan",
        "terraform/read",
        env={"TF_CLI_ARGS_plan": "-var 'tags={a=\"b c\"}'"},
    ),
    # -install-autocomplete anywhere before `--` edits shell rc files instead of running
    Row("plan -install-autocomplete", "ask", "-install-autocomplete", None),
    Row("version --uninstall-autocomplete", "ask", "--uninstall-autocomplete", None),
    Row(
        "validate",
        "ask",
        "-install-autocomplete",
        None,
        env={"TF_CLI_ARGS": "-install-autocomplete"},
    ),
    Row("apply -- -install-autocomplete", "ask", "apply", "terraform/mutate"),
    # plan -out over the state or the configuration destroys it
    Row("plan -out=terraform.tfstate", "ask", "plan", "terraform/plan-out-overwrite"),
    Row("plan -out main.tf", "ask", "plan", "terraform/plan-out-overwrite"),
    Row("plan -out=tfplan", "allow", "plan", "terraform/read"),
    # changes
    Row("apply", "ask", "apply", "terraform/mutate"),
    Row("apply -auto-approve", "ask", "apply", "terraform/mutate"),
    Row("apply tfplan", "ask", "apply", "terraform/mutate"),
    Row("apply -var-file=testing.tfvars", "ask", "apply", "terraform/mutate"),
    Row("apply -destroy", "ask", "apply", "terraform/mutate"),
    Row("destroy", "ask", "destroy", "terraform/mutate"),
    Row("destroy -target=aws_instance.web", "ask", "destroy", "terraform/mutate"),
    Row("import aws_instance.foo i-abcd1234", "ask", "import", "terraform/mutate"),
    Row("refresh", "ask", "refresh", "terraform/mutate"),
    Row("taint aws_instance.web", "ask", "taint", "terraform/mutate"),
    Row("untaint aws_instance.web", "ask", "untaint", "terraform/mutate"),
    Row("force-unlock LOCK_ID", "ask", "force-unlock", "terraform/mutate"),
    Row("state mv packet_device.worker packet_device.helper", "ask", "state mv"),
    Row("state rm packet_device.worker", "ask", "state rm", "terraform/mutate"),
    Row("state push terraform.tfstate", "ask", "state push", "terraform/mutate"),
    Row(
        "state replace-provider hashicorp/aws registry.acme.corp/acme/aws",
        "ask",
        "state replace-provider",
        "terraform/mutate",
    ),
    Row("workspace new bar", "ask", "workspace new", "terraform/mutate"),
    Row("workspace select bar", "ask", "workspace select", "terraform/mutate"),
    Row("workspace delete bar", "ask", "workspace delete", "terraform/mutate"),
    Row("env select prod", "ask", "workspace select", "terraform/mutate"),
    Row("login app.terraform.io", "ask", "login", "terraform/mutate"),
    Row("logout", "ask", "logout", "terraform/mutate"),
    Row("test", "ask", "test", "terraform/mutate"),
    Row("test -filter=tests/a.tftest.hcl", "ask", "test", "terraform/mutate"),
    # unknown: no aliases, no prefixes; typos are unknown
    Row("aply", "ask", "aply", None),
    Row("app", "ask", "app", None),
    Row("state foo", "ask", "state foo", None),
    Row("push", "ask", "push", None),
    Row("-install-autocomplete", "ask", "-install-autocomplete", None),
    Row("workspace", "ask", "workspace", None),
]


@pytest.mark.parametrize("row", rows_params(ROWS))
def test_terraform_table(row: Row) -> None:
    check_row("terraform", row)


def test_tf_cli_args_are_inserted_right_after_the_subcommand() -> None:
    inv = parse(
        "terraform", "plan -var a=1 x", {"TF_CLI_ARGS": "-destroy", "TF_CLI_ARGS_plan": "-out=p"}
    )
    assert inv.flags == {"-destroy": ["true"], "-out": ["p"], "-var": ["a=1"]}
    assert inv.args == ("x",)


def test_tf_cli_args_go_after_tf_cli_args_cmd_as_the_real_terraform_orders_them(
    tmp_path: Path,
) -> None:
    # the last -var wins: terraform builds `plan <TF_CLI_ARGS_plan> <TF_CLI_ARGS> <argv>`
    env = {"TF_CLI_ARGS": "-var=a=general", "TF_CLI_ARGS_plan": "-var=a=cmd"}
    assert parse("terraform", "plan", env).flags["-var"][-1] == "a=general"
    if not shutil.which("terraform"):
        pytest.skip("terraform is not installed")
    (tmp_path / "main.tf").write_text('variable "a" {}\noutput "a" { value = var.a }\n')
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CHECKPOINT_DISABLE": "1"}
    base["TF_CLI_CONFIG_FILE"] = str(tmp_path / "none.tfrc")
    run = functools.partial(
        subprocess.run, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run(["terraform", "init", "-input=false"], env=base).returncode == 0
    out = run(["terraform", "plan", "-input=false", "-no-color"], env={**base, **env})
    assert out.returncode == 0, out.stderr
    assert 'a = "general"' in out.stdout


def test_flag_parsing_stops_at_the_first_positional() -> None:
    inv = parse("terraform", "apply tfplan -auto-approve")
    assert inv.args == ("tfplan", "-auto-approve") and "-auto-approve" not in inv.flags


@pytest.mark.parametrize(
    "one, two", [("-auto-approve", "--auto-approve"), ("-var=a=1", "-var a=1")]
)
def test_single_and_double_dash_and_equals_read_the_same(one: str, two: str) -> None:
    a, b = parse("terraform", f"apply {one}"), parse("terraform", f"apply {two}")
    assert a.flags == b.flags and a.kind == b.kind == "ok"


# --------------------------------------------------------------------------- the real terraform


def _real(argv: list[str], tmp: Path) -> str:
    cfg = tmp / "terraformrc"
    cfg.write_text("")
    (tmp / "infra").mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp), "TF_CLI_CONFIG_FILE": str(cfg)}
    proc = subprocess.run(
        ["terraform", *argv], capture_output=True, text=True, env=env, cwd=tmp, timeout=60
    )
    out = proc.stdout + proc.stderr
    if "has no command named" in out:
        return "unknown"
    if proc.returncode in (0, 127) and out.lstrip().startswith("Usage: terraform"):
        return "help"  # a bare `terraform` prints usage and exits 127
    if proc.returncode == 0 and ("Terraform v" in out or '"terraform_version"' in out):
        return "help"  # the version
    for mark in (
        "Invalid flags before the subcommand",
        "must include an equals sign",
        "Failed to parse command-line flags",
        "flag provided but not defined",
        "Usage: terraform [global options] state <subcommand>",
    ):
        if mark in out:
            return "error"
    return "ran"


# only rows that make terraform print help, its version or a parse error: nothing runs
# (-install-autocomplete edits shell rc files; `push` is a removed stub that prints a notice)
_SAFE = [
    r
    for r in ROWS
    if not r.env
    and (parse("terraform", r.line).kind != "ok" or r.verb == "version")
    and "autocomplete" not in r.line
    and r.line != "push"
]


@pytest.mark.parametrize("row", rows_params(_SAFE))
def test_terraform_agrees_with_the_real_terraform(row: Row, tmp_path: Path) -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed here")
    inv = parse("terraform", row.line)
    real = _real(list(inv.argv), tmp_path)
    if inv.kind == "help" or inv.verb == ("version",):
        assert real == "help", real
    elif not inv.verb:
        assert real in ("error", "help"), real  # flags and no subcommand: usage or an error
    elif inv.note.startswith("unknown flag"):
        assert real in ("unknown", "error", "help"), real  # `apply -v` prints the version
    else:
        assert real in ("unknown", "error"), real


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab \"'\\\t", max_size=12))
def test_split_words_splits_as_shlex_does(text: str) -> None:
    # the hot path's splitter (TF_CLI_ARGS, aws profile headers) stands in for shlex.split
    import shlex

    from shim.classify.words import split_words

    try:
        want: list[str] | None = shlex.split(text)
    except ValueError:
        want = None
    assert split_words(text) == want
