"""Policy directories compiled to wasm bundles for the embedded engine, cached until their files change.

``pyagent check --policy DIR`` decides with a policy directory: either a policy root holding ``rego/``
and ``data/`` (like the repository's ``policies/``) or one directory of Rego and data files. It is
compiled by ``opa build -t wasm`` once, into ``STATE_DIR/cache/policies/DIGEST-SUM.tar.gz``, where the
digest covers every file's path and content (test files aside, which the build ignores; hidden ones and
those behind links to directories included, as ``opa build`` reads them: :mod:`pyagent.policy.tree`)
and the ``opa`` binary used, and SUM is the archive's own SHA-256 (shortened): the next run with the same
files reuses the build, if it is still the one written (a regular file of this user's, writable by no
one else, with that SHA-256; else it is compiled again). Files that change while they are compiled are
compiled again, so that no build is kept under the digest of other files.

A checkout's ``build/bundle.tar.gz`` (``make policy``) is never used once a policy source or directory
changed after it was written (its status-change time: a file restored with an old modification time,
or deleted, counts): the checkout's policy is then compiled into the same cache, with a note saying so.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pyagent.engines.base import ENTRYPOINT, EngineError
from pyagent.errors import InvalidInputError
from pyagent.policy import shipped

#: Builds kept in the cache; the least recently used go first.
CACHE_ENTRIES = 16
_TEST_FILE = re.compile(r"_test\.rego$")


def policy_roots(directory: str | Path) -> list[Path]:
    """What ``opa build`` reads for a policy directory: ``rego/`` and ``data/`` when both exist inside,
    else the directory itself."""
    root = Path(directory)
    if not root.is_dir():
        raise InvalidInputError(f"{directory}: no such policy directory")
    split = [root / "rego", root / "data"]
    return split if all(p.is_dir() for p in split) else [root]


def source_files(roots: Sequence[Path]) -> list[tuple[int, str, Path]]:
    """Every file the build reads: (root index, path relative to its root, path), sorted; test files
    (``*_test.rego``, which the build ignores) aside."""
    from pyagent.policy.tree import policy_files

    found = []
    for index, root in enumerate(roots):
        for path in policy_files(root):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and not _TEST_FILE.search(relative):
                found.append((index, relative, path))
    return sorted(found)


def policy_digest(roots: Sequence[Path], opa: str) -> str:
    """SHA-256 over the build's inputs: every source file's place and content, the opa binary, and
    where the roots are (the compiled policy names its files by their paths, in the locations of its
    errors: the same files in another directory must not be told by the first one's paths)."""
    import hashlib

    digest = hashlib.sha256(b"pyagent-policy-cache-v3\0")
    binary = Path(opa).resolve()
    st = binary.stat()
    digest.update(f"{binary}\0{st.st_size}\0{st.st_mtime_ns}\0{ENTRYPOINT}\0".encode())
    for root in roots:
        digest.update(f"{root.resolve()}\0".encode())
    for index, relative, path in source_files(roots):
        try:
            content = path.read_bytes()
        except OSError as err:
            raise InvalidInputError(f"{path}: cannot read the policy file: {err.strerror}") from err
        digest.update(f"{index}\0{relative}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def cache_dir(state_dir: str | Path | None) -> Path:
    """``STATE_DIR/cache/policies``, created private (the state directory's own checks apply); the
    state directory given, else ``PYAGENT_STATE_DIR`` (as every command takes it), else the agent's."""
    from pyagent.bundles.state import default_state_dir
    from pyagent.config.statedir import private_dir

    state = private_dir(Path(state_dir) if state_dir else default_state_dir())
    cache = private_dir(state / "cache", what="cache directory")
    return private_dir(cache / "policies", what="cache directory")


def compile_policy(directory: str | Path, *, state_dir: str | Path | None = None) -> Path:
    """The wasm bundle of the policy in ``directory``: from the cache when its files did not change,
    else compiled now by ``opa build`` (the one-line reason when it does not compile: exit 2)."""
    from pyagent.policy.opa_tool import find_opa

    roots = policy_roots(directory)
    opa = find_opa()
    cache = cache_dir(state_dir)
    for _attempt in range(BUILD_ATTEMPTS):
        key = policy_digest(roots, opa)
        cached = _cached(cache, key)
        if cached is not None:
            with contextlib.suppress(OSError):
                os.utime(cached)  # most recently used
            return cached
        built = _build(directory, roots, cache)
        try:
            if policy_digest(roots, opa) == key:  # the files built are the files hashed
                target = cache / f"{key}-{_content_sum(built.read_bytes())}.tar.gz"
                os.replace(built, target)
                _prune(cache, keep=target)
                return target
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(built)
    raise InvalidInputError(
        f"{directory}: the policy's files changed while it was compiled, {BUILD_ATTEMPTS} times; "
        "run again once they are written"
    )


#: Builds of a policy whose files kept changing meanwhile, before giving up.
BUILD_ATTEMPTS = 3


def _build(directory: str | Path, roots: Sequence[Path], cache: Path) -> Path:
    """``opa build`` of the policy into a new temporary file in ``cache`` (written and synced)."""
    import tempfile

    from pyagent.policy import datacheck
    from pyagent.policy import index as ban_index
    from pyagent.policy.opa_tool import OpaToolError, run_opa

    handle, name = tempfile.mkstemp(prefix=".build-", suffix=".tar.gz", dir=cache)
    os.close(handle)
    tmp = Path(name)
    try:
        # read once, checked (a data mistake, a kept index or build revision: exit 2 with its line)
        loaded = datacheck.check_dirs([str(root) for root in roots])
        revision = datacheck.revision_of(loaded)
        args = ["build", "-t", "wasm", "-e", ENTRYPOINT, "--ignore", "*_test.rego", "-o", str(tmp)]
        with tempfile.TemporaryDirectory(prefix="pyagent-index-") as indexed:
            index_root = ban_index.write_root(loaded.data, Path(indexed))
            paths = [*map(str, roots), str(index_root)]
            run = run_opa([*args, *(["--revision", revision] if revision else []), *paths])
        if run.returncode != 0:
            raise InvalidInputError(f"{directory}: the policy does not compile: {run.problem()}")
        if tmp.stat().st_size == 0:
            raise OpaToolError(f"opa build wrote no bundle for {directory}")
        if not ban_index.has_policy_data(loaded.data):
            raise InvalidInputError(f"{directory}: {ban_index.NO_POLICY_DATA}")
        with tmp.open("rb+") as written:  # on disk before it is named: a crash leaves no cut entry
            os.fsync(written.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _content_sum(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()[:_SUM_CHARS]


_SUM_CHARS = 32
_MAX_ENTRY_BYTES = 1 << 30


def _cached(cache: Path, key: str) -> Path | None:
    """The build of ``key`` in ``cache`` if one is intact: a regular file (no link) of this user's,
    writable by no one else, whose content has the SHA-256 its name gives. Any other is removed."""
    import stat

    for entry in sorted(cache.glob(f"{key}-*.tar.gz")):
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            fd = -1
        try:
            if fd >= 0:
                st = os.fstat(fd)
                owned = stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022
                if owned and st.st_size <= _MAX_ENTRY_BYTES:
                    with os.fdopen(os.dup(fd), "rb") as opened:
                        content = opened.read()
                    if entry.name == f"{key}-{_content_sum(content)}.tar.gz":
                        return entry
        finally:
            if fd >= 0:
                os.close(fd)
        with contextlib.suppress(OSError):
            entry.unlink()  # damaged, replaced or not ours: compiled again
    return None


def _prune(cache: Path, *, keep: Path) -> None:
    """The least recently used builds beyond CACHE_ENTRIES go (other processes' temporary files, named
    ``.build-*``, stay; so does a build another process removes meanwhile)."""
    builds = []
    for path in cache.glob("*.tar.gz"):
        if not path.name.startswith("."):
            with contextlib.suppress(OSError):
                builds.append((path.stat().st_mtime, path))
    for _, old in sorted(builds, reverse=True)[CACHE_ENTRIES:]:
        if old != keep:
            with contextlib.suppress(OSError):
                old.unlink()


def newer_source(bundle: Path, roots: Sequence[Path]) -> Path | None:
    """A source file or directory changed after ``bundle`` was written (the newest), or None when it is
    current. Changed is by status-change time too, which no one sets back: a file edited then given
    its old modification time (``touch -d``, ``cp -p``, ``rsync -a``), or a file deleted (its
    directory changes), counts."""
    from pyagent.policy.tree import policy_tree

    built = bundle.stat().st_mtime_ns
    newest: tuple[int, Path] | None = None
    places = [
        path
        for root in roots
        for path, is_dir in policy_tree(root)  # (one walk: its directories, and the files the build reads)
        if is_dir or not _TEST_FILE.search(path.relative_to(root).as_posix())
    ]
    for path in places:
        try:
            st = path.stat()
        except OSError:
            continue
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        if changed > built and (newest is None or changed > newest[0]):
            newest = (changed, path)
    return newest[1] if newest else None


def current_bundle(path: Path, *, state_dir: str | Path | None = None) -> Path:
    """``path``, unless it is the checkout's ``build/bundle.tar.gz`` and older than a policy source:
    then the checkout's policy compiled now (cached), with a note; without opa, a one-line error."""
    built = shipped.checkout_bundle()
    root = shipped.checkout()
    if built is None or root is None or not path.is_file() or not _same(path, built):
        return path
    sources = root / "policies"
    changed = newer_source(path, policy_roots(sources))
    if changed is None:
        return path
    shown = changed.relative_to(root)
    from pyagent.policy.opa_tool import OpaNotFoundError, how_to_get_opa

    try:
        fresh = compile_policy(sources, state_dir=state_dir)
    except OpaNotFoundError as err:
        raise EngineError(
            f"{path} is older than {shown}: run `make policy` to rebuild it ({how_to_get_opa()})"
        ) from err
    print(
        f"pyagent: note: build/bundle.tar.gz is older than {shown}; deciding with policies/ compiled now "
        "(`make policy` updates build/)",
        file=sys.stderr,
    )
    return fresh


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False
