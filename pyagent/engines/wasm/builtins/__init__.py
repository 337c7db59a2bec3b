"""Host implementations of the Rego built-ins that OPA's wasm compiler leaves to the host.

A policy compiled with ``opa build -t wasm`` carries most built-ins natively (``count``, ``concat``,
``object.get``, ``json.marshal``...). The rest are listed by the module's ``builtins`` export and called
back through ``env.opa_builtinN``; :data:`HOST_BUILTINS` is the complete, explicit list of those this
engine provides, one module per group, each mirroring the Go implementation in OPA's ``topdown``
package (tested differentially against the pinned ``opa eval``, tests/engines/builtins/).

A built-in signals OPA's "built-in error" by raising :class:`BuiltinError`; the runtime turns it into an
undefined expression (OPA's default) or, in strict mode, into a failed evaluation. A use this host
cannot answer exactly as OPA would raises :class:`UnsupportedBuiltinUse`: the evaluation fails loudly.

:data:`REFUSED` names the built-ins deliberately absent, with the reason a policy that calls them is
refused (``capabilities.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType

from pyagent.engines.wasm.builtins._operands import BuiltinError, UnsupportedBuiltinUse

__all__ = [
    "HOST_BUILTINS",
    "RAW_OPERANDS",
    "REFUSED",
    "BuiltinError",
    "HostBuiltin",
    "UnsupportedBuiltinUse",
    "docs_section",
]

HostBuiltin = Callable[..., object]
"""A host built-in: takes the JSON-decoded operands, returns a JSON-encodable value."""

#: Every built-in this host provides, by OPA name: (module of this package, function). Nothing
#: registers itself anywhere else.
_WHERE: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "regex.globs_match": ("globs", "globs_match"),
        "semver.compare": ("semver", "compare"),
        "semver.is_valid": ("semver", "is_valid"),
        "sprintf": ("strings", "sprintf"),
        "strings.any_prefix_match": ("strings", "any_prefix_match"),
        "strings.count": ("strings", "count"),
        "time.add_date": ("clock", "add_date"),
        "time.clock": ("clock", "clock"),
        "time.date": ("clock", "date"),
        "time.format": ("clock", "format_time"),
        "time.parse_duration_ns": ("durations", "parse_duration_ns"),
        "time.parse_ns": ("clock", "parse_ns"),
        "time.parse_rfc3339_ns": ("clock", "parse_rfc3339_ns"),
        "time.weekday": ("clock", "weekday"),
        "units.parse": ("units", "parse_units"),
        "units.parse_bytes": ("units", "parse_bytes"),
    }
)


class _Registry(Mapping[str, HostBuiltin]):
    """:data:`_WHERE` as functions, each group imported when a policy first needs one of its built-ins
    (a cold ``pyagent check`` pays only for the groups the shipped policy calls)."""

    def __getitem__(self, name: str) -> HostBuiltin:
        module, function = _WHERE[name]
        implementation: HostBuiltin = getattr(importlib.import_module(f"{__name__}.{module}"), function)
        return implementation

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


HOST_BUILTINS: Mapping[str, HostBuiltin] = _Registry()
"""Every built-in this host provides, by OPA name."""

RAW_OPERANDS: frozenset[str] = frozenset({"sprintf"})
"""Built-ins given their operands as OPA's value text (``opa_value_dump``: sets, number texts kept)."""

REFUSED: Mapping[str, str] = MappingProxyType(
    {
        "time.now_ns": "decisions take the time from their input (input.at), so each can be replayed",
    }
)
"""Built-ins refused on purpose, with the reason."""


#: Where a host built-in would answer differently from OPA's Go code, it fails loudly instead: the limits.
LIMITS: Mapping[str, str] = MappingProxyType(
    {
        "sprintf": "`%v`, `%s`, `%d`, `%x`/`%X` (strings, integers), `%f`/`%F`/`%e`/`%E` (other numbers) "
        "with an optional `-` flag, width and (for those) precision, and Go's error texts; any other "
        "verb, flag, `*` or argument index fails the evaluation",
        "time.parse_ns": "a zone abbreviation other than UTC in the value (MST, CET...) fails the "
        "evaluation: Go gives it the offset of the OPA host's own zone",
        "units.parse": "amounts up to 10^4000",
        "units.parse_bytes": "amounts up to 10^4000",
        "semver.compare": "two different pre-release numbers beyond int64 fail (OPA never answers them)",
    }
)


def docs_section() -> list[str]:
    """The Markdown section of docs/policy.md listing what the embedded engine provides."""
    lines = [
        "## Built-ins of the embedded engine",
        "",
        "The embedded engine runs the policy compiled to WebAssembly by the pinned `opa build -t wasm`.",
        "Most built-ins are compiled into the module; these are answered by the engine itself, each",
        "tested against the pinned `opa eval` (default and `--strict-builtin-errors`). The `time.*`",
        "built-ins work in UTC: a named time zone fails the evaluation rather than answer differently.",
        "",
    ]
    for name in sorted(HOST_BUILTINS):
        limit = LIMITS.get(name)
        lines.append(f"- `{name}`" + (f": {limit}" if limit else ""))
    lines += [
        "",
        "A policy calling any other built-in the module leaves to the host is refused before rollout",
        "by `pyagent policy lint`, and by `pyagent policy bundle` and `pyagent server publish` of a",
        "wasm build, naming the built-in and the rules that call it (a build for OPA alone, `--target",
        "rego`, is not checked: OPA provides them). Refused on purpose:",
        "",
    ]
    lines += [f"- `{name}`: {reason}" for name, reason in sorted(REFUSED.items())]
    return lines
