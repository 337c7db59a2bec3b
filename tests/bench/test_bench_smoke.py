"""`make bench` runs end to end: every step at toy sizes, both output files written. No timing is
checked here (the numbers of a smoke run mean nothing); docs/benchmarks.md has the real ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import run

GOALS = {
    "embedded_vs_opa_bench",
    "rest_agent_vs_embedded",
    "rest_agent_vs_raw",
    "validate_vs_embedded",
    "cold_check_vs_opa_eval",
    "banned_ids",
    "apps_scaling_exponent",
    "fleet_memory_flat",
}


@pytest.mark.timeout(300)  # a hang guard: the smoke run takes 50-80 s on a loaded two-core machine
def test_the_bench_runs_and_writes_its_results(
    opa_bin: str, policy_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYAGENT_OPA", opa_bin)
    monkeypatch.setenv("PYAGENT_BUNDLE", str(policy_bundle))
    out_json, out_md = tmp_path / "results.json", tmp_path / "benchmarks.md"
    assert run.main(["--smoke", "--json", str(out_json), "--markdown", str(out_md)]) == 0
    results = json.loads(out_json.read_text())
    assert results["mode"] == "smoke"
    assert isinstance(results["opa_bench_ns"], int) and results["opa_bench_ns"] > 0
    for key in ("rest_raw_ms", "rest_agent_ms", "embedded_ms", "validate_ms"):
        timing = results[key]  # a distribution of positive times, ordered
        assert timing["n"] >= 1, key
        assert 0 < timing["min_ms"] <= timing["median_ms"] <= timing["p99_ms"], key
    assert results["cold_check_ms"]["n"] >= 1 and results["cold_opa_eval_ms"]["n"] >= 1
    assert results["cold"]["libraries_floor"]["n"] == results["cold_check_ms"]["n"]
    assert results["embedded_matches_opa"] and results["rest_agent_matches_raw"]
    assert [r["apps"] for r in results["scale"]["apps"]] == list(run.SMOKE.scale_apps)
    assert [r["banned_ids"] for r in results["scale"]["banned_ids"]] == list(run.SMOKE.scale_banned)
    assert all(r["bench_ban_violations"] == 1 for r in results["scale"]["banned_ids"])
    engines = {(r["engine"], r["devices"]) for r in results["fleet"]["runs"]}
    assert engines == {(e, n) for e in ("embedded", "opa") for n in run.SMOKE.fleet_sizes}
    assert all(r["peak_tree_rss_mb"] > 0 for r in results["fleet"]["runs"])
    plan = run.SMOKE.index
    for case in results["opa_index"]["cases"]:  # one median per OPA server, their samples pooled
        assert len(case["server"]["server_medians_ms"]) == plan.server_rounds, case["data"]
        assert case["server"]["n"] == plan.server_samples * plan.server_rounds, case["data"]
    ratios = {g["id"]: g for g in results["ratios"]}
    assert set(ratios) >= GOALS
    assert all(isinstance(g["pass"], bool) and g["value"] is not None for g in ratios.values())
    text = out_md.read_text()
    assert '| `python -c "import click, jsonschema_rs, wasmtime"` (its libraries alone) |' in text
    assert (
        text.startswith("# Benchmarks")
        and "## Goals" in text
        and f"| {results['machine']['cores']} |" in text
    )


def test_the_wasm_parts_probe_runs(policy_bundle: Path) -> None:
    """`python -m bench.wasm_parts` (issue 15's breakdown of the embedded engine's time), at a toy size."""
    from bench import wasm_parts

    parts = wasm_parts.measure(policy_bundle, runs=5)
    assert sorted(parts) == ["evaluate_us", "input_bytes", "input_parse_us", "opa_eval_us"]
    assert parts["input_bytes"] == 18986.0  # the 200-app phone's policy input, as the engine sends it
