"""The relay's HTTP API in process (Starlette's TestClient): who may do what, and bad input
answered with a 4xx JSON error that stores nothing (issue 11)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shim import keys
from shim.approval.decision import sign_decision
from shim.approval.request import new_request, to_dict
from shim.server.app import MAX_REFUSALS, Relay, build_app
from shim.server.auth import new_token, token_hash
from shim.server.notify import NotifyConfig
from shim.server.store import SqliteStore, open_store


class Api:
    def __init__(self, client: TestClient, store: SqliteStore, approver_home: Path) -> None:
        self.client = client
        self.store = store
        self.approver_home = approver_home
        self.tokens: dict[str, str] = {}

    def add(self, role: str, name: str) -> str:
        token = new_token()
        self.store.add_principal(role, name, token_hash(token), time.time())
        self.tokens[name] = token
        return token

    def call(self, method: str, path: str, who: str | None = None, **kw):
        headers = kw.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(who, who)}"
        return self.client.request(method, path, headers=headers, **kw)

    def rows(self) -> tuple[int, int]:
        with self.store.transaction() as cur:
            requests = cur.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
            decisions = cur.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        return requests, decisions


def held(agent: str = "bot", timeout_s: float = 300, **over) -> dict:
    fields = dict(
        agent=agent, tool="kubectl", argv=["delete", "pod", "web"], cwd="/w",
        context={"namespace": "prod"}, rule="kubectl/mutate", reason="changes the cluster",
        timeout_s=timeout_s,
    )  # fmt: skip
    fields.update(over)
    return to_dict(new_request(**fields))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    store = open_store(str(tmp_path / "relay.db"))
    assert isinstance(store, SqliteStore)
    relay = Relay(store, NotifyConfig(public_url="https://relay.example"))
    approver_home = tmp_path / "alice"
    keys.init_approver(str(approver_home), "alice")
    with TestClient(build_app(relay)) as client:
        a = Api(client, store, approver_home)
        a.add("agent", "bot")
        a.add("agent", "other")
        a.add("approver", "alice")
        yield a


def test_submit_list_decide_wait_withdraw(api: Api) -> None:
    req = held()
    r = api.call("POST", "/api/v1/requests", "bot", json=req)
    assert r.status_code == 201
    assert r.json() == {
        "id": req["id"],
        "status": "pending",
        "url": f"https://relay.example/r/{req['id']}",
    }
    # a retry of the same request is idempotent
    assert api.call("POST", "/api/v1/requests", "bot", json=req).status_code == 200
    listed = api.call("GET", "/api/v1/requests", "alice").json()["requests"]
    assert [item["request"] for item in listed] == [req]
    decision = sign_decision(str(api.approver_home), req, "approve", "ok")
    r = api.call("POST", f"/api/v1/requests/{req['id']}/decisions", "alice", json=decision)
    assert r.status_code == 201
    waited = api.call("GET", f"/api/v1/requests/{req['id']}/decisions?after=0&wait=5", "bot").json()
    assert [d["decision"] for d in waited["decisions"]] == [decision]
    assert waited["next"] == waited["decisions"][0]["seq"]
    # nothing after the cursor: a short wait returns empty
    again = api.call(
        "GET", f"/api/v1/requests/{req['id']}/decisions?after={waited['next']}&wait=0.2", "bot"
    )
    assert again.json()["decisions"] == []
    r = api.call(
        "POST", f"/api/v1/requests/{req['id']}/withdraw", "bot",
        json={"outcome": "approved", "approver": "alice", "channel": "server"},
    )  # fmt: skip
    assert r.json()["status"] == "approved"
    assert api.call("GET", "/api/v1/requests", "alice").json()["requests"] == []
    late = sign_decision(str(api.approver_home), req, "deny", "")
    r = api.call("POST", f"/api/v1/requests/{req['id']}/decisions", "alice", json=late)
    assert r.status_code == 409 and "already approved" in r.json()["error"]


def test_health_needs_no_token(api: Api) -> None:
    assert api.call("GET", "/api/v1/health").json() == {"ok": True, "db": "sqlite"}


BAD_SUBMISSIONS = [
    ("no token", None, {}, None, 401),
    ("unknown token", "shield_" + "x" * 43, {}, None, 401),
    ("not bearer", None, {"Authorization": "Basic Ym90OmJvdA=="}, None, 401),
    ("approver token", "alice", {}, None, 403),
    ("not JSON", "bot", {"Content-Type": "application/json"}, b"{not json", 400),
    ("wrong content type", "bot", {"Content-Type": "text/plain"}, b"{}", 415),
    ("an array", "bot", {"Content-Type": "application/json"}, b"[]", 400),
    ("missing fields", "bot", {"Content-Type": "application/json"}, b'{"id": "abcdef"}', 400),
    ("oversized", "bot", {"Content-Type": "application/json"}, b" " * (4 << 20 | 1), 413),
    (
        "nested too deep",
        "bot",
        {"Content-Type": "application/json"},
        b"[" * 100_000 + b"]" * 100_000,
        400,
    ),
]


@pytest.mark.parametrize(
    ("what", "who", "headers", "body", "status"),
    BAD_SUBMISSIONS,
    ids=[b[0] for b in BAD_SUBMISSIONS],
)
def test_bad_submissions_get_a_4xx_json_error_and_store_nothing(
    api: Api, what: str, who: str | None, headers: dict, body: bytes | None, status: int
) -> None:
    content = body if body is not None else json.dumps(held()).encode()
    headers = {"Content-Type": "application/json", **headers}
    r = api.call("POST", "/api/v1/requests", who, content=content, headers=headers)
    assert r.status_code == status, r.text
    assert isinstance(r.json()["error"], str) and r.json()["error"]
    assert api.rows() == (0, 0)


@pytest.mark.parametrize(
    ("what", "edit", "status"),
    [
        ("digest does not match the content", lambda d: {**d, "argv": ["get", "pods"]}, 400),
        ("another agent's name", lambda d: held(agent="other"), 403),
        ("already expired", lambda d: held(timeout_s=0), 400),
        ("a reserved extra key", lambda d: {**d, "status": "approved"}, 400),
        ("float in extra", lambda d: {**d, "approvals": 1.5}, 400),
    ],
)
def test_malformed_requests_are_refused_and_store_nothing(
    api: Api, what: str, edit, status: int
) -> None:
    r = api.call("POST", "/api/v1/requests", "bot", json=edit(held()))
    assert r.status_code == status, r.text
    assert api.rows() == (0, 0)


def test_a_taken_id_is_a_conflict(api: Api) -> None:
    req = held()
    assert api.call("POST", "/api/v1/requests", "bot", json=req).status_code == 201
    other = to_dict(
        new_request(
            agent="other",
            tool="kubectl",
            argv=["x"],
            cwd="/",
            context={},
            rule=None,
            reason="r",
            timeout_s=60,
        )
    )
    other["id"] = req["id"]
    from shim.approval.request import request_from_dict

    other["digest"] = request_from_dict(other).digest
    r = api.call("POST", "/api/v1/requests", "other", json=other)
    assert r.status_code == 409
    assert api.rows() == (1, 0)


def test_bad_decisions_are_refused_before_they_are_stored(api: Api) -> None:
    req = held()
    api.call("POST", "/api/v1/requests", "bot", json=req)
    good = sign_decision(str(api.approver_home), req, "approve", "")
    other = held()
    cases = [
        ({**good, "extra": "x"}, 400),
        ({k: v for k, v in good.items() if k != "sig"}, 400),
        ({**good, "verdict": "maybe"}, 400),
        (sign_decision(str(api.approver_home), other, "approve", ""), 400),  # names another id
        ({**good, "digest": "0" * 64}, 409),
        ("junk", 400),
    ]
    for decision, status in cases:
        r = api.call("POST", f"/api/v1/requests/{req['id']}/decisions", "alice", json=decision)
        assert r.status_code == status, (decision, r.text)
    # an agent cannot post decisions, even on its own request
    r = api.call("POST", f"/api/v1/requests/{req['id']}/decisions", "bot", json=good)
    assert r.status_code == 403
    r = api.call("POST", "/api/v1/requests/zzzzzz/decisions", "alice", json=good)
    assert r.status_code == 404
    assert api.rows() == (1, 0)


def test_long_poll_wakes_when_a_decision_arrives(api: Api) -> None:
    import threading

    req = held()
    api.call("POST", "/api/v1/requests", "bot", json=req)
    decision = sign_decision(str(api.approver_home), req, "approve", "")
    result: dict = {}

    def waiter() -> None:
        started = time.monotonic()
        r = api.call("GET", f"/api/v1/requests/{req['id']}/decisions?wait=20", "bot")
        result["took"] = time.monotonic() - started
        result["body"] = r.json()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)  # let the poll start waiting; the result does not depend on it
    api.call("POST", f"/api/v1/requests/{req['id']}/decisions", "alice", json=decision)
    thread.join(timeout=30)
    assert [d["decision"] for d in result["body"]["decisions"]] == [decision]
    assert result["took"] < 10  # woken, not timed out at 20 s


def test_expired_requests_are_swept_and_leave_the_list(api: Api) -> None:
    req = held(timeout_s=1)
    assert api.call("POST", "/api/v1/requests", "bot", json=req).status_code == 201
    end = time.monotonic() + 15
    status = ""
    while time.monotonic() < end:
        status = api.call("GET", f"/api/v1/requests/{req['id']}", "alice").json()["status"]
        if status == "expired":
            break
        time.sleep(0.1)
    assert status == "expired"
    assert api.call("GET", "/api/v1/requests", "alice").json()["requests"] == []


def test_request_page_shows_no_request_data(api: Api) -> None:
    req = held()
    api.call("POST", "/api/v1/requests", "bot", json=req)
    page = api.call("GET", f"/r/{req['id']}")
    assert page.status_code == 200
    # the approvers' page (its data comes from the API, for a signed-in approver only)
    assert page.text == api.call("GET", "/").text
    assert req["id"] not in page.text and "delete" not in page.text
    assert api.call("GET", "/r/<script>").status_code == 404


def test_a_shims_refusal_note_reaches_the_approvers_and_is_never_a_decision(api: Api) -> None:
    req = held()
    assert api.call("POST", "/api/v1/requests", "bot", json=req).status_code == 201
    path = f"/api/v1/requests/{req['id']}/refusals"
    note = {"why": "decision signed by an untrusted key", "approver": "bob", "extra": "dropped"}
    assert api.call("POST", path, "alice", json=note).status_code == 403  # agents only
    assert api.call("POST", path, "other", json=note).status_code == 404  # its own requests
    assert api.call("POST", path, "bot", json={"no": "why"}).status_code == 400
    assert api.call("POST", path, "bot", json=note).status_code == 201
    (item,) = api.call("GET", "/api/v1/requests", "alice").json()["requests"]
    assert item["refusals"] == [{"why": "decision signed by an untrusted key", "approver": "bob"}]
    one = api.call("GET", f"/api/v1/requests/{req['id']}", "alice").json()
    assert one["refusals"] == item["refusals"] and one["decisions"] == []
    # at most MAX_REFUSALS notes a request: the agent cannot fill the server through them
    for _ in range(MAX_REFUSALS - 1):
        assert api.call("POST", path, "bot", json=note).status_code == 201
    assert api.call("POST", path, "bot", json=note).status_code == 409
    # the shim's long poll brings signed decisions only, never its own notes back
    waited = api.call("GET", f"/api/v1/requests/{req['id']}/decisions?wait=0", "bot").json()
    assert waited["decisions"] == []
