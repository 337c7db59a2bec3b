"""``pyagent policy test``: failing Rego tests shown with the expected and the actual value.

``opa test`` prints ``FAIL`` and, with ``--var-values``, a value cut to the width of the line, often
before the difference. Here the run is ``opa test --format json --var-values``: for each failing
test, the last expression that failed in the test's own body is found in the trace, its operands
are rebuilt as JSON from the trace's bound values, and the comparison is shown whole, with the
first place the two values differ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyagent.policy.opa_tool import ToolRun

MAX_SHOWN = 4000
#: Failing tests run again for their values; the rest are listed by name.
MAX_EXPLAINED = 20
_COMPARISONS = {"eq": "==", "equal": "==", "neq": "!="}


@dataclass(frozen=True)
class Failure:
    """A failing test and the lines that explain it."""

    name: str
    lines: list[str]


@dataclass(frozen=True)
class Outcome:
    """What one test run gave: each failing test, and the counts."""

    failures: list[Failure]
    passed: int
    failed: int
    skipped: int

    def summary(self) -> str:
        total = self.passed + self.failed + self.skipped
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return f"policy test: {self.passed} passed, {self.failed} failed{skipped} (of {total})"


def run_tests(targets: Sequence[str], runner: Callable[[list[str]], ToolRun]) -> tuple[Outcome, ToolRun]:
    """Run every test, then each failing one again with its trace and variable values (OPA cannot
    print the trace of some runs as JSON: then its own ``--var-values`` text is shown)."""
    run = runner(["test", "--format", "json", *targets])
    outcome = parse(run.stdout)
    for block in outcome.failures[:MAX_EXPLAINED]:
        args = ["--var-values", "--run", "^" + re.escape(block.name) + "$", *targets]
        again = runner(["test", "--format", "json", *args])
        try:
            block.lines[:] = parse(again.stdout).failures[0].lines
        except (ValueError, TypeError, AttributeError, IndexError):
            text = runner(["test", *args]).stdout.splitlines()
            block.lines.extend("  " + line for line in _failure_text(text))
    return outcome, run


def _failure_text(lines: list[str]) -> list[str]:
    """The part of ``opa test --var-values`` text output after its FAILURES heading."""
    start = next((i for i, line in enumerate(lines) if line.strip() == "FAILURES"), len(lines))
    return [line.rstrip() for line in lines[start + 2 :] if line.strip() and not set(line.strip()) <= {"-"}]


def parse(stdout: str) -> Outcome:
    """The outcome of ``opa test --format json --var-values`` (:class:`ValueError` if not its output)."""
    results = json.loads(stdout or "[]")
    if not isinstance(results, list):
        raise ValueError("not a list of test results")
    failures: list[Failure] = []
    passed = failed = skipped = 0
    for result in sorted(results, key=_place):
        if result.get("skip"):
            skipped += 1
        elif result.get("fail") or result.get("error"):
            failed += 1
            failures.append(Failure(f"{result.get('package')}.{result.get('name')}", _explain(result)))
        else:
            passed += 1
    return Outcome(failures, passed, failed, skipped)


def _place(result: Mapping[str, Any]) -> tuple[str, int]:
    """Where a test is written: failures are listed in file and line order, as OPA's order varies."""
    where = result.get("location") or {}
    return str(where.get("file", "")), int(where.get("row", 0))


