"""The approver's terminal with real shims (issue 15): a burst of held calls read as a queue,
decided in two commands; refused decisions flagged where the approver looks; the agent told who
approved its call and why.

Real shim processes on stand-in tools (tests/conftest.py); the approver is the `shield` CLI in
its own home, reading the agent's spool.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import World, shield
from tests.e2e.conftest import Approver

DEADLINE_S = 180.0

BURST = [
    *[["aws", "ec2", "terminate-instances", "--instance-ids", f"i-0{n}abcdef"] for n in range(6)],
    ["aws", "s3", "rm", "s3://scratch/old.log"],
    *[["kubectl", "-n", "shop", "rollout", "restart", f"deploy/web-{n}"] for n in range(4)],
    ["kubectl", "--context", "prod-eu", "delete", "namespace", "shop"],
    ["terraform", "apply", "-auto-approve"],
]


@pytest.fixture
def held(world: World) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def hold(world: World, argv: list[str], procs: list[subprocess.Popen[bytes]]) -> None:
    procs.append(
        subprocess.Popen(
            [str(world.bin / argv[0]), *argv[1:]],
            env=world.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=world.root,
        )
    )


def wait_for(approver: Approver, count: int) -> list[dict]:
    end = time.monotonic() + DEADLINE_S
    items: list[dict] = []
    while time.monotonic() < end:
        items = approver.pending()
        if len(items) >= count:
            return items
        time.sleep(0.2)
    raise AssertionError(f"{len(items)} of {count} requests reached the spool in time")


def cli(approver: Approver, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    return shield(
        *args,
        "--spool",
        str(approver.spool),
        home=approver.home,
        env={"COLUMNS": str(columns)},
        check=False,
    )


def test_a_burst_of_13_is_one_queue_approved_and_denied_in_two_commands(
    world: World, approver: Approver, held: list[subprocess.Popen[bytes]]
) -> None:
    for argv in BURST:
        hold(world, argv, held)
    items = wait_for(approver, len(BURST))
    by_id = {i["id"]: i for i in items}

    queue = cli(approver, "pending")
    assert queue.returncode == 0, queue.stderr
    lines = queue.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    rows = lines[1:14]
    assert {r.split()[0] for r in rows} == set(by_id)  # one line per request
    first = by_id[rows[0].split()[0]]
    assert (first["tool"], first["risk"]) == ("kubectl", "critical")
    assert first["argv"][-2:] == ["namespace", "shop"]
    assert lines[14].startswith("13 held requests: 1 critical, ")
    # the aws previews ran the stand-in, which prints no JSON: flagged, one line each
    assert sum("preview failed: describe-instances printed no JSON" in x for x in lines) == 6

    approved = cli(approver, "approve", "--all", "--tool", "aws", "--reason", "old test boxes")
    assert approved.returncode == 0, approved.stderr
    aws_ids = {rid for rid, i in by_id.items() if i["tool"] == "aws"}
    signed = [x for x in approved.stdout.splitlines() if x.startswith("approved ")]
    assert {x.split()[1] for x in signed} == aws_ids
    assert all("(risk high)" in x or "(risk medium)" in x for x in signed), signed

    rest = sorted(set(by_id) - aws_ids)
    denied = cli(approver, "deny", *rest, "--reason", "not during the freeze")
    assert denied.returncode == 0, denied.stderr
    assert {x.split()[1] for x in denied.stdout.splitlines() if x.startswith("denied ")} == set(
        rest
    )

    outcomes = {}
    for argv, proc in zip(BURST, held, strict=True):
        out, err = proc.communicate(timeout=DEADLINE_S)
        outcomes[" ".join(argv)] = (proc.returncode, err.decode())
    for line, (code, err) in outcomes.items():
        if line.startswith("aws "):
            assert code == 0, (line, err)
            assert "shield: aws: approved by alice: old test boxes" in err
        else:
            assert code == 126, (line, err)
            assert "denied by alice" in err and "not during the freeze" in err
    ran = [r["tool"] for r in world.records()]
    assert sorted(ran) == ["aws"] * 7
    assert json.loads(cli(approver, "pending", "--json").stdout) == []


def test_a_decision_signed_by_a_key_the_agent_does_not_trust_is_flagged_to_the_approver(
    world: World, approver: Approver, held: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    hold(world, ["kubectl", "-n", "shop", "rollout", "restart", "deploy/web"], held)
    (item,) = wait_for(approver, 1)
    assert set(item["trusted_keys"].values()) == {"alice"}  # in the signed request
    bob = Approver(tmp_path / "bob-home", approver.spool)
    shield("approver", "init", "--name", "bob", home=bob.home)

    signed = cli(bob, "approve", item["id"], "--reason", "looks fine")
    assert signed.returncode == 1
    assert signed.stdout.startswith(f"approved {item['id']} (risk medium)")
    assert "signed, but the agent's shim does not trust this home's key" in signed.stderr
    assert "it trusts: alice" in signed.stderr and "decides which keys count" in signed.stderr

    def flagged() -> str | None:
        out = cli(approver, "pending", columns=200).stdout
        return out if "refused" in out else None

    end = time.monotonic() + DEADLINE_S
    while (out := flagged()) is None and time.monotonic() < end:
        time.sleep(0.1)
    assert out is not None, "the refusal never reached the approver"
    assert (
        f"! {item['id']}  a decision by bob was refused: decision signed by an untrusted key" in out
    )
    shown = cli(approver, "show", item["id"]).stdout
    assert "a decision by bob was refused" in shown and "shield log on its side" in shown
    assert os.listdir(approver.spool / "rejected")  # the decision file itself, moved aside

    ok = cli(approver, "approve", item["id"], "--reason", "routine restart")
    assert ok.returncode == 0, ok.stderr
    out_b, err_b = held[0].communicate(timeout=DEADLINE_S)
    assert held[0].returncode == 0
    err = err_b.decode()
    assert "shield: kubectl: approved by alice: routine restart" in err
    assert "rollout restart deploy/web" in out_b.decode()
    security = [e for e in world.log() if e["event"] == "security"]
    assert len(security) == 1 and "untrusted key" in security[0]["detail"]
