"""The root a policy bundle is built from: every policy directory copied into one tree, plus the data
roots each build writes (the ban index, ``data.pyagent_index``, and with a revision
``data.pyagent_build.revision``, what decisions report as ``policy_revision``).

``pyagent policy bundle`` (``pyagent.bundles.build``) and the wheel's own bundle (``make package-bundle``,
run by setup.py where only the standard library and PyYAML are installed) both build from it, so the
bundle a wheel ships is the one ``pyagent policy bundle`` makes. This module, and the pyagent modules
it imports, need no other distribution than PyYAML:

    python -m pyagent.policy.staging OUT_DIR REVISION DIR...   # REVISION may be "" for none
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from pyagent.errors import InvalidInputError
from pyagent.policy import index

#: files a policy directory may hold that a bundle never takes from it: tests, and a built bundle's own
SKIPPED = ("*_test.rego", ".manifest", ".signatures.json")


def stage_root(dirs: Sequence[str | Path], stage: Path, revision: str | None) -> Path:
    """Fill ``stage`` (which must not exist) with ``dirs`` and the build's data roots; return it."""
    _copy_dirs(dirs, stage)
    index.write_root_for_dirs(list(map(str, dirs)), stage)
    if revision:
        build = stage / index.BUILD_ROOT
        build.mkdir()
        (build / "data.json").write_text(json.dumps({"revision": revision}), encoding="utf-8")
    return stage


def _copy_dirs(dirs: Sequence[str | Path], stage: Path) -> None:
    """Copy every policy directory into one bundle root; the same file in two directories is an error."""
    stage.mkdir()
    for directory in dirs:
        root = Path(directory)
        for source in sorted(root.rglob("*")):
            relative = source.relative_to(root)
            if source.is_symlink() or not (source.is_dir() or source.is_file()):
                raise InvalidInputError(f"{source}: not a regular file; bundles hold regular files only")
            if source.is_dir() or any(relative.match(pattern) for pattern in SKIPPED):
                continue
            target = stage / relative
            if target.exists():
                raise InvalidInputError(f"{relative}: present in more than one policy directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3:
        print("usage: python -m pyagent.policy.staging OUT_DIR REVISION DIR...", file=sys.stderr)
        return 2
    out, revision, dirs = Path(argv[0]), argv[1], argv[2:]
    if out.exists():
        print(f"pyagent staging: {out} exists: give a new directory", file=sys.stderr)
        return 2
    try:
        stage_root(dirs, out, revision or None)
    except InvalidInputError as err:
        print(f"pyagent staging: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
