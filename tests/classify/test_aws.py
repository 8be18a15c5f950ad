"""aws: table tests (command lines from the aws CLI's own examples, awscli/examples/*.rst, and
the CLI reference), checked against the policy and against the real aws CLI v1 in process with
every request and every custom command replaced by a recorder (nothing is sent or run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.classify.support import (
    AwsOutcome,
    Row,
    aws_outcome,
    check_row,
    classify,
    parse,
    rows_params,
    shipped,
)

ROWS: list[Row] = [
    # help is the word `help`; --help is a usage error; --version prints and exits
    Row("help", "allow", "help", "aws/help", source="aws help"),
    Row("ec2 help", "allow", "ec2 help", "aws/help"),
    Row("ec2 describe-instances help", "allow", "ec2 describe-instances", "aws/help"),
    Row("ec2 terminate-instances --instance-ids i-1 help", "ask", "ec2 terminate-instances"),
    # with other words `help` may be a value or a streaming operation's outfile: only the
    # one word after the operation is help (stricter than the CLI, see STRICTER)
    Row("ec2 terminate-instances --instance-ids=i-1 help", "ask", "ec2 terminate-instances"),
    Row(
        "ec2 terminate-instances --instance-ids i-1 --no-dry-run help",
        "ask",
        "ec2 terminate-instances",
    ),
    Row("lambda invoke --function-name=f help", "ask", "lambda invoke", "aws/mutate"),
    Row("lambda invoke help --function-name=f", "ask", "lambda invoke", "aws/mutate"),
    Row("lambda invoke help", "allow", "lambda invoke", "aws/help"),
    Row("ec2 describe-instances --region us-east-1 help", "allow", "ec2 describe-instances"),
    # --help is only the whole word: `--h` is the operation's --host-ids, --hibernate, ...
    Row("ec2 release-hosts --h h-0123", "ask", "ec2 release-hosts", None),
    Row("ec2 stop-instances --instance-ids i-1 --h", "ask", "ec2 stop-instances", "aws/mutate"),
    Row("route53 delete-health-check --he 1234", "ask", "route53 delete-health-check"),
    Row(
        "rds generate-db-auth-token --h db --port 5432 --username u",
        "ask",
        "rds generate-db-auth-token",
    ),
    # --generate-cli-skeleton prints a template and sends nothing
    Row(
        "ec2 terminate-instances --generate-cli-skeleton",
        "allow",
        "ec2 terminate-instances",
        "aws/dry-run",
    ),
    Row(
        "ec2 terminate-instances --generate-cli-skeleton input", "allow", "ec2 terminate-instances"
    ),
    Row("ec2 terminate-instances help --instance-ids i-1", "ask", "ec2 terminate-instances"),
    Row("s3 ls help", "allow", "s3 ls", "aws/help"),
    Row("s3 rm help", "allow", "s3 rm", "aws/help"),
    Row("s3 rm s3://amzn-s3-demo-bucket/test2.txt help", "ask", "s3 rm", "aws/s3-write"),
    Row("s3 mv s3://amzn-s3-demo-bucket/test.txt help", "ask", "s3 mv", "aws/s3-write"),
    Row("configure set region help", "ask", "configure set", "aws/mutate"),
    Row("configure help", "allow", "configure help", "aws/help"),
    Row("ec2 describe-instances --help", "allow", "ec2 describe-instances", "aws/help"),
    Row("s3 rm s3://amzn-s3-demo-bucket --recursive --help", "allow", "s3 rm", "aws/help"),
    Row("--version", "allow", "help", "aws/help"),
    Row("ec2 terminate-instances --instance-ids i-1 --version", "allow", "ec2 terminate-instances"),
    # global options: anywhere, any spelling, unique prefixes
    Row("--profile prod ec2 describe-instances", "allow", "ec2 describe-instances", "aws/read"),
    Row("--profile=prod ec2 describe-instances", "allow", "ec2 describe-instances", "aws/read"),
    Row("ec2 --profile prod describe-instances", "allow", "ec2 describe-instances", "aws/read"),
    Row("ec2 describe-instances --profile prod", "allow", "ec2 describe-instances", "aws/read"),
    Row("--prof prod s3 ls", "allow", "s3 ls", "aws/s3-ls"),
    Row("--pro=prod s3 ls", "allow", "s3 ls", "aws/s3-ls"),
    Row("s3 --region eu-west-1 ls", "allow", "s3 ls", "aws/s3-ls"),
    Row("ec2 describe-instances --reg eu-west-1", "allow", "ec2 describe-instances", "aws/read"),
    # --debug logs response bodies: also the temporary credentials a role profile fetches
    Row("--debug --output json ec2 describe-vpcs", "ask", "ec2 describe-vpcs", "aws/debug"),
    Row("--prof prod ec2 terminate-instances --instance-ids i-1", "ask", "ec2 terminate-instances"),
    # read-only operations
    Row(
        "ec2 describe-instances --instance-ids i-1234567890abcdef0",
        "allow",
        "ec2 describe-instances",
        "aws/read",
        source="awscli/examples/ec2/describe-instances.rst",
    ),
    Row(
        "ec2 describe-instances --filters Name=instance-type,Values=t2.micro",
        "allow",
        "ec2 describe-instances",
        "aws/read",
    ),
    Row("s3api list-buckets --query Buckets[].Name", "allow", "s3api list-buckets", "aws/read"),
    Row("iam get-user --user-name Bob", "allow", "iam get-user", "aws/read"),
    Row("sts get-caller-identity", "allow", "sts get-caller-identity", "aws/read"),
    Row(
        "ec2 wait instance-running --instance-ids i-1234567890abcdef0",
        "allow",
        "ec2 wait",
        "aws/read",
    ),
    Row(
        "dynamodb batch-get-item --request-items file://request-items.json",
        "allow",
        "dynamodb batch-get-item",
        "aws/read",
    ),
    Row("s3api head-object --bucket b --key k", "allow", "s3api head-object", "aws/read"),
    Row("secretsmanager list-secrets", "allow", "secretsmanager list-secrets", "aws/read"),
    Row(
        "secretsmanager describe-secret --secret-id MyTestSecret",
        "allow",
        "secretsmanager describe-secret",
        "aws/read",
    ),
    Row("configure list", "allow", "configure list", "aws/configure-read"),
    Row("configure get region", "allow", "configure get", "aws/configure-read"),
    Row("configure get profile.prod.region", "allow", "configure get", "aws/configure-read"),
    # secrets
    Row(
        "secretsmanager get-secret-value --secret-id MyTestSecret",
        "ask",
        "secretsmanager get-secret-value",
        "aws/secret-read",
        source="awscli/examples/secretsmanager/get-secret-value.rst",
    ),
    Row(
        "secretsmanager batch-get-secret-value --secret-id-list a b",
        "ask",
        "secretsmanager batch-get-secret-value",
        "aws/secret-read",
    ),
    Row(
        "ssm get-parameter --name MySecureStringParameter --with-decryption",
        "ask",
        "ssm get-parameter",
        "aws/ssm-decrypt",
    ),
    Row("ssm get-parameter --name p --with-dec", "ask", "ssm get-parameter", "aws/ssm-decrypt"),
    Row("ssm get-parameter --name p --with", "ask", "ssm get-parameter", "aws/ssm-decrypt"),
    Row("ssm --with-dec get-parameter --name p", "ask", "ssm get-parameter", "aws/ssm-decrypt"),
    Row(
        "ssm get-parameters-by-path --path /site/newyork --recursive --with-decryption",
        "ask",
        "ssm get-parameters-by-path",
        "aws/ssm-decrypt",
    ),
    Row(
        "ssm get-parameter-history --name p --with-decryption",
        "ask",
        "ssm get-parameter-history",
        "aws/ssm-decrypt",
    ),
    Row("ssm get-parameter --name p", "allow", "ssm get-parameter", "aws/read"),
    Row(
        "ssm get-parameter --name p --with-decryption --no-with-decryption",
        "allow",
        "ssm get-parameter",
        "aws/read",
    ),
    Row(
        "ssm get-parameter --cli-input-json file://p.json",
        "ask",
        "ssm get-parameter",
        "aws/ssm-decrypt",
    ),
    Row(
        "sts assume-role --role-arn arn:aws:iam::123456789012:role/xaccounts3access "
        "--role-session-name s3-access-example",
        "ask",
        "sts assume-role",
        "aws/secret-read",
    ),
    Row("sts get-session-token --duration-seconds 900", "ask", "sts get-session-token"),
    Row("ecr get-login-password --region us-west-2", "ask", "ecr get-login-password"),
    Row("ecr get-authorization-token", "ask", "ecr get-authorization-token", "aws/secret-read"),
    Row("eks get-token --cluster-name my-eks-cluster", "ask", "eks get-token", "aws/secret-read"),
    Row(
        "ec2 get-password-data --instance-id i-1234567890abcdef0",
        "ask",
        "ec2 get-password-data",
        "aws/secret-read",
    ),
    Row(
        "rds generate-db-auth-token --hostname h --port 3306 --username u",
        "ask",
        "rds generate-db-auth-token",
        "aws/secret-read",
    ),
    Row(
        "kms decrypt --ciphertext-blob fileb://ExampleEncryptedFile --output text --query Plaintext",
        "ask",
        "kms decrypt",
        "aws/secret-read",
    ),
    Row(
        "kms generate-data-key --key-id alias/ExampleAlias --key-spec AES_256",
        "ask",
        "kms generate-data-key",
        "aws/secret-read",
    ),
    Row("lambda get-function --function-name my-function", "ask", "lambda get-function"),
    Row(
        "lambda get-function-configuration --function-name my-function",
        "ask",
        "lambda get-function-configuration",
        "aws/secret-read",
    ),
    Row("iam create-access-key --user-name Bob", "ask", "iam create-access-key"),
    Row(
        "configure get aws_secret_access_key",
        "ask",
        "configure get",
        "aws/configure-secret",
    ),
    Row("configure get profile.prod.aws_session_token", "ask", "configure get"),
    Row("configure export-credentials --profile prod", "ask", "configure export-credentials"),
    Row(
        "sso get-role-credentials --role-name r --account-id 123456789012 --access-token t",
        "ask",
        "sso get-role-credentials",
        "aws/secret-read",
    ),
    Row(
        "redshift get-cluster-credentials --db-user adminuser --db-name dev "
        "--cluster-identifier mycluster",
        "ask",
        "redshift get-cluster-credentials",
        "aws/secret-read",
    ),
    Row("ecr-public get-login-password --region us-east-1", "ask", "ecr-public get-login-password"),
    Row(
        "lightsail get-instance-access-details --instance-name MEAN-1",
        "ask",
        "lightsail get-instance-access-details",
        "aws/secret-read",
    ),
    Row(
        "s3 presign s3://amzn-s3-demo-bucket/test2.txt --expires-in 604800",
        "ask",
        "s3 presign",
        "aws/secret-read",
    ),
    # s3: the direction decides
    Row("s3 ls", "allow", "s3 ls", "aws/s3-ls", source="awscli/examples/s3/ls.rst"),
    Row(
        "s3 ls s3://amzn-s3-demo-bucket --recursive --human-readable --summarize",
        "allow",
        "s3 ls",
        "aws/s3-ls",
    ),
    Row(
        "s3 cp s3://amzn-s3-demo-bucket/test.txt test2.txt",
        "allow",
        "s3 cp",
        "aws/s3-download",
        source="awscli/examples/s3/cp.rst",
    ),
    Row("s3 cp s3://amzn-s3-demo-bucket/stream.txt -", "allow", "s3 cp", "aws/s3-download"),
    Row("s3 cp s3://amzn-s3-demo-bucket . --recursive", "allow", "s3 cp", "aws/s3-download"),
    Row("s3 sync s3://amzn-s3-demo-bucket .", "allow", "s3 sync", "aws/s3-download"),
    # --de is the main parser's --debug (it runs first), not sync's --delete
    Row("s3 sync s3://amzn-s3-demo-bucket . --de", "ask", "s3 sync", "aws/debug"),
    Row("s3 cp test.txt s3://amzn-s3-demo-bucket/test2.txt", "ask", "s3 cp", "aws/s3-write"),
    Row("s3 cp - s3://amzn-s3-demo-bucket/stream.txt", "ask", "s3 cp", "aws/s3-write"),
    Row(
        "s3 cp s3://amzn-s3-demo-bucket/test.txt s3://amzn-s3-demo-bucket/test2.txt",
        "ask",
        "s3 cp",
        "aws/s3-write",
    ),
    Row("s3 sync . s3://amzn-s3-demo-bucket", "ask", "s3 sync", "aws/s3-write"),
    Row(
        "s3 sync s3://amzn-s3-demo-bucket s3://amzn-s3-demo-bucket2",
        "ask",
        "s3 sync",
        "aws/s3-write",
    ),
    Row("s3 sync s3://amzn-s3-demo-bucket . --delete", "ask", "s3 sync", "aws/s3-write"),
    Row("s3 sync s3://amzn-s3-demo-bucket . --del", "ask", "s3 sync", "aws/s3-write"),
    Row("s3 mv s3://amzn-s3-demo-bucket/test.txt test2.txt", "ask", "s3 mv", "aws/s3-write"),
    Row("s3 rm s3://amzn-s3-demo-bucket/test2.txt", "ask", "s3 rm", "aws/s3-write"),
    Row("s3 rb s3://amzn-s3-demo-bucket --force", "ask", "s3 rb", "aws/s3-write"),
    Row("s3 mb s3://amzn-s3-demo-bucket --region us-west-1", "ask", "s3 mb", "aws/s3-write"),
    Row(
        "s3 website s3://my-bucket/ --index-document index.html --error-document error.html",
        "ask",
        "s3 website",
        "aws/s3-write",
    ),
    # dry runs: --dry-run / --no-dry-run, the last one wins; s3's --dryrun
    Row(
        "ec2 terminate-instances --instance-ids i-1 --dry-run",
        "allow",
        "ec2 terminate-instances",
        "aws/dry-run",
    ),
    Row(
        "ec2 run-instances --image-id ami-0abcdef1234567890 --instance-type t2.micro --dry-run",
        "allow",
        "ec2 run-instances",
        "aws/dry-run",
    ),
    Row(
        "ec2 terminate-instances --dry-run --no-dry-run --instance-ids i-1",
        "ask",
        "ec2 terminate-instances",
        "aws/mutate",
    ),
    Row(
        "ec2 terminate-instances --no-dry-run --dry-run --instance-ids i-1",
        "allow",
        "ec2 terminate-instances",
        "aws/dry-run",
    ),
    Row(
        "ec2 terminate-instances --instance-ids i-1 --dry-run --no-dry",
        "ask",
        "ec2 terminate-instances",
        "aws/mutate",
    ),
    Row(
        "ec2 --dry-run terminate-instances --instance-ids i-1",
        "allow",
        "ec2 terminate-instances",
        "aws/dry-run",
    ),
    Row(
        "--dry-run ec2 terminate-instances --instance-ids i-1",
        "allow",
        "ec2 terminate-instances",
        "aws/dry-run",
    ),
    Row(
        "ec2 terminate-instances --instance-ids i-1 --dry",
        "ask",
        "ec2 terminate-instances",
        "aws/mutate",
    ),
    Row("s3 rm s3://amzn-s3-demo-bucket --recursive --dryrun", "allow", "s3 rm", "aws/dry-run"),
    Row("s3 sync . s3://amzn-s3-demo-bucket --dryrun", "allow", "s3 sync", "aws/dry-run"),
    Row("s3 mv test.txt s3://amzn-s3-demo-bucket/test.txt --dryrun", "allow", "s3 mv"),
    Row("s3 --dryrun rm s3://amzn-s3-demo-bucket/k", "allow", "s3 rm", "aws/dry-run"),
    Row("s3 cp test.txt s3://amzn-s3-demo-bucket/t --dry-run", "ask", "s3 cp", None),
    Row(
        "eks update-kubeconfig --name my-eks-cluster --dry-run",
        "allow",
        "eks update-kubeconfig",
        "aws/dry-run",
    ),
    Row(
        "ec2 terminate-instances --dry-run --cli-input-json file://x.json",
        "ask",
        "ec2 terminate-instances",
        "aws/dry-run-opaque",
    ),
    # changes and code
    Row(
        "ec2 terminate-instances --instance-ids i-1234567890abcdef0",
        "ask",
        "ec2 terminate-instances",
        "aws/mutate",
        source="awscli/examples/ec2/terminate-instances.rst",
    ),
    Row(
        "ec2 run-instances --image-id ami-0abcdef1234567890 --instance-type t2.micro "
        "--key-name MyKeyPair",
        "ask",
        "ec2 run-instances",
        "aws/mutate",
    ),
    Row(
        'lambda invoke --function-name my-function --payload \'{ "name": "Bob" }\' response.json',
        "ask",
        "lambda invoke",
        "aws/mutate",
    ),
    Row(
        "ssm send-command --document-name AWS-RunShellScript --parameters commands=ifconfig "
        "--targets Key=instanceids,Values=i-1",
        "ask",
        "ssm send-command",
        "aws/mutate",
    ),
    Row(
        "cloudformation deploy --template-file /path_to_template/template.json "
        "--stack-name my-new-stack --parameter-overrides Key1=Value1 Key2=Value2",
        "ask",
        "cloudformation deploy",
        "aws/mutate",
    ),
    Row("eks update-kubeconfig --name my-eks-cluster", "ask", "eks update-kubeconfig"),
    Row("configure set region us-west-2", "ask", "configure set", "aws/mutate"),
    Row("configure", "ask", "configure", "aws/mutate"),
    Row(
        "iam put-role-policy --role-name Test-Role --policy-name ExamplePolicy "
        "--policy-document file://AdminPolicy.json",
        "ask",
        "iam put-role-policy",
        "aws/mutate",
    ),
    Row("ssm start-session --target i-1", "ask", "ssm start-session", "aws/mutate"),
    Row("dynamodb scan --table-name MusicCollection", "ask", "dynamodb scan", None),
    # unknown services, operations and subcommands (an alias file may define any of them)
    Row("whoami", "ask", "whoami", None),
    Row("ec2 descibe-instances", "ask", "ec2 descibe-instances", None),
    Row("s3 list", "ask", "s3 list", None),
    Row("configure frob", "ask", "configure frob", None),
    Row("--page-size 5 ec2 describe-instances", "ask", "5", None),
]


@pytest.mark.parametrize("row", rows_params(ROWS))
def test_aws_table(row: Row) -> None:
    check_row("aws", row)


# --------------------------------------------------------------------------- the real aws CLI

# Rows where shield is stricter than the aws CLI: the CLI prints help, fails, or does
# something harmless, and shield still asks.
STRICTER = {
    "ec2 terminate-instances --instance-ids=i-1 help": "aws prints help; shield reads help "
    "only as the one word after the operation",
    "ec2 terminate-instances --instance-ids i-1 --no-dry-run help": "aws prints help; shield "
    "reads help only as the one word after the operation",
    "ec2 terminate-instances help --instance-ids i-1": "aws prints help; shield reads help "
    "only where no option can still take it",
    "ec2 terminate-instances --instance-ids i-1 --dry": "aws expands --dry to --dry-run; "
    "shield does not expand prefixes into a relaxing option without the option table",
    "s3 rm s3://amzn-s3-demo-bucket/test2.txt help": "aws fails (Unknown options: help)",
    "s3 cp test.txt s3://amzn-s3-demo-bucket/t --dry-run": "aws fails (Unknown options)",
    "configure export-credentials --profile prod": "a v2 command: v1 fails",
    "--page-size 5 ec2 describe-instances": "aws fails (5 is not a command)",
    "ec2 descibe-instances": "aws fails (invalid choice)",
    "s3 list": "aws fails (invalid choice)",
    "configure frob": "aws fails (invalid choice)",
    "whoami": "aws fails (invalid choice) without an alias file",
}


def _summary(real: AwsOutcome) -> dict[str, Any]:
    """The facts the comparison needs (JSON, so they can be kept in pytest's cache)."""
    p = real.params
    paths = p.get("paths")
    return {
        "ran": real.what in ("call", "custom"),
        "what": real.what,
        "name": real.name,
        "dry_run": bool(
            p.get("DryRun") is True or p.get("dryrun") is True or p.get("dry_run") is True
        ),
        "paths": list(paths) if isinstance(paths, list) else None,
        "delete": bool(p.get("delete")),
        "decrypt": bool(p.get("WithDecryption")),
    }


@pytest.fixture(scope="module")
def aws_real(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> dict[str, dict[str, Any]]:
    """What the aws CLI does with each row, remembered in pytest's cache per awscli version."""
    try:
        import awscli
    except ImportError:
        pytest.skip("awscli is not importable")
    key = f"shield/aws-outcomes/{awscli.__version__}"
    known: dict[str, dict[str, Any]] = pytestconfig.cache.get(key, {})
    todo = [r.line for r in ROWS if r.line not in known]
    if todo:
        home = tmp_path_factory.mktemp("aws")
        # the files the rows name with file:// (read by the CLI before any call)
        (home / "request-items.json").write_text('{"T": {"Keys": [{"k": {"S": "v"}}]}}')
        (home / "AdminPolicy.json").write_text('{"Version": "2012-10-17", "Statement": []}')
        (home / "p.json").write_text('{"Name": "p", "WithDecryption": true}')
        (home / "x.json").write_text('{"InstanceIds": ["i-1"], "DryRun": false}')
        (home / "ExampleEncryptedFile").write_bytes(b"\x01\x02")
        for line in todo:
            real = aws_outcome(list(parse("aws", line).argv), home)
            if real is None:
                pytest.skip("awscli is not importable")
            known[line] = _summary(real)
        pytestconfig.cache.set(key, known)
    return known


# the CLI's command name and botocore's service name differ for a few services
_SERVICE = {"s3api": "s3", "configservice": "config"}


@pytest.mark.parametrize("row", rows_params(ROWS))
def test_aws_table_agrees_with_the_real_aws_cli(
    row: Row, aws_real: dict[str, dict[str, Any]]
) -> None:
    inv = parse("aws", row.line)
    d = classify("aws", row.line)
    real = aws_real[row.line]
    if row.line in STRICTER:
        assert d.decision != "allow", STRICTER[row.line]
        return
    if not real["ran"]:
        # help, --version, a skeleton or a usage error: nothing was sent; shield reads help or
        # a dry run, or asks
        assert inv.kind == "help" or inv.dry_run or d.decision != "allow", (real, inv.kind)
        return
    assert inv.kind == "ok", f"aws ran {real['name']}, shield read {inv.kind}: {inv.note}"
    verb = " ".join(inv.verb)
    if inv.verb[1:2] == ("wait",):
        assert real["name"].startswith(inv.verb[0] + " "), real  # a waiter polls an operation
    else:
        service = _SERVICE.get(inv.verb[0], inv.verb[0])
        assert real["name"] == " ".join((service, *inv.verb[1:])), (real, verb)
    assert inv.dry_run == real["dry_run"], (real, inv.flags)
    if verb in ("s3 cp", "s3 sync", "s3 mv"):
        assert list(inv.args) == real["paths"]
    if verb == "s3 sync":
        assert real["delete"] == bool(inv.flags.get("--delete"))
    if real["decrypt"]:
        assert d.decision != "allow"


# --------------------------------------------------------------------------- alias file


def test_an_alias_file_defining_the_first_word_makes_it_ask(tmp_path: Path) -> None:
    run = pytest.importorskip("shim.run", reason="shim.run is not there yet")
    if not hasattr(run, "classify"):
        pytest.skip("shim.run.classify does not exist yet")
    alias = tmp_path / ".aws" / "cli" / "alias"
    alias.parent.mkdir(parents=True)
    alias.write_text("[toplevel]\nwhoami = sts get-caller-identity\ns3 = !rm -rf /tmp/x\n")
    env = {"HOME": str(tmp_path)}
    compiled = shipped()["aws"]
    shadowed = run.classify(compiled, ["s3", "ls"], env, str(tmp_path), "agent")
    assert shadowed.decision == "ask" and shadowed.invocation.kind == "unknown"
    assert run.classify(compiled, ["whoami"], env, str(tmp_path), "agent").decision == "ask"
    plain = run.classify(compiled, ["s3", "ls"], {"HOME": str(tmp_path / "none")}, "/", "agent")
    assert plain.decision == "allow"
