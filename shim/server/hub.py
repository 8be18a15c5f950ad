"""Wake the long polls waiting on a request when it changes (cold).

A long poll registers interest in a request id (`watch`) before it reads the database, then
sleeps on an event; whoever changes that request wakes it (`wake`, from any thread). With
PostgreSQL, a listener thread turns NOTIFYs from every server process into wakes, so a decision
posted through one server reaches a shim waiting on another at once. Waiters also re-read the
database every few seconds, so a lost notification only delays.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

ANY = "*"  # watch(ANY) wakes on a change to any request (the page's live list)


class Hub:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.events: dict[str, set[asyncio.Event]] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @contextmanager
    def watch(self, rid: str) -> Iterator[asyncio.Event]:
        """An event set whenever `rid` changes, from now until the block ends (loop thread)."""
        event = asyncio.Event()
        self.events.setdefault(rid, set()).add(event)
        try:
            yield event
        finally:
            waiting = self.events.get(rid)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self.events[rid]

    def _wake(self, rid: str | None) -> None:
        if rid is None:
            groups = list(self.events.values())
        else:
            groups = [self.events.get(rid, set()), self.events.get(ANY, set())]
        for group in groups:
            for event in list(group):
                event.set()

    def wake(self, rid: str | None) -> None:
        """Wake the waiters on `rid` (every waiter when None); safe from any thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake(rid)
        else:
            try:
                loop.call_soon_threadsafe(self._wake, rid)
            except RuntimeError:
                pass  # the loop closed meanwhile


class PgListener:
    """LISTEN on the store's channel in a thread; every NOTIFY wakes that request's waiters.
    After a (re)connect every waiter is woken once, to re-read what it may have missed."""

    def __init__(self, url: str, channel: str, hub: Hub) -> None:
        self.url = url
        self.channel = channel
        self.hub = hub
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="shield-pg-listen", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        import psycopg

        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    self.hub.wake(None)
                    while not self.stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self.hub.wake(note.payload)
            except psycopg.Error:
                self.stop.wait(1.0)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=3)
