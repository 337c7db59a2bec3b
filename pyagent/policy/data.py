"""Policy data overlays (``--data FILE``): JSON documents merged into the policy data.

Overlays merge like OPA's own data files: objects merge key by key; two different values at
the same path are a conflict, reported with its path (exit code 2). Policy data lives under
``pyagent``; an overlay with any other top-level key would be ignored by the policy, so it is
refused rather than silently dropped.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyagent.errors import InvalidInputError
from pyagent.userfile import read_limited

if TYPE_CHECKING:  # PyYAML is imported only where policy YAML is read, not by every `check`
    from pyagent.policy.yamlload import Located

MAX_OVERLAY_BYTES = 16 * 1024 * 1024


class DataConflictError(InvalidInputError):
    """Two data documents set different values at the same path."""


@dataclass(frozen=True)
class DataOverlay:
    """One ``--data`` document and where it came from (with its lines, when read from a file)."""

    source: str
    document: dict[str, Any]
    lines: Located | None = None


def load_overlay(path: str | Path) -> DataOverlay:
    """Read one overlay file: a JSON object whose only top-level key is ``pyagent``."""
    from pyagent.policy.datacheck.jsonlines import load_json

    source = str(path)
    raw = read_limited(path, what="data file", limit=MAX_OVERLAY_BYTES)
    located = load_json(raw, source, what="data file")
    document = located.value
    if not isinstance(document, dict):
        raise InvalidInputError(f"{source}: data file must be a JSON object, got {_json_kind(document)}")
    unexpected = sorted(key for key in document if key != "pyagent")
    if unexpected:
        raise InvalidInputError(
            f"{source}: top-level key {unexpected[0]!r} is not policy data; "
            'policy data lives under {"pyagent": {...}}'
        )
    if not isinstance(document.get("pyagent"), dict):
        raise InvalidInputError(f'{source}: expected {{"pyagent": {{...}}}}, an object under "pyagent"')
    return DataOverlay(source=source, document=document, lines=located)


def merge(base: dict[str, Any], overlays: Sequence[DataOverlay]) -> dict[str, Any]:
    """``base`` with every overlay merged in; ``base`` is not modified. A value set again to another
    value is a :class:`DataConflictError` naming the overlay's line and who set the value first."""
    merged = copy.deepcopy(base)
    for index, overlay in enumerate(overlays):
        try:
            _merge_into(merged, overlay.document, path=[])
        except _Conflict as conflict:
            line = f":{overlay.lines.line_of(tuple(conflict.path))}" if overlay.lines is not None else ""
            first = next(
                (o.source for o in overlays[:index] if _has_path(o.document, conflict.path)),
                "the policy data",
            )
            where = f"{overlay.source}{line}: merge conflict at data.{'.'.join(conflict.path)}"
            if conflict.keyed_by_id:  # (a list of exemptions, say: no value of it could ever merge)
                raise DataConflictError(
                    f"{where}: {first} has an object there and this overlay {_json_kind(conflict.given)}; "
                    "an overlay adds to an object with an object (bans, organisations, rules and exemptions "
                    "are keyed by their ids)"
                ) from None
            raise DataConflictError(
                f"{where}: already set to another value by {first}; an overlay adds to the data, it does not "
                "change it (edit the data, or build a bundle from it)"
            ) from None
    return merged


class _Conflict(Exception):
    def __init__(self, path: list[str], *, had: Any, given: Any) -> None:
        super().__init__(path)
        self.path = path
        self.given = given
        self.keyed_by_id = isinstance(had, dict) and not isinstance(given, dict)


def _json_kind(value: Any) -> str:
    kinds = ((dict, "an object"), (list, "a list"), (str, "a string"), (bool, "a boolean"))
    named = next((name for kind, name in kinds if isinstance(value, kind)), None)
    return named or ("null" if value is None else "a number")


def _has_path(document: dict[str, Any], path: list[str]) -> bool:
    node: Any = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def overlay_digest(overlays: Sequence[DataOverlay]) -> str:
    """A short stable digest of the overlays, appended to the policy revision."""
    import hashlib  # OpenSSL's start-up is paid only with overlays

    canonical = json.dumps([o.document for o in overlays], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _merge_into(target: dict[str, Any], document: dict[str, Any], *, path: list[str]) -> None:
    for key, value in document.items():
        here = [*path, key]
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(target[key], dict) and isinstance(value, dict):
            _merge_into(target[key], value, path=here)
        elif target[key] != value:
            raise _Conflict(here, had=target[key], given=value)
