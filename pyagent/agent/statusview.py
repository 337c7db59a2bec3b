"""What ``pyagent agent status`` shows: the spool, the last run, the decision-log and status uploads, the
records set aside, and each bundle's active revision and last refusal (from the state directory)."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

from pyagent import safefs
from pyagent.agent.chain import load_key
from pyagent.agent.cycle import decision_summary
from pyagent.agent.plugins.bundledir import read_statuses
from pyagent.agent.plugins.status import STATE_FILE
from pyagent.agent.spoolfile import check_not_lost
from pyagent.agent.store import Spool
from pyagent.errors import InvalidInputError

SHOWN_ASIDE = 20
_MAX_STATE = 64 * 1024
_KEPT = ("last_attempt_at", "last_ok_at", "last_error")


def _status_upload(state_dir: Path | None, status_to: str | None) -> dict[str, Any] | None:
    """The last status message's outcome (``status-upload.json``), when ``[status]`` is configured."""
    if status_to is None:
        return None
    shown: dict[str, Any] = {"service": status_to, **dict.fromkeys(_KEPT)}
    if state_dir is None:
        return shown
    try:
        raw = safefs.read_in(
            state_dir, STATE_FILE, folder_what="state directory", what="status upload state", limit=_MAX_STATE
        )
        kept = json.loads(raw) if raw is not None else {}
    except (OSError, ValueError, RecursionError, InvalidInputError) as err:
        return {**shown, "last_error": f"{state_dir / STATE_FILE}: unreadable: {err}"}
    if not isinstance(kept, dict):
        return {**shown, "last_error": f"{state_dir / STATE_FILE}: unreadable: not a JSON object"}
    if kept.get("service") != status_to:  # kept for another service ([status] changed since)
        return shown
    for key in _KEPT:
        value = kept.get(key)
        shown[key] = value if isinstance(value, str) else None
    return shown


def _bundles(state_dir: Path | None) -> list[dict[str, Any]]:
    shown = []
    for status in read_statuses(state_dir) if state_dir is not None else []:
        found = status.get("refusals")
        refusals: list[Any] = found if isinstance(found, list) else []
        shown.append(
            {
                "name": status.get("name"),
                "active_revision": status.get("active_revision"),
                "active_serial": status.get("active_serial"),
                "last_successful_activation": status.get("last_successful_activation"),
                "last_request": status.get("last_request"),
                "error": status.get("message") if status.get("code") else None,
                "last_refusal": refusals[-1] if refusals else None,
                "refusals": len(refusals),
            }
        )
    return shown


def status_document(
    path: Path, uploads_to: str | None, state_dir: Path | None = None, status_to: str | None = None
) -> dict[str, Any]:
    """What ``agent status`` reports, as one JSON object (``status_to``: ``[status]``'s URL, if any)."""
    document: dict[str, Any] = {
        "spool": str(path),
        "exists": path.is_file(),
        "collector": uploads_to,
        "bundles": _bundles(state_dir),
        "status_upload": _status_upload(state_dir, status_to),
        "moved_aside": _moved_aside(path),
        "free_bytes": _free_bytes(path.parent),
    }
    if not document["exists"]:
        check_not_lost(path)  # a spool deleted is not "no run yet"
        empty = {"count": 0, "records": []}
        return {
            **document,
            "records": 0,
            "pending": 0,
            "dropped": 0,
            "last_run": None,
            "head": None,
            "set_aside": empty,
        }
    with Spool.open(path, key=load_key(None), readonly=True) as spool, spool.snapshot():
        state = spool.state()
        records, pending = spool.counts()
        head = spool.head()
        ship = spool.ship_status()
        aside_count, aside = spool.set_aside_list(SHOWN_ASIDE)
    body: Any = None
    if head is not None:
        try:
            body = json.loads(head.body)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):  # an edited head record: status says so, `log verify` tells the rest
            body = {
                "outcome": "unreadable",
                "error": f"record seq {head.seq} is not a JSON object; run pyagent log verify",
            }
    return {
        **document,
        "chain_id": state.chain_id,
        "mac": state.mac,
        "origin": state.origin or None,
        "records": records,
        "pending": pending,
        "dropped": state.dropped,
        "dropped_unshipped": state.dropped_unshipped,
        "head": {"seq": state.head_seq, "hash": state.head_hash, "id": state.head_id},
        "anchor": {"seq": state.anchor_seq, "hash": state.anchor_hash},
        "last_run": decision_summary(body) if isinstance(body, dict) else None,
        "shipping": {
            "last_attempt_at": ship.last_attempt_at,
            "last_ok_at": ship.last_ok_at,
            "last_error": ship.last_error,
        },
        "set_aside": {"count": aside_count, "records": aside},
    }


