"""The relay's storage on SQLite and on a real PostgreSQL: migrations, idempotent submits,
closing once, and several server processes sharing one queue (issue 11)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from shim.server.schema import LATEST
from shim.server.store import Conflict, Store, StoreError, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'relay.db'}"
    return request.getfixturevalue("pg_url")


def _submit(store: Store, rid: str, expires: float, agent: str = "bot", digest: str = "d1"):
    return store.submit(rid, agent, digest, f'{{"id":"{rid}"}}', expires, time.time())


def test_migrations_run_once_and_reopening_keeps_the_data(db_url: str) -> None:
    first = open_store(db_url)
    _submit(first, "aaaaaa", time.time() + 60)
    first.close()
    again = open_store(db_url)  # migrate() again is a no-op
    try:
        assert again.migrate() == LATEST
        row = again.request("aaaaaa")
        assert row is not None and row.status == "pending"
    finally:
        again.close()


def test_submit_is_idempotent_per_agent_and_digest_and_conflicts_otherwise(db_url: str) -> None:
    store = open_store(db_url)
    try:
        exp = time.time() + 60
        assert _submit(store, "bbbbbb", exp)[0] == "created"
        assert _submit(store, "bbbbbb", exp)[0] == "same"
        assert _submit(store, "bbbbbb", exp, digest="d2")[0] == "conflict"
        assert _submit(store, "bbbbbb", exp, agent="other")[0] == "conflict"
    finally:
        store.close()


def test_a_request_closes_once(db_url: str) -> None:
    store = open_store(db_url)
    try:
        _submit(store, "cccccc", time.time() + 60)
        assert store.close_request("cccccc", "approved", "{}", time.time()) is not None
        assert store.close_request("cccccc", "denied", "{}", time.time()) is None
        row = store.request("cccccc")
        assert row is not None and row.status == "approved"
        assert store.pending(time.time()) == []
    finally:
        store.close()


def test_principals_are_unique_per_role_and_name_and_replace_swaps_the_token(db_url: str) -> None:
    store = open_store(db_url)
    try:
        store.add_principal("agent", "bot", "h1", time.time())
        with pytest.raises(Conflict):
            store.add_principal("agent", "bot", "h2", time.time())
        store.add_principal("approver", "bot", "h3", time.time())  # another role: fine
        store.add_principal("agent", "bot", "h4", time.time(), replace=True)
        assert store.principal("h1") is None
        assert store.principal("h4") == ("agent", "bot")
    finally:
        store.close()


def test_statements_keep_order_and_the_cursor(db_url: str) -> None:
    store = open_store(db_url)
    try:
        _submit(store, "dddddd", time.time() + 60)
        seqs = [
            store.add_statement("decision", "dddddd", "bot", f'{{"n":{i}}}', "alice", 0.0)
            for i in range(3)
        ]
        assert seqs == sorted(seqs)
        assert [b for _, b in store.statements_after("dddddd", seqs[0])] == ['{"n":1}', '{"n":2}']
    finally:
        store.close()


def test_two_servers_on_postgresql_migrate_and_expire_each_request_exactly_once(
    pg_url: str,
) -> None:
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(open_store(pg_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(stores) == 4
    try:
        past = time.time() - 1
        ids = [f"{c}{c}{c}{c}{c}{c}" for c in "efghjk"]
        for rid in ids:
            _submit(stores[0], rid, past)
        found: list[str] = []
        lock = threading.Lock()

        def sweep(store: Store) -> None:
            rows = store.expire_due(time.time())
            with lock:
                found.extend(r.id for r in rows)

        threads = [threading.Thread(target=sweep, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(found) == sorted(ids)  # each expiry seen by exactly one server
    finally:
        for store in stores:
            store.close()


def test_an_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://shield:secret@127.0.0.1:1/none")
    assert "cannot connect to the database" in info.value.message
    assert "secret" not in info.value.message  # the password is not printed


def test_the_web_pages_tables_on_both_databases(db_url: str) -> None:
    from shim.server.webstore import PasskeyRow, WebStore

    store = open_store(db_url)
    web = WebStore(store)
    now = time.time()
    try:
        # an enrollment link works once, and only before it expires
        web.add_enrollment("h1", "alice", now, now + 60)
        web.add_enrollment("h2", "alice", now - 120, now - 60)
        assert web.enrollment("h1", now) == "alice" and web.enrollment("h2", now) is None
        key = PasskeyRow("cred1", "alice", "pk", 0, "shield.example", "https://shield.example", now)
        assert web.enroll("h1", key, now)
        assert not web.enroll("h1", key, now) and not web.enroll("h2", key, now)
        assert web.passkeys("alice") == [key] and web.passkey("cred1") == key
        web.used_passkey("cred1", 7, now)
        found = web.passkey("cred1")
        assert found is not None and found.sign_count == 7
        # a challenge is used once, for its purpose, before it expires
        assert web.add_challenge("c1", "login", "", now + 60, now)
        assert web.add_challenge("c2", "login", "", now - 1, now)
        assert web.take_challenge("c1", "enroll", now) is None
        assert web.take_challenge("c1", "login", now) == ""
        assert web.take_challenge("c1", "login", now) is None
        assert web.take_challenge("c2", "login", now) is None
        # sessions
        web.add_session("s1", "alice", "csrf", "cred1", now, 60)
        session = web.session("s1", now)
        assert session is not None and (session.approver, session.csrf) == ("alice", "csrf")
        assert web.session("s1", now + 61) is None
        web.drop_session("s1")
        assert web.session("s1", now) is None
        # the page's views
        _submit(store, "cccccc", now + 60)
        store.add_statement("decision", "cccccc", "bot", '{"approver":"alice"}', "alice", now)
        assert web.posted(["cccccc", "dddddd"]) == {
            "cccccc": [("decision", '{"approver":"alice"}')]
        }
        store.close_request("cccccc", "denied", "{}", now)
        assert [r.id for r in web.closed_since(now - 1)] == ["cccccc"]
        web.prune(now + 3600)
        assert web.take_challenge("c2", "login", 0) is None
    finally:
        store.close()


def test_closed_requests_are_forgotten_after_a_while_and_standing_statements_stay(
    db_url: str,
) -> None:
    store = open_store(db_url)
    now = time.time()
    try:
        for rid in ("oldone", "oldexp", "recent", "pendin"):
            _submit(store, rid, now + 60 if rid != "oldexp" else now - 100)
            store.add_statement("refusal", rid, "bot", '{"why":"x"}', "bot", now)
        store.close_request("oldone", "approved", "{}", now - 50)
        store.close_request("recent", "denied", "{}", now)
        store.add_statement("grant", None, "bot", '{"grant":1}', "alice", now - 100)
        assert store.forget_closed(now - 10) == 2  # closed, and expired unclosed, before then
        assert store.request("oldone") is None and store.request("oldexp") is None
        assert store.request("recent") is not None and store.request("pendin") is not None
        assert store.statement_count("oldone") == 0 and store.statement_count("recent") == 1
        assert store.standing("bot") != []
    finally:
        store.close()
