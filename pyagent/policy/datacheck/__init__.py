"""Checked policy data: ``schemas/policy-data.schema.json`` and the cross-checks a schema cannot
express (:mod:`.crosscheck`), each mistake reported as ``FILE:LINE: data.PATH: message`` (exit 2).

Used by ``pyagent policy lint`` and ``policy bundle`` (the data files under the policy directories),
``check --data`` (the overlays merged with the bundle's data) and ``pyagent server publish`` (the data
a published bundle carries).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyagent.errors import InvalidInputError, and_more
from pyagent.policy.datacheck.crosscheck import cross_check, overlay_overrides
from pyagent.policy.datacheck.identifiers import identifier_issues
from pyagent.policy.datacheck.sources import Placed, PolicyData, load_dirs
from pyagent.policy.yamlload import DocPath, dotted

if TYPE_CHECKING:
    from pyagent.policy.data import DataOverlay

SCHEMA = "policy-data.schema.json"
#: Data roots pyagent's policy reads; anything else at the top is left to other policies.
OWN_ROOTS = ("pyagent", "pyagent_index")
#: The keys of ``data.pyagent``: found at the top of the data, they were meant under it.
PYAGENT_KEYS = frozenset({"revision", "bans", "work_apps", "organizations", "exemptions"})


class PolicyDataError(InvalidInputError):
    """Policy data with mistakes: the first as the message, every one in :meth:`details`."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(problems[0] + and_more(len(problems) - 1, "problem"))
        self.problems = list(problems)

    def details(self) -> list[str]:
        return self.problems[1:]


@functools.cache
def _validators() -> tuple[Any, Any]:
    """The schema's fast validator (jsonschema-rs: valid data costs milliseconds) and its reference
    validator (jsonschema, imported only for data with a mistake: its messages are the house's)."""
    import jsonschema_rs

    from pyagent.report.schemas import load_schema

    schema = load_schema(SCHEMA)
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=False, offline=True), schema


def _schema_issues(pyagent: Mapping[str, Any]) -> list[tuple[DocPath, str]]:
    from pyagent.report.issues import json_path

    fast, schema = _validators()
    try:
        fast_ok: bool | None = bool(fast.is_valid(pyagent))
    except ValueError:  # a value jsonschema-rs cannot read: the reference decides
        fast_ok = None
    if fast_ok:
        return []
    from jsonschema import Draft202012Validator

    from pyagent.report.issues import located_issues

    found = located_issues(Draft202012Validator(schema).iter_errors(pyagent), schema)
    if found or fast_ok is None:
        return [(tuple(location), message) for location, message in found]
    first = next(iter(fast.iter_errors(pyagent)))  # the two disagree ("$" before a newline): the stricter
    return [(tuple(first.instance_path), f"{first.message} (at {json_path(first.instance_path)})")]


def issues(data: Mapping[str, Any]) -> list[tuple[DocPath, str]]:
    """Every mistake in a whole ``data`` document (``{"pyagent": {...}, ...}``), as (path, message)."""
    found: list[tuple[DocPath, str]] = []
    for key, value in data.items():
        if key not in OWN_ROOTS and isinstance(value, dict) and "pyagent" in value:
            found.append(((key, "pyagent"), _wrong_root(key)))
        elif key in PYAGENT_KEYS:  # (a folder of data/pyagent/ moved up one: the policy never reads it)
            found.append(
                (
                    (key,),
                    (
                        f"policy data at data.{key}, outside data.pyagent: the policy never reads it; put it "
                        f"under data/pyagent/ (data/pyagent/{key}/data.yaml)"
                    ),
                )
            )
    pyagent = data.get("pyagent")
    if pyagent is None:
        return found
    if not isinstance(pyagent, dict):
        return [*found, (("pyagent",), "policy data must be an object")]
    found += [(("pyagent", *location), message) for location, message in _schema_issues(pyagent)]
    flagged = {path for path, _ in found}
    found += [(path, message) for path, message in cross_check(pyagent) if path not in flagged]
    flagged = {path for path, _ in found}
    found += [(path, message) for path, message in identifier_issues(pyagent) if path not in flagged]
    return found


def _wrong_root(key: str) -> str:
    return (
        f"policy data found at data.{key}.pyagent, not data.pyagent: the folder holding {key}/ was "
        f"loaded as one root; load its rego/ and {key}/ folders as two roots "
        f"(e.g. `opa test policies/rego policies/{key}`)"
    )


def report(loaded: PolicyData) -> list[str]:
    """``FILE:LINE: data.PATH: message`` for every mistake in ``loaded`` (empty when it is clean)."""
    lines = []
    for path, message in issues(loaded.data):
        source, line = loaded.where(path)
        lines.append(f"{source}:{line}: {dotted(path)}: {message}")
    return lines


def raise_for(loaded: PolicyData) -> None:
    """:class:`PolicyDataError` naming every mistake in ``loaded``; nothing when it is clean."""
    problems = report(loaded)
    if problems:
        raise PolicyDataError(problems)


