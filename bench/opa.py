"""OPA itself in the benchmark: ``opa bench`` (its evaluator in-process), a real ``opa run --server``
on a free loopback port, and a bare keep-alive HTTP client for that server."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["GO_RUNTIME_VARS", "OpaServer", "RawClient", "go_defaults", "opa_bench_ns", "opa_server"]

QUERY = "data.pyagent.decision"
DATA_PATH = "/v1/data/pyagent/decision"
GO_RUNTIME_VARS = ("GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG")


def go_defaults(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: our environment) without Go's runtime variables: an OPA started with it runs
    Go's defaults, whatever the shell that started the bench had set."""
    return {k: v for k, v in (os.environ if base is None else base).items() if k not in GO_RUNTIME_VARS}


def opa_bench_ns(
    opa: str, input_path: Path, paths: Sequence[Path], *, count: int = 3, timeout_s: float = 300.0
) -> dict[str, Any]:
    """``opa bench`` of the decision: ns per evaluation, the median over ``count`` benchmark runs
    (each is Go's ``testing.Benchmark``: as many evaluations as fit in about a second).

    Metrics and allocation counting are off, so this is OPA's evaluator at its best."""
    command = [opa, "bench", "--format", "json", "--count", str(count), "--metrics=false", "--benchmem=false"]
    command += ["--ignore", "*_test.rego", "-i", str(input_path)]
    for path in paths:
        command += ["-d", str(path)]
    done = subprocess.run(
        [*command, QUERY], capture_output=True, text=True, timeout=timeout_s, check=False, env=go_defaults()
    )
    if done.returncode != 0:
        raise RuntimeError(f"opa bench failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    runs = _json_stream(done.stdout)
    per_op = sorted(run["T"] / run["N"] for run in runs if run.get("N"))
    if not per_op:
        raise RuntimeError(f"opa bench gave no result: {done.stdout[:500]}")
    return {
        "ns_per_op": round(per_op[len(per_op) // 2]),
        "runs_ns_per_op": [round(x) for x in per_op],
        "evaluations": sum(int(run["N"]) for run in runs),
    }


def _json_stream(text: str) -> list[dict[str, Any]]:
    decoder, pos, out = json.JSONDecoder(), 0, []
    text = text.strip()
    while pos < len(text):
        value, end = decoder.raw_decode(text, pos)
        if isinstance(value, dict):
            out.append(value)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


@dataclass(frozen=True)
class OpaServer:
    url: str
    host: str
    port: int
    pid: int


@contextlib.contextmanager
def opa_server(
    opa: str, paths: Sequence[Path], workdir: Path, env: Mapping[str, str] | None = None
) -> Iterator[OpaServer]:
    """``opa run --server`` with ``paths`` loaded on a free loopback port, started and stopped by the
    same helper the tests use; stopped afterwards. ``env``: its whole environment (default: ours
    without Go's runtime variables, :func:`go_defaults`)."""
    from tests.helpers.opa_server import run_opa_server

    args = ["--ignore", "*_test.rego"]
    with run_opa_server(
        opa, workdir, paths=paths, extra_args=args, env=go_defaults() if env is None else env
    ) as server:
        where = urlsplit(server.url)
        yield OpaServer(
            url=server.url,
            host=where.hostname or "127.0.0.1",
            port=where.port or 8181,
            pid=server.process.pid,
        )


class RawClient:
    """The least a client can do: one keep-alive ``http.client`` connection, the input encoded,
    posted, the response read and decoded. Nothing else (no retries, no checks)."""

    def __init__(self, host: str, port: int) -> None:
        self._connection = http.client.HTTPConnection(host, port, timeout=30)
        self._headers = {"Content-Type": "application/json"}

    def decide(self, policy_input: dict[str, Any]) -> Any:
        body = json.dumps({"input": policy_input}, separators=(",", ":")).encode()
        self._connection.request("POST", DATA_PATH, body=body, headers=self._headers)
        response = self._connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"OPA answered HTTP {response.status}: {payload[:200]!r}")
        return json.loads(payload)["result"]

    def close(self) -> None:
        self._connection.close()
