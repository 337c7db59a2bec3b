"""OPA's Status API: ``POST /status``. The newest message (:func:`said_at`) per sender (``labels.id``:
an agent's device id, or an OPA's instance id) is kept: its bundles' active revisions, download and
activation times, and errors, which the fleet API shows per device and per rollout. A token bound
to one device posts that device's status only: another ``labels.id`` is refused (403), also an OPA
instance id (a status row per sender: one under another sender's id would replace that sender's)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from anyio import CapacityLimiter, to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pyagent.redact import redact_strings
from pyagent.server.auth import check_device
from pyagent.server.body import parse_json, read_body
from pyagent.server.context import ServerContext
from pyagent.server.events import dump_json, status_of
from pyagent.server.instants import parse_instant
from pyagent.server.store.base import StatusRow
from pyagent.timeutil import is_rfc3339

_BUNDLE_KEYS = (
    "name",
    "active_revision",
    "last_request",
    "last_successful_request",
    "last_successful_download",
    "last_successful_activation",
    "last_download",
    "last_activation",
    "code",
    "message",
    "errors",
    "http_code",
    "type",
    "size",
)


#: What is kept of a status message: strings, lists and objects cut to these, nesting to ``MAX_DEPTH``,
#: and ``MAX_TOTAL`` characters of strings in all (72 KB of gzip had become 60 MB of errors, stored
#: twice, and read whole by every rollout page; per-level bounds alone still multiply to 60 MB).
MAX_TEXT = 2048
MAX_ITEMS = 20
MAX_KEYS = 100
MAX_DEPTH = 6
MAX_TOTAL = 256 * 1024


def trimmed(value: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """``value`` (parsed JSON) cut to the bounds above; what is cut is said where it was. Recursion
    stops at ``MAX_DEPTH``, so a message nested 10,000 levels costs six."""
    budget = [MAX_TOTAL] if budget is None else budget
    if isinstance(value, str | list | dict) and budget[0] <= 0:
        return "…"  # (spent: what follows is one character a value, each container's siblings at most)
    budget[0] -= 8  # (a value's own share: quotes, commas, a key's colon)
    if isinstance(value, str):
        keep = max(0, min(MAX_TEXT, budget[0], len(value)))
        budget[0] -= keep
        return value if keep == len(value) else value[:keep] + f"… ({len(value) - keep} more)"
    if isinstance(value, list | dict) and depth >= MAX_DEPTH:
        return "… (nested too deep)"
    if isinstance(value, list):
        kept = [trimmed(item, depth + 1, budget) for item in value[:MAX_ITEMS]]
        return kept + ([f"… ({len(value) - MAX_ITEMS} more)"] if len(value) > MAX_ITEMS else [])
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(key)[:MAX_TEXT]: trimmed(item, depth + 1, budget) for key, item in items[:MAX_KEYS]}
        if len(items) > MAX_KEYS:
            out["…"] = f"{len(items) - MAX_KEYS} more"
        return out
    return value


_CUT = re.compile(r"…( \(\d+ more\))?\Z")


def _cut(value: object) -> bool:
    """Whether :func:`trimmed` cut ``value`` (a string): it ends with the mark it leaves."""
    return isinstance(value, str) and _CUT.search(value) is not None


#: The status message's other parts that report an error as a bundle does (OPA's: a failed upload of
#: decision logs, a failed discovery), each kept under its own name.
_ERROR_PARTS = ("decision_logs", "discovery")


def _said(info: dict[str, Any]) -> dict[str, Any]:
    """What a part of a status message says of an error, as OPA reports one: its code, message, errors."""
    return {k: info[k] for k in ("code", "message", "errors") if k in info}


def _other_errors(checked: dict[str, Any]) -> list[dict[str, Any]]:
    """The errors a status message reports beside its bundles' and its plugins' states: those of
    :data:`_ERROR_PARTS`, and a top-level ``errors`` list (objects, or a message as a string)."""
    errors: list[dict[str, Any]] = []
    for part in _ERROR_PARTS:
        info = checked.get(part)
        if isinstance(info, dict) and (info.get("code") or info.get("message") or info.get("errors")):
            errors.append({"plugin": part, **_said(info)})
    listed = checked.get("errors")
    for error in listed if isinstance(listed, list) else []:
        said = error if isinstance(error, dict) else {}
        # only what an error says, as the bundles' errors are kept: not a "bundle" it would pass for
        kept = {k: v for k, v in _said(said).items() if v}
        if kept:
            errors.append(kept)
        elif set(said) - {"code", "message", "errors"}:  # in other words: kept as its text (bounded)
            errors.append({"message": json.dumps(said, ensure_ascii=False)})
        elif isinstance(error, str) and error:
            errors.append({"message": error})
    return errors


#: The times a status message tells of each bundle (OPA's), all by its sender's clock.
_TIMES = tuple(key for key in _BUNDLE_KEYS if key.startswith("last_"))


def said_at(message: dict[str, Any]) -> datetime | None:
    """When its sender wrote ``message``, by its own clock: the newest time it tells of its bundles
    (None when it tells none). OPA's status messages carry no time of their own."""
    bundles = message.get("bundles")
    times = [
        info[key]
        for info in (bundles.values() if isinstance(bundles, dict) else ())
        if isinstance(info, dict)
        for key in _TIMES
        if isinstance(info.get(key), str) and is_rfc3339(info[key])
    ]
    return max((instant for text in times if (instant := _instant(text)) is not None), default=None)


