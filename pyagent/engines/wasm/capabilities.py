"""Refuse, before rollout, a policy that needs a built-in the embedded engine lacks.

The compiled module says which built-ins it leaves to the host (its ``builtins`` export); any of those
not in :data:`~pyagent.engines.wasm.builtins.HOST_BUILTINS` would make every agent refuse the bundle.
So ``pyagent policy bundle``, ``pyagent policy lint`` and the server's publish check the module here and
refuse it with one line naming each missing built-in and the rules that call it (found in the policy's
Rego sources: the rule whose text holds the call, with file and line), and why a built-in is refused on
purpose (``time.now_ns``).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyagent.engines.base import ENTRYPOINT
from pyagent.engines.wasm.builtins import REFUSED
from pyagent.engines.wasm.bundle import read_bundle
from pyagent.engines.wasm.runtime import MissingBuiltinError, WasmPolicy
from pyagent.errors import InvalidInputError
from pyagent.policy.opa_tool import run_opa

__all__ = [
    "BuiltinUse",
    "UnsupportedBuiltinsError",
    "check_members",
    "check_wasm",
    "find_uses",
    "missing_builtins",
    "problems_in_dirs",
    "rego_sources",
]

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_RULE_HEAD = re.compile(r"^(?:default\s+)?([A-Za-z_][\w.]*)")
_NOT_RULES = ("package", "import")


@dataclass(frozen=True)
class BuiltinUse:
    """Where a policy calls a built-in: the rule (package-qualified) and ``file:line``."""

    builtin: str
    rule: str
    where: str


class UnsupportedBuiltinsError(InvalidInputError):
    """The policy calls built-ins the embedded engine does not provide (exit code 2)."""

    def __init__(self, label: str, missing: Sequence[str], uses: Sequence[BuiltinUse]) -> None:
        self.missing = tuple(missing)
        self.uses = tuple(uses)
        super().__init__(f"{label}: {describe(missing, uses)}")


def describe(missing: Sequence[str], uses: Sequence[BuiltinUse]) -> str:
    """One line: each missing built-in, the rules calling it, and why it is refused when on purpose."""
    parts = []
    for name in missing:
        callers = [f"{use.rule} ({use.where})" for use in uses if use.builtin == name]
        text = name + (f" called by {', '.join(callers)}" if callers else "")
        if name in REFUSED:
            text += f" (refused: {REFUSED[name]})"
        parts.append(text)
    return "built-ins the embedded engine does not provide: " + "; ".join(parts)


#: How many modules' answers a process remembers (see :func:`missing_builtins`).
_REMEMBERED = 64
_answers: OrderedDict[bytes, tuple[str, ...]] = OrderedDict()
_answers_lock = threading.Lock()


def missing_builtins(wasm: bytes) -> tuple[str, ...]:
    """The built-ins ``wasm`` needs that this host lacks (sorted; empty when it can run).

    Finding out compiles the module (~0.3 s); the answer depends on its bytes alone (this host's
    built-ins are fixed), so a process remembers it by the module's digest: the server's publishes
    mostly change the policy data beside the same module."""
    digest = hashlib.sha256(wasm).digest()
    with _answers_lock:
        if digest in _answers:
            _answers.move_to_end(digest)
            return _answers[digest]
    missing = _compiled_missing(wasm)
    with _answers_lock:
        _answers[digest] = missing
        while len(_answers) > _REMEMBERED:
            _answers.popitem(last=False)
    return missing


#: Bounds on a module checked before anyone runs it for a decision (a bundle being published, built or
#: linted): its loading code may take this long, and its memory this many 64 KiB pages (256 MiB).
CHECK_SECONDS = 10.0
CHECK_MAX_PAGES = 4096


def _compiled_missing(wasm: bytes) -> tuple[str, ...]:
    try:  # no cache written by a build, a lint or the server
        WasmPolicy(wasm, module_cache=False, load_seconds=CHECK_SECONDS, max_memory_pages=CHECK_MAX_PAGES)
    except MissingBuiltinError as err:
        return err.missing
    return ()


def _calls(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.]){re.escape(name)}\s*\(")


def find_uses(sources: Mapping[str, str], names: Iterable[str]) -> list[BuiltinUse]:
    """The calls of ``names`` in Rego ``sources`` (path to text), each with its enclosing rule: the
    last line before it that starts at column 0 (``opa fmt`` layout) and is no package or import."""
    patterns = {name: _calls(name) for name in names}
    uses = []
    for path, text in sorted(sources.items()):
        package = _PACKAGE.search(text)
        prefix = package.group(1) + "." if package else ""
        rule = ""
        for row, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            head = _RULE_HEAD.match(code)
            if head and head.group(1) not in _NOT_RULES:
                rule = prefix + head.group(1)
            for name, pattern in patterns.items():
                if pattern.search(code):
                    uses.append(BuiltinUse(name, rule or prefix.rstrip("."), f"{path}:{row}"))
    return uses


def check_wasm(wasm: bytes, sources: Mapping[str, str], *, label: str) -> None:
    """Raise :class:`UnsupportedBuiltinsError` when the module needs a built-in this host lacks."""
    missing = missing_builtins(wasm)
    if missing:
        raise UnsupportedBuiltinsError(label, missing, find_uses(sources, missing))


def check_members(
    members: Mapping[str, bytes], *, label: str, dirs: Sequence[str | Path] | None = None
) -> None:
    """:func:`check_wasm` for a bundle's files; the calls are looked up in the policy directories
    ``dirs`` it was built from, else in the Rego the bundle carries (as ``opa build`` rewrote it). A
    bundle without ``policy.wasm`` (the Rego build for OPA) has nothing to check."""
    wasm = members.get("policy.wasm") or members.get("/policy.wasm")
    if wasm is None:
        return
    sources = (
        rego_sources(dirs)
        if dirs is not None
        else {
            p.lstrip("/"): raw.decode("utf-8", "replace") for p, raw in members.items() if p.endswith(".rego")
        }
    )
    check_wasm(wasm, sources, label=label)


def rego_sources(dirs: Sequence[str | Path]) -> dict[str, str]:
    """The Rego files under policy directories (tests left out, as in a bundle), path to text."""
    from pyagent.policy.tree import policy_files

    return {
        str(path): path.read_text(encoding="utf-8", errors="replace")
        for root in dirs
        for path in policy_files(Path(root), ".rego")
        if not path.name.endswith("_test.rego")
    }


def problems_in_dirs(dirs: Sequence[str]) -> list[str]:
    """For ``policy lint``: the policy under ``dirs`` built for the embedded engine (``opa build -t
    wasm``, tests left out) and checked; one line per problem, none when the engine can run it."""
    rego = rego_sources(dirs)
    if not rego:
        return []
    with tempfile.TemporaryDirectory(prefix="pyagent-lint-") as tmp:
        bundle = Path(tmp) / "bundle.tar.gz"
        built = run_opa(["build", "-t", "wasm", "-e", ENTRYPOINT, "-o", str(bundle), *rego])
        if built.returncode != 0:
            return []  # `opa check --strict` in the same lint reports why it does not compile
        wasm = read_bundle(bundle).wasm
    missing = missing_builtins(wasm)
    return [describe(missing, find_uses(rego, missing))] if missing else []
