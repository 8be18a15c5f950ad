"""`shield serve`: the approval relay, and who may talk to it (cold).

    shield serve [--listen H:P] [--db URL] [--cert F --key F]   run the relay
    shield serve agent add NAME [--json]                         an agent's token (printed once)
    shield serve approver add NAME [--json]                      an approver's token and a
                                                                 one-time passkey enrollment link
    shield serve approver enroll NAME [--json]                   another enrollment link
    shield serve approver export NAME                            NAME's passkey credentials

Every setting may also live in `<home>/serve.json` (flags win): listen, db, cert, key,
public_url, slack_webhook, webhook, webhook_secret_file.
"""

from __future__ import annotations

import json
import os
import time
from typing import Annotated, Any

import typer

from shim.errors import ShieldError
from shim.home import home_dir

serve_app = typer.Typer(invoke_without_command=True)
agent_app = typer.Typer(
    help="Agents that may submit held calls.\n\nExample: shield serve agent add deploy-bot > deploy-bot.token",
    no_args_is_help=True,
)
approver_app = typer.Typer(
    help="Approvers: tokens, passkey enrollment links, credential files.\n\n"
    "Example: shield serve approver add alice > alice.token",
    no_args_is_help=True,
)
serve_app.add_typer(agent_app, name="agent")
serve_app.add_typer(approver_app, name="approver")

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="postgresql://USER@HOST/DB, or sqlite:///PATH (default: <home>/server/shield.db).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help='Print {"name": ..., "token": ...}.')]
AddJsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help='Print {"name", "role", "token", "enroll_url", "enroll_expires"} (the link is '
        "for enrolling a passkey once).",
    ),
]
LinkJsonOpt = Annotated[
    bool, typer.Option("--json", help='Print {"name", "enroll_url", "enroll_expires"}.')
]
PublicUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--public-url",
        metavar="URL",
        help="The URL people reach the server at, for the link (default: serve.json's, or "
        "http://localhost:PORT for a loopback listen).",
    ),
]
ReplaceOpt = Annotated[
    bool, typer.Option("--replace", help="Issue a new token for an existing name (the old stops).")
]


def settings(home: str) -> dict[str, Any]:
    """`<home>/serve.json`, or {}."""
    path = os.path.join(home, "serve.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ShieldError(f"cannot read {path}: {exc}", "fix or remove the file") from exc
    if not isinstance(data, dict):
        raise ShieldError(f"{path}: expected a JSON object")
    return data


def _db(home: str, flag: str | None) -> str:
    from shim.server.run import default_db

    return flag or str(settings(home).get("db") or default_db(home))


@serve_app.callback()
def serve(
    ctx: typer.Context,
    listen: Annotated[
        str | None, typer.Option("--listen", metavar="HOST:PORT", help="Default 127.0.0.1:8421.")
    ] = None,
    db: DbOpt = None,
    cert: Annotated[
        str | None, typer.Option("--cert", metavar="F", help="TLS certificate (PEM).")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", metavar="F", help="TLS private key (PEM).")
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url", metavar="URL", help="The URL people reach this server at (for links)."
        ),
    ] = None,
    slack_webhook: Annotated[
        str | None, typer.Option("--slack-webhook", metavar="URL", help="Slack incoming webhook.")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", metavar="URL", help="Generic webhook (signed JSON).")
    ] = None,
    webhook_secret_file: Annotated[
        str | None,
        typer.Option("--webhook-secret-file", metavar="F", help="The webhook's HMAC secret."),
    ] = None,
) -> int:
    """Run the approval relay and the approvers' web page (at /, approvals signed by their
    passkeys). It stores held requests and relays signed decisions; it holds no key and cannot
    approve anything (each shim verifies every decision itself).

    Examples:

        shield serve --listen 0.0.0.0:8421 --cert tls.crt --key tls.key

        shield serve --db postgresql://shield@db/shield    (several servers, one queue)

        shield serve agent add deploy-bot
    """
    if ctx.invoked_subcommand is not None:
        return 0
    from shim.server.run import DEFAULT_LISTEN, ServeOptions
    from shim.server.run import serve as run_server

    home = home_dir()
    conf = settings(home)

    def pick(flag: str | None, name: str) -> str | None:
        value = flag if flag is not None else conf.get(name)
        return str(value) if value else None

    opts = ServeOptions(
        listen=pick(listen, "listen") or DEFAULT_LISTEN,
        db=_db(home, db),
        cert=pick(cert, "cert"),
        key=pick(key, "key"),
        public_url=pick(public_url, "public_url"),
        slack_webhook=pick(slack_webhook, "slack_webhook"),
        webhook=pick(webhook, "webhook"),
        webhook_secret_file=pick(webhook_secret_file, "webhook_secret_file"),
    )
    return run_server(home, opts)


def public_url(home: str, flag: str | None) -> str:
    """The server's public URL as `shield serve` would use it (flag, serve.json, listen)."""
    from shim.server.run import DEFAULT_LISTEN, default_public_url

    conf = settings(home)
    if flag or conf.get("public_url"):
        return str(flag or conf["public_url"]).rstrip("/")
    return default_public_url(str(conf.get("listen") or DEFAULT_LISTEN), bool(conf.get("cert")))


def default_url_note(home: str, flag: str | None) -> str:
    """A note for an enrollment link whose address is only the default (no --public-url, no
    public_url in serve.json): a server started with --public-url on its command line is
    reached elsewhere, and the link would lead nowhere."""
    if flag or settings(home).get("public_url"):
        return ""
    return (
        f"(this link's address is the default; if people reach the server at another URL, "
        f"pass --public-url URL, or set public_url in {os.path.join(home, 'serve.json')})"
    )


