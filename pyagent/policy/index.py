"""The ban index: every banned identifier (and every work app) keyed for a one-step lookup, built
once from the policy data and shipped as data under its own root, ``data.pyagent_index``.

This module is the one place that builds it: ``pyagent policy bundle`` and ``check --policy`` write
it into the bundles they compile, the embedded engine (re)builds it after merging ``--data``
overlays, and ``pyagent server publish`` checks the one a bundle carries. The policy
(``policies/rego/pyagent/lib/matching``) looks identifiers up in it by ground key, so OPA's own
evaluator no longer indexes every banned identifier on every decision; without it (``opa run`` on the
raw folders) the policy indexes them itself, with the same result. The index also carries each clean
organisation resolved once (``resolved_orgs``, built by :mod:`pyagent.policy.orgindex`).

The keys are those of ``matching.rego``: ``name NUL hash`` and ``name NUL *`` for each identifier,
lower-cased on the case-insensitive platforms, a Windows identifier split at ``_`` into its name and
publisher hash. ``lower`` is OPA's (Go's simple case mapping): per character, and U+0130 becomes ``i``.

Only well-formed parts are indexed (a ban that is an object whose ``apps`` map platforms to lists of
strings; likewise the work apps); the policy computes the rest per decision, as it always did. The
index carries ``digest``, the SHA-256 of exactly what it was built from: :func:`check` compares it
with the data beside it, and an index that does not match is refused with the reason, never used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyagent.errors import InvalidInputError
from pyagent.policy.orgindex import resolved_orgs

#: The data root the index lives under: ``data.pyagent_index``.
ROOT = "pyagent_index"
FORMAT = 4
_CASE_INSENSITIVE = frozenset({"ios", "macos", "windows"})
_SEPARATOR = "\u0000"


#: Why pyagent's policy without its data is refused: it decides nothing (every device an error).
NO_POLICY_DATA = (
    "no policy data (data.pyagent.organizations): give the data folder with the Rego"
    " (policies/rego and policies/data, or the folder holding both)"
)


#: A Rego file of pyagent's decision: what has no meaning without the policy data.
DECISION_PACKAGE = r"^package pyagent\.decision\s*$"


def has_policy_data(data: Mapping[str, Any]) -> bool:
    """Does ``data`` (the whole data document) hold pyagent's policy data (its organisations)?"""
    pyagent = data.get("pyagent")
    return isinstance(pyagent, dict) and bool(pyagent.get("organizations"))


#: Where a bundle keeps the revision it was built as (``pyagent policy bundle --revision``).
BUILD_ROOT = "pyagent_build"
#: Why a policy folder may not hold ``data.pyagent_index`` or ``data.pyagent_build``, by root.
FOLDER_ROOTS = {
    ROOT: (
        "pyagent builds the index for each bundle and never reads one from a policy folder (`opa run` on"
        f" the folder would decide from it, current or not): remove the {ROOT}/ folder"
    ),
    BUILD_ROOT: (
        "the bundle build writes the revision it builds there (`--revision`, else data.pyagent.revision);"
        f" a policy folder keeping one would name another: remove the {BUILD_ROOT}/ folder"
    ),
}
FOLDER_INDEX = FOLDER_ROOTS[ROOT]


class StaleIndexError(InvalidInputError):
    """The data carries a ban index that was not built from the bans beside it."""


def _lower(text: str) -> str:
    """OPA's ``lower`` (Go's ``strings.ToLower``): simple case mapping, one character at a time."""
    return "".join("i" if c == "\u0130" else c.lower() for c in text)


def _keys(platform: str, identifier: str) -> tuple[str, ...]:
    """The keys ``identifier`` is listed under on ``platform``: the identifier itself where IDs match
    exactly, lower-cased where they ignore case, and on Windows the exact and the wildcard key of
    ``matching.lookup_key`` (name and publisher hash, joined by NUL)."""
    if platform == "windows":
        parts = _lower(identifier).split("_")
        name, digest = parts[0], (parts[-1] if len(parts) > 1 else "")
        return name + _SEPARATOR + digest, name + _SEPARATOR + "*"
    if platform in _CASE_INSENSITIVE:
        return (_lower(identifier),)
    return (identifier,)


def _platform_lists(apps: object) -> dict[str, list[str]] | None:
    """``apps`` when it maps platforms to lists of strings, else None (not indexed)."""
    if not isinstance(apps, dict):
        return None
    if not all(isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in apps.values()):
        return None
    return apps


def _index_platforms(apps: Mapping[str, list[str]]) -> dict[str, dict[str, bool]]:
    return {p: {key: True for i in ids for key in _keys(p, i)} for p, ids in apps.items()}


