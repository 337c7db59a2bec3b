"""The embedded engine against OPA itself: the same decisions, to the byte, on generated devices.

OPA's side is one real `opa eval` process deciding every input (topdown, OPA's reference evaluator);
the embedded side is the wasm-compiled policy in-process.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

from pyagent.engines.base import EngineSettings
from pyagent.engines.select import build_engine
from tests.helpers import domain
from tests.helpers.opa_server import POLICY_DIRS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "reports"
DEVICES = 10_000
SEED = 20230315

OTHER_APPS = [
    "org.mozilla.firefox",
    "com.whatsapp",
    "com.spotify.music",
    "com.google.android.gm",
    "com.apple.mobilesafari",
    "Microsoft.WindowsTerminal_8wekyb3d8bbwe",
    "org.example.notes",
]
TIMES = [
    "2020-06-28T23:59:59Z",
    "2022-12-29T00:00:00Z",
    "2023-03-14T23:59:59.999Z",
    "2023-03-15T00:00:00Z",
    "2023-03-15T01:00:00+01:00",
    "2023-03-16T09:30:00Z",
    "2024-01-01T00:00:00-05:00",
]


def _app_id(rng: random.Random, platform: str) -> str:
    pool = [
        *domain.TIKTOK_FAMILY.get(platform, ()),
        *domain.WORK_APPS.get(platform, ()),
        *domain.NOT_BANNED_BYTEDANCE.get(platform, ()),
        *OTHER_APPS,
    ]
    app = rng.choice(pool)
    variant = rng.random()
    if platform == "windows" and app.startswith("BytedancePte") and variant < 0.5:
        return rng.choice(
            [
                "bytedancepte.ltd.tiktok",
                "BytedancePte.Ltd.TikTok_1.0.0.0_x64__6yccndn6064se",
                "BytedancePte.Ltd.TikTok_wronghash",
                "9NH2GPH4JZS4",
            ]
        )
    if platform == "ios" and variant < 0.2:
        return app.lower()
    if variant < 0.05:
        return app.upper()
    return app


def generated_inputs(count: int) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    orgs = [*domain.ORGS, "eu-senate"]
    inputs = []
    for i in range(count):
        platform = rng.choice(["android", "ios", "windows", "macos", "linux"])
        report = domain.make_report(
            rng.choice(orgs),
            platform,
            rng.choice(["corporate", "personal"]),
            rng.random() < 0.5,
            [_app_id(rng, platform) for _ in range(rng.randint(0, 12))],
            work_profile=rng.choice([None, True, False]),
            device_id=f"gen-{i:05d}",
        )
        if rng.random() < 0.1:
            report["apps"] = [{**app, "name": "TikTok", "evidence": "display_name"} for app in report["apps"]]
        inputs.append({"at": rng.choice(TIMES), "report": report})
    return inputs


def example_inputs() -> list[dict[str, Any]]:
    return [
        {"at": at, "report": json.loads(path.read_text())}
        for path in sorted(EXAMPLES.glob("*.json"))
        for at in TIMES
    ]


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
