"""``pyagent server``: run the control plane, manage its tokens, publish bundles, migrate its store."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from pyagent.cli.options import GivenPath

F = TypeVar("F", bound=Callable[..., Any])


def db_option(f: F) -> F:
    return click.option(
        "--db",
        envvar="PYAGENT_SERVER_DB",
        metavar="URL",
        help="postgresql://… or sqlite:///FILE (env PYAGENT_SERVER_DB) "
        "[default: server.db in the state dir].",
    )(f)


def config_options(f: F) -> F:
    f = click.option(
        "--state-dir",
        envvar="PYAGENT_STATE_DIR",
        type=GivenPath(file_okay=False, path_type=Path),
        default=None,
        help="Where the default SQLite database lives (env PYAGENT_STATE_DIR, as the agent's) "
        "[default: /var/lib/pyagent as root, else $XDG_STATE_HOME/pyagent].",
    )(f)
    return click.option(
        "--config",
        "config_file",
        type=GivenPath(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="Server config (TOML, a [server] table).",
    )(f)


def _settings(config_file: Path | None, **options: Any) -> Any:
    from pyagent.server.settings import load_settings

    return load_settings(config_file).with_options(**options)


def _store(settings: Any, *, create: bool = True) -> Any:
    from pyagent.server.store import open_store

    return open_store(settings.db, state_dir=settings.state_dir, create=create)


@click.group(
    epilog="""\b
Examples:
  pyagent server run                                   # SQLite in the state dir, 127.0.0.1:8282
  pyagent server token add fleet-agents --role agent   # prints the token once
  pyagent policy bundle --target rego -o build/server.tar.gz   # the build OPAs get
  pyagent server publish --name pyagent build/server.tar.gz build/bundle.tar.gz   # and --target wasm's
  PYAGENT_SERVER_DB=postgresql://pyagent@db/pyagent pyagent server run --bind 0.0.0.0:8282
""",
)
def server() -> None:
    """The control plane: OPA's Bundle, Decision Log and Status APIs, and the fleet API.

    Exit codes of the server commands: 0 done (`server run`: stopped by SIGTERM or Ctrl-C, its requests
    answered), 2 invalid input or usage (a --db that names no usable file, too), 3 the database cannot
    be used (unreachable, or its schema is not this pyagent's)."""


@server.command(
    epilog="""\b
Examples:
  pyagent server run --bind 0.0.0.0:8282 --db postgresql://pyagent@db.internal/pyagent
  pyagent server run --tls-cert server.crt --tls-key server.key --config server.toml
"""
)
@click.option("--bind", metavar="HOST:PORT", default=None, help="Listen address [default: 127.0.0.1:8282].")
@db_option
@config_options
@click.option("--tls-cert", type=GivenPath(dir_okay=False, exists=True, path_type=Path), default=None)
@click.option("--tls-key", type=GivenPath(dir_okay=False, exists=True, path_type=Path), default=None)
@click.option(
    "--max-body",
    "max_body_bytes",
    type=click.IntRange(min=1024),
    default=None,
    help="Largest body on the wire (logs, status, publish), bytes [default: 32 MiB].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=1,
    show_default=True,
    help="Worker processes on the port (one per core); they share only the database.",
)
@click.option(
    "--forwarded-allow-ips",
    metavar="ADDRESSES",
    envvar="FORWARDED_ALLOW_IPS",
    default=None,
    callback=lambda _ctx, param, value: _addresses(param, value),
    help="The load balancers whose X-Forwarded-Proto/-For are believed: addresses or networks, "
    "comma-separated, or '*' [default: 127.0.0.1; env FORWARDED_ALLOW_IPS]. A load balancer "
    "that terminates TLS on another host must be named, or dashboard logins are refused "
    "(the browser's https origin is not this server's http one).",
)
def run(
    bind: str | None,
    db: str | None,
    state_dir: Path | None,
    config_file: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    max_body_bytes: int | None,
    workers: int,
    forwarded_allow_ips: str | None,
) -> None:
    """Serve bundles, receive decision logs and status, answer the fleet API."""
    import uvicorn

    from pyagent.cli import log_to_stderr
    from pyagent.errors import InvalidInputError
    from pyagent.server.app import create_app
    from pyagent.server.protocol import HeaderDeadlineProtocol, raise_file_limit

    log_to_stderr(0, warnings=True)  # a server's warnings (ignored decisions, store errors) are its log
    raise_file_limit()  # (every connection, each held long poll, is a file)
    settings = _settings(
        config_file,
        bind=bind,
        db=db,
        state_dir=state_dir,
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_body_bytes=max_body_bytes,
    )
    host, port = settings.host_port()
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise InvalidInputError("--tls-cert and --tls-key go together")
    _check_tls(settings.tls_cert, settings.tls_key)
    if settings.verification:
        settings.verification.config()  # a key that cannot be read fails here, before the port opens
    _check_bind(host, port)
    store = _store(settings)  # migrated before the port opens: a broken database fails here, exit 3
    scheme = "https" if settings.tls_cert else "http"
    signing = (
        "signed bundles only" if settings.verification else "unsigned bundles accepted (no verification key)"
    )
    shown = f"[{host}]" if ":" in host else host  # (IPv6)
    everywhere = " (every interface)" if host in ("0.0.0.0", "::") else ""
    click.echo(f"pyagent server on {scheme}://{shown}:{port}{everywhere} ({store!r}; {signing})", err=True)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "ssl_certfile": str(settings.tls_cert) if settings.tls_cert else None,
        "ssl_keyfile": str(settings.tls_key) if settings.tls_key else None,
        **UVICORN_OPTIONS,
        "http": HeaderDeadlineProtocol,
        "forwarded_allow_ips": forwarded_allow_ips,  # (None: uvicorn's default, 127.0.0.1)
    }
    # uvicorn shuts down gracefully on SIGTERM, then raises it again to the handler it found: this
    # one, so that a stop asked for is exit 0 (as the help says), not death by the signal
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        if workers > 1:  # processes on one port; each opens the store itself (the process keeps no state)
            from pyagent.server.app import export_to_workers

            store.close()
            export_to_workers(settings.with_options(db=store.url))
            uvicorn.run("pyagent.server.app:create_app_from_env", factory=True, workers=workers, **options)
        else:
            uvicorn.run(create_app(settings, store), **options)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _check_tls(cert: Path | None, key: Path | None) -> None:
    """Load the certificate and key as uvicorn will, so that a bad pair is the user's error (exit 2,
    naming the files), not uvicorn's after the startup line."""
    if cert is None or key is None:
        return
    import ssl

    from pyagent.errors import InvalidInputError

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except ssl.SSLError as err:
        reason = (
            "the key does not belong to the certificate"
            if err.reason == "KEY_VALUES_MISMATCH"
            else "expected a PEM certificate and its PEM private key"
        )
        raise InvalidInputError(f"TLS certificate {cert} and key {key}: {reason}") from None
    except OSError as err:
        raise InvalidInputError(f"TLS certificate {cert} and key {key}: {err.strerror or err}") from None


