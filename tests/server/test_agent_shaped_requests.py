"""Attacks from the agent's side on what the approvers read (review 2): a held request is the
agent's words, and its `extra` may hold any JSON the agent submits with its token. Whatever
its shape, the web page's feed keeps working for every approver and every other request, and
each field is shown escaped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shim.approval.request import new_request, to_dict
from shim.approval.show import extra_lines
from tests.server.test_page_api import Web, held, submit, web  # noqa: F401 - the fixture

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
