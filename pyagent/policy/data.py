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
        raise InvalidInputError(f"{source}: data file must be a JSON object, got {type(document).__name__}")
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
    """``base`` with every overlay merged in; ``base`` is not modified."""
    merged = copy.deepcopy(base)
    for overlay in overlays:
        _merge_into(merged, overlay.document, path=[], source=overlay.source)
    return merged


def overlay_digest(overlays: Sequence[DataOverlay]) -> str:
    """A short stable digest of the overlays, appended to the policy revision."""
    import hashlib  # OpenSSL's start-up is paid only with overlays

    canonical = json.dumps([o.document for o in overlays], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _merge_into(target: dict[str, Any], document: dict[str, Any], *, path: list[str], source: str) -> None:
    for key, value in document.items():
        here = [*path, key]
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(target[key], dict) and isinstance(value, dict):
            _merge_into(target[key], value, path=here, source=source)
        elif target[key] != value:
            raise DataConflictError(
                f"{source}: merge conflict at data.{'.'.join(here)}: "
                "the value is already set by the policy data or an earlier --data file"
            )
