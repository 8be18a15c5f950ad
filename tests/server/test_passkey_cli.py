"""`shield serve approver add/enroll/export` and `shield trust add` of a passkey credential
(issue 12), as real processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from shim.server.store import open_store
from shim.server.webstore import PasskeyRow, WebStore
from tests.approval.softauthn import SoftPasskey
from tests.conftest import shield


def one_line_error(proc, *words: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    first = proc.stderr.splitlines()[0]
    for word in words:
        assert word in first, proc.stderr


def test_approver_add_prints_the_token_and_a_one_time_enrollment_link(tmp_path: Path) -> None:
    data = json.loads(shield("serve", "approver", "add", "alice", "--json", home=tmp_path).stdout)
    assert data["token"].startswith("shield_")
    assert data["enroll_url"].startswith("http://localhost:8421/enroll/")
    token = data["enroll_url"].rsplit("/", 1)[1]
    assert len(token) >= 40
    db = tmp_path / "server" / "shield.db"
    assert token.encode() not in db.read_bytes()  # only its hash is stored
    plain = shield("serve", "approver", "add", "bob", home=tmp_path)
    assert plain.stdout.strip().startswith("shield_") and len(plain.stdout.splitlines()) == 1
    assert "http://localhost:8421/enroll/" in plain.stderr
    assert "shield trust add bob.passkey" in plain.stderr
    # the address is only the default: a server started with --public-url is reached elsewhere
    assert "this link's address is the default" in plain.stderr
    assert "--public-url URL" in plain.stderr


def test_the_link_uses_the_public_url_from_the_flag_or_serve_json(tmp_path: Path) -> None:
    flag = shield(
        "serve", "approver", "add", "alice", "--json", "--public-url", "https://shield.example/",
        home=tmp_path,
    )  # fmt: skip
    assert json.loads(flag.stdout)["enroll_url"].startswith("https://shield.example/enroll/")
    (tmp_path / "serve.json").write_text(json.dumps({"public_url": "https://ops.example:8421"}))
    conf = shield("serve", "approver", "enroll", "alice", "--json", home=tmp_path)
    assert json.loads(conf.stdout)["enroll_url"].startswith("https://ops.example:8421/enroll/")
    (tmp_path / "serve.json").write_text(json.dumps({"listen": "0.0.0.0:9000", "cert": "c"}))
    listen = shield("serve", "approver", "enroll", "alice", home=tmp_path)
    assert listen.stdout.startswith("https://0.0.0.0:9000/enroll/")
    assert "this link's address is the default" in listen.stderr
    named = shield(
        "serve", "approver", "enroll", "alice", "--public-url", "https://x.example", home=tmp_path
    )
    assert "the default" not in named.stderr


def test_enroll_and_export_refuse_unknown_approvers_and_missing_passkeys(tmp_path: Path) -> None:
    one_line_error(
        shield("serve", "approver", "enroll", "carol", home=tmp_path, check=False), "carol"
    )
    shield("serve", "approver", "add", "alice", home=tmp_path)
    one_line_error(
        shield("serve", "approver", "export", "alice", home=tmp_path, check=False),
        "no passkey enrolled",
    )


def test_an_exported_credential_is_trusted_with_trust_add(tmp_path: Path) -> None:
    server = tmp_path / "server-home"
    shield("serve", "approver", "add", "alice", home=server)
    key = SoftPasskey("alice", rp_id="shield.example", origin="https://shield.example")
    store = open_store(str(server / "server" / "shield.db"))
    try:
        web = WebStore(store)
        web.add_enrollment("h", "alice", time.time(), time.time() + 60)
        line = json.loads(key.passkey.to_line())
        row = PasskeyRow(
            line["credential_id"], "alice", line["public_key"], 0, line["rp_id"],
            line["origin"], time.time(),
        )  # fmt: skip
        assert web.enroll("h", row, time.time())
        assert not web.enroll("h", row, time.time())  # the link works once
    finally:
        store.close()
    exported = shield("serve", "approver", "export", "alice", home=server).stdout
    assert exported == key.passkey.to_line()
    path = tmp_path / "alice.passkey"
    path.write_text(exported)
    agent = tmp_path / "agent"
    out = shield("trust", "add", str(path), home=agent).stdout
    assert f"trusted alice's passkey (fingerprint {key.passkey.fingerprint}" in out
    assert (agent / "trust" / f"alice-{key.passkey.fingerprint}.passkey").read_text() == exported
    doctor = shield("doctor", home=agent, check=False).stdout
    assert "0 trusted approver key(s) and 1 passkey(s)" in doctor


def test_trust_add_refuses_a_broken_credential_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.passkey"
    bad.write_text('{"type": "shield.passkey/1", "approver": "alice"}\n')
    one_line_error(
        shield("trust", "add", str(bad), home=tmp_path, check=False), "not a shield passkey"
    )
    assert not (tmp_path / "trust").exists()


def test_trust_list_shows_passkeys_beside_keys_and_remove_takes_them_out(tmp_path: Path) -> None:
    from shim.keys import init_approver, public_key_path

    agent = tmp_path / "agent"
    init_approver(str(tmp_path / "alice"), "alice")
    shield("trust", "add", public_key_path(str(tmp_path / "alice")), home=agent)
    key = SoftPasskey("alice", rp_id="shield.example", origin="https://shield.example")
    (tmp_path / "alice.passkey").write_text(key.passkey.to_line())
    shield("trust", "add", str(tmp_path / "alice.passkey"), home=agent)
    listed = json.loads(shield("trust", "list", "--json", home=agent).stdout)
    assert sorted((k["name"], k["kind"]) for k in listed) == [
        ("alice", "ed25519"),
        ("alice", "passkey"),
    ]
    assert "passkey" in shield("trust", "list", home=agent).stdout
    # alice's key and alice's passkey are two things to trust: a name alone is ambiguous
    both = shield("trust", "remove", "alice", home=agent, check=False)
    assert both.returncode == 1 and "names 2 different keys" in both.stderr
    shield("trust", "remove", key.passkey.fingerprint, home=agent)
    left = json.loads(shield("trust", "list", "--json", home=agent).stdout)
    assert [k["kind"] for k in left] == ["ed25519"]
    assert not list((agent / "trust").glob("*.passkey"))