def _bans_by_key(bans: Mapping[str, Mapping[str, list[str]]]) -> dict[str, dict[str, dict[str, bool]]]:
    """``{platform: {key: {ban: true}}}``: one lookup per app finds every ban that lists it."""
    table: dict[str, dict[str, dict[str, bool]]] = {}
    for ban, apps in sorted(bans.items()):
        for p, ids in apps.items():
            keys = table.setdefault(p, {})
            for i in ids:
                for key in _keys(p, i):
                    keys.setdefault(key, {})[ban] = True
    return table


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_INT64 = (-(2**63), 2**63 - 1)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def timestamp_ns(ts: object) -> int | None:
    """``clock.ns``: nanoseconds since the epoch of an RFC 3339 timestamp as the policy reads it (the
    same pattern and calendar checks), or None where the policy finds none."""
    if not isinstance(ts, str) or not _RFC3339.fullmatch(ts):
        return None
    year, month, day = int(ts[0:4]), int(ts[5:7]), int(ts[8:10])
    hour, minute, second = int(ts[11:13]), int(ts[14:16]), int(ts[17:19])
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    tail = ts[19:]
    offset, zone_length = 0, 1
    if not tail.endswith("Z"):
        zone, zone_length = tail[-6:], 6
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = (1 if zone[0] == "+" else -1) * (hours * 60 + minutes) * 60
    fraction = int((tail[1 : len(tail) - zone_length] + "000000000")[:9]) if tail.startswith(".") else 0
    seconds = ((_days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second - offset
    n = seconds * 1_000_000_000 + fraction
    return n if _INT64[0] <= n <= _INT64[1] else None


def _timestamps(pyagent: Mapping[str, Any]) -> list[str]:
    """Every string the policy reads as a time from the data: rules' ``effective_from`` and
    exemptions' ``until``."""
    found: set[str] = set()
    orgs = pyagent.get("organizations")
    for org in (orgs if isinstance(orgs, dict) else {}).values():
        rules = org.get("rules") if isinstance(org, dict) else None
        for rule in (rules if isinstance(rules, dict) else {}).values():
            if isinstance(rule, dict) and isinstance(rule.get("effective_from"), str):
                found.add(rule["effective_from"])
    exemptions = pyagent.get("exemptions")
    for ex in (exemptions if isinstance(exemptions, dict) else {}).values():
        if isinstance(ex, dict) and isinstance(ex.get("until"), str):
            found.add(ex["until"])
    return sorted(found)


def sources(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the index is built from, and what its digest covers: the well-formed bans' ``apps`` and
    ``reason`` (the resolved rules' messages quote it), the shared work apps, each
    organisation's own ``work_apps``, the timestamps, and the organisations whole (their inheritance,
    titles and rules, resolved in :mod:`pyagent.policy.orgindex`)."""
    pyagent = data.get("pyagent")
    pyagent = pyagent if isinstance(pyagent, dict) else {}
    bans = pyagent.get("bans")
    orgs = pyagent.get("organizations")
    banned = {}
    texts = {}
    for ban, definition in (bans if isinstance(bans, dict) else {}).items():
        if isinstance(definition, dict):
            apps = _platform_lists(definition.get("apps", {}))
            if apps is not None:
                banned[ban] = apps
                texts[ban] = {"reason": definition.get("reason")}
    org_apps = {}
    for name, org in (orgs if isinstance(orgs, dict) else {}).items():
        if isinstance(org, dict):
            apps = _platform_lists(org.get("work_apps", {}))
            if apps is not None:
                org_apps[name] = apps
    return {
        "bans": banned,
        "ban_texts": texts,
        "work_apps": _platform_lists(pyagent.get("work_apps", {})),
        "orgs": org_apps,
        "times": _timestamps(pyagent),
        "organizations": orgs,
    }


def digest(data: Mapping[str, Any]) -> str:
    """SHA-256 of :func:`sources` (canonical JSON) and the index format."""
    return _digest_of(sources(data))


def _digest_of(src: Mapping[str, Any]) -> str:
    import hashlib  # not needed by an engine that builds its own index

    canonical = json.dumps([FORMAT, src], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def build(data: Mapping[str, Any], *, with_digest: bool = True) -> dict[str, Any]:
    """The index of ``data`` (policy data with its ``pyagent`` root), as ``data.pyagent_index``.
    ``with_digest=False`` (an index kept in memory, never shipped) leaves ``digest`` null."""
    src = sources(data)
    work_apps = src["work_apps"]
    bans = _bans_by_key(src["bans"])
    times = {ts: n for ts in src["times"] if (n := timestamp_ns(ts)) is not None}
    return {
        "format": FORMAT,
        "digest": _digest_of(src) if with_digest else None,
        "bans": bans,
        "keys": {p: {key: [] for key in keys} for p, keys in bans.items()},
        "sizes": {p: len(keys) for p, keys in bans.items()},
        "indexed_bans": dict.fromkeys(src["bans"], True),
        "work_apps": _index_platforms(work_apps) if work_apps is not None else {},
        "work_apps_indexed": work_apps is not None,
        "org_work_apps": {name: _index_platforms(apps) for name, apps in src["orgs"].items()},
        "indexed_orgs": dict.fromkeys(src["orgs"], True),
        "times": times,
        "resolved_orgs": resolved_orgs(src["organizations"], src["ban_texts"], times),
    }


def check(data: Mapping[str, Any], *, label: str = "policy data", replaced: bool = False) -> None:
    """Refuse (:class:`StaleIndexError`, with the reason) data whose ban index was not built from
    the bans beside it; data without an index passes (the policy indexes per decision).

    ``replaced``: the caller decides with an index of its own (:func:`with_index`), as the embedded
    engine does, so an index of an earlier format, which an older ``pyagent policy bundle`` wrote and
    this one would not read, is not refused: an agent upgraded before its bundles are rebuilt keeps
    deciding."""
    index = data.get(ROOT)
    if index is None:
        return
    earlier = isinstance(index, dict) and type(index.get("format")) is int and index["format"] < FORMAT
    if replaced and earlier:
        return
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise StaleIndexError(
            f"{label}: data.{ROOT} is not a ban index of format {FORMAT}; rebuild the bundle"
        )
    rest = {key: value for key, value in data.items() if key != ROOT}
    expected = build(rest)
    if index.get("digest") != expected["digest"]:
        raise StaleIndexError(
            f"{label}: data.{ROOT} was built from other policy data than the data beside it "
            f"({_differing(index, expected)}; digest {str(index.get('digest'))[:12]}, the data's "
            f"{expected['digest'][:12]}): rebuild the bundle with `pyagent policy bundle`"
        )
    if index != expected:
        raise StaleIndexError(
            f"{label}: data.{ROOT} does not match the data it names (edited after it was built): "
            "rebuild the bundle with `pyagent policy bundle`"
        )


#: The index's parts, by what an author edits to change them.
_PARTS = {
    "bans": ("bans", "keys", "sizes", "indexed_bans"),
    "work apps": ("work_apps", "work_apps_indexed", "org_work_apps", "indexed_orgs"),
    "dates": ("times",),
    "organisations": ("resolved_orgs",),
}


def _differing(index: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """What of the data an index no longer matches, as far as its parts tell (a ban's reason, say,
    shows only in its digest)."""
    changed = [name for name, keys in _PARTS.items() if any(index.get(k) != expected[k] for k in keys)]
    if not changed:
        return "its digest differs"
    return (
        f"its {', '.join(changed[:-1])} and {changed[-1]} differ"
        if len(changed) > 1
        else f"its {changed[0]} differ"
    )


def with_index(data: dict[str, Any], *, label: str = "policy data") -> dict[str, Any]:
    """``data`` with its index (re)built from its own bans; ``data`` is not modified. Data that sets
    ``pyagent.ban_keys`` (the name an older engine kept its index under) is refused."""
    pyagent = data.get("pyagent")
    if isinstance(pyagent, dict) and "ban_keys" in pyagent:
        raise InvalidInputError(
            "policy data sets pyagent.ban_keys, a name reserved for the ban index "
            f"(data.{ROOT}, which pyagent builds itself); remove it"
        )
    return {**data, ROOT: build(data, with_digest=False)}


def write_root(data: Mapping[str, Any], directory: Path) -> Path:
    """Write the index of ``data`` as ``directory/pyagent_index/data.json`` (a data root that
    ``opa build`` and ``opa run`` load as ``data.pyagent_index``); return ``directory``."""
    target = directory / ROOT
    target.mkdir(parents=True, exist_ok=True)
    (target / "data.json").write_text(json.dumps(build(data), sort_keys=True), encoding="utf-8")
    return directory


def data_of_dirs(dirs: list[str] | list[Path]) -> dict[str, Any]:
    """The data documents of policy directories, as ``opa`` loads them (YAML and JSON, Rego ignored),
    read with pyagent's strict loaders."""
    from pyagent.policy.datacheck.sources import load_dirs

    return load_dirs(dirs).data


def write_root_for_dirs(dirs: list[str] | list[Path], directory: Path) -> Path:
    """:func:`write_root` for the data in policy directories; refuse one that keeps what the bundle
    build writes (:data:`FOLDER_ROOTS`: an index, a build revision)."""
    data = data_of_dirs(dirs)
    label = ", ".join(map(str, dirs))
    for root, why in FOLDER_ROOTS.items():
        if root in data:
            raise InvalidInputError(f"{label}: data.{root}: {why}")
    return write_root(data, directory)


def check_members(members: Mapping[str, bytes], *, label: str) -> None:
    """:func:`check` for a bundle's files (as ``read_members`` gives them): every ``data.json`` merged at
    its directory, as OPA loads it. For publishing: a bundle with a stale index is refused."""
    data: dict[str, Any] = {}
    for path, raw in sorted(members.items()):
        parts = path.strip("/").split("/")
        if parts[-1] != "data.json":
            continue
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise InvalidInputError(f"{label}: {path} is not JSON") from err
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, dict):
            node.update(value)
    check(data, label=label)
