"""Decision-log events (OPA's Decision Log API) checked and turned into store rows.

An event is what OPA uploads for a decision on ``pyagent/decision``: ``decision_id``, ``labels``
(``id`` names the sender: an OPA instance, or an agent, whose id is its device's), ``bundles``
(each bundle's ``revision``), ``path``, ``input`` (the policy input ``{"at", "report"}``), ``result``
(the decision; absent when it was undefined, e.g. before the bundle was activated) and
``timestamp``. The device is ``input.report.device.id`` and the decision's instant is ``input.at``,
so an upload that arrives late lands at its own instant. A batch is all or nothing: the first event
that is not one is refused, naming its index and field.

An instant later than the event's arrival (beyond ``MAX_AHEAD`` of clock skew) is not a fact about the
device yet: such an event is acknowledged and counted as ignored, never stored
(:func:`pyagent.server.arrival.drop_ahead`), so that a decision dated in the future (a what-if query
on a gating OPA, a wrong clock, a crafted upload) cannot hold a device's current state, and its
compliance, until that date.

A decision asked about another instant than when it was made (an event whose ``input.at`` is more than
``MAX_ASKED_GAP`` from its own ``timestamp``: an OPA stamps the moment it decided, the agent stamps
``input.at``: a replay, a test, ``pyagent check --engine opa --at 2023-03-16``) is stored at its
``input.at`` when that is already stale as it arrives: it can then neither be a fresh current state
nor pass access gating, only say what was decided about that instant. One asked about a more recent
instant (a what-if on a gating OPA about two hours ago, before an exemption ended) could pass gating
for the rest of ``stale_after``: it is acknowledged and counted as ignored
(:func:`pyagent.server.arrival.drop_fresh_what_ifs`). Both are said in the log (``Batch.what_ifs``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

import orjson

from pyagent.server.errors import HttpError, bad_request
from pyagent.server.instants import asked_another_time, parse_instant
from pyagent.server.store.base import DecisionRow
from pyagent.timeutil import is_rfc3339, normal_rfc3339

MAX_ID = 512
#: A ban's or a rule's name, as policy data bounds it (``schemas/policy-data.schema.json``: ``id``).
MAX_NAME = 200
MAX_DECISION_ID = 200
#: PostgreSQL keeps a decision's device id, decision id, organisation, platform and violated bans
#: together in one entry of the history index, which holds at most 2,704 bytes (a third of a page);
#: the rest of the entry (its verdict, instant and headers) takes under a hundred. Their UTF-8 bytes
#: together are bounded below that, on every store alike: one event over it was a 503 on PostgreSQL,
#: and its batch was resent forever.
MAX_INDEXED_BYTES = 2_560
#: The decision's lists: arrays of objects, as the policy gives them (the dashboard lists their fields).
ENTRY_LISTS = ("violations", "warnings", "exempted", "errors")


#: The decision path of the shipped policy (``POST /v1/data/pyagent/decision``). An OPA logs every
#: Data API query; events on other paths are well-formed OPA events that carry no device decision:
#: they are acknowledged and counted, never a reason to refuse the batch (OPA would resend it forever).
DECISION_PATH = "pyagent/decision"


@dataclass
class Batch:
    rows: list[DecisionRow]
    reports: dict[str, bytes]
    ignored: int = 0
    #: Of the ignored, events of the decision path with a result whose input is no device's (an
    #: ``input.at`` that is not RFC 3339, no device id): a decision made and lost, said in the log;
    #: the first of them as "event N (DECISION_ID from SENDER)".
    unplaced: int = 0
    first_unplaced: str = ""
    #: Of the ignored, events no parser here takes whole (nested too deep, a number out of a double's
    #: range): said in the log apart from the unplaced, whose input was read.
    unread: int = 0
    #: Of the rows, those asked about another instant than when they were made (what-ifs, replays),
    #: each with its name, "event N (DECISION_ID from SENDER)", in the batch's order: by row, not by
    #: decision id (a crafted batch may give two events one id).
    what_ifs: list[tuple[DecisionRow, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ReportFacts:
    """What a decision's row takes from its report: the device object, the run's ``collected_at``
    and the inventory's digest; ``canonical`` is the inventory to store (None: known to be stored)."""

    device: dict[str, Any]
    collected_at: Any
    digest: str
    canonical: bytes | None