def _explain(result: Mapping[str, Any]) -> list[str]:
    where = result.get("location") or {}
    name = f"{result.get('package', 'data')}.{result.get('name', '?')}"
    lines = [f"FAIL {name} ({where.get('file', '?')}:{where.get('row', '?')})"]
    error = result.get("error")
    if error:
        message = error.get("message", error) if isinstance(error, dict) else error
        return [*lines, f"  error: {message}"]
    if "trace" not in result:  # a run without --var-values: the test is run again for its values
        return lines
    event = _last_failure(result["trace"] or [], where)
    if event is None:
        return [*lines, "  (no failing expression in the trace: run `opa test -v` for the full trace)"]
    at = event.get("Location") or {}
    lines.append(f"  {at.get('file')}:{at.get('row')}: {_source_line(at)}")
    bound = {local["name"]: _value(local, {}) for local in event.get("Locals") or []}
    names = {key: meta.get("name", key) for key, meta in (event.get("LocalMetadata") or {}).items()}
    terms = (event.get("Node") or {}).get("terms")
    op = _operator(terms)
    if op in _COMPARISONS and isinstance(terms, list) and len(terms) == 3:
        actual, expected = _value(terms[1], bound), _value(terms[2], bound)
        if op == "neq":
            return [*lines, f"    expected a value other than {_show(expected)}, got it"]
        lines += [f"    expected: {_show(expected)}", f"    actual:   {_show(actual)}"]
        difference = next(_differences(expected, actual, ""), None)
        if difference is not None and not difference.startswith("(value)"):
            lines.append(f"    first difference at {difference}")
        return lines
    if (event.get("Node") or {}).get("negated"):
        lines.append("    the negated expression is true")
    elif isinstance(terms, dict):
        lines.append("    the expression is false or undefined")
    for key, value in sorted(bound.items()):
        lines.append(f"    {names.get(key, key)} = {_show(value)}")
    return lines


def _last_failure(trace: list[Mapping[str, Any]], test: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The last ``Fail`` of an expression in the test's own file, from the test's first line on."""
    found = None
    for event in trace:
        at = event.get("Location") or {}
        if (
            event.get("Op") == "Fail"
            and at.get("file") == test.get("file")
            and int(at.get("row", 0)) >= int(test.get("row", 0))
            and isinstance(event.get("Node"), dict)
            and "terms" in event["Node"]
        ):
            found = event
    return found


def _operator(terms: object) -> str | None:
    if isinstance(terms, list) and terms and terms[0].get("type") == "ref":
        head = terms[0]["value"]
        if len(head) == 1 and head[0].get("type") == "var":
            return str(head[0]["value"])
    return None


def _source_line(at: Mapping[str, Any]) -> str:
    try:
        text = Path(str(at.get("file"))).read_text(encoding="utf-8").splitlines()
        return text[int(at.get("row", 0)) - 1].strip()
    except (OSError, ValueError, IndexError):
        return "(source not readable)"


def _value(term: Mapping[str, Any], bound: Mapping[str, Any]) -> Any:
    """A trace term as JSON: literals rebuilt, variables from their bound values."""
    kind, value = term.get("type"), term.get("value")
    if kind == "var":
        return bound.get(str(value), f"<unbound {value}>")
    if kind in ("array", "set"):
        items = [_value(item, bound) for item in value or []]
        return sorted(items, key=json.dumps) if kind == "set" else items
    if kind == "object":
        return {_key(k, bound): _value(v, bound) for k, v in value or []}
    if kind == "ref":
        return "<" + ".".join(str(part.get("value")) for part in value or []) + ">"
    return value


def _key(term: Mapping[str, Any], bound: Mapping[str, Any]) -> str:
    key = _value(term, bound)
    return key if isinstance(key, str) else json.dumps(key, sort_keys=True)


def _show(value: Any) -> str:
    """``value`` as JSON, whole up to 4,000 characters (the first difference is shown apart)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _differences(expected: Any, actual: Any, path: str) -> Iterator[str]:
    """Where ``actual`` departs from ``expected``: ``[0].scope: expected "a", got "b"``."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            here = f"{path}.{key}"
            if key not in actual:
                yield f"{here}: missing, expected {_show(expected[key])}"
            elif key not in expected:
                yield f"{here}: not expected, got {_show(actual[key])}"
            else:
                yield from _differences(expected[key], actual[key], here)
    elif isinstance(expected, list) and isinstance(actual, list):
        for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
            yield from _differences(want, got, f"{path}[{i}]")
        if len(expected) != len(actual):
            yield f"{path or '(value)'}: {len(expected)} items expected, got {len(actual)}"
    elif expected != actual or type(expected) is not type(actual):
        yield f"{path or '(value)'}: expected {_show(expected)}, got {_show(actual)}"
