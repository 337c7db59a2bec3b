"""``--format json``: the decision document itself (CONTRACT section 2), indented by 2, ending with a newline.

The top-level keys come in contract order (``device_id``, ``organization``, ``allow``, ``violations``,
``warnings``, ``exempted``, ``errors``, ``evaluated_at``, ``policy_revision``, ``engine``,
``decision_id``), then any other key in the order the engine gave; entries keep their own order. The text
is pure ASCII (``\\uXXXX`` escapes), so no control character from a report reaches a terminal raw.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from pyagent.outputs.base import OutputError, OutputFormat, parse_decision

CONTRACT_ORDER: tuple[str, ...] = (
    "device_id",
    "organization",
    "allow",
    "violations",
    "warnings",
    "exempted",
    "errors",
    "evaluated_at",
    "policy_revision",
    "engine",
    "decision_id",
)


def ordered(decision: Mapping[str, Any]) -> dict[str, Any]:
    """``decision`` as a dict whose known keys come first, in contract order."""
    out = {key: decision[key] for key in CONTRACT_ORDER if key in decision}
    out.update((key, value) for key, value in decision.items() if key not in out)
    return out


class JsonFormat(OutputFormat):
    """The decision as JSON."""

    name: ClassVar[str] = "json"
    media_type: ClassVar[str] = "application/json"

    def render(self, decision: Mapping[str, Any], *, source: str) -> str:
        parse_decision(decision)  # the same shape checks as every other format
        try:
            text = json.dumps(ordered(decision), indent=2, ensure_ascii=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise OutputError(f"decision cannot be written as JSON: {exc}") from exc
        return text + "\n"
