"""The one strict YAML loader for policy data (``policies/data/**/data.yaml``).

OPA reads the same files with a forgiving loader: a key said twice keeps the last value, anchors and
merge keys copy values silently. A policy file is reviewed as written, so what is read must be what
is written; this loader refuses, with the file and line:

- a key said twice in one mapping (the second ``eu-council:`` that silently replaced the first);
- anchors, aliases and merge keys (``&a``, ``*a``, ``<<:``);
- keys that are not strings (``1:``, ``true:``, ``null:``);
- tab characters (YAML forbids them in indentation; elsewhere they hide in reviews);
- tags other than the plain JSON types.

Scalars resolve as YAML 1.2's core schema, as OPA reads them (:mod:`pyagent.yamlcore`):
``yes``/``no``/``on`` and unquoted dates stay strings. Every value's line is kept (:class:`Located`),
so that later checks can point at the line of a mistake.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pyagent.errors import InvalidInputError
from pyagent.userfile import read_text
from pyagent.yamlcore import CoreComposer

MAX_DATA_BYTES = 16 * 1024 * 1024

#: How deeply collections may nest in a policy data file or overlay. Policy data is a few levels deep
#: (``pyagent.organizations.ORG.rules.RULE.scopes``); the bound keeps every reader of it (merging,
#: checking, indexing, all recursive) far from Python's recursion limit.
MAX_DATA_DEPTH = 100

#: A place in a JSON document: keys and list indexes from the root.
DocPath = tuple[str | int, ...]


class PolicyYamlError(InvalidInputError):
    """A policy data file that is not plain, unambiguous YAML (exit code 2)."""


@dataclass
class Located:
    """A parsed document and the 1-based line of each value in it (keyed by its path)."""

    source: str
    value: Any
    lines: dict[DocPath, int] = field(default_factory=dict)
    #: Where the document sits in the data (``("pyagent", "bans")``), for messages.
    prefix: DocPath = ()

    def line_of(self, path: DocPath) -> int:
        """The line of ``path``, else of its nearest ancestor that has one (1 for the root)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


class _Loader(CoreComposer):
    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise PolicyYamlError(
                f"{self.name}:{mark.line + 1}: anchors and aliases (&, *) are not allowed in policy "
                "data; write the value out"
            )
        if self.depth >= MAX_DATA_DEPTH and isinstance(event, yaml.CollectionStartEvent):
            raise PolicyYamlError(f"{self.name}:{event.start_mark.line + 1}: {_TOO_DEEP}")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_TOO_DEEP = f"nested too deeply (policy data nests at most {MAX_DATA_DEPTH} levels)"


def too_deep(value: Any, source: str, lines: Located) -> None:
    """Refuse ``value`` (parsed from ``source``) when a collection in it sits more than
    :data:`MAX_DATA_DEPTH` levels deep, at that collection's line (``lines`` locates it); found
    without recursion."""
    stack: list[tuple[Any, DocPath]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            children: Any = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            continue
        if len(path) >= MAX_DATA_DEPTH:
            raise InvalidInputError(f"{source}:{lines.line_of(path)}: {_TOO_DEEP}")
        stack.extend((child, (*path, key)) for key, child in children if isinstance(child, dict | list))


_SCALARS: dict[str, Callable[[str], Any]] = {
    "tag:yaml.org,2002:str": lambda text: text,
    "tag:yaml.org,2002:bool": lambda text: text.lower() == "true",
    "tag:yaml.org,2002:null": lambda text: None,
    "tag:yaml.org,2002:int": lambda text: int(text, 0) if text[:2] in ("0o", "0x") else int(text),
    "tag:yaml.org,2002:float": lambda text: float(text.lower().replace(".inf", "inf").replace(".nan", "nan")),
}


def dotted(path: DocPath) -> str:
    """``data.pyagent.organizations.eu-council.rules.tiktok`` for a path; odd keys JSON-quoted."""
    parts = ["data"]
    for step in path:
        if isinstance(step, int):
            parts[-1] += f"[{step}]"
        elif step and all(c.isalnum() or c in "-_" for c in step):
            parts.append(step)
        else:
            parts[-1] += f"[{json.dumps(step, ensure_ascii=True)}]"
    return ".".join(parts)


def loads(text: str, source: str, prefix: DocPath = ()) -> Located:
    """Parse ``text`` (the content of ``source``, placed at ``prefix`` in the data) strictly. A document
    with no value (blank, or only comments: what deleting the last entry leaves) is refused: OPA reads it
    as ``null``, which would replace whatever else sets its place in the data."""
    tab = text.find("\t")
    if tab >= 0:
        line = text.count("\n", 0, tab) + 1
        raise PolicyYamlError(f"{source}:{line}: tab character; indent and separate with spaces")
    try:
        loader = _Loader(text)  # (its reader refuses a control character such as NUL at once)
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        code = err.character if isinstance(err.character, int) else ord(err.character)
        raise PolicyYamlError(
            f"{source}:{line}: not valid YAML: character U+{code:04X} is not allowed"
        ) from err
    loader.name = source
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyYamlError(f"{source}{at}: not valid YAML: {err.problem or err.context}") from err
    except yaml.YAMLError as err:
        raise PolicyYamlError(f"{source}: not valid YAML: {' '.join(str(err).split())}") from err
    finally:
        loader.dispose()
    if node is None:
        raise PolicyYamlError(
            f"{source}: no value (only blank lines or comments), which OPA reads as null at"
            f" {dotted(prefix)}; write {{}} for no entries"
        )
    located = Located(source, {}, prefix=prefix)
    located.value = _construct(node, (), located)
    return located


def load(path: str | Path, prefix: DocPath = ()) -> Located:
    """Read and parse one policy data file (bounded, UTF-8)."""
    source = str(path)
    text = read_text(path, what="policy data", limit=MAX_DATA_BYTES, error=PolicyYamlError)
    return loads(text, source, prefix)


def _construct(node: Any, path: DocPath, located: Located) -> Any:
    located.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            where = f"{located.source}:{line}: {dotted((*located.prefix, *path))}"
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == "<<" and not key_node.style:
                raise PolicyYamlError(f"{where}: merge keys (<<) are not allowed in policy data")
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                raise PolicyYamlError(f"{where}: key {shown!r} is not a string; quote it")
            key = key_node.value
            if key in result:
                raise PolicyYamlError(
                    f"{located.source}:{line}: {dotted((*located.prefix, *path, key))}: duplicate key "
                    f"(first at line {located.lines[(*path, key)]}); the second would replace the first"
                )
            located.lines[(*path, key)] = line
            result[key] = _construct(value_node, (*path, key), located)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), located) for i, item in enumerate(node.value)]
    make = _SCALARS.get(node.tag)
    where = f"{located.source}:{node.start_mark.line + 1}: {dotted((*located.prefix, *path))}"
    if make is None:
        raise PolicyYamlError(f"{where}: tag {node.tag!r} is not allowed in policy data")
    try:
        value = make(node.value)
    except ValueError:  # Python's bound on an integer's digits
        raise PolicyYamlError(f"{where}: a number with too many digits (over 4,300)") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise PolicyYamlError(f"{where}: {node.value} is not a number JSON (and OPA) can hold")
    return value
