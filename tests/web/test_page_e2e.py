"""The approvers' page end to end, in a real browser (issue 12): enroll a passkey, trust it in
an agent home, approve and deny held calls from the page; the shim verifies every assertion.

Chromium (Debian's) through Playwright, with a virtual authenticator per approver: real
WebAuthn ceremonies, real `shield serve`, real shims, real terraform."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from shim import canon
from tests.conftest import World
from tests.server.conftest import events, finish, start, wait_until
from tests.web.browser import Person
from tests.web.conftest import Site


def held_id(world: World, count: int = 1) -> str:
    wait_until(lambda: len(events(world, "held")) >= count, what="the call to be held")
    return events(world, "held")[count - 1]["request"]


def test_terraform_apply_approved_from_the_page_runs_and_the_log_names_alice(
    world: World, site: Site, alice_web: Person, tf_project: tuple[Path, dict[str, str]]
) -> None:
    work, env = tf_project
    tf = ["terraform", f"-chdir={work}"]
    init = subprocess.run([*tf, "init", "-input=false"], env=env, capture_output=True, timeout=120)
    assert init.returncode == 0, init.stderr
    proc = start(world, *tf, "apply", "-auto-approve", "-input=false", env=env)
    rid = held_id(world)
    card = alice_web.wait_card(rid, deadline_s=120)
    text = card.inner_text()
    assert "terraform plan (workspace default): 1 to add, 0 to change, 0 to destroy" in text
    assert "+ terraform_data.web" in text
    assert f"terraform -chdir={work} apply -auto-approve -input=false" in text
    assert "agent" in text and "test-bot" in text and "[terraform/mutate]" in text
    assert "expires in" in text
    assert world.records() == []
    result = alice_web.decide(rid, "approve", "planned change")
    assert result.startswith(("Approved", f"{rid} approved")), result
    code, _, err = finish(proc, timeout=180)
    assert code == 0, err
    state = json.loads((work / "terraform.tfstate").read_text())
    assert [r["type"] for r in state["resources"]] == ["terraform_data"]
    approved = events(world, "approved")[-1]
    assert approved["request"] == rid
    assert (approved["approver"], approved["channel"], approved["signer"]) == (
        "alice",
        "server",
        "passkey",
    )
    assert approved["reason"] == "planned change"
    executed = events(world, "executed")[-1]
    assert (executed["approver"], executed["exit"]) == ("alice", 0)
    # the card drops off with a short note, and the history has it
    note = alice_web.page.locator(f"#note-{rid}")
    note.wait_for()
    assert note.inner_text() == f"{rid} approved by alice (server)"
    alice_web.page.goto(site.base + "/history")
    assert "agent's shim reported" in alice_web.page.locator("#reported").inner_text()
    item = alice_web.page.locator("ol.history li").first
    item.wait_for()
    assert rid in item.inner_text() and "approved by alice" in item.inner_text()


def test_a_deny_with_a_reason_from_the_page_reaches_the_agent(
    world: World, site: Site, alice_web: Person
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web")
    rid = held_id(world)
    # Deny needs a reason: the agent is told why
    card = alice_web.wait_card(rid)
    card.locator("button.deny").click()
    assert "Type a reason first" in card.locator(".result").inner_text()
    assert proc.poll() is None
    result = alice_web.decide(rid, "deny", "not during the freeze")
    assert result.startswith(("Denied", f"{rid} denied")), result
    code, _, err = finish(proc)
    assert code == 126
    assert "denied by alice" in err and "not during the freeze" in err
    assert world.records() == []
    denied = events(world, "denied")[-1]
    assert (denied["approver"], denied["signer"], denied["channel"]) == (
        "alice",
        "passkey",
        "server",
    )
    alice_web.page.locator(f"#note-{rid}").wait_for()
    assert "denied by alice (server): not during the freeze" in alice_web.page.inner_text("main")


def test_the_request_link_opens_its_own_page_after_signing_in(
    world: World, site: Site, alice_web: Person, browser: object
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web")
    rid = held_id(world)
    err = b""
    assert proc.stderr is not None
    while f"/r/{rid}".encode() not in err:
        err += proc.stderr.readline()
    link = f"{site.base}/r/{rid}"
    assert link.encode() in err  # what the agent's stderr (and notifications) carry
    # alice on another device: signs in from the link, lands on that request alone
    phone = Person(browser, viewport={"width": 390, "height": 844})
    try:
        for cred in alice_web.credentials():
            phone.cdp.send(
                "WebAuthn.addCredential",
                {"authenticatorId": phone.authenticator, "credential": cred},
            )
        phone.sign_in(site.base, f"/r/{rid}")
        assert phone.page.url == link
        phone.wait_card(rid)
        assert phone.page.locator("article.card").count() == 1
        assert phone.decide(rid, "approve").startswith(("Approved", f"{rid} approved by alice"))
        code, _, _ = finish(proc)
        assert code == 0
        phone.page.locator(f"#note-{rid}").wait_for()
        # the link still says how it ended, later
        phone.page.reload()
        note = phone.page.locator(f"#note-{rid}")
        note.wait_for()
        assert note.inner_text() == f"{rid} approved by alice (server)"
        # which the page says is the agent's report, not something the server saw
        assert "reported" in phone.page.locator("#reported").inner_text()
    finally:
        phone.close()


def test_cards_arrive_live_and_an_expired_request_drops_off_with_a_note(
    world: World, site: Site, alice_web: Person
) -> None:
    alice_web.page.locator("#live", has_text="Live").wait_for()
    proc = start(world, "kubectl", "delete", "pod", "web", env=world.env(SHIELD_HOLD_TIMEOUT="4"))
    rid = held_id(world)
    alice_web.wait_card(rid)  # no reload: the feed brought it
    note = alice_web.page.locator(f"#note-{rid}")
    note.wait_for(timeout=30_000)
    assert note.inner_text() == f"{rid} expired without a decision"
    assert alice_web.card(rid).count() == 0
    code, _, _ = finish(proc)
    assert code == 124


def test_request_data_is_text_on_the_page_never_markup(
    world: World, site: Site, alice_web: Person
) -> None:
    evil = ['<img src=x onerror="document.title=1">', "<script>alert(1)</script>", "\x1b[2J\u202e"]
    proc = start(world, "kubectl", "delete", "pod", *evil)
    rid = held_id(world)
    card = alice_web.wait_card(rid)
    command = card.locator("pre.command").inner_text()
    assert command == (
        "kubectl delete pod '<img src=x onerror=\"document.title=1\">' "
        "'<script>alert(1)</script>' '\\x1b[2J\\u202e'"
    )
    assert alice_web.page.locator("main img, main script").count() == 0
    assert alice_web.page.title() != "1"
    alice_web.decide(rid, "deny", "no")
    finish(proc)


def test_the_page_is_readable_on_a_phone(
    world: World, site: Site, alice_web: Person, browser: object
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "a-very-long-pod-name-" + "x" * 80)
    rid = held_id(world)
    phone = Person(browser, viewport={"width": 360, "height": 740})
    try:
        phone.context.add_cookies(alice_web.context.cookies())
        phone.page.goto(site.base)
        card = phone.wait_card(rid)
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the page scrolls sideways on a phone ({width}px)"
        box = card.locator("button.approve").bounding_box()
        assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= 360
    finally:
        phone.close()
    alice_web.decide(rid, "deny", "test over")
    finish(proc)


def test_the_pages_canonical_json_is_shim_canons(alice_web: Person) -> None:
    values = [
        {"b": 1, "a": [True, False, None], "c": {"z": "", "y": "x"}},
        {"reason": 'quote " backslash \\ tab \t newline \n nul \x00 del \x7f'},
        {"reason": "é ü 日本 \u2028 \u202e emoji 🚀 astral 𝄞"},
        {"reason": "\ud800 lone surrogate"},
        {"n": -12345678901, "m": 0},
    ]
    for value in values:
        got = alice_web.page.evaluate("(v) => window.shield.canon(v)", value)
        assert got == canon.encode(value), value


def test_without_a_session_the_page_lists_nothing(site: Site, browser: object) -> None:
    stranger = Person(browser)
    try:
        stranger.page.goto(site.base + "/")
        stranger.page.locator("#signin").wait_for()
        assert stranger.page.locator("article.card").count() == 0
        try:
            urllib.request.urlopen(site.base + "/api/v1/page/feed", timeout=10)
            raise AssertionError("the feed answered without a session")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        # a passkey this server never enrolled does not sign in
        stranger.page.click("#signin")
        stranger.page.locator(".result", has_text="Not signed in").wait_for()
    finally:
        stranger.close()


def test_approve_and_grant_from_the_page_lets_like_calls_run_signed_by_the_passkey(
    world: World, site: Site, alice_web: Person
) -> None:
    """The card's "and let ... for 15 minutes" box: the passkey signs a grant over the card's
    scope; the next call in that scope runs without a hold, one elsewhere is held, and the
    grant edited on the server (another namespace, a new id) is refused by the shim."""
    import sqlite3

    call = ["kubectl", "-n", "shop", "rollout", "restart", "deploy/api"]
    proc = start(world, *call)
    rid = held_id(world)
    card = alice_web.wait_card(rid)
    label = card.locator("label.grant")
    assert label.inner_text().strip() == (
        "and let test-bot run kubectl/mutate in namespace=shop for 15 minutes"
    )
    label.locator("input").check()
    card.locator("button.approve").click()
    code, _, err = finish(proc)
    assert code == 0, err
    db = site.relay.home / "server" / "shield.db"

    def grants() -> list[dict]:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT body FROM decisions WHERE kind = 'grant'").fetchall()
        return [json.loads(body) for (body,) in rows]

    wait_until(grants, what="the page's grant on the server")
    (posted,) = grants()
    assert posted["approver"] == "alice" and "credential" in posted and "sig" not in posted
    assert (posted["agent"], posted["rules"], posted["target"]) == (
        "test-bot",
        ["kubectl/mutate"],
        {"namespace": "shop"},
    )
    # a like call runs at once, under the grant, and the log says a passkey signed it
    ran = world.run("kubectl", "-n", "shop", "rollout", "restart", "deploy/web")
    assert ran.returncode == 0, ran.stderr
    (used,) = events(world, "granted")
    assert (used["grant"], used["approver"], used["signer"]) == (posted["id"], "alice", "passkey")
    # the same grant moved to another namespace (by the server, or anyone who writes its
    # database) no longer matches the passkey's signature: refused, and the call is held
    moved = {**posted, "id": "gforged1", "target": {"namespace": "payments"}}
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO decisions (kind, request_id, agent, body, posted_by, received) "
            "VALUES ('grant', NULL, 'test-bot', ?, 'alice', 0)",
            (canon.encode(moved),),
        )
    other = world.run(
        "kubectl", "-n", "payments", "rollout", "restart", "deploy/api",
        env=world.env(SHIELD_HOLD_TIMEOUT="1"),
    )  # fmt: skip
    assert other.returncode == 124, other.stderr
    forged = [e for e in events(world, "security") if "gforged1" in e["detail"]]
    assert forged and "passkey assertion refused" in forged[0]["detail"], forged
    assert len(events(world, "granted")) == 1
