"""`shield serve` itself: check the address, the certificate and the database, then run
uvicorn on a socket bound here (cold).

Each setup fault becomes one line (ServeError, exit 1) before anything is served: the port in
use, an address that cannot be bound, a certificate or key that does not load, a database that
cannot be reached or migrated.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import ssl
import sys
from dataclasses import dataclass

from shim.errors import ShieldError
from shim.server.store import Store, open_store, redact

DEFAULT_LISTEN = "127.0.0.1:8421"


class ServeError(ShieldError):
    """The server cannot start."""


@dataclass(frozen=True)
class ServeOptions:
    listen: str = DEFAULT_LISTEN
    db: str = ""
    cert: str | None = None
    key: str | None = None
    public_url: str | None = None
    slack_webhook: str | None = None
    webhook: str | None = None
    webhook_secret_file: str | None = None


def default_public_url(listen: str, tls: bool) -> str:
    """Where people reach a server listening on `listen` when no --public-url says otherwise: a
    loopback address is called `localhost` (passkeys need a host name, and browsers allow them
    on http://localhost); any other address as it is."""
    host, port = parse_listen(listen)
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    shown = "localhost" if loopback else (f"[{host}]" if ":" in host else host)
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def default_db(home: str) -> str:
    return "sqlite:///" + os.path.join(home, "server", "shield.db")


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT` or `:PORT` (loopback) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(
            f"--listen {text!r}: expected HOST:PORT", "example: --listen 127.0.0.1:8421"
        )
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say so, and with Nagle on every keep-alive answer waits ~40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"{host}:{port} is in use by another program",
                "stop it, or choose another port with --listen HOST:PORT",
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def check_tls(cert: str | None, key: str | None) -> None:
    if not cert and not key:
        return
    if not cert or not key:
        raise ServeError("TLS needs both --cert and --key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(
            f"cannot use the certificate {cert} with the key {key}: {exc}",
            "give a PEM certificate (chain) and its matching PEM private key",
        ) from None


def read_secret(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            secret = fh.read().strip()
    except OSError as exc:
        raise ServeError(f"cannot read the webhook secret {path}: {exc.strerror}") from None
    if len(secret) < 16:
        raise ServeError(f"the webhook secret in {path} is shorter than 16 bytes")
    return secret


def serve(home: str, opts: ServeOptions) -> int:
    """Run the relay until interrupted. ServeError for setup faults."""
    import uvicorn

    from shim.server.app import Relay, build_app
    from shim.server.notify import NotifyConfig

    host, port = parse_listen(opts.listen)
    check_tls(opts.cert, opts.key)
    secret = read_secret(opts.webhook_secret_file)
    sock = bind(host, port)
    scheme = "https" if opts.cert else "http"
    shown = f"[{host}]" if ":" in host else host
    public = opts.public_url or default_public_url(
        f"{shown}:{sock.getsockname()[1]}", bool(opts.cert)
    )
    db = opts.db or default_db(home)
    try:
        store: Store = open_store(db)
    except ShieldError:
        sock.close()
        raise
    relay = Relay(
        store,
        NotifyConfig(
            public_url=public,
            slack_url=opts.slack_webhook,
            webhook_url=opts.webhook,
            webhook_secret=secret,
        ),
    )
    logging.basicConfig(level=logging.INFO, format="shield serve: %(message)s", stream=sys.stderr)
    config = uvicorn.Config(
        build_app(relay),
        ssl_certfile=opts.cert,
        ssl_keyfile=opts.key,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        lifespan="on",
    )
    sys.stderr.write(
        f"shield serve: listening on {scheme}://{shown}:{sock.getsockname()[1]} "
        f"(database {redact(db)}; links as {public})\n"
    )
    sys.stderr.flush()
    uvicorn.Server(config).run(sockets=[sock])
    return 0
