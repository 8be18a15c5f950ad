"""The relay's HTTP application (Starlette): routes, the long poll, the expiry sweep (cold).

Routes (JSON in and out; every error is `{"error": "..."}` with a 4xx or 5xx status):

    GET  /api/v1/health                          anyone: up, and which database
    POST /api/v1/requests                        agent: submit a held request (its own name)
    GET  /api/v1/requests/{id}/decisions         agent (own) or approver: long poll for signed
                                                 statements after ?after=SEQ, up to ?wait=S
    POST /api/v1/requests/{id}/withdraw          agent (own): the hold ended, and how
    POST /api/v1/requests/{id}/refusals          agent (own): a note on a decision it refused
    GET  /api/v1/requests                        approver: the pending requests
    GET  /api/v1/requests/{id}                   approver or agent (own): one request, status
    POST /api/v1/requests/{id}/decisions         approver: a signed decision, relayed as is
    POST /api/v1/statements                      approver: a signed grant or revocation
    GET  /api/v1/statements                      agent (own) or approver: grants, revocations

The approvers' web page (`/`, `/r/{id}`, its sign-in and enrollment) is in shim.server.page and
shim.server.passkeys; an approver's routes above also take the page's session cookie.

The server never judges a decision (Ed25519, or a passkey's assertion): it checks its shape and
that it names the request it is posted to, stores it, and wakes the shim's long poll. The shim
verifies it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shim import canon
from shim.approval.refusal import clean_note
from shim.clock import parse_iso
from shim.server import page, passkeys
from shim.server.checks import DECISION_LIMIT, REQUEST_LIMIT, Invalid, check_decision, check_request
from shim.server.grants import routes as statement_routes
from shim.server.hub import PgListener
from shim.server.relay import (  # noqa: F401 - Relay is imported from here by run.py and tests
    Relay,
    error,
    owned_request,
    read_json,
    relay_of,
    who,
)
from shim.server.store import CHANNEL, PostgresStore, RequestRow, StoreError

log = logging.getLogger("shield.serve")

LONG_POLL_MAX_S = 55.0
RECHECK_S = 2.0  # a long poll re-reads the database this often even without a wake
SWEEP_S = 1.0
PRUNE_EVERY = 60  # sweeps between forgetting expired sessions and challenges
KEEP_CLOSED_S = 30 * 86400  # closed requests and their statements are kept this long
CLOSED = ("approved", "denied", "expired", "cancelled")
MAX_REFUSALS = 25  # refusal notes stored per request (a shim stops refusing after 20)
# held requests one agent may have pending at once: the approvers' lists show the oldest 1,000,
# so one agent must not be able to crowd the others' out of them (a deploy of 200 held calls
# at once must still fit)
MAX_PENDING_PER_AGENT = 250


def describe(relay: Relay, row: RequestRow, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "status": row.status,
        "url": relay.url(row.id),
        "request": json.loads(row.body),
    }
    if full:
        out["outcome"] = json.loads(row.outcome) if row.outcome else None
    return out


# ---------------------------------------------------------------------- agents
async def submit(request: Request) -> Response:
    principal = await who(request, "agent")
    data = await read_json(request, REQUEST_LIMIT)
    req = check_request(data, principal.name)
    relay = relay_of(request)
    now = time.time()
    if await relay.db(relay.store.request, req.id) is None:
        held = await relay.db(relay.store.pending_count, req.agent, now)
        if held >= MAX_PENDING_PER_AGENT:
            raise Invalid(
                429,
                f"agent {req.agent} has {held} pending requests already (at most "
                f"{MAX_PENDING_PER_AGENT}): decide or let some expire first",
            )
    state, row = await relay.db(
        relay.store.submit,
        req.id,
        req.agent,
        req.digest,
        canon.encode(data),
        parse_iso(req.expires),
        now,
    )
    if state == "conflict":
        raise Invalid(409, f"request id {req.id} is taken by another request")
    if state == "created":
        relay.announce("held", row)
    body = {"id": row.id, "status": row.status, "url": relay.url(row.id)}
    return JSONResponse(body, status_code=201 if state == "created" else 200)


async def wait_decisions(request: Request) -> Response:
    """Long poll: the signed statements on a request after `after`, as soon as there are
    any, or when the request closes, or after `wait` seconds (an empty list)."""
    principal = await who(request)
    row = await owned_request(request, principal)
    relay = relay_of(request)
    try:
        after = int(request.query_params.get("after", "0"))
        wait = float(request.query_params.get("wait", "0"))
    except ValueError:
        raise Invalid(400, "after is a sequence number, wait a number of seconds") from None
    wait = min(max(wait, 0.0), LONG_POLL_MAX_S)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    items: list[tuple[int, str]] = []
    first = True
    with relay.hub.watch(row.id) as event:
        while True:
            event.clear()
            items = await relay.db(relay.store.statements_after, row.id, after)
            if items:
                break
            if not first:  # the status may have changed since
                fresh = await relay.db(relay.store.request, row.id)
                row = fresh or row
            first = False
            left = deadline - loop.time()
            if row.status != "pending" or left <= 0:
                break
            try:
                await asyncio.wait_for(event.wait(), min(left, RECHECK_S))
            except TimeoutError:
                pass
    return JSONResponse(
        {
            "id": row.id,
            "status": row.status,
            "decisions": [{"seq": seq, "decision": json.loads(body)} for seq, body in items],
            "next": items[-1][0] if items else after,
        }
    )


async def withdraw(request: Request) -> Response:
    """The shim tells how the hold ended (for approvers and notifications; not trusted)."""
    principal = await who(request, "agent")
    row = await owned_request(request, principal)
    data = await read_json(request, 16 << 10)
    if not isinstance(data, dict) or data.get("outcome") not in CLOSED:
        raise Invalid(400, f"outcome must be one of {', '.join(CLOSED)}")
    outcome = {
        k: str(data[k])[:2000] for k in ("approver", "reason", "channel") if data.get(k) is not None
    }
    relay = relay_of(request)
    closed = await relay.db(
        relay.store.close_request, row.id, data["outcome"], canon.encode(outcome), time.time()
    )
    if closed is not None:
        relay.announce(closed.status, closed)
        row = closed
    return JSONResponse({"id": row.id, "status": row.status})


async def refuse(request: Request) -> Response:
    """The shim refused a decision the relay brought (why, and who it claimed to be from),
    for the approvers' `shield pending` and `shield show`. The agent's words, stored as
    told, at most MAX_REFUSALS per request."""
    principal = await who(request, "agent")
    row = await owned_request(request, principal)
    data = await read_json(request, 16 << 10)
    note = clean_note(data)
    if note is None:
        raise Invalid(400, "a refusal note is an object with a 'why'")
    relay = relay_of(request)
    count = await relay.db(relay.store.statement_count, row.id, "refusal")
    if count >= MAX_REFUSALS:
        raise Invalid(409, f"request {row.id} has {MAX_REFUSALS} refusal notes already")
    seq = await relay.db(
        relay.store.add_statement,
        "refusal",
        row.id,
        row.agent,
        canon.encode(note),
        principal.name,
        time.time(),
    )
    return JSONResponse({"id": row.id, "seq": seq}, status_code=201)


# ---------------------------------------------------------------------- approvers
async def list_requests(request: Request) -> Response:
    await who(request, "approver")
    relay = relay_of(request)
    now = time.time()
    rows = await relay.db(relay.store.pending, now)
    notes = await relay.db(relay.store.pending_refusals, now)
    refused: dict[str, list[Any]] = {}
    for rid, body in notes:
        refused.setdefault(rid, []).append(json.loads(body))
    items = []
    for row in rows:
        item = describe(relay, row)
        if row.id in refused:
            item["refusals"] = refused[row.id]
        items.append(item)
    return JSONResponse({"requests": items})


async def get_request(request: Request) -> Response:
    principal = await who(request)
    row = await owned_request(request, principal)
    relay = relay_of(request)
    items = await relay.db(relay.store.statements_after, row.id, 0, 1000)
    notes = await relay.db(relay.store.statements_after, row.id, 0, 100, "refusal")
    out = describe(relay, row, full=True)
    out["decisions"] = [{"seq": seq, "decision": json.loads(body)} for seq, body in items]
    out["refusals"] = [json.loads(body) for _, body in notes]
    return JSONResponse(out)


async def post_decision(request: Request) -> Response:
    principal = await who(request, "approver")
    row = await owned_request(request, principal)
    data = await read_json(request, DECISION_LIMIT)
    if row.status != "pending":
        raise Invalid(409, f"request {row.id} is already {row.status}")
    if row.expires <= time.time():
        raise Invalid(409, f"request {row.id} expired")
    decision = check_decision(data, row.id, row.digest)
    relay = relay_of(request)
    seq = await relay.db(
        relay.store.add_statement,
        "decision",
        row.id,
        row.agent,
        canon.encode(decision),
        principal.name,
        time.time(),
    )
    return JSONResponse({"id": row.id, "seq": seq}, status_code=201)


# ---------------------------------------------------------------------- anyone
async def health(request: Request) -> Response:
    relay = relay_of(request)
    await relay.db(relay.store.pending, time.time(), 1)
    return JSONResponse({"ok": True, "db": relay.store.dialect})


Handler = Callable[[Request], Awaitable[Response]]


def api_routes() -> list[Route]:
    return [
        Route("/api/v1/health", health, methods=["GET"]),
        *statement_routes(read_json, relay_of, who),
        Route("/api/v1/requests", submit, methods=["POST"]),
        Route("/api/v1/requests", list_requests, methods=["GET"]),
        Route("/api/v1/requests/{rid}", get_request, methods=["GET"]),
        Route("/api/v1/requests/{rid}/decisions", wait_decisions, methods=["GET"]),
        Route("/api/v1/requests/{rid}/decisions", post_decision, methods=["POST"]),
        Route("/api/v1/requests/{rid}/withdraw", withdraw, methods=["POST"]),
        Route("/api/v1/requests/{rid}/refusals", refuse, methods=["POST"]),
    ]


async def on_invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Invalid)
    return error(exc.status, exc.message)


async def on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, str(exc.detail))


async def on_store(request: Request, exc: Exception) -> Response:
    log.error("database error on %s %s: %s", request.method, request.url.path, exc)
    return error(503, "the server's database is unavailable; try again")


def _is_db_error(exc: BaseException) -> bool:
    names = {c.__module__.split(".")[0] for c in type(exc).__mro__}
    return bool(names & {"sqlite3", "psycopg", "psycopg_pool"}) or isinstance(exc, StoreError)


async def on_error(request: Request, exc: Exception) -> Response:
    if _is_db_error(exc):
        return await on_store(request, exc)
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error(500, "unexpected server error")


async def sweep(relay: Relay) -> None:
    """Mark expired requests (and notify) once a second; forget expired sessions, challenges
    and enrollment links, and requests closed over KEEP_CLOSED_S ago, once a minute."""
    rounds = 0
    while True:
        await asyncio.sleep(SWEEP_S)
        rounds += 1
        try:
            rows = await relay.db(relay.store.expire_due, time.time())
            if rounds % PRUNE_EVERY == 0:
                await relay.db(relay.web.prune, time.time())
                await relay.db(relay.store.forget_closed, time.time() - KEEP_CLOSED_S)
        except Exception as exc:  # noqa: BLE001 - keep sweeping after a database hiccup
            log.warning("expiry sweep failed: %s", exc)
            continue
        for row in rows:
            relay.announce("expired", row)


def build_app(relay: Relay) -> Starlette:
    """The application around `relay` (whose store it closes at shutdown)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        relay.hub.bind(asyncio.get_running_loop())
        relay.store.on_change = relay.hub.wake
        assert relay.notifier is not None
        relay.notifier.start()
        listener = None
        if isinstance(relay.store, PostgresStore):
            listener = PgListener(relay.store.url, CHANNEL, relay.hub)
            listener.start()
        sweeper = asyncio.create_task(sweep(relay))
        try:
            yield
        finally:
            sweeper.cancel()
            if listener is not None:
                listener.close()
            relay.notifier.close(wait_s=2.0)
            relay.store.close()

    app = Starlette(
        routes=api_routes() + passkeys.routes() + page.routes(),
        lifespan=lifespan,
        middleware=[Middleware(page.SecurityHeaders)],
        exception_handlers={
            Invalid: on_invalid,
            HTTPException: on_http,
            StoreError: on_store,
            Exception: on_error,
        },
    )
    app.state.relay = relay
    return app
