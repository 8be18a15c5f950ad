"""Attacks from the agent's side on the approvers' web page (review 2). A held request is the
agent's words, and its `extra` may hold any JSON the agent submits with its token: whatever
its shape, the feed keeps working for every approver and every other request, each field
escaped. A cookie planted before sign-in is never the session, and the page's routes take
request ids only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.approval.request import new_request, to_dict
from shim.approval.show import extra_lines
from tests.server.test_page_api import Web, held, soft, submit, web  # noqa: F401 - fixture

# shapes no shim writes, which the renderer once indexed or iterated blindly
ODD_EXTRAS: list[dict[str, Any]] = [
    {"preview": {"ok": True, "summary": "delete 1 object", "lines": 5}},
    {"preview": {"ok": False, "error": "x", "lines": True}},
    {"snapshots": {"manifest.yaml": 5}},
    {"snapshots": {"manifest.yaml": None}},
]


@pytest.mark.parametrize("extra", ODD_EXTRAS)
def test_any_json_in_a_request_renders_as_escaped_lines(extra: dict[str, Any]) -> None:
    rows = extra_lines(extra)
    assert rows and all(isinstance(label, str) and isinstance(text, str) for label, text in rows)


def test_one_agent_cannot_break_the_page_for_every_approver(web: Web) -> None:  # noqa: F811
    good = held(argv=["delete", "pod", "web"])
    submit(web, good)
    for extra in ODD_EXTRAS:
        bad = to_dict(
            new_request(
                agent="bot", tool="kubectl", argv=["get", "pods"], cwd="/w", context={},
                rule=None, reason="r", timeout_s=300, extra=extra,
            )
        )  # fmt: skip
        submit(web, bad)
        one = web.client.get(f"/api/v1/page/requests/{bad['id']}", headers=web.bearer("alice"))
        assert one.status_code == 200, one.text
    feed = web.client.get("/api/v1/page/feed", headers=web.bearer("alice"))
    assert feed.status_code == 200, feed.text
    cards = feed.json()["cards"]
    assert good["id"] in [c["id"] for c in cards]
    assert len(cards) == 1 + len(ODD_EXTRAS)
    assert "\x1b" not in json.dumps(cards, ensure_ascii=False)


def test_a_cookie_planted_before_sign_in_is_never_the_session(web: Web) -> None:  # noqa: F811
    # session fixation: whoever planted a cookie value (a page on a sibling port of the same
    # host can) does not learn the session the server issues at sign-in
    name = web.relay.site.cookie_name
    web.client.cookies.set(name, "planted-by-the-agent")
    key = soft()
    web.enroll(key, "alice")
    r = web.sign_in(key)
    assert r.status_code == 200, r.text
    issued = r.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert issued != "planted-by-the-agent" and len(issued) >= 43
    web.client.cookies.clear()
    web.client.cookies.set(name, "planted-by-the-agent")
    assert web.client.get("/api/v1/page/feed").status_code == 401
    assert web.client.get("/api/v1/session").status_code == 401


@pytest.mark.parametrize("rid", ["<script>", "ABCDEF", "abcde1", "a" * 300, "..%2Fsession", "%00"])
def test_the_page_routes_take_request_ids_only(web: Web, rid: str) -> None:  # noqa: F811
    submit(web, held())
    one = web.client.get(f"/api/v1/page/requests/{rid}", headers=web.bearer("alice"))
    assert one.status_code == 404
    assert one.headers["content-type"].startswith("application/json")
    assert len(one.text) < 200
    assert web.client.get(f"/r/{rid}").status_code == 404


def test_one_agent_cannot_crowd_the_other_agents_requests_off_the_page(web: Web) -> None:  # noqa: F811
    # the feed and GET /api/v1/requests list the oldest pending requests first (1,000 at most):
    # an agent that keeps a week's worth of held requests open would hide every other agent's
    # new ones from the approvers. Each agent has at most MAX_PENDING_PER_AGENT pending.
    from shim.server.app import MAX_PENDING_PER_AGENT

    ids = []
    for _ in range(MAX_PENDING_PER_AGENT):
        req = held(timeout_s=6 * 86400)
        submit(web, req)
        ids.append(req["id"])
    more = web.client.post("/api/v1/requests", json=held(), headers=web.bearer("bot"))
    assert more.status_code == 429, more.text
    assert "pending requests" in more.json()["error"]
    again = web.client.post(
        "/api/v1/requests", json=web.client.get(
            f"/api/v1/requests/{ids[0]}", headers=web.bearer("bot")
        ).json()["request"], headers=web.bearer("bot"),
    )  # fmt: skip
    assert again.status_code == 200  # a shim submitting its request again is fine
    web.add("agent", "other")
    theirs = held(agent="other")
    r = web.client.post("/api/v1/requests", json=theirs, headers=web.bearer("other"))
    assert r.status_code == 201, r.text
    feed = web.client.get("/api/v1/page/feed", headers=web.bearer("alice")).json()
    assert theirs["id"] in [c["id"] for c in feed["cards"]]
