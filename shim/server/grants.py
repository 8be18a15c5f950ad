"""Grants and revocations on the relay: approvers post them, agents read theirs (cold).

    POST /api/v1/statements     approver: a signed grant or revocation, stored as posted
    GET  /api/v1/statements     agent: its own grants and the revocations that can end them;
                                approver: all of them

Like decisions, they are relayed, never judged: the server checks their shape, not their
signature (it holds no trust store), and the shim verifies each one against its own. A
compromised server can withhold a grant or a revocation; it cannot make one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shim import canon
from shim.approval import grant as statement
from shim.server.checks import Invalid

STATEMENT_LIMIT = 64 << 10
KINDS = {statement.GRANT_TYPE: "grant", statement.REVOCATION_TYPE: "revocation"}


def check_statement(data: object) -> tuple[str, str | None]:
    """(kind, agent it names or None) for a well-shaped grant or revocation; Invalid 400."""
    if not isinstance(data, dict) or data.get("type") not in KINDS:
        raise Invalid(400, f"a statement is a {' or '.join(KINDS)}")
    kind = KINDS[data["type"]]
    keys = statement.GRANT_KEYS if kind == "grant" else statement.REVOCATION_KEYS
    if kind == "grant" and statement.is_passkey_grant(data):
        keys = statement.PASSKEY_GRANT_KEYS  # from the web page, signed by a passkey
    if set(data) != keys:
        raise Invalid(400, f"a {kind} has exactly the fields {', '.join(sorted(keys))}")
    sid = data.get("id")
    if not isinstance(sid, str) or not sid.isalnum() or len(sid) > 32:
        raise Invalid(400, "the statement's id is not a short name")
    agent = data.get("agent")
    if agent is not None and (not isinstance(agent, str) or not agent or len(agent) > 200):
        raise Invalid(400, "agent must be a name")
    if kind == "grant" and agent is None:
        raise Invalid(400, "a grant names its agent")
    try:
        canon.encode(data)
    except TypeError:
        raise Invalid(400, "the statement is not canonical JSON (no floats)") from None
    return kind, agent


def routes(read_json: Callable, relay_of: Callable, who: Callable) -> list[Route]:
    """The routes, given the app's request helpers (reading a JSON body, the relay, the
    caller's principal)."""

    async def post_statement(request: Request) -> Response:
        principal = await who(request, "approver")
        data = await read_json(request, STATEMENT_LIMIT)
        kind, agent = check_statement(data)
        relay = relay_of(request)
        seq = await relay.db(
            relay.store.add_statement,
            kind,
            None,
            agent,
            canon.encode(data),
            principal.name,
            time.time(),
        )
        return JSONResponse({"id": data["id"], "kind": kind, "seq": seq}, status_code=201)

    async def list_statements(request: Request) -> Response:
        principal = await who(request)
        relay = relay_of(request)
        agent = principal.name if principal.role == "agent" else None
        rows = await relay.db(relay.store.standing, agent)
        out: dict[str, list] = {"grants": [], "revocations": []}
        for kind, body in rows:
            out[kind + "s"].append(json.loads(body))
        return JSONResponse(out)

    return [
        Route("/api/v1/statements", post_statement, methods=["POST"]),
        Route("/api/v1/statements", list_statements, methods=["GET"]),
    ]