def new_enrollment(store: Any, name: str, url: str) -> tuple[str, float]:
    """A one-time enrollment link for approver `name` (the server keeps its hash)."""
    from shim.server.auth import token_hash
    from shim.server.passkeys import ENROLL_TTL_S
    from shim.server.session import new_secret
    from shim.server.webstore import WebStore

    token = new_secret()
    now = time.time()
    WebStore(store).add_enrollment(token_hash(token), name, now, now + ENROLL_TTL_S)
    return f"{url}/enroll/{token}", now + ENROLL_TTL_S


def add_principal(
    role: str, name: str, db: str | None, as_json: bool, replace: bool, url: str | None = None
) -> None:
    from shim.clock import now_iso
    from shim.server.auth import new_token, token_hash, valid_name
    from shim.server.store import Conflict, open_store

    if not valid_name(name):
        raise ShieldError(
            f"{name!r} is not a valid name", "letters, digits, '.', '_', '@', '-'; up to 64"
        )
    home = home_dir()
    store = open_store(_db(home, db))
    token = new_token()
    link: tuple[str, float] | None = None
    try:
        store.add_principal(role, name, token_hash(token), time.time(), replace=replace)
        if role == "approver":
            link = new_enrollment(store, name, public_url(home, url))
    except Conflict as exc:
        raise ShieldError(
            exc.message, f"shield serve {role} add {name} --replace issues a new token"
        ) from None
    finally:
        store.close()
    if as_json:
        out: dict[str, Any] = {"name": name, "role": role, "token": token}
        if link:
            out.update(enroll_url=link[0], enroll_expires=now_iso(link[1]))
        typer.echo(json.dumps(out))
        return
    # the token alone on stdout (`... > NAME.token`), the explanation on stderr
    typer.echo(
        f"{role} {name}: the token below is shown once (the server keeps its hash)", err=True
    )
    typer.echo(token)
    use = (
        "shield install --server URL --token-file F"
        if role == "agent"
        else ("shield pending --server URL --token-file F")
    )
    typer.echo(f"save it to a file, readable only by its user, for: {use}", err=True)
    if link:
        _tell_link(name, *link, note=default_url_note(home, url))


def _tell_link(name: str, url: str, expires: float, note: str = "") -> None:
    from shim.clock import now_iso

    typer.echo(
        f"{name} enrolls a passkey once, before {now_iso(expires)}, at:\n  {url}\n"
        + (f"{note}\n" if note else "")
        + f"then: shield serve approver export {name} > {name}.passkey, and in each agent home: "
        f"shield trust add {name}.passkey",
        err=True,
    )


@agent_app.command("add")
def agent_add(
    name: Annotated[str, typer.Argument(help="The agent's name (as baked into its shims).")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
    replace: ReplaceOpt = False,
) -> None:
    """Let an agent submit its held calls: prints its bearer token once.

    The token can submit, wait on and withdraw only requests held by the agent NAME.

    Example: shield serve agent add deploy-bot > deploy-bot.token
    """
    add_principal("agent", name, db, as_json, replace)


@approver_app.command("add")
def approver_add(
    name: Annotated[str, typer.Argument(help="The approver's name.")],
    db: DbOpt = None,
    as_json: AddJsonOpt = False,
    replace: ReplaceOpt = False,
    url: PublicUrlOpt = None,
) -> None:
    """Let an approver list held calls and post decisions: prints the token once, and a
    one-time link (valid for a day) where they enroll a passkey for the web page.

    The token and the page's session let them see and relay; only their own signing key (or
    passkey, once an operator trusts its credential in an agent home) approves. With --json:
    {"name", "role", "token", "enroll_url", "enroll_expires"}.

    Example: shield serve approver add alice --public-url https://shield.example:8421 --json
    """
    add_principal("approver", name, db, as_json, replace, url)


@approver_app.command("enroll")
def approver_enroll(
    name: Annotated[str, typer.Argument(help="The approver's name.")],
    db: DbOpt = None,
    as_json: LinkJsonOpt = False,
    url: PublicUrlOpt = None,
) -> None:
    """A new one-time link where an existing approver enrolls another passkey (a phone, a
    security key). With --json: {"name", "enroll_url", "enroll_expires"}.

    Example: shield serve approver enroll alice
    """
    from shim.clock import now_iso
    from shim.server.store import open_store

    home = home_dir()
    store = open_store(_db(home, db))
    try:
        if ("approver", name) not in {(r, n) for r, n, _ in store.principals()}:
            raise ShieldError(
                f"no approver {name!r} on this server", f"add one: shield serve approver add {name}"
            )
        link, expires = new_enrollment(store, name, public_url(home, url))
    finally:
        store.close()
    if as_json:
        typer.echo(
            json.dumps({"name": name, "enroll_url": link, "enroll_expires": now_iso(expires)})
        )
        return
    typer.echo(link)
    _tell_link(name, link, expires, note=default_url_note(home, url))


@approver_app.command("export")
def approver_export(
    name: Annotated[str, typer.Argument(help="The approver's name.")],
    db: DbOpt = None,
) -> None:
    """Print NAME's passkey credentials (public data: credential id, public key, relying-party
    id, origin, name), one per line, for `shield trust add` in each agent home. The server
    cannot add trust by itself.

    Example: shield serve approver export alice > alice.passkey
    """
    from shim.server.passkeys import credential_file
    from shim.server.store import open_store
    from shim.server.webstore import WebStore

    store = open_store(_db(home_dir(), db))
    try:
        rows = WebStore(store).passkeys(name)
    finally:
        store.close()
    if not rows:
        raise ShieldError(
            f"{name!r} has no passkey enrolled on this server",
            f"open the link from: shield serve approver enroll {name}",
        )
    typer.echo(credential_file(rows), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