def _instant(text: str) -> datetime | None:
    """``text`` (RFC 3339) in UTC; None outside years 1-9999 in UTC, which no clock writes."""
    try:
        return parse_instant(text)
    except ValueError:
        return None


def status_row(value: Any) -> StatusRow:
    """What is stored of a status message: checked whole, then cut to the bounds above (each cut said
    among its errors), its credentials redacted (:func:`pyagent.redact.redact`: a status error may quote
    what a bundle server echoed, and readers see status messages on the API and the dashboard)."""
    message = status_of(value)
    sender = message["labels"]["id"]
    message = {"labels": message["labels"], **message}  # labels first: never cut for another key's bulk
    cut = trimmed(message)  # first: redaction walks all it is given
    cut["labels"]["id"] = sender  # (kept whole: trimming keeps the first MAX_KEYS labels)
    checked: dict[str, Any] = redact_strings(cut)
    sent, plugins = message.get("bundles") or {}, checked.get("plugins") or {}
    too_long = f"the message is over {MAX_TOTAL:,} characters"
    bundles: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    past_keys = len(sent) - MAX_KEYS if len(sent) > MAX_KEYS else 0
    kept_bundles = checked.get("bundles") or {}
    not_kept = len(sent) - past_keys if not isinstance(kept_bundles, dict) else 0  # (spent before them)
    for name, info in (kept_bundles if isinstance(kept_bundles, dict) else {}).items():
        if past_keys and name == "…" and isinstance(info, str):
            continue  # (trimmed's mark of the bundles past the first MAX_KEYS: counted from what was sent)
        if not isinstance(info, dict) or _cut(info.get("active_revision")):
            # (the bound reached before this bundle, or inside its revision, which would count as one)
            not_kept += 1 if isinstance(info, dict) else info == "…"
            continue
        bundles[name] = {k: info[k] for k in _BUNDLE_KEYS if k in info}
        if info.get("code") or info.get("message") or info.get("errors"):
            errors.append({"bundle": name, **_said(info)})
    if not_kept:  # said, not dropped unsaid
        errors.append({"message": f"… {not_kept} more bundles not kept: {too_long}"})
    if past_keys:
        errors.append({"message": f"… {past_keys} more bundles not kept: the message has over {MAX_KEYS}"})
    if not isinstance(plugins, dict):
        errors.append({"message": f"… the plugins' states not kept: {too_long}"})
        plugins = {}
    for plugin, state in plugins.items():
        if isinstance(state, dict) and state.get("state") in ("ERROR", "ERR"):  # OPA's; older agents'
            errors.append({"plugin": plugin, "message": state.get("message", "")})
    errors += _other_errors(checked)
    return StatusRow(
        instance_id=checked["labels"]["id"],
        labels=dump_json(checked["labels"]).decode(),
        bundles=dump_json(bundles).decode(),
        errors=dump_json(errors).decode(),  # (from the trimmed message: bounded)
        plugins=dump_json(plugins).decode(),
        said_at=said_at(message),
    )


def routes(ctx: ServerContext) -> list[Route]:
    # Parsing is CPU work and, at the body bounds, ~240 MB: one message at a time per process (as
    # /logs decodes one batch at a time); the store's write runs beside it.
    parsing = CapacityLimiter(1)

    def parse(body: bytes) -> StatusRow:
        return status_row(parse_json(body))

    async def status(request: Request) -> Response:
        grant = await ctx.authorize(request, "agent")
        body = await read_body(request, ctx.settings.limits)
        row = await to_thread.run_sync(parse, body, limiter=parsing)
        check_device(grant, row.instance_id, "the status message (labels.id)")
        await ctx.call(ctx.store.record_status, row)
        return Response(None, 204)

    # an OPA with status.partition_name posts to /status/PARTITION: the same receiver
    return [Route(path, status, methods=["POST"]) for path in ("/status", "/status/{partition}")]
