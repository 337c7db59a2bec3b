"""Every package and rule of a policy carries a ``# METADATA`` block, a title at least: OPA's
annotations, from which a rule's results and the policy's documentation are written, and which tell
an author what each rule is for. ``policy lint`` checks it on the parsed modules (``opa parse``):

* a rule, however it is defined (several bodies, ``else`` branches, a ``default``), needs one block,
  on any of its definitions;
* a test module (``*_test.rego``) needs one on its package; its tests are named for what they check.

A module that does not parse is left to ``opa check``, which says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pyagent.policy.opa_tool import run_opa

HINT = "every package and rule has a # METADATA block with a title"


def missing_metadata(dirs: Sequence[str]) -> list[str]:
    """``FILE:ROW: package P`` / ``FILE:ROW: rule R`` for each package and rule under ``dirs`` that
    has no METADATA, in file order."""
    found: list[str] = []
    for path in _modules(dirs):
        parsed = run_opa(["parse", "--format", "json", "--json-include", "locations,-comments", str(path)])
        if parsed.returncode != 0:
            continue
        module = json.loads(parsed.stdout)
        annotations = module.get("annotations") or []
        if not any(note.get("scope") == "package" for note in annotations):
            found.append(f"{path}:1: package {_package(module)} has no METADATA ({HINT})")
        if path.name.endswith("_test.rego"):
            continue
        rules: dict[str, tuple[int, bool]] = {}
        for rule in module.get("rules") or []:
            name = _name(rule)
            row, noted = rules.get(name, (rule.get("location", {}).get("row", 0), False))
            rules[name] = (row, noted or bool(rule.get("annotations")))
        found += [
            f"{path}:{row}: rule {name} has no METADATA ({HINT})"
            for name, (row, noted) in rules.items()
            if not noted
        ]
    return found


def _modules(dirs: Sequence[str]) -> Iterator[Path]:
    from pyagent.policy.tree import policy_files

    for directory in dirs:
        yield from policy_files(Path(directory), ".rego")


def _package(module: dict[str, Any]) -> str:
    parts = [str(term.get("value")) for term in module.get("package", {}).get("path", [])[1:]]
    return ".".join(parts)


def _name(rule: dict[str, Any]) -> str:
    head = rule.get("head", {})
    ref = head.get("ref")
    if ref:
        return ".".join(str(term.get("value")) for term in ref)
    return str(head.get("name"))
