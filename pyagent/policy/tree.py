"""The files of a policy directory as OPA's loader finds them: hidden ones too (``.waiver.rego``,
``.team/data.json``: ``opa build`` compiles them), and through links to directories (which OPA
follows). What pyagent reads of a policy (its data, its Rego, the build cache's key) is found here, so
that it is what ``opa build`` reads, never a part of it. A link back to a directory it is in ends
there (OPA would loop); a ``.git`` directory is version control, never policy, and is not read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pyagent.errors import InvalidInputError

__all__ = ["NOT_POLICY", "policy_files", "policy_tree"]

NOT_POLICY = frozenset({".git"})
"""Directory names never read as policy."""


def policy_tree(root: Path) -> list[tuple[Path, bool]]:
    """``root`` and everything under it that OPA's loader reads, each with whether it is a directory,
    sorted by path (``root`` alone when it is a file); a directory that cannot be listed is an
    :class:`InvalidInputError` naming it."""
    if not root.is_dir():
        return [(root, False)]
    return [(root, True), *sorted(_walk(root, frozenset()))]


def policy_files(root: Path, suffix: str = "") -> list[Path]:
    """Every file under ``root`` (``root`` itself when it is a file) ending in ``suffix``, sorted by
    path (:func:`policy_tree`)."""
    return [path for path, is_dir in policy_tree(root) if not is_dir and path.name.endswith(suffix)]


def _walk(directory: Path, ancestors: frozenset[str]) -> Iterator[tuple[Path, bool]]:
    real = os.path.realpath(directory)
    if real in ancestors:
        return  # a link to a directory it is in: OPA would walk it for ever
    try:
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as err:
        raise InvalidInputError(f"{directory}: cannot list the policy directory: {err.strerror}") from err
    for entry in entries:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # (follows a link, as OPA does)
        except OSError:
            is_dir = False
        if not is_dir:
            yield path, False
        elif entry.name not in NOT_POLICY:
            yield path, True
            yield from _walk(path, ancestors | {real})