#: How an event's ``input.report`` (a parsed value, or its raw JSON) becomes :class:`ReportFacts`.
FactsOf = Callable[[Any, str], ReportFacts]


def report_facts(value: Any, where: str) -> ReportFacts:
    """The facts of a parsed report, which must name its device. The inventory is the report
    without ``collected_at`` (the run's own instant goes on the history row), stored once per digest
    of its canonical JSON."""
    report = _object(value, where)
    device = _object(report.get("device", _MISSING), f"{where}.device")
    _string(device.get("id"), f"{where}.device.id", MAX_ID)
    inventory = {key: value for key, value in report.items() if key != "collected_at"}
    canonical = dump_json(inventory, sort_keys=True)
    return ReportFacts(device, report.get("collected_at"), hashlib.sha256(canonical).hexdigest(), canonical)


#: An event left unparsed (nested too deep to parse): acknowledged and counted as ignored.
UNREAD = object()


def parse_batch(value: Any, facts_of: FactsOf = report_facts) -> Batch:
    if not isinstance(value, list):
        raise bad_request(f"body must be a JSON array of decision-log events, got {_kind(value)}")
    batch = Batch([], {})
    for index, event in enumerate(value):
        if event is UNREAD:
            batch.ignored += 1
            batch.unread += 1
            continue
        try:
            decided = _event(event, index, facts_of)
        except RecursionError:  # nested near the interpreter's limit (~1,000): kept out, not a 500
            batch.ignored += 1
            batch.unread += 1
            continue
        if decided is None:
            batch.ignored += 1
            if _decided_elsewhere(event):
                batch.unplaced += 1
                batch.first_unplaced = batch.first_unplaced or _named(event, index)
            continue
        row, inventory = decided
        if asked_another_time(event, row.decided_at):
            batch.what_ifs.append((row, _named(event, index)))
        batch.rows.append(row)
        if row.report_digest is not None and inventory is not None:
            batch.reports.setdefault(row.report_digest, inventory)
    return batch


def _on_decision_path(path: object) -> TypeGuard[str]:
    """Whether an event's ``path`` is the decision's, as OPA writes it (``pyagent/decision``, or
    ``data.pyagent.decision`` for a query)."""
    return isinstance(path, str) and path.removeprefix("data/").replace(".", "/") == DECISION_PATH


def _decided_elsewhere(event: Any) -> bool:
    """An event of the decision path with a result: a decision was made, whatever its input."""
    if not isinstance(event, dict):
        return False
    return _on_decision_path(event.get("path")) and event.get("result") is not None


def _named(event: dict[str, Any], index: int) -> str:
    labels = event.get("labels")
    sender = labels.get("id") if isinstance(labels, dict) else None
    return f"event {index} ({_short(event.get('decision_id'))} from {_short(sender)})"


