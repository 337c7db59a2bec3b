"""The embedded engine against OPA itself: the same decisions, to the byte, on generated devices.

OPA's side is one real `opa eval` process deciding every input (topdown, OPA's reference evaluator);
the embedded side is the wasm-compiled policy in-process.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from pyagent.engines.base import EngineSettings
from pyagent.engines.select import build_engine
from tests.engines.differential_inputs import example_inputs, generated_inputs
from tests.helpers.opa_server import POLICY_DIRS

DEVICES = 10_000


def opa_decisions(opa_bin: str, inputs: list[dict[str, Any]], workdir: Path) -> list[Any]:
    batch = workdir / "batch.json"
    batch.write_text(json.dumps({"cases": inputs}))
    query = "[d | some c in input.cases; d := data.pyagent.decision with input as c]"
    done = subprocess.run(
        [
            opa_bin,
            "eval",
            "--format",
            "json",
            "-i",
            str(batch),
            *(f"-d={p}" for p in POLICY_DIRS),
            "--ignore",
            "*_test.rego",
            query,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return list(json.loads(done.stdout)["result"][0]["expressions"][0]["value"])


def test_embedded_equals_opa_on_generated_devices_and_examples(
    opa_bin: str, policy_bundle: Path, tmp_path: Path
) -> None:
    inputs = example_inputs() + generated_inputs(DEVICES)
    expected = opa_decisions(opa_bin, inputs, tmp_path)
    assert len(expected) == len(inputs) >= DEVICES
    with build_engine(EngineSettings(engine="embedded", bundle=str(policy_bundle))) as engine:
        differences = [
            i
            for i, (case, want) in enumerate(zip(inputs, expected, strict=True))
            if engine.evaluate(case) != want
        ]
    assert differences == []
    # The corpus exercises every outcome, so agreement means something.
    assert any(d["violations"] for d in expected)
    assert any(d["warnings"] for d in expected)
    assert any(d["errors"] for d in expected)
    assert any(d["allow"] for d in expected)
