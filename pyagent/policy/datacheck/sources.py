"""Policy data as OPA loads it from policy directories, read with pyagent's strict loaders, with the
file and line of every value (:meth:`PolicyData.where`).

A data file's place in the data is its folder below the root it was found under, as OPA places it:
``policies/data/pyagent/bans/data.yaml`` under the root ``policies/data`` is ``data.pyagent.bans``.
YAML goes through :mod:`pyagent.policy.yamlload`, JSON through the strict JSON reader; files merge
like OPA's, and two values at one path (the same value too, as OPA refuses it) are an error naming
both files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyagent.errors import InvalidInputError
from pyagent.policy import yamlload
from pyagent.policy.datacheck.jsonlines import load_json
from pyagent.policy.yamlload import DocPath, Located, dotted
from pyagent.userfile import read_limited

_DATA_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass(frozen=True)
class Placed:
    """One data document and where it sits in the data (``("pyagent", "bans")`` for the bans file)."""

    prefix: DocPath
    doc: Located


@dataclass
class PolicyData:
    """The merged data (the whole ``data`` document) and the documents it was merged from."""

    data: dict[str, Any] = field(default_factory=dict)
    parts: list[Placed] = field(default_factory=list)

    def add(self, placed: Placed) -> None:
        """Merge one document in, as OPA does; a value at a path already set is an error."""
        node = self.data
        for depth, key in enumerate(placed.prefix):
            child = node.setdefault(str(key), {})
            if not isinstance(child, dict):
                self._conflict(placed, placed.prefix[: depth + 1])
            node = child
        if not isinstance(placed.doc.value, dict):
            line = placed.doc.line_of(())
            raise InvalidInputError(f"{placed.doc.source}:{line}: policy data must be a mapping (an object)")
        self._merge(node, placed.doc.value, placed.prefix, placed)
        self.parts.append(placed)

    def _merge(self, target: dict[str, Any], value: dict[str, Any], path: DocPath, placed: Placed) -> None:
        for key, item in value.items():
            if key not in target:
                target[key] = item
            elif isinstance(target[key], dict) and isinstance(item, dict):
                self._merge(target[key], item, (*path, key), placed)
            else:  # (the same value too: `opa build` refuses a value set twice, whatever it is)
                self._conflict(placed, (*path, key))

    def _conflict(self, placed: Placed, path: DocPath) -> None:
        first, line = self.where(path)
        raise InvalidInputError(
            f"{placed.doc.source}:{placed.doc.line_of(path[len(placed.prefix) :])}: {dotted(path)}: "
            f"merge conflict: already set by {first}:{line}"
        )

    def where(self, path: DocPath) -> tuple[str, int]:
        """The file and line that set ``path`` (or its nearest ancestor): the deepest match wins,
        the later document on a tie."""
        best: tuple[int, str, int] = (-1, "policy data", 1)
        for placed in self.parts:
            n = len(placed.prefix)
            if tuple(path[:n]) != placed.prefix[: len(path)]:
                continue
            rest = tuple(path[n:])
            depth = next((d for d in range(len(rest), -1, -1) if rest[:d] in placed.doc.lines), 0)
            score = n + depth if len(path) >= n else len(path)
            if score >= best[0]:
                best = (score, placed.doc.source, placed.doc.line_of(rest))
        return best[1], best[2]


def read_document(path: Path, prefix: DocPath = ()) -> Located:
    """One data file, strictly: YAML by the policy loader, JSON by the JSON reader (lines kept)."""
    if path.suffix == ".json":
        raw = read_limited(path, what="policy data", limit=yamlload.MAX_DATA_BYTES)
        return load_json(raw, str(path), what="policy data", prefix=prefix)
    return yamlload.load(path, prefix)


def load_dirs(dirs: Sequence[str | Path]) -> PolicyData:
    """Every data file under ``dirs`` (found as OPA finds them: :mod:`pyagent.policy.tree`), merged as
    OPA merges them. A data file not named ``data.json``/``data.yaml``/``data.yml`` is refused: a
    bundle would drop it where ``opa run`` on the folder reads it, so the same policy would decide
    differently."""
    from pyagent.policy.tree import policy_files

    loaded = PolicyData()
    seen: dict[Path, Path] = {}  # a data file's place in its directory, and the file there
    for root in map(Path, dirs):
        files = [root] if root.is_file() else policy_files(root)
        for path in files:
            relative = path.relative_to(root) if path != root else Path(path.name)
            if path.suffix in _DATA_SUFFIXES and not path.is_dir():  # a link to a device or pipe too:
                if relative in seen and path != root:  # (a bundle is one tree: `policy bundle` refuses it)
                    raise InvalidInputError(
                        f"{path}: {relative} is also {seen[relative]}: a bundle holds one file at a place; "
                        "merge the two (data belongs under data/)"
                    )
                seen[relative] = path
                # read_document refuses it, where skipping it would leave it to `opa build` to read
                if path != root and path.stem != "data":
                    # (bans.yaml beside bans/ holds bans: its place is that folder's data file)
                    named = path.stem in ("bans", "work_apps", "organizations", "exemptions")
                    fix = path.parent / path.stem / "data.yaml" if named else path.parent / "data.yaml"
                    raise InvalidInputError(
                        f"{path}: a data file must be named data.json, data.yaml or data.yml (a bundle drops"
                        f" any other name, `opa run` on the folder reads it): "
                        + (f"move it to {fix}" if named else f"merge it into {fix}")
                    )
                prefix = tuple(relative.parent.parts)
                loaded.add(Placed(prefix, read_document(path, prefix)))
    return loaded
