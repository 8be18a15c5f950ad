"""The web page's server side in process (issue 12): the page and its headers, enrollment and
sign-in with a passkey (a software authenticator), sessions and CSRF, the cards' escaping, the
live feed and the history. The real browser is in tests/web."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shim.approval.passkey import DECISION_TYPE, b64url_decode
from shim.approval.request import new_request, request_from_dict, to_dict
from shim.approval.show import command_line
from shim.server import webstore
from shim.server.app import Relay, build_app
from shim.server.auth import new_token, token_hash
from shim.server.notify import NotifyConfig
from shim.server.session import site_of
from shim.server.store import SqliteStore, open_store
from tests.approval.softauthn import UP, SoftPasskey

PUBLIC = "https://relay.example"
PAGE = {"Origin": PUBLIC}


class Web:
    def __init__(self, client: TestClient, relay: Relay) -> None:
        self.client = client
        self.relay = relay
        self.tokens: dict[str, str] = {}

    @property
    def store(self) -> SqliteStore:
        assert isinstance(self.relay.store, SqliteStore)
        return self.relay.store

    def add(self, role: str, name: str) -> str:
        token = new_token()
        self.store.add_principal(role, name, token_hash(token), time.time())
        self.tokens[name] = token
        return token

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def link(self, name: str) -> str:
        token = f"enroll-{name}-{time.monotonic_ns()}"
        self.relay.web.add_enrollment(token_hash(token), name, time.time(), time.time() + 60)
        return token

    def enroll(self, key: SoftPasskey, name: str) -> dict[str, Any]:
        token = self.link(name)
        options = self.client.post(f"/api/v1/enroll/{token}/options", json={}, headers=PAGE)
        assert options.status_code == 200, options.text
        challenge = b64url_decode(options.json()["challenge"])
        done = self.client.post(
            f"/api/v1/enroll/{token}", json=key.registration(challenge), headers=PAGE
        )
        assert done.status_code == 201, done.text
        return done.json()

    def sign_in(self, key: SoftPasskey, **kw: Any) -> Any:
        options = self.client.post("/api/v1/session/options", json={}, headers=PAGE).json()
        answer = key.login(b64url_decode(options["challenge"]), **kw)
        return self.client.post("/api/v1/session", json=answer, headers=PAGE)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    store = open_store(str(tmp_path / "relay.db"))
    relay = Relay(store, NotifyConfig(public_url=PUBLIC))
    with TestClient(build_app(relay), base_url=PUBLIC) as client:
        w = Web(client, relay)
        w.add("agent", "bot")
        w.add("approver", "alice")
        yield w


def soft(name: str = "alice") -> SoftPasskey:
    return SoftPasskey(name, rp_id="relay.example", origin=PUBLIC)


def held(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        agent="bot", tool="kubectl", argv=["delete", "pod", "web"], cwd="/w",
        context={"context": "prod", "namespace": "shop"}, rule="kubectl/mutate",
        reason="changes the cluster", timeout_s=300,
    )  # fmt: skip
    fields.update(over)
    return to_dict(new_request(**fields))


def submit(web: Web, req: dict[str, Any]) -> None:
    r = web.client.post("/api/v1/requests", json=req, headers=web.bearer("bot"))
    assert r.status_code == 201, r.text


# --- the page itself --------------------------------------------------------------------------
def test_the_page_is_one_static_shell_with_a_strict_csp_and_no_request_data(web: Web) -> None:
    req = held()
    submit(web, req)
    pages = [web.client.get(p) for p in ("/", f"/r/{req['id']}", "/history", "/enroll/abc")]
    for page in pages:
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == pages[0].text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
    assert req["id"] not in pages[1].text and "delete" not in pages[1].text
    # no inline script or style anywhere: the CSP would block it
    assert "<script>" not in pages[0].text and "style=" not in pages[0].text
    assert web.client.get("/r/<script>").status_code == 404
    assert web.client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert web.client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert web.client.get("/static/../app.py").status_code == 404
    assert web.client.get("/static/index.html").status_code == 404


def test_the_script_never_writes_markup() -> None:
    script = (Path(__file__).parents[2] / "shim" / "server" / "static" / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


def test_the_api_answers_carry_no_store_and_the_static_files_an_etag(web: Web) -> None:
    assert web.client.get("/api/v1/health").headers["cache-control"] == "no-store"
    first = web.client.get("/static/app.js")
    again = web.client.get("/static/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


# --- enrollment, sign-in, sessions --------------------------------------------------------------
def test_enrolling_stores_the_credential_and_answers_with_the_trust_file(web: Web) -> None:
    key = soft()
    done = web.enroll(key, "alice")
    line = json.loads(done["file"])
    assert line == {
        "type": "shield.passkey/1",
        "approver": "alice",
        "credential_id": key.passkey.credential_id,
        "public_key": json.loads(key.passkey.to_line())["public_key"],
        "rp_id": "relay.example",
        "origin": PUBLIC,
    }
    assert done["fingerprint"] == key.passkey.fingerprint
    exported = web.client.get("/api/v1/passkeys/alice", headers=web.bearer("alice"))
    assert exported.text == done["file"]
    assert web.client.get("/api/v1/passkeys/alice").status_code == 401
    assert web.client.get("/api/v1/passkeys/alice", headers=web.bearer("bot")).status_code == 403


def test_an_enrollment_link_works_once(web: Web) -> None:
    token = web.link("alice")
    assert web.client.get(f"/api/v1/enroll/{token}").json()["approver"] == "alice"
    options = web.client.post(f"/api/v1/enroll/{token}/options", json={}, headers=PAGE).json()
    answer = soft().registration(b64url_decode(options["challenge"]))
    assert web.client.post(f"/api/v1/enroll/{token}", json=answer, headers=PAGE).status_code == 201
    again = web.client.post(f"/api/v1/enroll/{token}/options", json={}, headers=PAGE)
    assert again.status_code == 404 and "used already" in again.json()["error"]
    assert web.client.get(f"/api/v1/enroll/{token}").status_code == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"flags": UP | 0x40}, "verif"),
    ],
)
def test_an_enrollment_at_another_origin_or_without_user_verification_is_refused(
    web: Web, change: dict[str, Any], message: str
) -> None:
    token = web.link("alice")
    options = web.client.post(f"/api/v1/enroll/{token}/options", json={}, headers=PAGE).json()
    answer = soft().registration(b64url_decode(options["challenge"]), **change)
    r = web.client.post(f"/api/v1/enroll/{token}", json=answer, headers=PAGE)
    assert r.status_code == 400 and message in r.json()["error"].lower()
    assert web.relay.web.passkeys("alice") == []


def test_enrolling_needs_a_challenge_this_server_issued_for_this_link(web: Web) -> None:
    token, other = web.link("alice"), web.link("alice")
    options = web.client.post(f"/api/v1/enroll/{other}/options", json={}, headers=PAGE).json()
    answer = soft().registration(b64url_decode(options["challenge"]))
    r = web.client.post(f"/api/v1/enroll/{token}", json=answer, headers=PAGE)
    assert r.status_code == 400 and "expired" in r.json()["error"]


def test_signing_in_sets_a_strict_cookie_and_gives_a_csrf_token(web: Web) -> None:
    key = soft()
    web.enroll(key, "alice")
    r = web.sign_in(key)
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-shield_session=")
    for attr in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/"):
        assert attr in cookie
    me = web.client.get("/api/v1/session").json()
    assert me["approver"] == "alice" and me["csrf"] == r.json()["csrf"]
    assert me["credentials"] == [key.passkey.credential_id]
    assert web.client.get("/api/v1/page/feed").status_code == 200


def test_without_tls_the_cookie_is_not_secure() -> None:
    site = site_of("http://localhost:8421")
    from shim.server.session import cookie

    text = cookie(site, "v", 60)
    assert text.startswith("shield_session=v") and "Secure" not in text
    assert site.rp_id == "localhost" and site.origin == "http://localhost:8421"


@pytest.mark.parametrize(
    ("url", "rp_id", "origin"),
    [
        ("https://shield.example:8421/", "shield.example", "https://shield.example:8421"),
        ("https://shield.example:443", "shield.example", "https://shield.example"),
        ("http://127.0.0.1:8421", "", "http://127.0.0.1:8421"),
        ("https://10.0.0.5", "", "https://10.0.0.5"),
        ("http://shield.example", "", "http://shield.example"),
    ],
)
def test_the_relying_party_comes_from_the_public_url(url: str, rp_id: str, origin: str) -> None:
    site = site_of(url)
    assert (site.rp_id, site.origin) == (rp_id, origin)


def test_sign_in_is_refused_for_an_unknown_passkey_a_bad_assertion_or_a_replayed_one(
    web: Web,
) -> None:
    key = soft()
    web.enroll(key, "alice")
    assert web.sign_in(soft()).status_code == 401
    assert web.sign_in(key, flags=UP).status_code == 401
    assert web.sign_in(key, origin="https://evil.example").status_code == 401
    options = web.client.post("/api/v1/session/options", json={}, headers=PAGE).json()
    answer = key.login(b64url_decode(options["challenge"]))
    assert web.client.post("/api/v1/session", json=answer, headers=PAGE).status_code == 200
    again = web.client.post("/api/v1/session", json=answer, headers=PAGE)
    assert again.status_code == 401 and "expired" in again.json()["error"]


def test_enrolling_and_signing_in_only_from_the_page_origin(web: Web) -> None:
    token = web.link("alice")
    r = web.client.post(f"/api/v1/enroll/{token}/options", json={}, headers={"Origin": "https://x"})
    assert r.status_code == 403
    assert web.client.post("/api/v1/session/options", json={}).status_code == 403


def signed_in(web: Web) -> tuple[SoftPasskey, str]:
    key = soft()
    web.enroll(key, "alice")
    r = web.sign_in(key)
    return key, r.json()["csrf"]


def test_a_session_lists_and_relays_but_changes_nothing_without_csrf_and_origin(web: Web) -> None:
    key, csrf = signed_in(web)
    req = held()
    submit(web, req)
    decision = key.decide(request_from_dict(req))
    path = f"/api/v1/requests/{req['id']}/decisions"
    assert web.client.post(path, json=decision, headers=PAGE).status_code == 403
    no_origin = web.client.post(path, json=decision, headers={"X-Shield-CSRF": csrf})
    assert no_origin.status_code == 403
    wrong = web.client.post(path, json=decision, headers={**PAGE, "X-Shield-CSRF": "x" * 43})
    assert wrong.status_code == 403
    assert web.relay.store.statement_count(req["id"]) == 0
    ok = web.client.post(path, json=decision, headers={**PAGE, "X-Shield-CSRF": csrf})
    assert ok.status_code == 201, ok.text
    # the server relays the passkey decision as posted: only the shim judges it
    stored = web.client.get(f"/api/v1/requests/{req['id']}").json()
    assert stored["decisions"][0]["decision"] == decision
    assert stored["status"] == "pending"


def test_a_session_cannot_submit_or_withdraw_as_an_agent(web: Web) -> None:
    _, csrf = signed_in(web)
    req = held()
    r = web.client.post("/api/v1/requests", json=req, headers={**PAGE, "X-Shield-CSRF": csrf})
    assert r.status_code == 403


def test_signing_out_ends_the_session(web: Web) -> None:
    _, csrf = signed_in(web)
    assert web.client.delete("/api/v1/session", headers=PAGE).status_code == 403
    out = web.client.delete("/api/v1/session", headers={**PAGE, "X-Shield-CSRF": csrf})
    assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
    assert web.client.get("/api/v1/page/feed").status_code == 401


def test_a_forged_or_expired_session_cookie_is_refused(web: Web) -> None:
    web.client.cookies.set("__Host-shield_session", "forged")
    assert web.client.get("/api/v1/page/feed").status_code == 401
    value = "v" * 43
    web.relay.web.add_session(token_hash(value), "alice", "c", "x", time.time() - 100, 10)
    web.client.cookies.set("__Host-shield_session", value)
    assert web.client.get("/api/v1/page/feed").status_code == 401


def test_the_server_checks_a_passkey_decisions_shape_and_target(web: Web) -> None:
    req = held()
    submit(web, req)
    decision = soft().decide(request_from_dict(req))
    path = f"/api/v1/requests/{req['id']}/decisions"
    for bad in (
        {**decision, "extra": "x"},
        {k: v for k, v in decision.items() if k != "signature"},
        {**decision, "signature": 5},
        {**decision, "id": "zzzzzz"},
    ):
        r = web.client.post(path, json=bad, headers=web.bearer("alice"))
        assert r.status_code == 400, bad
    r = web.client.post(path, json={**decision, "digest": "0" * 64}, headers=web.bearer("alice"))
    assert r.status_code == 409
    assert decision["type"] == DECISION_TYPE


# --- the cards, the feed, the history -----------------------------------------------------------
def test_cards_escape_the_agents_words_exactly_as_shield_pending_does(web: Web) -> None:
    nasty = ["delete", "pod", "web\x1b[31m", "\u202egnp.exe", "a b"]
    req = held(argv=nasty, reason="bidi \u202e and\nnewline", context={"context": "p\x07rod"})
    submit(web, req)
    feed = web.client.get("/api/v1/page/feed", headers=web.bearer("alice")).json()
    card = feed["cards"][0]
    assert card["command"] == command_line(["kubectl", *nasty])
    assert "\\x1b[31m" in card["command"] and "\\u202e" in card["command"]
    assert "\x1b" not in json.dumps(card, ensure_ascii=False)
    assert "\u202e" not in json.dumps(card, ensure_ascii=False)
    assert card["reason"] == "bidi \\u202e and\\x0anewline"
    assert card["context"] == "context=p\\x07rod"
    assert card["digest"] == req["digest"] and card["status"] == "pending"


def test_a_card_whose_stored_body_was_edited_says_so(web: Web) -> None:
    req = held()
    submit(web, req)
    body = {**req, "argv": ["get", "pods"]}
    with web.store.transaction() as cur:
        cur.execute("UPDATE requests SET body = ? WHERE id = ?", (json.dumps(body), req["id"]))
    card = web.client.get("/api/v1/page/feed", headers=web.bearer("alice")).json()["cards"][0]
    assert card["status"] == "modified" and "edited" in card["warning"]
    assert card["digest"] != req["digest"]  # recomputed from what is shown, never the stored one


def test_the_feed_needs_an_approver(web: Web) -> None:
    assert web.client.get("/api/v1/page/feed").status_code == 401
    assert web.client.get("/api/v1/page/feed", headers=web.bearer("bot")).status_code == 403
    assert web.client.get("/api/v1/page/history", headers=web.bearer("bot")).status_code == 403


def test_the_feed_waits_while_nothing_changes_and_reports_closed_requests(web: Web) -> None:
    alice = web.bearer("alice")
    first = web.client.get("/api/v1/page/feed", headers=alice).json()
    assert first["cards"] == [] and first["approver"] == "alice"
    started = time.monotonic()
    same = web.client.get(
        f"/api/v1/page/feed?seen={first['version']}&wait=0.5", headers=alice
    ).json()
    assert time.monotonic() - started >= 0.4
    assert same["version"] == first["version"]
    req = held()
    submit(web, req)
    new = web.client.get(f"/api/v1/page/feed?seen={first['version']}&wait=5", headers=alice)
    assert [c["id"] for c in new.json()["cards"]] == [req["id"]]
    body = {"outcome": "denied", "approver": "bob", "reason": "not now", "channel": "server"}
    web.client.post(f"/api/v1/requests/{req['id']}/withdraw", json=body, headers=web.bearer("bot"))
    closed = web.client.get("/api/v1/page/feed", headers=alice).json()
    assert closed["cards"] == []
    assert closed["closed"][0]["id"] == req["id"]
    assert (closed["closed"][0]["status"], closed["closed"][0]["reason"]) == ("denied", "not now")
    history = web.client.get("/api/v1/page/history", headers=alice).json()["items"]
    assert history[0]["approver"] == "bob" and history[0]["command"] == "kubectl delete pod web"
    one = web.client.get(f"/api/v1/page/requests/{req['id']}", headers=alice).json()
    assert one["card"] is None and one["closed"]["status"] == "denied"


def test_a_cards_posted_list_shows_what_the_server_holds_escaped(web: Web) -> None:
    req = held()
    submit(web, req)
    decision = soft("al\x1bice").decide(request_from_dict(req))
    with web.store.transaction() as cur:
        cur.execute(
            "INSERT INTO decisions (kind, request_id, agent, body, posted_by, received) "
            "VALUES ('decision', ?, 'bot', ?, 'alice', 0)",
            (req["id"], json.dumps(decision)),
        )
    card = web.client.get("/api/v1/page/feed", headers=web.bearer("alice")).json()["cards"][0]
    assert card["posted"] == ["al\\x1bice approve (passkey)"]


def test_a_cards_refusal_notes_are_apart_from_the_decisions_posted(web: Web) -> None:
    # the agent's shim refused a decision and said why: the card says so, escaped, and does
    # not count the note as a decision posted
    req = held()
    submit(web, req)
    note = {"why": "untrusted key\x1b[2J", "approver": "mallory", "channel": "server"}
    r = web.client.post(
        f"/api/v1/requests/{req['id']}/refusals", json=note, headers=web.bearer("bot")
    )
    assert r.status_code == 201, r.text
    card = web.client.get("/api/v1/page/feed", headers=web.bearer("alice")).json()["cards"][0]
    assert card["posted"] == []
    assert card["refused"] == ["untrusted key\\x1b[2J (claimed by mallory)"]


def test_anyone_asking_for_sign_in_challenges_cannot_grow_the_table(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sign-in options need no session: past the cap they are refused, and nothing is stored
    monkeypatch.setattr(webstore, "MAX_CHALLENGES", 5)
    codes = [
        web.client.post("/api/v1/session/options", json={}, headers=PAGE).status_code
        for _ in range(8)
    ]
    assert codes == [200] * 5 + [429] * 3
    with web.store.reading() as cur:
        assert web.store._run(cur, "SELECT COUNT(*) FROM challenges", ()).fetchone()[0] == 5


def test_on_an_ip_address_the_page_says_passkeys_cannot_work(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "relay.db"))
    relay = Relay(store, NotifyConfig(public_url="http://127.0.0.1:8421"))
    with TestClient(build_app(relay), base_url="http://127.0.0.1:8421") as client:
        assert client.get("/api/v1/page/site").json()["passkeys"] is False
        r = client.post(
            "/api/v1/session/options", json={}, headers={"Origin": "http://127.0.0.1:8421"}
        )
        assert r.status_code == 409 and "--public-url" in r.json()["error"]
