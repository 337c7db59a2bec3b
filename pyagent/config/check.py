"""Small checkers for config values: each error names the key (dotted, as written) and the file."""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyagent.errors import InvalidInputError
from pyagent.redact import redact

#: ``$NAME`` or ``${NAME}`` where a shell reads one: at the start of the path or of one of its parts
#: (``/srv/my$app`` is a name, as a shell would take it in quotes too).
_VARIABLE = re.compile(r"(?:^|/)(\$(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*))")
#: ``~`` or ``~user`` as a shell expands it: alone, or before the first ``/`` (``~backup`` is a name).
_TILDE = re.compile(r"~(?:[A-Za-z0-9._-]+/|/|$)")


def unexpanded_part(path: str) -> str | None:
    """What a shell would have expanded in ``path`` and nothing here does (``~``, ``$HOME``), or None. A
    ``~/state`` taken as written is a folder named ``~`` in the working directory (``/~`` under a service
    manager)."""
    if _TILDE.match(path):
        return "'~'"
    variable = _VARIABLE.search(path)
    return variable.group(1) if variable is not None else None


def _why_not_expanded(part: str) -> str:
    if part.startswith("${"):  # (the config's own form: replaced when the variable is set)
        return "is not set in the environment"
    if part.startswith("$"):
        return f"is not expanded (write ${{{part[1:]}}}: the config takes that form from the environment)"
    return "is not expanded (no shell reads this file)"


class Section:
    """One table of a config file, read key by key; ``done()`` refuses the keys nobody read."""

    def __init__(self, value: Any, name: str, source: str, *, known: Collection[str]) -> None:
        if not isinstance(value, dict):
            raise InvalidInputError(f"{name} in {source} must be a table ({{...}} or [{name}])")
        bad = sorted(str(key) for key in value if key not in known)
        if bad:
            raise InvalidInputError(
                f"{source}: unknown key {name}.{bad[0]}; known: {', '.join(sorted(known)) or 'none'}"
            )
        self.value: dict[str, Any] = value
        self.name = name
        self.source = source

    def key(self, key: str) -> str:
        return f"{self.name}.{key}"

    def has(self, key: str) -> bool:
        return key in self.value

    def fail(self, key: str, what: str) -> InvalidInputError:
        return InvalidInputError(
            f"{self.key(key)} in {self.source} {what}, got {_shown(self.value.get(key))}"
        )

    def sub(self, key: str, *, known: Collection[str]) -> Section:
        return Section(self.value.get(key, {}), self.key(key), self.source, known=known)

    def string(self, key: str, default: str | None = None) -> str | None:
        if key not in self.value:
            return default
        value = self.value[key]
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise self.fail(key, "must be a non-empty string")
        return value

    def path(self, key: str) -> Path | None:
        value = self.string(key)
        if value is None:
            return None
        unexpanded = unexpanded_part(value)
        if unexpanded is not None:
            raise self.fail(key, f"must be a full path: {unexpanded} {_why_not_expanded(unexpanded)}")
        return Path(value)

    def number(self, key: str, default: float, *, minimum: float = 0, maximum: float = math.inf) -> float:
        if key not in self.value:
            return default
        value = self.value[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(key, "must be a number")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum:g}")
        if value > maximum:
            raise self.fail(key, f"must be at most {maximum:g}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        if key not in self.value:
            return default
        value = self.value[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be a whole number >= {minimum}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.value:
            return default
        value = self.value[key]
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def url(self, key: str) -> str | None:
        value = self.string(key)
        if value is not None:
            check_url(value, what=f"{self.key(key)} in {self.source}")
        return value


def check_url(url: str, *, what: str) -> str:
    """``url`` when it is an absolute http(s) URL without credentials, else a usage error."""
    shown = redact(url)  # a message never shows credentials, even those it refuses
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidInputError(f"{what}: {shown!r} has a space or control character (percent-encode it)")
    try:
        parts = urlsplit(url)
    except ValueError as err:  # an unclosed [ of an IPv6 address, ...
        raise InvalidInputError(f"{what}: {shown!r} is not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{what}: {shown!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidInputError(f"{what}: put credentials in a token file, not in the URL")
    if parts.query or parts.fragment:
        raise InvalidInputError(f"{what}: {shown!r} must not have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError as err:
        raise InvalidInputError(f"{what}: {shown!r} has an invalid port") from err
    return url


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