def _check_bind(host: str, port: int) -> None:
    """Bind the address once (as uvicorn will, with SO_REUSEADDR) so that a port in use or a host
    that does not resolve is the user's error, exit 2, naming ``--bind``."""
    import socket

    from pyagent.errors import InvalidInputError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as err:
        raise InvalidInputError(f"--bind {host}:{port}: {err.strerror or err}") from None


def _addresses(param: click.Parameter, value: str | None) -> str | None:
    """``*``, or addresses and networks, comma-separated: anything else is a usage error naming it
    (uvicorn would start, and believe no one)."""
    import ipaddress

    if value is None or value.strip() == "*":
        return value
    for item in value.split(","):
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise click.BadParameter(
                f"{item.strip()!r} is not an address or network (or give '*')", param=param
            ) from None
    return value


#: uvicorn's settings besides the address and TLS: the C HTTP parser and event loop are chosen, not
#: found by import (h11, pure Python, cost about 0.1 ms of CPU per decision-log event). ``run`` puts
#: the parser's protocol with a deadline on each request's headers in its place (``protocol.py``).
UVICORN_OPTIONS: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "timeout_graceful_shutdown": 5,
    "http": "httptools",
    "loop": "uvloop",
}


@server.command(
    epilog="""\b
Examples:
  pyagent server migrate
  pyagent server migrate --db postgresql://pyagent@db.example.org/pyagent
  PYAGENT_SERVER_DB=postgresql://pyagent@db.example.org/pyagent pyagent server migrate
""",
)
@db_option
@config_options
def migrate(db: str | None, state_dir: Path | None, config_file: Path | None) -> None:
    """Apply the store's schema migrations (the server also does on start)."""
    from pyagent.server.store import open_store

    settings = _settings(config_file, db=db, state_dir=state_dir)
    store = open_store(settings.db, state_dir=settings.state_dir, migrate=False)
    applied = store.migrate()
    click.echo(f"migrated {store!r}: {', '.join(applied) if applied else 'already up to date'}", err=True)


