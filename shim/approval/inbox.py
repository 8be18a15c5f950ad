"""Where an approver finds held requests and leaves signed decisions (cold).

`shield pending`, `approve` and `deny` talk to an `Inbox` and do not care which: the spool
directory the agent shares (`SpoolInbox`), or the approval relay (`ServerInbox`, with
`--server URL --token-file F`, or `SHIELD_SERVER` / `SHIELD_TOKEN_FILE`). Both hand back the
request exactly as the agent wrote it (the agent's words: the approver's commands recompute
its digest and show what they sign), and both only carry the decision: the shim verifies it.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from shim.approval import spool as spool_mod
from shim.approval.client import Client, RelayError, path_id, read_token
from shim.approval.grant import GRANT_TYPE
from shim.approval.grants import GRANTS_DIR, REVOCATIONS_DIR, read_statements, server_statements
from shim.approval.refusal import clean_note
from shim.approval.request import is_request_id, request_from_dict, to_dict
from shim.clock import parse_iso
from shim.errors import ShieldError
from shim.home import spool_dir

Notes = dict[str, list[dict[str, str]]]  # request id -> the shims' refusal notes


class Inbox(Protocol):
    where: str  # for messages: the spool's path or the server's URL

    def pending(self) -> list[dict[str, Any]]:
        """The requests waiting for a decision, oldest first (each as the agent wrote it)."""

    def listing(self) -> tuple[list[dict[str, Any]], Notes]:
        """`pending()`, and the shims' notes on decisions they refused, by request id."""

    def refused(self, rid: str) -> list[dict[str, str]]:
        """The shim's notes on decisions it refused for this request (the agent's words)."""

    def lookup(self, rid: str) -> tuple[str, dict[str, Any] | None]:
        """("pending", request), (how it closed, request), or ("unknown", None)."""

    def deliver(self, decision: dict[str, Any]) -> None:
        """Leave a signed decision where the waiting shim picks it up."""

    def post_statement(self, st: dict[str, Any]) -> None:
        """Leave a signed grant or revocation where the shims read them."""

    def statements(self) -> tuple[list[object], list[object]]:
        """(grants, revocations) as stored: the other side's words, verified by the reader."""


class SpoolInbox:
    def __init__(self, spool: str) -> None:
        self.where = spool

    def pending(self) -> list[dict[str, Any]]:
        return spool_mod.list_pending(self.where)

    def listing(self) -> tuple[list[dict[str, Any]], Notes]:
        items = self.pending()
        ids = {item["id"] for item in items}
        notes = spool_mod.list_refusals(self.where)
        return items, {rid: n for rid, n in notes.items() if rid in ids}

    def refused(self, rid: str) -> list[dict[str, str]]:
        return spool_mod.list_refusals(self.where).get(rid, [])

    def lookup(self, rid: str) -> tuple[str, dict[str, Any] | None]:
        return spool_mod.lookup(self.where, rid)

    def deliver(self, decision: dict[str, Any]) -> None:
        spool_mod.write_decision(self.where, decision)

    def post_statement(self, st: dict[str, Any]) -> None:
        sub = "grants" if st.get("type") == GRANT_TYPE else "revocations"
        spool_mod.write_statement(self.where, sub, st)

    def statements(self) -> tuple[list[object], list[object]]:
        return tuple(  # type: ignore[return-value]
            [st for _, st, problem in read_statements(self.where, sub) if not problem]
            for sub in (GRANTS_DIR, REVOCATIONS_DIR)
        )


class ServerInbox:
    def __init__(self, url: str, token: str, cacert: str | None = None) -> None:
        self.client = Client(url, token, cacert)
        self.where = self.client.url

    def pending(self) -> list[dict[str, Any]]:
        return self.listing()[0]

    def listing(self) -> tuple[list[dict[str, Any]], Notes]:
        """Like the spool's list: each request rebuilt from its content (digest recomputed,
        never the server's), status "pending" or "modified" (the stored digest disagrees);
        malformed or expired ones are left out. With the shims' refusal notes."""
        data = self.client.expect("GET", "/api/v1/requests")
        items = data.get("requests") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise RelayError(f"{self.where}: the list of requests is malformed")
        now = time.time()
        out = []
        notes: Notes = {}
        for item in items:
            body = item.get("request") if isinstance(item, dict) else None
            try:
                req = request_from_dict(body)
                if parse_iso(req.expires) <= now:
                    continue
            except (ShieldError, ValueError):
                continue
            shown = to_dict(req)
            assert isinstance(body, dict)  # request_from_dict refuses anything else
            shown["status"] = "pending" if body.get("digest") == req.digest else "modified"
            out.append(shown)
            found = _notes(item.get("refusals") if isinstance(item, dict) else None)
            if found:
                notes[req.id] = found
        return out, notes

    def refused(self, rid: str) -> list[dict[str, str]]:
        if not is_request_id(rid):
            return []
        status, data = self.client.call("GET", f"/api/v1/requests/{path_id(rid)}")
        if status != 200 or not isinstance(data, dict):
            return []
        return _notes(data.get("refusals"))

    def lookup(self, rid: str) -> tuple[str, dict[str, Any] | None]:
        if not is_request_id(rid):
            return "unknown", None
        status, data = self.client.call("GET", f"/api/v1/requests/{path_id(rid)}")
        if status == 404:
            return "unknown", None
        if status != 200 or not isinstance(data, dict):
            message = data.get("error") if isinstance(data, dict) else None
            raise RelayError(f"{self.where}: {message or f'HTTP {status}'}", status=status)
        request = data.get("request")
        if not isinstance(request, dict):
            raise RelayError(f"{self.where}: request {rid} is malformed")
        return str(data.get("status") or "pending"), request

    def deliver(self, decision: dict[str, Any]) -> None:
        rid = str(decision.get("id", ""))
        self.client.expect("POST", f"/api/v1/requests/{path_id(rid)}/decisions", decision)

    def post_statement(self, st: dict[str, Any]) -> None:
        self.client.expect("POST", "/api/v1/statements", st)

    def statements(self) -> tuple[list[object], list[object]]:
        return server_statements(self.client)


def _notes(items: object) -> list[dict[str, str]]:
    if not isinstance(items, list):
        return []
    return [n for n in (clean_note(i) for i in items[:100]) if n is not None]


def open_inbox(
    home: str,
    *,
    spool: str | None = None,
    server: str | None = None,
    token_file: str | None = None,
    cacert: str | None = None,
    env: dict[str, str] | None = None,
) -> Inbox:
    """The relay when `server` (or SHIELD_SERVER) is given, else the spool."""
    env = dict(os.environ) if env is None else env
    url = server or env.get("SHIELD_SERVER") or ""
    if not url:
        return SpoolInbox(spool_dir(home, env, flag=spool))
    if spool:
        raise RelayError("give --spool or --server, not both")
    path = token_file or env.get("SHIELD_TOKEN_FILE") or ""
    if not path:
        raise RelayError(
            "--server needs the approver's token: --token-file F (or SHIELD_TOKEN_FILE)",
            "the server's operator prints one with: shield serve approver add NAME",
        )
    return ServerInbox(url, read_token(path), cacert or env.get("SHIELD_CACERT") or None)
