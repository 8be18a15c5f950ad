"""A small JSON-over-HTTP client for the approval relay (cold; standard library only).

The shim's ask path uses it (shim.approval.remote), as do the approver's commands
(shim.approval.inbox); it stays light: http.client, ssl, json. TLS certificates are always
verified, against the system's CAs or the one CA file given (`cacert`, e.g. a self-signed
server's certificate). One connection is kept alive per client; a client is not shared
between threads.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any
from urllib.parse import quote, urlsplit

from shim.errors import ShieldError

MAX_ANSWER_BYTES = 64 << 20


class RelayError(ShieldError):
    """The relay said no, or said something that is not an answer."""

    def __init__(self, message: str, hint: str = "", status: int = 0) -> None:
        super().__init__(message, hint)
        self.status = status


class Unreachable(RelayError):
    """No answer from the relay (refused, timed out, TLS failed)."""


def check_url(url: str) -> str:
    """`url` without a trailing slash; RelayError when it is not http(s)://HOST[:PORT][/PATH]."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RelayError(
            f"{url!r} is not a server URL", "example: --server https://shield.example:8421"
        )
    if parts.query or parts.fragment or parts.username:
        raise RelayError(f"{url!r}: a server URL has no user, query or fragment")
    return url.rstrip("/")


def read_token(path: str) -> str:
    """The bearer token in file `path` (one line)."""
    try:
        with open(path, encoding="ascii") as fh:
            token = fh.read(4096).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RelayError(f"cannot read the token file {path}: {exc}") from None
    if not token or any(c.isspace() for c in token):
        raise RelayError(f"{path} does not hold one token", "shield serve agent|approver add NAME")
    return token


class Client:
    def __init__(
        self, url: str, token: str, cacert: str | None = None, timeout: float = 10.0
    ) -> None:
        self.url = check_url(url)
        parts = urlsplit(self.url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path
        self.token = token
        self.cacert = cacert
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            try:
                ctx = ssl.create_default_context(cafile=self.cacert)
            except (OSError, ssl.SSLError) as exc:
                raise RelayError(f"cannot load the CA file {self.cacert}: {exc}") from None
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout: float | None = None,
        limit: int = MAX_ANSWER_BYTES,
    ) -> tuple[int, Any]:
        """(status, parsed JSON). Unreachable when there is no answer; RelayError when the
        answer is not JSON or too big. A dropped keep-alive connection is retried once."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        wait = self.timeout if timeout is None else timeout
        for attempt in (1, 2):
            fresh = self.conn is None
            try:
                if self.conn is None:
                    self.conn = self._connect(wait)
                self.conn.timeout = wait
                if self.conn.sock is not None:
                    self.conn.sock.settimeout(wait)
                self.conn.request(method, self.prefix + path, body=payload, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read(limit + 1)
                status = resp.status
                if resp.will_close:
                    self.close()
                break
            except (
                ConnectionError,
                http.client.RemoteDisconnected,
                http.client.BadStatusLine,
            ) as exc:
                self.close()
                if attempt == 2 or fresh:
                    raise Unreachable(f"no answer from {self.url}: {_why(exc)}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise Unreachable(
                    f"no answer from {self.url}: {_why(exc)}", _tls_hint(exc)
                ) from None
        if len(raw) > limit:
            self.close()
            raise RelayError(f"the answer from {self.url} is larger than {limit} bytes")
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            raise RelayError(
                f"{self.url} answered {status} with something that is not JSON"
            ) from None
        return status, data

    def expect(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201), **kw: Any
    ) -> Any:
        """The JSON answer of a call that must succeed; RelayError with the server's own
        message otherwise."""
        status, data = self.call(method, path, body, **kw)
        if status in ok:
            return data
        message = data.get("error") if isinstance(data, dict) else None
        raise RelayError(f"{self.url}: {message or f'HTTP {status}'}", _hint(status), status=status)


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message})"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text


def _tls_hint(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            "pass the server's CA certificate: --cacert F (or SHIELD_CACERT=F); "
            "on the agent side, shield install --cacert F"
        )
    return ""


def _hint(status: int) -> str:
    if status == 401:
        return "check the token file (shield serve agent|approver add NAME prints one)"
    if status == 403:
        return "this token's role may not do that"
    return ""


def path_id(rid: str) -> str:
    return quote(rid, safe="")
