"""The server's settings: command-line options over an optional TOML file (``--config``)::

    [server]
    bind = "0.0.0.0:8282"
    db = "postgresql://pyagent@db.internal/pyagent"   # or PYAGENT_SERVER_DB; default SQLite
    state_dir = "/var/lib/pyagent"
    max_body_bytes = 33554432          # on the wire
    max_decoded_bytes = 67108864       # after gzip
    body_timeout_seconds = 120         # a whole request body (decision logs, status, uploads)
    max_long_poll_seconds = 300
    retention_days = 400               # decision history kept; default 0: forever
    stale_after_seconds = 86400        # a device silent this long counts as not compliant
                                       # (or stale_after = "24h", as a duration)
    query_timeout_seconds = 30         # a reader's query (API, dashboard) is stopped past this: 503
    reader_queries = 4                 # reader queries at once per process; more wait (then 503 busy)
    dashboard_refresh_seconds = 60     # the dashboard's pages of now reload themselves; 0: never
    tls_cert = "/etc/pyagent/server.crt"
    tls_key = "/etc/pyagent/server.key"

    [server.verification]              # refuse bundles not signed by this key
    key_path = "/etc/pyagent/bundle-signing.pub.pem"
    algorithm = "RS256"
    keyid = "pyagent"                  # optional
    scope = "eu-fleet"                 # optional

Unknown keys are an error naming the key and the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pyagent.bundles.verify import VerificationConfig
from pyagent.config.opakeys import report_once
from pyagent.errors import InvalidInputError, located
from pyagent.server.body import BodyLimits, MiB
from pyagent.server.store.base import QUERY_TIMEOUT_SECONDS
from pyagent.timeutil import DURATION_EXPECTED, duration_seconds

DEFAULT_BIND = "127.0.0.1:8282"


@dataclass(frozen=True)
class Verification:
    key_path: Path
    algorithm: str | None = None
    keyid: str | None = None
    scope: str | None = None
    where: str = "server.verification.key_path"
    """Where the key was named, for its errors: ``FILE: server.verification.key_path``."""

    def config(self) -> VerificationConfig:
        with located(self.where):
            return VerificationConfig.from_key_file(
                self.key_path, algorithm=self.algorithm, key_id=self.keyid, scope=self.scope
            )


@dataclass(frozen=True)
class ServerSettings:
    bind: str = DEFAULT_BIND
    db: str | None = None
    state_dir: Path | None = None
    max_body_bytes: int = 32 * MiB
    max_decoded_bytes: int = 64 * MiB
    body_timeout_seconds: int = 120
    max_long_poll_seconds: int = 300
    retention_days: int = 0  # keep everything unless asked: history is evidence, and old instants are queried
    stale_after_seconds: int = 24 * 3600
    query_timeout_seconds: float = QUERY_TIMEOUT_SECONDS
    reader_queries: int = 4
    dashboard_refresh_seconds: int = 60
    tls_cert: Path | None = None
    tls_key: Path | None = None
    verification: Verification | None = None

    @property
    def limits(self) -> BodyLimits:
        return BodyLimits(self.max_body_bytes, self.max_decoded_bytes, self.body_timeout_seconds)

    def host_port(self) -> tuple[str, int]:
        """``HOST:PORT`` (``[IPv6]:PORT``; ``:PORT`` is every interface, as OPA's ``--addr`` reads it)."""
        host, sep, port = self.bind.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise InvalidInputError(f"--bind {self.bind!r}: expected HOST:PORT, e.g. {DEFAULT_BIND}")
        bracketed = host.startswith("[") and host.endswith("]") and len(host) > 2
        inside = host[1:-1] if bracketed else host
        if any(c in host for c in "[]:") and (not bracketed or "[" in inside or "]" in inside):
            raise InvalidInputError(
                f"--bind {self.bind!r}: an IPv6 address goes whole in brackets, e.g. [::1]:8282"
            )
        return inside or "0.0.0.0", int(port)

    def with_options(self, **options: Any) -> ServerSettings:
        """These settings with every option that was given (not None) put over them."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})


_INTS = {
    "max_body_bytes": 1024,
    "max_decoded_bytes": 1024,
    "body_timeout_seconds": 1,
    "max_long_poll_seconds": 1,
    "retention_days": 0,
    "stale_after_seconds": 1,
    "query_timeout_seconds": 1,
    "reader_queries": 1,
    "dashboard_refresh_seconds": 0,
}
_PATHS = {"state_dir", "tls_cert", "tls_key"}
_STRINGS = {"bind", "db"}
_VERIFICATION = {"key_path", "algorithm", "keyid", "scope"}


def load_settings(path: Path | None) -> ServerSettings:
    if path is None:
        return ServerSettings()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot read the server config: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise InvalidInputError(
            f"{path}: the server config is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
            f"{err.start})"
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise InvalidInputError(f"{path}: not valid TOML: {err}") from err
    unknown = set(document) - {"server"}
    if unknown:
        raise InvalidInputError(f"{path}: unknown table or key {sorted(unknown)[0]!r} (expected [server])")
    section = document.get("server", {})
    if not isinstance(section, dict):
        raise InvalidInputError(f"{path}: server must be a table")
    values: dict[str, Any] = {}
    known = {f.name for f in fields(ServerSettings)}
    for key, value in section.items():
        where = f"{path}: server.{key}"
        if key == "stale_after":  # CONTRACT §8's name, as a duration ("24h", "90m", "1h30m") or seconds
            if "stale_after_seconds" in section:
                raise InvalidInputError(f"{where}: give stale_after or stale_after_seconds, not both")
            values["stale_after_seconds"] = _duration_seconds(value, where)
            continue
        if key not in known:
            raise InvalidInputError(f"{where}: unknown key")
        if key == "verification":
            values[key] = _verification(value, where)
        elif key in _INTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < _INTS[key]:
                raise InvalidInputError(f"{where}: must be an integer of at least {_INTS[key]}")
            values[key] = value
        elif key not in _PATHS | _STRINGS:  # a setting with no type here: none may be given unchecked
            raise InvalidInputError(f"{where}: cannot be set in the config file")
        elif not isinstance(value, str) or not value:
            raise InvalidInputError(f"{where}: must be a non-empty string")
        else:
            values[key] = Path(value) if key in _PATHS else value
    if "db" in values and _holds_password(values["db"]):
        report_once(
            f"{path}:db",
            f"{path}: server.db holds a password: secrets stay out of config files; give it in "
            "PYAGENT_SERVER_DB, or to PostgreSQL in a password file (PGPASSFILE, ~/.pgpass)",
        )
    return ServerSettings(**values)


def _holds_password(url: str) -> bool:
    """Whether the database URL ``url`` has user-info with a password (``postgresql://u:pw@host``)."""
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(url)
        return parts.password is not None or "password" in parse_qs(parts.query)
    except ValueError:  # (a URL that does not parse is refused when it is opened)
        return False


def _duration_seconds(value: Any, where: str) -> int:
    """A duration (:func:`~pyagent.timeutil.duration_seconds`), or an integer of seconds; at least one
    second."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise InvalidInputError(f"{where}: must be at least one second")
        return value
    seconds = duration_seconds(value) if isinstance(value, str) else None
    if seconds is None:
        raise InvalidInputError(f"{where}: must be {DURATION_EXPECTED}")
    return seconds


def _verification(value: Any, where: str) -> Verification:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where}: must be a table")
    for key, item in value.items():
        if key not in _VERIFICATION:
            raise InvalidInputError(f"{where}.{key}: unknown key")
        if not isinstance(item, str) or not item:
            raise InvalidInputError(f"{where}.{key}: must be a non-empty string")
    if "key_path" not in value:
        raise InvalidInputError(f"{where}.key_path: required")
    return Verification(
        Path(value["key_path"]),
        value.get("algorithm"),
        value.get("keyid"),
        value.get("scope"),
        where=f"{where}.key_path",
    )


#: How ``pyagent server run --workers N`` hands its settings to each worker process.
SETTINGS_ENV = "PYAGENT_SERVER_SETTINGS"


def to_env(settings: ServerSettings) -> str:
    """The settings as JSON for :data:`SETTINGS_ENV` (paths as strings)."""
    import json
    from dataclasses import asdict

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return json.dumps(plain(asdict(settings)))


def from_env(text: str) -> ServerSettings:
    import json

    values = json.loads(text)
    for key in _PATHS:
        if values.get(key) is not None:
            values[key] = Path(values[key])
    if values.get("verification"):
        found = values["verification"]
        values["verification"] = Verification(**{**found, "key_path": Path(found["key_path"])})
    return ServerSettings(**values)
