"""The policy's strict RFC 3339 check (``clock.strict``, string built-ins) against the pattern it
stands for (``clock_test.pattern``), on thousands of seeded near-timestamps: OPA's evaluator, the
compiled (wasm) policy, OPA's ``regex.match`` and Python's ``re`` must accept exactly the same."""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path

from pyagent.engines.wasm import WasmPolicy, read_bundle
from tests.helpers.opa_bin import build_wasm

CLOCK = Path(__file__).parents[2] / "policies" / "rego" / "pyagent" / "lib" / "clock"

SHAPES = """package shapes

import data.pyagent.lib.clock

strict := [ts | some ts in input; clock.strict(ts)]
"""

#: What a near-timestamp is made of: its own characters, the separators and zones of others, look-alikes.
ALPHABET = [*"0123456789-:T.Z+tz ,\n", "\u0663", "\uff10", "\u00a0", "\u00e9"]  # Arabic-Indic 3, fullwidth 0


def _near_timestamps(count: int, seed: int = 2023) -> list[str]:
    rng = random.Random(seed)
    fractions = ["", ".5", ".123456789", ".1234567890", "."]
    zones = ["Z", "+01:00", "-05:30", "+23:59", "+24:00", "-00:60", "z", "+0100", ""]
    out: list[str] = []
    for _ in range(count):
        base = (
            f"{rng.randrange(10000):04d}-{rng.randrange(100):02d}-{rng.randrange(100):02d}T"
            f"{rng.randrange(100):02d}:{rng.randrange(100):02d}:{rng.randrange(100):02d}"
            f"{rng.choice(fractions)}{rng.choice(zones)}"
        )
        chars = list(base)
        for _ in range(rng.choice([0, 0, 1, 1, 2])):  # substitute, insert or delete a character
            at = rng.randrange(len(chars) + 1)
            edit = rng.randrange(3)
            if edit == 0 and at < len(chars):
                chars[at] = rng.choice(ALPHABET)
            elif edit == 1:
                chars.insert(at, rng.choice(ALPHABET))
            elif at < len(chars):
                del chars[at]
        out.append("".join(chars))
    return out


def _opa(opa_bin: str, query: str, *paths: Path, stamps: list[str] | None = None) -> object:
    args = [opa_bin, "eval", "--format", "json", *(f"-d={p}" for p in paths)]
    done = subprocess.run(
        [*args, *(["--stdin-input"] if stamps is not None else []), query],
        input=json.dumps(stamps) if stamps is not None else None,
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return json.loads(done.stdout)["result"][0]["expressions"][0]["value"]


def test_strict_accepts_what_the_pattern_does_on_every_engine(opa_bin: str, tmp_path: Path) -> None:
    stamps = _near_timestamps(6000)
    pattern = _opa(opa_bin, "data.pyagent.lib.clock_test.pattern", CLOCK)
    assert isinstance(pattern, str)
    matched = _opa(opa_bin, f"[ts | some ts in input; regex.match({json.dumps(pattern)}, ts)]", stamps=stamps)
    shapes = tmp_path / "shapes.rego"
    shapes.write_text(SHAPES)
    topdown = _opa(opa_bin, "data.shapes.strict", CLOCK / "clock.rego", shapes, stamps=stamps)
    bundle = build_wasm(tmp_path, SHAPES, "shapes/strict", extra_args=[str(CLOCK / "clock.rego")])
    compiled = WasmPolicy(read_bundle(bundle).wasm).evaluate(stamps)
    python = [ts for ts in stamps if re.fullmatch(pattern.strip("^$"), ts)]
    assert topdown == matched
    assert compiled == matched
    assert python == matched
    assert (len(matched), len(stamps) - len(matched)) == (790, 5210)  # both sides of the edge, in bulk
