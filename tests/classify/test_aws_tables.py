"""aws read as the CLI reads it (issue 14): each operation's options come from the installed
aws CLI itself (its botocore models and customizations, as its argparse parsers hold them), so
that unique prefixes (`--dry` is `--dry-run`), the `help` positional and the dry-run and
skeleton spellings follow the CLI exactly.

The tables are made from the CLI in this venv (`.venv/bin/aws`, the one `aws_outcome` runs in
process), and every row, and a hypothesis corpus, is compared with what that CLI does: a call
it sends, help it prints, a skeleton, or a usage error.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shim.classify.argv import parse_argv
from shim.classify.classify import classify, table_loader
from shim.classify.decide import decide
from shim.classify.invocation import Invocation
from shim.rules.awstables import make_tables
from tests.classify.support import AwsOutcome, _aws_harness, aws_outcome, shipped

AWS = str(Path(sys.executable).with_name("aws"))
USAGE = 252  # the aws CLI's exit status for a usage error
SERVICES = ["ec2", "ssm", "sts", "lambda", "route53", "iam", "rds", "eks", "secretsmanager"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not os.access(AWS, os.X_OK):
        pytest.skip("the aws CLI is not installed in this venv")
    root = tmp_path_factory.mktemp("tables")
    assert make_tables(str(root), AWS, SERVICES), "the aws CLI gave no tables"
    return {**shipped()["aws"], "tables": str(root)}


def read(compiled: dict, line: str) -> tuple[Invocation, str]:
    args = shlex.split(line)
    env = {"HOME": "/nonexistent"}
    d = classify(compiled, args, env, "/", "agent", AWS)
    return d.invocation, d.decision


# (command line, what shield decides, what it reads: kind, and dry run)
ROWS = [
    # prefixes expand against the operation's own options: --dry is --dry-run everywhere
    ("ec2 terminate-instances --instance-ids i-1 --dry", "allow", "ok", True),
    ("ec2 terminate-instances --instance-ids i-1 --d", "ask", "ok", False),  # --debug
    ("ec2 terminate-instances --inst i-1 --dry-r", "allow", "ok", True),
    ("ec2 run-instances --image-id ami-1 --dry", "allow", "ok", True),
    ("ec2 stop-instances --instance-ids i-1 --dry-run --no-dry", "ask", "ok", False),
    ("ec2 stop-instances --instance-ids i-1 --no-dry --dry", "allow", "ok", True),
    ("ec2 terminate-instances --instance-ids i-1 --no", "ask", "error", False),  # ambiguous
    ("ec2 terminate-instances --instance-ids i-1 --dry-run=true", "ask", "error", False),
    ("ec2 terminate-instances --instance-ids i-1 --dry-run=", "ask", "error", False),
    ("ec2 terminate-instances --instance-ids i-1 --frobnicate", "ask", "error", False),
    ("ec2 terminate-instances --instance-ids i-1 -x", "ask", "error", False),
    ("ec2 terminate-instances --instance-ids -1", "ask", "ok", False),
    ("ec2 terminate-instances --instance-ids 'i-1 --dry-run'", "ask", "ok", False),
    ("ec2 terminate-instances --dry-run", "ask", "error", False),  # --instance-ids is required
    ("ec2 describe-instances --max 5", "ask", "error", False),  # --max-items, --max-results
    ("iam get-user --user-name Bob --dry-run", "ask", "error", False),  # iam has no dry run
    ("route53 delete-health-check --he 1234", "ask", "ok", False),
    ("ssm get-parameter --name p --with", "ask", "ok", False),
    ("ssm get-parameter --name p --w", "ask", "ok", False),
    ("ssm get-parameter --name p --no-with", "allow", "ok", False),
    ("ec2 descibe-instances", "ask", "error", False),  # no such operation
    # the help positional: the first free word, unless an option takes it
    ("ec2 terminate-instances --instance-ids=i-1 help", "allow", "help", False),
    ("ec2 terminate-instances help --instance-ids i-1", "allow", "help", False),
    ("ec2 terminate-instances --instance-ids i-1 --dry-run help", "allow", "help", False),
    ("ec2 terminate-instances --instance-ids i-1 help", "ask", "ok", False),  # a list takes it
    ("ec2 describe-instances --dry-run help", "allow", "help", False),
    ("ec2 describe-instances help foo", "allow", "help", False),
    ("ec2 describe-instances foo", "ask", "error", False),
    ("ec2 describe-instances foo help", "ask", "error", False),
    ("sts get-caller-identity help", "allow", "help", False),
    ("ec2 terminate-instances --dry-run help", "ask", "error", False),  # required, then help
    # --generate-cli-skeleton sends nothing, whatever its value
    (
        "ec2 terminate-instances --instance-ids i-1 --generate-cli-skeleton output",
        "allow",
        "ok",
        True,
    ),
    ("ec2 terminate-instances --generate-cli-skeleton output", "ask", "error", False),  # validates
    ("ec2 terminate-instances --generate-cli-skeleton", "allow", "ok", True),
    ("ec2 terminate-instances --instance-ids i-1 --gen", "allow", "ok", True),
    ("ec2 terminate-instances --generate-cli-skeleton yaml-input", "ask", "error", False),
    # configure get of the key id: an identifier, not a credential
    ("configure get aws_access_key_id", "allow", "ok", False),
    ("configure get aws_secret_access_key", "ask", "ok", False),
]


@pytest.mark.parametrize("line, decision, kind, dry", ROWS, ids=[r[0] for r in ROWS])
def test_aws_calls_are_read_with_the_clis_own_option_tables(
    compiled: dict, line: str, decision: str, kind: str, dry: bool
) -> None:
    inv, got = read(compiled, line)
    assert (got, inv.kind, inv.dry_run) == (decision, kind, dry), (inv.note, inv.flags)


# --------------------------------------------------------------------------- the real aws CLI


def _real(argv: list[str], home: Path) -> AwsOutcome:
    harness = _aws_harness()
    if harness is None:
        pytest.skip("awscli is not importable")
    from awscli.customizations.generatecliskeleton import StubbedCLIOperationCaller

    record = harness[1]

    def stubbed(self: Any, service: str, op: str, params: Any, g: Any) -> int:
        record.append(AwsOutcome("skeleton", f"{service} {op}", {}))
        return 0

    StubbedCLIOperationCaller.invoke = stubbed  # type: ignore[method-assign]
    out = aws_outcome(argv, home)
    assert out is not None
    return out


def _agrees(inv: Invocation, real: AwsOutcome, line: str) -> None:
    """The safe direction exactly: what the CLI sends, shield read as that operation, dry run
    or not; where shield reads help or a dry run, the CLI sends nothing that runs."""
    p = real.params
    if real.what == "call":
        assert inv.kind == "ok", (line, inv.kind, inv.note)
        assert real.name.split()[-1] == inv.verb[-1], (line, real.name)
        assert inv.dry_run == (p.get("DryRun") is True), (line, inv.flags, p)
    elif real.what == "help":
        assert inv.kind == "help", (line, inv.kind, inv.note)
    elif real.what in ("skeleton", "version"):
        assert inv.dry_run, (line, inv.kind, inv.note)  # a skeleton (the CLI printed one)
    else:
        assert inv.kind != "help" or "ambiguous" in str(p), (line, p)


@pytest.mark.parametrize("line, decision, kind, dry", ROWS, ids=[r[0] for r in ROWS])
def test_the_rows_agree_with_the_real_aws_cli(
    compiled: dict, tmp_path: Path, line: str, decision: str, kind: str, dry: bool
) -> None:
    inv, _ = read(compiled, line)
    real = _real(shlex.split(line), tmp_path)
    _agrees(inv, real, line)
    if kind == "error":
        assert real.what == "error", (line, real)
    if real.what == "error" and real.params.get("rc") == USAGE:
        assert inv.kind == "error", (line, inv.kind, real.params)


WORDS = ["i-1", "help", "foo", "-1", "output", "input", "true", "p"]
OPTIONS = ["--instance-ids", "--inst", "--dry-run", "--dry", "--d", "--no-dry-run", "--no-dry"]
OPTIONS += ["--no", "--force", "--f", "--generate-cli-skeleton", "--gen", "--dry-run=true"]
OPTIONS += ["--instance-ids=i-2", "--max-results", "--max", "--filters", "--region", "--x"]
OPS = ["ec2 terminate-instances", "ec2 describe-instances", "ec2 stop-instances"]


@settings(
    max_examples=int(os.environ.get("SHIELD_AWS_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(OPS),
    st.booleans(),
    st.lists(st.sampled_from(OPTIONS) | st.sampled_from(WORDS), max_size=5),
)
def test_random_operation_argvs_agree_with_the_real_aws_cli(
    compiled: dict,
    tmp_path_factory: pytest.TempPathFactory,
    op: str,
    ids: bool,
    words: list[str],
) -> None:
    line = " ".join([op, *(["--instance-ids", "i-1"] if ids else []), *words])
    inv, _ = read(compiled, line)
    real = _real(line.split(), tmp_path_factory.mktemp("aws"))
    event(f"aws: {real.what}")
    _agrees(inv, real, line)
    if real.what == "error" and real.params.get("rc") == USAGE:
        # a usage error (argparse, unknown options): shield reads the same error; a value the
        # CLI cannot convert later (rc 255) is not read by shield, and nothing is sent either
        assert inv.kind == "error", (line, inv.kind, real.params)


def test_without_tables_the_conservative_reading_stays(compiled: dict) -> None:
    bare = {k: v for k, v in compiled.items() if k != "tables"}
    d = classify(
        bare, ["ec2", "terminate-instances", "--instance-ids", "i-1", "--dry"], {}, "/", "a", AWS
    )
    assert d.decision == "ask" and not d.invocation.dry_run


def test_a_table_is_made_for_the_aws_that_runs_and_stale_when_it_changes(
    tmp_path: Path,
) -> None:
    if not os.access(AWS, os.X_OK):
        pytest.skip("the aws CLI is not installed in this venv")
    fake = tmp_path / "aws"
    fake.write_text(Path(AWS).read_text())
    fake.chmod(0o755)
    root = tmp_path / "tables"
    base = {**shipped()["aws"], "tables": str(root)}
    made: list[str] = []

    def make(service: str) -> bool:
        made.append(service)
        return make_tables(str(root), str(fake), [service])

    argv = ["sts", "get-caller-identity", "--dry"]
    first = classify(base, argv, {}, "/", "a", str(fake), make)
    assert made == ["sts"] and first.invocation.kind == "error"  # sts has no --dry-run
    classify(base, argv, {}, "/", "a", str(fake), make)
    assert made == ["sts"]  # made once
    loader = table_loader(base, str(fake))
    assert loader is not None and isinstance(loader("sts", "get-caller-identity"), dict)
    time.sleep(0.01)
    fake.write_text(fake.read_text() + "\n")  # the aws program changed: the tables are stale
    assert table_loader(base, str(fake))("sts", "get-caller-identity") is None  # type: ignore[misc]
    other = table_loader(base, str(tmp_path / "elsewhere" / "aws"))
    assert other is not None and other("sts", "get-caller-identity") is None


def test_an_aws_that_gives_no_tables_is_recorded_and_not_tried_again(tmp_path: Path) -> None:
    fake = tmp_path / "aws"
    fake.write_text("#!/bin/sh\necho aws-cli/2.0.0\n")
    fake.chmod(0o755)
    root = tmp_path / "tables"
    assert not make_tables(str(root), str(fake), ["ec2"])
    started = time.monotonic()
    assert not make_tables(str(root), str(fake), ["ec2"])
    assert time.monotonic() - started < 0.5  # recorded, not run again
    base = {**shipped()["aws"], "tables": str(root)}
    d = classify(
        base,
        ["ec2", "terminate-instances", "--instance-ids", "i-1", "--dry"],
        {},
        "/",
        "a",
        str(fake),
    )
    assert d.decision == "ask"


def test_service_words_never_become_paths(compiled: dict) -> None:
    loader = table_loader(compiled, AWS)
    assert loader is not None
    for word in ("../ec2", "/etc/passwd", ".hidden", "a/b"):
        assert loader(word, "x") is None
    inv = parse_argv(compiled["grammar"], ["../../x", "y"], {}, loader)
    assert inv.kind == "unknown"
    assert decide(inv, compiled["rules"]).decision == "ask"


# --------------------------------------------------------------------------- argparse versions

ARGPARSE_SCRIPT = r"""
import argparse, json, sys
table, argvs = json.load(sys.stdin)
out = []
for argv in argvs:
    p = argparse.ArgumentParser(add_help=False, conflict_handler="resolve")
    p.error = lambda msg: (_ for _ in ()).throw(ValueError(msg))
    for opt, (canon, nargs, const, choices) in table["options"].items():
        dest = canon[2:]
        if nargs == 0:
            p.add_argument(opt, action="store_true", dest=dest, default=None)
        elif nargs == -1:
            p.add_argument(opt, action="store_false", dest=dest, default=None)
        else:
            p.add_argument(opt, dest=dest, nargs=None if nargs == 1 else nargs, const=const,
                           choices=choices, required=canon in table["required"])
    p.add_argument("help", nargs="?")
    for name, skip in table["overrides"]:  # awscli's before-building-argument-table-parser
        if name in argv and argv[argv.index(name) + 1:argv.index(name) + 2] != [skip]:
            for action in p._actions:
                action.required = False
    try:
        if argv == ["help"]:
            out.append(["help"]); continue
        ns, rest = p.parse_known_args(argv)
    except (ValueError, argparse.ArgumentError, SystemExit):
        out.append(["error"]); continue
    if ns.help == "help":
        out.append(["help"])
    elif ns.help or rest:
        out.append(["error"])
    else:
        out.append(["ok", ns.__dict__.get("dry-run"), ns.__dict__.get("generate-cli-skeleton")])