def _event(
    event: Any, index: int, facts_of: FactsOf = report_facts
) -> tuple[DecisionRow, bytes | None] | None:
    where = f"event {index}"
    if not isinstance(event, dict):
        raise bad_request(f"{where}: must be an object, got {_kind(event)}")
    decision_id = _string(event.get("decision_id"), f"{where}: decision_id", MAX_DECISION_ID)
    labels = _object(event.get("labels", _MISSING), f"{where}: labels")
    sender = _string(labels.get("id"), f"{where}: labels.id", MAX_ID)
    path = event.get("path")
    if not _on_decision_path(path):
        # another query (OPA logs /v1/query and GET /v1/data without a path), whatever its path's
        # length: acknowledged; a 400 would be resent forever
        return None
    stamp = event.get("timestamp", "")
    if "timestamp" in event and not (isinstance(stamp, str) and normal_rfc3339(stamp) is not None):
        raise bad_request(f"{where}: timestamp must be an RFC 3339 timestamp")
    placed = _placed(event.get("input"), where, facts_of)
    if placed is None:
        return None
    decided_at, report = placed
    device = report.device
    device_id = device["id"]
    bundles = event.get("bundles")
    if bundles is not None:
        bundles = _bundles(bundles, f"{where}: bundles")
    result = event.get("result")
    allow: bool | None = None
    verdict, bans = "undecided", ""
    organization = device.get("organization") if isinstance(device.get("organization"), str) else None
    named_in = "input.report.device.organization"
    if result is not None:
        result = _object(result, f"{where}: result")
        _same_question(result, device_id, event["input"]["at"], where)
        allow, verdict, bans = _verdict(result, where)
        if isinstance(result.get("organization"), str):
            organization = result["organization"]  # (a NUL in it is stored as U+FFFD: column_text)
            named_in = "result.organization"
    if organization is not None and len(organization) > MAX_ID:  # (the column's bound, on both stores)
        raise bad_request(f"{where}: {named_in} is longer than {MAX_ID} characters")
    organization = column_text(organization) if organization else None
    platform = column_text(device["platform"][:32]) if isinstance(device.get("platform"), str) else None
    bans = column_text(bans)
    _indexable(where, device_id, decision_id, organization, platform, bans)
    collected_at = report.collected_at
    chain = event.get("pyagent")
    row = DecisionRow(
        decision_id=decision_id,
        decided_at=decided_at,
        device_id=device_id,
        sender=sender,
        path=path,
        allow=allow,
        organization=organization,
        platform=platform,
        result=dump_json(result).decode() if result is not None else None,
        report_digest=report.digest,
        bundles=dump_json(bundles).decode() if bundles is not None else None,
        chain=dump_json(chain).decode() if isinstance(chain, dict) else None,
        verdict=verdict,
        bans=bans,
        collected_at=column_text(collected_at[:64]) if isinstance(collected_at, str) else None,
    )
    return row, report.canonical


