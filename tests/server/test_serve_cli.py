"""`shield serve` and the server options of install/pending/approve: one-line errors for the
faults an operator meets first (issue 11)."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

from tests.conftest import World, shield
from tests.server.conftest import Relay


def one_line_error(proc, *words: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("shield: ") and len(lines) <= 2, proc.stderr
    for word in words:
        assert word in proc.stderr


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        proc = shield("serve", "--listen", f"127.0.0.1:{port}", home=tmp_path, check=False)
    one_line_error(proc, f"127.0.0.1:{port} is in use")


def test_unreachable_database(tmp_path: Path) -> None:
    proc = shield(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        "postgresql://u:pw@127.0.0.1:1/x",
        home=tmp_path,
        check=False,
    )
    one_line_error(proc, "cannot connect to the database", "127.0.0.1:1")
    assert "pw" not in proc.stderr


def test_bad_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    proc = shield(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        str(cert),
        "--key",
        str(key),
        home=tmp_path,
        check=False,
    )
    one_line_error(proc, "cannot use the certificate")
    half = shield("serve", "--cert", str(cert), home=tmp_path, check=False)
    one_line_error(half, "both --cert and --key")


def test_bad_listen_address(tmp_path: Path) -> None:
    one_line_error(shield("serve", "--listen", "nowhere", home=tmp_path, check=False), "HOST:PORT")


def test_agent_and_approver_tokens_are_printed_once_and_only_hashes_kept(tmp_path: Path) -> None:
    out = shield("serve", "agent", "add", "deploy-bot", "--json", home=tmp_path).stdout
    data = json.loads(out)
    assert data["name"] == "deploy-bot" and data["token"].startswith("shield_")
    plain = shield("serve", "approver", "add", "alice", home=tmp_path)
    assert plain.stdout.strip().startswith("shield_") and len(plain.stdout.splitlines()) == 1
    again = shield("serve", "agent", "add", "deploy-bot", home=tmp_path, check=False)
    one_line_error(again, "exists already", "--replace")
    db = tmp_path / "server" / "shield.db"
    assert data["token"].encode() not in db.read_bytes()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    bad = shield("serve", "agent", "add", "no spaces please", home=tmp_path, check=False)
    one_line_error(bad, "not a valid name")


def test_install_with_server_bakes_url_and_token_into_the_agent_home(
    world: World, relay: Relay
) -> None:
    token = relay.token("agent", "test-bot")
    world.install("--server", relay.url + "/", "--token-file", str(token))
    settings = json.loads((world.home / "server.json").read_text())
    assert settings["url"] == relay.url
    baked = (world.home / "server-token").read_text().strip()
    assert baked == token.read_text().strip()
    assert stat.S_IMODE((world.home / "server-token").stat().st_mode) == 0o640
    shim_text = (world.bin / "kubectl").read_text()
    assert relay.url in shim_text and token.read_text().strip() not in shim_text
    # a re-install without --server keeps the server; --no-server drops it
    world.install()
    assert relay.url in (world.bin / "kubectl").read_text()
    world.install("--no-server")
    assert relay.url not in (world.bin / "kubectl").read_text()
    assert not (world.home / "server-token").exists()


def test_a_re_install_with_server_keeps_the_pinned_binaries_and_the_spool(
    world: World, relay: Relay, tmp_path: Path
) -> None:
    """The README's "Approvers anywhere" step 2 re-runs `shield install --server ...` over an
    install.sh setup (real binaries pinned, a shared spool): the shims keep both, instead of
    falling back to the real binary on PATH and a spool the agent's user cannot write."""
    from shim.baked import read_shim_config

    real = tmp_path / "pinned-kubectl"
    real.write_text("#!/bin/sh\n")
    real.chmod(0o755)
    spool = tmp_path / "shared-spool"
    world.install("--real", f"kubectl={real}", "--spool", str(spool))
    token = relay.token("agent", "test-bot")
    world.install("--server", relay.url, "--token-file", str(token))
    kubectl = read_shim_config(str(world.bin / "kubectl"))
    assert kubectl is not None
    assert kubectl["real"] == str(real) and kubectl["spool"] == str(spool)
    assert kubectl["server"]["url"] == relay.url
    helm = read_shim_config(str(world.bin / "helm"))
    assert helm is not None and helm["real"] is None and helm["spool"] == str(spool)
    # given again, an option wins over what the shims had
    other = tmp_path / "other-spool"
    world.install("--spool", str(other))
    again = read_shim_config(str(world.bin / "kubectl"))
    assert again is not None and again["spool"] == str(other) and again["real"] == str(real)


def test_install_refuses_a_bad_server_url_or_missing_token(world: World, tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text("shield_abc\n")
    bad = shield(
        "install",
        "--dir",
        str(world.bin),
        "--server",
        "ftp://x",
        "--token-file",
        str(token),
        home=world.home,
        check=False,
    )
    one_line_error(bad, "is not a server URL")
    missing = shield(
        "install",
        "--dir",
        str(world.bin),
        "--server",
        "http://127.0.0.1:1",
        home=world.home,
        check=False,
    )
    one_line_error(missing, "--token-file")


def test_the_agents_environment_cannot_move_the_server(
    world: World, relay: Relay, tmp_path: Path
) -> None:
    token = relay.token("agent", "test-bot")
    world.install("--server", relay.url, "--token-file", str(token))
    # SHIELD_SERVER and SHIELD_TOKEN_FILE are for the approver's commands only: a shim ignores
    # them, so an agent cannot send its held calls to a relay of its own
    elsewhere = "http://127.0.0.1:9"
    env = world.env(
        SHIELD_SERVER=elsewhere, SHIELD_TOKEN_FILE=str(tmp_path / "nope"), SHIELD_HOLD_TIMEOUT="1"
    )
    proc = world.run("kubectl", "delete", "pod", "web", env=env)
    assert proc.returncode == 124
    assert f"{relay.public}/r/" in proc.stderr.decode()
    assert elsewhere not in proc.stderr.decode()


def test_approver_commands_need_a_token_with_a_server(tmp_path: Path) -> None:
    proc = shield("pending", "--server", "http://127.0.0.1:1", home=tmp_path, check=False)
    one_line_error(proc, "--token-file")
    token = tmp_path / "t"
    token.write_text("shield_x\n")
    down = shield(
        "pending",
        "--server",
        "http://127.0.0.1:1",
        "--token-file",
        str(token),
        home=tmp_path,
        check=False,
    )
    one_line_error(down, "no answer from http://127.0.0.1:1")


def test_a_wrong_approver_token_is_one_line(relay: Relay, tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text("shield_" + "y" * 43 + "\n")
    proc = shield(
        "pending", "--server", relay.url, "--token-file", str(token), home=tmp_path, check=False
    )
    one_line_error(proc, "unknown token")