#: What the last run's second line tells; a run without a decision has no policy revision (None).
_LAST_RUN_FACTS = ("device_id", "organization", "policy_revision", "engine")


def _attempts(outcome: dict[str, Any], *, none_yet: str) -> str:
    """The words "last attempt AT, ok at AT" (or "error: E") of an upload's ``outcome``, a time not
    known "(unknown)"; ``none_yet`` before any attempt."""
    at, ok_at, error = outcome["last_attempt_at"], outcome["last_ok_at"], outcome["last_error"]
    if at is None and error is None:
        return none_yet
    state = f"error: {error}" if error else f"ok at {ok_at or '(never)'}"
    return f"last attempt {at or '(unknown)'}, {state}"


#: Below this, ``agent status`` says the spool's file system is (nearly) full: a run that cannot be
#: recorded stops the agent (exit 2), and each restart stops the same way until room is made.
LOW_FREE_BYTES = 8 * 1024 * 1024


def _free_bytes(directory: Path) -> int | None:
    """The bytes an unprivileged writer may still use in ``directory``'s file system (None: unknown)."""
    try:
        found = os.statvfs(directory)
    except (OSError, AttributeError):  # (no such directory yet; no statvfs on Windows)
        return None
    return found.f_bavail * found.f_frsize


def _moved_aside(path: Path) -> list[str]:
    """Spools moved aside as corrupt (``agent run --move-corrupt-aside``): their records, uploaded or
    not, are no longer read by the agent."""
    found = path.parent.glob(f"{glob.escape(path.name)}.corrupt-*") if path.parent.is_dir() else []
    return sorted(str(p) for p in found if not p.name.endswith(("-wal", "-shm", ".made")))


def status_lines(doc: dict[str, Any]) -> list[str]:
    """The text of ``agent status``; last, a warning when the spool's file system is (nearly) full."""
    lines = _lines(doc)
    free = doc.get("free_bytes")
    if free is not None and free < LOW_FREE_BYTES:
        lines.append(
            f"spool: its file system has {free:,} bytes free: a run that cannot be recorded stops the "
            "agent (exit 2); make room there"
        )
    return lines


def _lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    for moved in doc.get("moved_aside", []):
        lines.append(
            f"spool moved aside: {moved} (corrupt; the agent no longer uploads its records: pyagent log "
            f"verify --db {moved} reads what it can)"
        )
    for bundle in doc["bundles"]:
        activated = bundle["last_successful_activation"]
        if bundle["active_revision"]:
            lines.append(f"bundle {bundle['name']}: {bundle['active_revision']} (activated {activated})")
        else:
            lines.append(f"bundle {bundle['name']}: none active")
        if bundle["error"]:
            lines.append(f"  last attempt failed: {bundle['error']}")
        if bundle["last_refusal"]:
            refusal = bundle["last_refusal"]
            lines.append(f"  last refusal: {refusal['at']} {refusal['kind']}: {refusal['reason']}")
    if (shown := doc.get("status_upload")) is not None:
        lines.append(f"status: {shown['service']} ({_attempts(shown, none_yet='no message sent yet')})")
    if not doc["exists"]:
        return [*lines, f"spool: {doc['spool']} (none yet: the agent has not recorded a run)"]
    lines.append(f"spool: {doc['spool']} (chain {doc['chain_id']}, {doc['mac']})")
    last = doc["last_run"]
    if last is None:
        lines.append("last run: none")
    else:
        rules = f" ({', '.join(last['violations'])})" if last["violations"] else ""
        error = f": {last['error']}" if last["error"] else ""
        lines.append(f"last run: {last['at']} {last['outcome']}{rules}{error}")
        shown = {key: "(none)" if last[key] is None else last[key] for key in _LAST_RUN_FACTS}
        lines.append(
            f"  device {shown['device_id']}, organization {shown['organization']}, "
            f"policy {shown['policy_revision']}, engine {shown['engine']}"
        )
    lines.append(
        f"records: {doc['records']} kept, {doc['pending']} not shipped, {doc['dropped']} dropped "
        f"({doc['dropped_unshipped']} of them never acknowledged), {doc['set_aside']['count']} set aside"
    )
    for aside in doc["set_aside"]["records"][:5]:
        lines.append(f"  set aside: seq {aside['seq']} at {aside['at']}: {aside['reason']}")
    head = doc["head"]
    lines.append(f"log head: seq {head['seq']} {head['hash']}")
    ship = doc["shipping"]
    if doc["collector"]:
        lines.append(f"decision logs: {doc['collector']} ({_attempts(ship, none_yet='no upload yet')})")
    else:
        lines.append("decision logs: none configured")
    return lines