#: A key the sender left out (``None`` is a JSON null the sender wrote).
_MISSING: Any = object()
#: What a text column cannot hold: NUL, and lone surrogates (not UTF-8; the exact parse lets them by).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def dump_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """``value`` as compact JSON: orjson, else the standard library where orjson cannot (nesting of 255
    levels and more, integers past 64 bits: both are valid JSON, and a real OPA logs them as it was
    asked; a 500 made that OPA resend its batch, and hold back every later decision, forever)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except orjson.JSONEncodeError:
        import json

        text = json.dumps(
            value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
        return text.encode("ascii")


def column_text(value: str) -> str:
    """``value`` as a text column can hold it: NUL (which PostgreSQL refuses in text, and OPA logs as
    it was asked) and lone surrogates as U+FFFD, so that the decision is stored rather than its batch
    refused (500, then resent forever)."""
    return _UNSTORABLE.sub("\ufffd", value)


def _indexable(where: str, *values: str | None) -> None:
    """Refuses (400) an event whose indexed texts take more than ``MAX_INDEXED_BYTES`` together."""
    size = sum(len(value.encode("utf-8", "surrogatepass")) for value in values if value)
    if size > MAX_INDEXED_BYTES:
        raise bad_request(
            f"{where}: the device id, decision id, organization, platform and violated ban names take "
            f"{size:,} bytes of UTF-8 together; the server indexes at most {MAX_INDEXED_BYTES:,}"
        )


def _placed(value: Any, where: str, facts_of: FactsOf) -> tuple[datetime, ReportFacts] | None:
    """The event's instant (``input.at``, years 1-9999) and its report's facts, or None when its
    input is not a device's: OPA logs whatever its Data API was asked on the decision path (a query
    without a report, say), and a 400 would make it resend the batch forever, holding back every
    later decision it logs. Such events are acknowledged and counted as ignored."""
    if not isinstance(value, dict):
        return None
    at = value.get("at")
    if not isinstance(at, str) or not is_rfc3339(at):
        return None
    try:
        decided_at = parse_instant(at)
    except ValueError:
        return None
    try:  # (JSON errors in the report pass: the batch is not strict JSON, and is refused whole)
        report = facts_of(value.get("report"), f"{where}: input.report")
    except HttpError:
        return None
    return decided_at, report


def _same_question(result: Mapping[str, Any], device_id: str, at: str, where: str) -> None:
    """The policy echoes the device and the instant it decided for (``device_id``, ``evaluated_at``):
    a result about another device or instant than the event's input is refused (400), as the agent
    refuses such an answer from an OPA, so that one device's upload cannot set another's verdict."""
    for key, asked in (("device_id", device_id), ("evaluated_at", at)):
        if key in result and result[key] != asked:
            raise bad_request(f"{where}: result.{key} {_short(result[key])} is not the input's {asked!r}")


def _verdict(result: dict[str, Any], where: str) -> tuple[bool, str, str]:
    """allow (only when nothing is in breach and nothing went wrong), the verdict, the violated bans."""
    if not isinstance(result.get("allow"), bool):
        raise bad_request(f"{where}: result.allow must be true or false, got {_short(result.get('allow'))}")
    for key in ENTRY_LISTS:
        entries = result.get(key)
        if entries is not None and not (
            isinstance(entries, list) and all(isinstance(e, dict) for e in entries)
        ):
            raise bad_request(f"{where}: result.{key} must be an array of objects, got {_short(entries)}")
    violations = result.get("violations") or []
    errors = result.get("errors") or []
    names = sorted({v["ban"] for v in violations if isinstance(v, dict) and isinstance(v.get("ban"), str)})
    if any("|" in name for name in names):
        raise bad_request(f"{where}: result.violations: a ban name contains '|'")
    if any(len(name) > MAX_NAME for name in names):  # kept in every row, and shown on every page
        raise bad_request(f"{where}: result.violations: a ban name is longer than {MAX_NAME} characters")
    allow = bool(result["allow"]) and not violations and not errors
    verdict = "invalid" if errors else "compliant" if allow else "non_compliant"
    return allow, verdict, f"|{'|'.join(names)}|" if names else ""


def _bundles(value: Any, where: str) -> dict[str, Any]:
    """The event's bundles, checked, kept as reported whatever their names: an OPA names its
    bundles locally (``bundles.fleet`` with ``resource: bundles/pyagent``, say)."""
    bundles = _object(value, where)
    for name, info in bundles.items():
        info = _object(info, f"{where}.{name}")
        if not isinstance(info.get("revision", ""), str):
            raise bad_request(f"{where}.{name}.revision must be a string")
    return bundles


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(
            f"{where} must be an object, got {'nothing' if value is _MISSING else _kind(value)}"
        )
    return value


def _string(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str) or not value or _UNSTORABLE.search(value):
        raise bad_request(f"{where} must be a non-empty string, got {_short(value)}")
    if len(value) > limit:
        raise bad_request(f"{where} is longer than {limit} characters")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _short(value: Any) -> str:
    if value is None:
        return "nothing"
    text = dump_json(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def status_of(value: Any) -> dict[str, Any]:
    """An OPA status message, checked enough to store: an object whose ``labels.id`` names the sender,
    its ``bundles`` and ``plugins`` objects. Checked whole, before anything is cut from it (a message
    over the kept bounds is stored cut, never refused for what the cut left)."""
    message = _object(value, "status")
    labels = _object(message.get("labels", _MISSING), "status: labels")
    _string(labels.get("id"), "status: labels.id", MAX_ID)
    for key in ("bundles", "plugins"):
        if key in message:
            _object(message[key], f"status: {key}")
    for name, info in (message.get("bundles") or {}).items():  # (OPA's are strings; rollouts count by them)
        if isinstance(info, dict) and not isinstance(info.get("active_revision", ""), str):
            raise bad_request(f"status: bundles.{name[:64]}.active_revision must be a string")
    return message