def check_overlays(base: dict[str, Any], label: str, overlays: Sequence[DataOverlay]) -> None:
    """Check ``base`` (a bundle's data, from ``label``) with the ``--data`` overlays merged in; each
    mistake is named at its overlay's line (or in the bundle's data when the bundle set it)."""
    from pyagent.policy.data import merge
    from pyagent.policy.yamlload import Located

    loaded = PolicyData(data=merge(base, overlays))
    loaded.parts.append(Placed((), Located(f"{label}: data.json", base, {(): 1})))
    for overlay in overlays:
        loaded.parts.append(Placed((), overlay.lines or Located(overlay.source, overlay.document)))
    problems = report(loaded)
    merged, before = loaded.data.get("pyagent"), base.get("pyagent")
    if isinstance(merged, dict) and isinstance(before, dict):
        for path, message in overlay_overrides(before, merged):
            source, line = loaded.where(path)
            problems.append(f"{source}:{line}: {dotted(path)}: {message}")
    if problems:
        raise PolicyDataError(problems)


def check_members(members: Mapping[str, bytes], *, label: str) -> None:
    """Check the data a bundle carries (its ``data.json`` files, as ``read_members`` gives them), each
    mistake named as ``LABEL:/data.json:LINE``. For publishing: a bundle with bad data is refused."""
    from pyagent.policy.datacheck.jsonlines import load_json

    loaded = PolicyData()
    for path, raw in sorted(members.items()):
        parts = tuple(part for part in path.strip("/").split("/") if part)
        if parts and parts[-1] == "data.json":
            source = f"{label}:{path}"
            loaded.add(Placed(parts[:-1], load_json(raw, source, what="bundle data", prefix=parts[:-1])))
    raise_for(loaded)


def revision_of(loaded: PolicyData) -> str | None:
    """``data.pyagent.revision`` of checked data (None when it sets none)."""
    pyagent = loaded.data.get("pyagent")
    revision = pyagent.get("revision") if isinstance(pyagent, dict) else None
    return revision if isinstance(revision, str) and revision else None


def _report_dirs(loaded: PolicyData) -> list[str]:
    """:func:`report`, and what the bundle build writes kept in a policy folder (an index, a build
    revision: the build makes its own)."""
    from pyagent.policy.index import FOLDER_ROOTS

    kept = []
    for root, why in FOLDER_ROOTS.items():
        if root in loaded.data:
            source, line = loaded.where((root,))
            kept.append(f"{source}:{line}: data.{root}: {why}")
    return [*kept, *report(loaded)]


def problems_in_dirs(dirs: Sequence[str]) -> list[str]:
    """:func:`report` for the data files under policy directories; a file that does not load is one
    problem (the first such file: its content cannot be checked further)."""
    try:
        return _report_dirs(load_dirs(dirs))
    except InvalidInputError as err:
        return [str(err)]


def missing_policy_data(dirs: Sequence[str], data: Mapping[str, Any] | None = None) -> str | None:
    """Why policy directories whose Rego is pyagent's decision (``package pyagent.decision``) cannot be
    tested, documented or linked as they are: no policy data among them (the Rego alone decides
    nothing, and its tests fail for a reason none of them says). None when they have data, or are
    some other policy. ``data``: the data document of ``dirs`` when the caller has read it already."""
    import re

    from pyagent.policy.index import DECISION_PACKAGE, NO_POLICY_DATA, has_policy_data

    decision = re.compile(DECISION_PACKAGE, re.MULTILINE)
    from pyagent.policy.tree import policy_files

    rego = (path for root in map(Path, dirs) for path in policy_files(root, ".rego") if path.is_file())
    if not any(decision.search(path.read_text(encoding="utf-8", errors="replace")) for path in rego):
        return None
    if has_policy_data(load_dirs(dirs).data if data is None else data):
        return None
    return f"{', '.join(map(str, dirs))}: {NO_POLICY_DATA}"


def missing_rego(dirs: Sequence[str]) -> str | None:
    """Why policy directories hold no policy to test, lint or build: not one Rego file among them
    (lint said clean, test ran nothing and failed, of an empty folder or the data alone)."""
    from pyagent.policy.tree import policy_files

    if any(policy_files(Path(root), ".rego") for root in dirs):
        return None
    return (
        f"{', '.join(map(str, dirs))}: no Rego file (.rego) there: give the policy's folders "
        "(policies/rego and policies/data, or the folder holding both)"
    )


def check_dirs(dirs: Sequence[str]) -> PolicyData:
    """Load the data files under policy directories strictly and check them (raises on a mistake)."""
    loaded = load_dirs(dirs)
    problems = _report_dirs(loaded)
    if problems:
        raise PolicyDataError(problems)
    return loaded


__all__ = [
    "Placed",
    "PolicyData",
    "PolicyDataError",
    "check_dirs",
    "check_members",
    "check_overlays",
    "issues",
    "load_dirs",
    "missing_policy_data",
    "missing_rego",
    "problems_in_dirs",
    "raise_for",
    "report",
    "revision_of",
]
