"""The real ``opa`` binary for differential tests: found, never skipped.

``opa_binary()`` returns ``$PYAGENT_OPA`` when set, else the pinned build in ``.tools/bin/opa``, else
``opa`` on ``PATH``. Absent everywhere, it raises: these tests compare against the real OPA, and a
suite that silently skips them would prove nothing (``make opa`` builds it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
UNDEFINED: Any = object()
"""What :func:`opa_eval` returns when the query has no result."""


def opa_binary() -> str:
    """Path of the ``opa`` executable; raises ``FileNotFoundError`` when there is none."""
    configured = os.environ.get("PYAGENT_OPA")
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise FileNotFoundError(f"PYAGENT_OPA={configured!r} is not an executable file")
        return configured
    pinned = REPO / ".tools" / "bin" / "opa"
    if pinned.is_file() and os.access(pinned, os.X_OK):
        return str(pinned)
    found = shutil.which("opa")
    if found:
        return found
    raise FileNotFoundError("no opa binary: set PYAGENT_OPA or run `make opa` (builds .tools/bin/opa)")


def build_wasm(
    workdir: Path, rego: str, *entrypoints: str, revision: str = "", extra_args: Sequence[str] = ()
) -> Path:
    """``opa build -t wasm`` of one policy (written to ``workdir/policy.rego``); returns the bundle."""
    policy = workdir / "policy.rego"
    policy.write_text(rego)
    bundle = workdir / "bundle.tar.gz"
    args = [opa_binary(), "build", "-t", "wasm", "-o", str(bundle)]
    for entrypoint in entrypoints:
        args += ["-e", entrypoint]
    if revision:
        args += ["--revision", revision]
    args += extra_args
    subprocess.run([*args, str(policy)], check=True, capture_output=True, text=True)
    return bundle


def opa_eval(
    workdir: Path, query: str, input_doc: Any, data: Any = None, *, strict_builtin_errors: bool = False
) -> Any:
    """``opa eval --format json`` of ``query`` over ``workdir/policy.rego``; :data:`UNDEFINED` when empty.

    Raises ``RuntimeError`` (with OPA's output) when OPA reports an evaluation error.
    """
    input_path = workdir / "input.json"
    input_path.write_text(json.dumps(input_doc))
    policy = str(workdir / "policy.rego")
    args = [opa_binary(), "eval", "--format", "json", "-d", policy, "-i", str(input_path)]
    if data is not None:
        data_path = workdir / "data.json"
        data_path.write_text(json.dumps(data))
        args += ["-d", str(data_path)]
    if strict_builtin_errors:
        args.append("--strict-builtin-errors")
    proc = subprocess.run([*args, query], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"opa eval failed: {proc.stdout}{proc.stderr}")
    results = json.loads(proc.stdout).get("result", [])
    if not results:
        return UNDEFINED
    (only,) = results
    return only["expressions"][0]["value"]