@server.command(
    epilog="""\b
Examples:
  pyagent policy bundle --target rego --revision 2023.03.15-1 -o build/server.tar.gz
  pyagent policy bundle --target wasm --revision 2023.03.15-1 -o build/bundle.tar.gz
  pyagent server publish --name pyagent build/server.tar.gz build/bundle.tar.gz
  pyagent policy bundle --signing-key private.pem --serial 43 --target rego -o build/server.tar.gz
  pyagent policy bundle --signing-key private.pem --serial 43 --target wasm -o build/bundle.tar.gz
  pyagent server publish --name pyagent build/server.tar.gz build/bundle.tar.gz --config server.toml

\b
The two builds of one revision carry one serial (--serial: each signing run stamps its own by
default). With the server's config ([server.verification]) the signature is verified; once a
revision was, a publish without that config is refused. The current revision again, byte for byte
(a retry), is "already published", exit 0; a revision that is not newer is exit 2.
"""
)
@click.option("--name", required=True, help="Bundle name: served at /bundles/NAME and /bundles/NAME/wasm.")
@click.argument("files", nargs=-1, required=True, type=GivenPath(dir_okay=False, exists=True, path_type=Path))
@db_option
@config_options
def publish(
    name: str, files: tuple[Path, ...], db: str | None, state_dir: Path | None, config_file: Path | None
) -> None:
    """Store a new revision of a bundle (its rego and/or wasm build); agents and OPAs then get it."""
    from pyagent.server.publish import MAX_BUNDLE_BYTES
    from pyagent.server.publish import publish as publish_bundle
    from pyagent.userfile import read_limited

    settings = _settings(config_file, db=db, state_dir=state_dir)
    archives = [(str(path), read_limited(path, what="bundle", limit=MAX_BUNDLE_BYTES)) for path in files]
    verification = settings.verification.config() if settings.verification else None
    done = publish_bundle(_store(settings), name, archives, verification=verification, published_by="cli")
    serial = f", serial {done.serial}" if done.serial is not None else ""
    said = "published" if done.stored else "already published"
    click.echo(
        f"{said} {done.name} revision {done.revision}{serial} ({', '.join(done.targets)}; {done.note})",
        err=True,
    )


@server.group()
def token() -> None:
    """Bearer tokens: agent (bundles, logs, status), reader (API, dashboard), admin (publish)."""


@token.command(
    "add",
    epilog="""\b
Examples:
  pyagent server token add fr-brussels-0042 --role agent --device fr-brussels-0042
  pyagent server token add gateway-opa --role agent
  pyagent server token add security-team --role reader
""",
)
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["agent", "reader", "admin"]))
@click.option(
    "--device",
    "device",
    metavar="ID",
    help="Bind an agent token to one device: its decision logs and status for any other device are "
    "refused (403). Without it, an agent token reports for any device (an OPA logging many devices).",
)
@db_option
@config_options
def token_add(
    name: str, role: str, device: str | None, db: str | None, state_dir: Path | None, config_file: Path | None
) -> None:
    """Create a token NAME and print it once on stdout (only its hash is stored)."""
    from pyagent.server.auth import check_device_id, check_name, new_token, token_hash

    check_name(name)
    if device is not None:
        if role != "agent":
            raise click.UsageError(f"--device binds agent tokens only, not a {role} token")
        check_device_id(device)
    secret = new_token()
    store = _store(_settings(config_file, db=db, state_dir=state_dir))
    store.add_token(name, role, token_hash(secret), device)
    click.echo(secret)
    bound = f" for device {device!r}" if device is not None else ""
    click.echo(f"token {name} ({role}{bound}) added; it is shown only now", err=True)


@token.command(
    "list",
    epilog="""\b
Examples:
  pyagent server token list
  pyagent server token list --db postgresql://pyagent@db.example.org/pyagent
""",
)
@db_option
@config_options
def token_list(db: str | None, state_dir: Path | None, config_file: Path | None) -> None:
    """List tokens (name, role, created, and the device an agent token is bound to, else "*"),
    never their secrets."""
    from pyagent.server.auth import ANY_DEVICE
    from pyagent.termsafe import printable

    for info in _store(_settings(config_file, db=db, state_dir=state_dir), create=False).list_tokens():
        created = info.created_at.isoformat().replace("+00:00", "Z")
        device = ANY_DEVICE if info.device is None else printable(info.device)
        click.echo(f"{info.name}\t{info.role}\t{created}\t{device}")


@token.command(
    "revoke",
    epilog="""\b
Examples:
  pyagent server token revoke fr-brussels-0042
""",
)
@click.argument("name")
@db_option
@config_options
def token_revoke(name: str, db: str | None, state_dir: Path | None, config_file: Path | None) -> None:
    """Revoke token NAME at once: its next request, and a long poll it holds, are refused (401)."""
    from pyagent.errors import InvalidInputError

    if not _store(_settings(config_file, db=db, state_dir=state_dir), create=False).revoke_token(name):
        raise InvalidInputError(f"token {name!r}: no such token")
    click.echo(f"token {name} revoked", err=True)
