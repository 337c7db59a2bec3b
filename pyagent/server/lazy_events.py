"""Decision-log batches decoded without building their reports, where that is exact.

An event's ``input.report`` is most of its bytes (a 200-app inventory: ~37 KB of JSON), and a
device's inventory rarely changes between runs: only its ``collected_at`` does. So a batch is first
decoded with the reports left as raw JSON (msgspec skips them, checking their syntax), and each
report is looked up by the digest of its bytes with the ``collected_at`` value cut out. A report
seen before (by this process, in a committed batch) needs no parse: its bytes, but for that one
JSON string, are those of a report that was parsed strictly, so it is valid and its facts are known.
A new one is parsed strictly (:func:`pyagent.server.body.parse_json`).

The rest of each event is decoded into a fixed set of fields and checked for duplicate keys as
:func:`~pyagent.server.body.parse_json` does it (a duplicate key drops a colon from the re-encoding).
Anything else (an unknown field, an escaped colon, a value msgspec refuses, any error) sends the
whole batch to the exact path, :func:`pyagent.server.events.parse_batch` over a full parse, which
gives the same rows or the same error: this module only ever answers faster, never differently
(``tests/server/test_lazy_events.py`` checks both paths against each other).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from pyagent.jsonio import unique_keys
from pyagent.server.body import ESCAPED_COLON, check_json_size, parse_json
from pyagent.server.errors import HttpError
from pyagent.server.events import UNREAD, Batch, ReportFacts, parse_batch, report_facts
from pyagent.server.jsonscan import array_items

#: Reports remembered per process: a fleet's devices each have one current inventory. An entry is
#: about 0.5 KB (key, digest, the device object), so the default bounds the cache near 50 MB.
DEFAULT_ENTRIES = 100_000

_UNSET: Any = msgspec.UNSET
_COLLECTED = b'"collected_at"'
_COLLECTED_VALUE = b'"collected_at":"'
_PROBE = "pyagent-probe-collected-at"
#: How much of a report's start is looked for in the body (then compared whole).
_PROBE_BYTES = 64


class _Input(msgspec.Struct):
    at: Any = _UNSET
    report: msgspec.Raw | msgspec.UnsetType = _UNSET


class _Event(msgspec.Struct, omit_defaults=True):
    """The fields of an OPA decision-log event (and pyagent's ``pyagent`` chain); any other field
    makes the duplicate-key count differ, and the batch takes the exact path."""

    decision_id: Any = _UNSET
    labels: Any = _UNSET
    bundles: Any = _UNSET
    path: Any = _UNSET
    query: Any = _UNSET
    input: _Input | msgspec.UnsetType = _UNSET
    result: Any = _UNSET
    erased: Any = _UNSET
    masked: Any = _UNSET
    error: Any = _UNSET
    requested_by: Any = _UNSET
    req_id: Any = _UNSET
    timestamp: Any = _UNSET
    metrics: Any = _UNSET
    nd_builtin_cache: Any = _UNSET
    trace_id: Any = _UNSET
    span_id: Any = _UNSET
    pyagent: Any = _UNSET


@dataclass(frozen=True)
class _Known:
    device: dict[str, Any]
    digest: str


@dataclass(frozen=True)
class _RawJson:
    """A report's bytes as sent (their JSON syntax checked by msgspec, not parsed), its key and
    ``collected_at`` (see :func:`_key`), and its facts when they are known."""

    data: bytes
    keyed: tuple[bytes, str] | None
    known: _Known | None


#: The fields :func:`pyagent.server.events.parse_batch` reads (the others are only counted).
_READ = ("decision_id", "labels", "path", "timestamp", "bundles", "result", "pyagent")
_DECODER = msgspec.json.Decoder(list[_Event])
_ENCODER = msgspec.json.Encoder()
_PLACEHOLDER = msgspec.Raw(b"0")


class _Fallback(Exception):
    """The batch is not one this module answers exactly: the exact path decides."""


@dataclass
class ReportCache:
    """Reports' facts by the digest of their bytes without the ``collected_at`` value, bounded
    (least recently used out). Entries are added only after their batch is committed, so a report
    found here is stored."""

    entries: int = DEFAULT_ENTRIES
    _known: OrderedDict[bytes, _Known] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    hits: int = 0
    misses: int = 0

    def get(self, key: bytes) -> _Known | None:
        with self._lock:
            known = self._known.get(key)
            if known is None:
                self.misses += 1
            else:
                self.hits += 1
                self._known.move_to_end(key)
            return known

    def add(self, pending: dict[bytes, _Known]) -> None:
        with self._lock:
            self._known.update(pending)
            while len(self._known) > self.entries:
                self._known.popitem(last=False)

    def __len__(self) -> int:
        return len(self._known)


@dataclass
class LazyBatch:
    """A decoded batch, and the reports to remember once it is committed (:meth:`committed`)."""

    batch: Batch
    cache: ReportCache
    pending: dict[bytes, _Known] = field(default_factory=dict)

    def committed(self) -> None:
        if self.pending:
            self.cache.add(self.pending)


def decode_batch(body: bytes, cache: ReportCache) -> LazyBatch:
    """The batch in ``body`` (see the module doc); an error is the exact path's."""
    check_json_size(body)
    try:
        return _lazy(body, cache)
    except (
        _Fallback,
        HttpError,
        msgspec.DecodeError,
        msgspec.ValidationError,
        orjson.JSONDecodeError,
        RecursionError,
    ):
        try:
            value = parse_json(body)
        except HttpError as refused:
            return LazyBatch(_without_unreadable_events(body, refused), cache)
        return LazyBatch(parse_batch(value), cache)


#: Nesting past which an event is acknowledged and ignored rather than parsed: a real OPA logs the
#: input it was asked about, nested up to Go's 10,000 levels, and resends a refused batch forever.
MAX_EVENT_DEPTH = 512
#: The most the fallback below looks at (a Python loop over tokens): an OPA's batch is its
#: ``upload_size_limit_bytes`` of gzip (32 KB by default), far below both. Past either, the body's
#: own error stands (2 M tokens of ``0,`` in 4 KB of gzip had held the decode slot 25 s).
MAX_FALLBACK_BYTES = 4 * 1024 * 1024
MAX_FALLBACK_TOKENS = 400_000


def _without_unreadable_events(body: bytes, refused: HttpError) -> Batch:
    """The batch of a well-formed body that no parser takes whole, because an event nests past
    :data:`MAX_EVENT_DEPTH` or holds a number out of a double's range (``1e400``, as OPA logs it):
    the other events parsed one by one (as strictly), those counted as ignored. Raises ``refused``
    (the whole body's error) when the body is malformed, too big to look at, or has no such event."""
    items = array_items(body, max_tokens=MAX_FALLBACK_TOKENS) if len(body) <= MAX_FALLBACK_BYTES else None
    if items is None:
        raise refused
    events: list[Any] = []
    for item, deepest in items:
        if deepest > MAX_EVENT_DEPTH:
            events.append(UNREAD)
            continue
        try:
            events.append(parse_json(item))
        except HttpError:
            if not _out_of_range(item):
                raise refused from None
            events.append(UNREAD)
    if not any(event is UNREAD for event in events):
        raise refused
    return parse_batch(events)  # (indexes in its messages are the body's; the log says the unread)


def _out_of_range(item: bytes) -> bool:
    """Whether ``item`` (well-formed JSON, refused by the strict parse) is refused only for a number
    out of a double's range, or an integer too long to read."""
    try:
        value = json.loads(
            item, parse_float=lambda _: 0.0, parse_int=lambda _: 0, object_pairs_hook=unique_keys
        )
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate escape: malformed
    except (ValueError, RecursionError):  # (a duplicate key is a ValueError, so is UnicodeEncodeError)
        return False
    return True


def _lazy(body: bytes, cache: ReportCache) -> LazyBatch:
    events = _DECODER.decode(body)
    lazy = LazyBatch(Batch([], {}), cache)
    gaps = _Gaps(body)
    values: list[dict[str, Any]] = []
    misses: list[_RawJson] = []
    for event in events:
        value = {name: item for name in _READ if (item := getattr(event, name)) is not _UNSET}
        policy_input = event.input
        if policy_input is not _UNSET:
            assert isinstance(policy_input, _Input)
            fields: dict[str, Any] = {"at": policy_input.at}
            if isinstance(policy_input.report, msgspec.Raw):
                raw = bytes(policy_input.report)
                gaps.skip(raw)
                keyed = _key(raw)
                known = cache.get(keyed[0]) if keyed is not None else None
                if known is None and _escaped_colon(raw):
                    raise _Fallback  # (a known report has none: only lazily decoded ones are kept)
                fields["report"] = report = _RawJson(raw, keyed, known)
                if known is None:
                    misses.append(report)
                policy_input.report = _PLACEHOLDER
            value["input"] = {name: item for name, item in fields.items() if item is not _UNSET}
        values.append(value)
    if gaps.colons() != _ENCODER.encode(events).count(b":"):
        raise _Fallback  # a duplicate key, or a field this module does not decode

    parsed: set[int] = set()

    def facts_of(report: Any, where: str) -> ReportFacts:
        parsed.add(id(report))
        return _facts(report, where, lazy)

    lazy.batch = parse_batch(values, facts_of)
    for report in misses:  # msgspec checked their syntax, not their UTF-8 nor their keys
        if id(report) not in parsed:  # an ignored event's: the exact path refuses what it would
            parse_json(report.data)
    return lazy


class _Gaps:
    """The body's bytes outside its reports, for the duplicate-key count of
    :func:`~pyagent.server.body.parse_json`: the body's colons are those of the re-encoded events
    (each report a ``0``) plus those of the reports' bytes, so the colons outside the reports must be
    those of the re-encoded events, and neither may hold an escaped colon (a report's own keys are
    checked when it is parsed; a known one was). Each report is found at the first occurrence of its
    first bytes after the previous one and must be whole there (else the exact path decides): the body
    is cut into pieces whatever the matches, so the count is exact, and a scan is linear."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._at = 0
        self._colons = 0

    def skip(self, raw: bytes) -> None:
        body, start = self._body, self._at
        found = body.find(raw[:_PROBE_BYTES], start) if raw.startswith(b"{") else -1
        if found < 0 or not body.startswith(raw, found):
            raise _Fallback
        self._gap(start, found)
        self._at = found + len(raw)

    def colons(self) -> int:
        self._gap(self._at, len(self._body))
        self._at = len(self._body)
        return self._colons

    def _gap(self, start: int, end: int) -> None:
        if _escaped_colon(self._body, start, end):
            raise _Fallback
        self._colons += self._body.count(b":", start, end)


def _facts(report: Any, where: str, lazy: LazyBatch) -> ReportFacts:
    if not isinstance(report, _RawJson):
        return report_facts(report, where)  # absent: the exact path's error
    raw, keyed = report.data, report.keyed
    known = report.known or (lazy.pending.get(keyed[0]) if keyed is not None else None)
    if known is not None and keyed is not None:
        return ReportFacts(known.device, keyed[1], known.digest, None)
    value, facts = _parsed(raw, where)
    if keyed is not None and _cut_is_top_level(raw, value, keyed[1]):
        lazy.pending[keyed[0]] = _Known(facts.device, facts.digest)
    return facts


def _parsed(raw: bytes, where: str) -> tuple[Any, ReportFacts]:
    """A new report parsed strictly, its canonical JSON made once: it serves both the digest and
    the duplicate-key count (sorting keys changes no colon count). Escaped colons take
    :func:`~pyagent.server.body.parse_json`'s exact path."""
    if _escaped_colon(raw):
        try:
            value = parse_json(raw)
        except HttpError as err:  # the body is not strict JSON: the exact path refuses it whole
            raise _Fallback from err
        return value, report_facts(value, where)
    value = orjson.loads(raw)  # a JSONDecodeError sends the batch to the exact path
    try:
        facts = report_facts(value, where)
    except HttpError as err:  # not a device's report, or not strict JSON: the exact path tells which
        raise _Fallback from err
    assert facts.canonical is not None
    colons = facts.canonical.count(b":")
    if "collected_at" in value:  # report_facts checked that it is an object
        colons += 1 + orjson.dumps(value["collected_at"]).count(b":")
    if raw.count(b":") != colons:
        raise _Fallback  # a duplicate key: the exact path names it
    return value, facts


def _escaped_colon(data: bytes, start: int = 0, end: int | None = None) -> bool:
    """Whether ``data[start:end]`` holds a ``\\u003a`` escape; a search for a backslash (memchr) first,
    as most reports have none."""
    end = len(data) if end is None else end
    return data.find(b"\\", start, end) >= 0 and ESCAPED_COLON.search(data, start, end) is not None


def _key(raw: bytes) -> tuple[bytes, str] | None:
    """The digest of ``raw`` without its first ``collected_at`` string, and that string; None unless
    the key's first literal occurrence has a string value without escapes.

    The cut is unambiguous (what precedes it ends with the key's first occurrence, so two reports
    with one digest have the same bytes but for that string), and a report is remembered only when
    the key occurs once (:func:`_cut_is_top_level`): a report found by its digest then has that one
    occurrence too (the string between holds no quote), so the scan for a second is left to misses."""
    start = raw.find(_COLLECTED_VALUE)
    if start < 0 or raw.find(_COLLECTED, 0, start + len(_COLLECTED)) != start:
        return None
    value_start = start + len(_COLLECTED_VALUE)
    end = raw.find(b'"', value_start)
    if end < 0 or raw.find(b"\\", value_start, end) >= 0:
        return None
    try:
        text = raw[value_start:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    digest = hashlib.sha256()
    view = memoryview(raw)
    digest.update(view[:value_start])
    digest.update(view[end:])
    return digest.digest(), text


def _cut_is_top_level(raw: bytes, value: Any, text: str) -> bool:
    """Whether ``raw`` has one literal ``"collected_at"``, the report's own. Without ``\\u``
    escapes it is (the parsed report has the key, and it can be spelt only that way); with them, the
    key could be spelt with an escape and the literal one be nested, so a probe value tells."""
    if not isinstance(value, dict) or value.get("collected_at") != text:
        return False
    if raw.count(_COLLECTED) != 1:
        return False
    if raw.find(b"\\") < 0 or raw.find(b"\\u") < 0:  # memchr first: most reports have no escape
        return True
    start = raw.find(_COLLECTED_VALUE) + len(_COLLECTED_VALUE)
    end = raw.find(b'"', start)
    probed = parse_json(raw[:start] + _PROBE.encode() + raw[end:])
    return isinstance(probed, dict) and probed.get("collected_at") == _PROBE