print(json.dumps(out))
"""


def _pythons() -> list[str]:
    import glob

    found = sorted(glob.glob("/root/.pyenv/versions/3.1[0-9]*/bin/python3"))
    found += [p for p in ("/usr/bin/python3",) if os.path.exists(p)]
    return found


def _mine(table: dict, argv: list[str]) -> list:
    from shim.classify.aws import _exact_operation
    from shim.classify.invocation import State

    st = State()
    kind, _ = _exact_operation(table, tuple(argv), st)
    if kind == "error":
        return ["error"]
    if st.help:
        return ["help"]
    dry = st.flags.get("--dry-run")
    skel = st.flags.get("--generate-cli-skeleton")
    return ["ok", None if not dry else dry[-1] == "true", skel[-1] if skel else None]


def test_the_argparse_reading_matches_argparse_of_each_python_here(compiled: dict) -> None:
    """Operation tables are read as Python 3.11's argparse reads them; the same argvs through
    the argparse of every Python on this machine (the CLI's interpreter may be another)."""
    import json
    import random
    import subprocess

    loader = table_loader(compiled, AWS)
    assert loader is not None
    table = loader("ec2", "terminate-instances")
    assert isinstance(table, dict)
    plain = {
        "options": {k: list(v) for k, v in table["options"].items()},
        "required": list(table["required"]),
        "overrides": [list(o) for o in table["overrides"]],
    }
    rng = random.Random(14)
    pool = WORDS + OPTIONS + ["--", "--instance-ids=", "-", "--dry-run=x"]
    argvs = [["help"], []] + [rng.sample(pool, rng.randint(1, 5)) for _ in range(400)]
    argvs = [a for a in argvs if "--" not in a and "--region" not in a]
    want = [_mine(table, a) for a in argvs]
    for python in _pythons():
        got = json.loads(
            subprocess.run(
                [python, "-c", ARGPARSE_SCRIPT],
                input=json.dumps([plain, argvs]),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        diff = [(a, w, g) for a, w, g in zip(argvs, want, got, strict=True) if w != g]
        assert not diff, (python, diff[:5])


# --------------------------------------------------------------------------- through a shim


def test_a_shim_reads_dry_by_the_clis_tables_and_runs_the_real_dry_run(
    world: Any, moto_url: str
) -> None:
    """`aws ec2 terminate-instances --dry` through an installed shim in front of the real aws
    CLI: the shim makes ec2's tables on that first call, allows the dry run, and the real CLI
    sends it (moto answers DryRunOperation); `--no-dry` is held."""
    if not os.access(AWS, os.X_OK):
        pytest.skip("the aws CLI is not installed in this venv")
    env = world.env(path=f"{world.bin}:{Path(AWS).parent}:/usr/bin:/bin")
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=moto_url,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        SHIELD_HOLD_TIMEOUT="0",
    )
    argv = ["ec2", "terminate-instances", "--instance-ids", "i-1", "--dry"]
    proc = world.run("aws", *argv, env=env)
    assert b"DryRunOperation" in proc.stderr, proc.stderr
    entry = [e for e in world.log() if e.get("event") == "call"][-1]
    assert (entry["decision"], entry["rule"]) == ("allow", "aws/dry-run")
    tables = world.home / "state" / "compiled" / "aws-tables"
    assert list(tables.glob("t*/ec2/terminate-instances.marshal")), sorted(tables.iterdir())
    held = world.run("aws", *argv[:-1], "--dry-run", "--no-dry", env=env)
    assert held.returncode == 124, held.stderr  # held, and no decision within 0 s


def test_install_makes_the_tables_of_a_pinned_aws(world: Any, tmp_path: Path) -> None:
    """A pinned aws CLI gets its tables at install (the shims may not be able to write them);
    this one is a wrapper that gives none, which the index records. A pinned program that is
    not the aws CLI's script is not run at all."""
    import marshal

    fake = tmp_path / "aws2"
    fake.write_text("#!/bin/sh\n# awscli, a wrapper says\necho aws-cli/2.15.0\n")
    fake.chmod(0o755)
    world.install("--real", f"aws={fake}")
    tables = world.home / "state" / "compiled" / "aws-tables"
    assert marshal.loads((tables / "index.marshal").read_bytes())[str(fake)]["ok"] is False
    other = tmp_path / "aws3"
    other.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\n")
    other.chmod(0o755)
    world.install("--real", f"aws={other}")
    assert not (tmp_path / "ran").exists()
    assert str(other) not in marshal.loads((tables / "index.marshal").read_bytes())
