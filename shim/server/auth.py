"""Bearer tokens and who may do what (cold).

A token is `shield_` plus 43 characters of base64url (32 random bytes); the server stores only
its SHA-256 (a random 256-bit token needs no slow hash). Roles:

- an **agent** token submits held requests in its own agent's name, waits on them and withdraws
  them; it cannot see another agent's requests, list anything, or post a decision;
- an **approver** token lists requests, reads one, waits on one, and posts signed decisions
  (which only shims judge: a token never approves anything by itself).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass

TOKEN_PREFIX = "shield_"
ROLES = ("agent", "approver")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class Principal:
    role: str
    name: str

    def owns(self, agent: str) -> bool:
        """May this principal see and act on requests held by `agent`?"""
        return self.role == "approver" or self.name == agent


def new_token() -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(TOKEN_PREFIX) or len(value) > 200:
        return None
    return value


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name))
