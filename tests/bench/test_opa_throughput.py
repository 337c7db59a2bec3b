"""The throughput section's bookkeeping: which environment each OPA gets, which runs a goal is judged
on, and what the report says. (That the section runs end to end: test_bench_smoke.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.opa_throughput import (
    DEPLOYED,
    GO_DEFAULTS,
    opa_environments,
    rate,
    throughput_goals,
    throughput_markdown,
    unit_environment,
)


def _unit(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "opa.service"
    path.write_text("\n".join(["[Service]", *lines, "ExecStart=/usr/local/bin/opa run --server"]) + "\n")
    return path


def test_every_environment_line_and_word_of_a_unit_is_read(tmp_path: Path) -> None:
    unit = _unit(tmp_path, "Environment=GOGC=400 GOMEMLIMIT=512MiB", "# Environment=GOGC=1", "Environment=A=")
    assert unit_environment(unit) == {"GOGC": "400", "GOMEMLIMIT": "512MiB", "A": ""}


@pytest.mark.parametrize("word", ['"GOGC=400"', "GOGC='400'", "GOGC=4\\00", "GOGC", "=400", "GO-GC=1"])
def test_a_word_the_bench_cannot_read_exactly_is_refused_with_its_line(tmp_path: Path, word: str) -> None:
    unit = _unit(tmp_path, "Environment=GOMAXPROCS=2", f"Environment={word}")
    with pytest.raises(ValueError, match=rf"^{tmp_path}/opa.service:3: cannot read "):
        unit_environment(unit)


def test_the_go_defaults_server_gets_no_go_runtime_variable_and_the_deployed_one_the_units(
    tmp_path: Path,
) -> None:
    unit = _unit(tmp_path, "Environment=GOGC=400")
    base = {"PATH": "/usr/bin", "GOGC": "50", "GOMEMLIMIT": "1GiB", "GODEBUG": "x=1", "GOMAXPROCS": "1"}
    envs = opa_environments(unit, base)
    assert envs == {DEPLOYED: {"PATH": "/usr/bin", "GOGC": "400"}, GO_DEFAULTS: {"PATH": "/usr/bin"}}


def _run(opa: str | None, clients: int, per_s: float, cpu: float = 1.5) -> dict[str, Any]:
    row = {
        "clients": clients,
        "decisions": int(per_s * 8),
        "per_s": per_s,
        "opa_cpu_ms": cpu,
        "client_cpu_ms": 0.3,
    }
    return row if opa is None else {"opa": opa, **row}


SECTION: dict[str, Any] = {
    "throughput_seconds": 8.0,
    "throughput": [
        _run(DEPLOYED, 1, 700.0), _run(DEPLOYED, 8, 1200.0), _run(GO_DEFAULTS, 1, 600.0, 1.9),
        _run(GO_DEFAULTS, 8, 800.0, 2.1), _run(DEPLOYED, 1, 680.0), _run(DEPLOYED, 8, 1180.0),
        _run(GO_DEFAULTS, 1, 580.0, 1.9), _run(GO_DEFAULTS, 8, 820.0, 2.0),
    ],
    "throughput_opa": {
        DEPLOYED: {"env": {"GOGC": "400"}, "peak_rss_kb": 102_400},
        GO_DEFAULTS: {"env": {}, "peak_rss_kb": 66_560},
    },
}  # fmt: skip


def test_rates_are_medians_per_server_and_the_goal_is_judged_on_the_deployed_one() -> None:
    assert (rate(SECTION, 1), rate(SECTION, 8)) == (690.0, 1190.0)
    assert (rate(SECTION, 1, GO_DEFAULTS), rate(SECTION, 8, GO_DEFAULTS)) == (590.0, 810.0)
    assert throughput_goals(SECTION) == [
        ("rest_throughput_8", "REST throughput, 8 clients / 1 client (OPA: GOGC=400)", 1.725, ">=", 1.6)
    ]


def test_runs_recorded_before_two_servers_were_measured_count_as_go_defaults() -> None:
    old = {"throughput": [_run(None, 1, 600.0), _run(None, 8, 900.0)]}
    assert rate(old, 8) is None and rate(old, 8, GO_DEFAULTS) == 900.0
    assert throughput_goals(old) == [
        ("rest_throughput_8", "REST throughput, 8 clients / 1 client (OPA: Go's defaults)", 1.5, ">=", 1.6)
    ]


def test_the_report_lists_every_run_with_its_server_and_states_both_curves() -> None:
    text = "\n".join(throughput_markdown(SECTION, 0.45))
    assert text.count("| GOGC=400 | ") == 4 and text.count("| Go's defaults | ") == 4
    assert "| GOGC=400 | 8 | 9,600 | 1,200.0 | 1.500 | 0.300 |" in text
    assert "with GOGC=400, one client 690 and eight 1,190 decisions/s (ratio 1.73)" in text
    assert "the OPA held at most 100 MB; with Go's defaults, 590 and 810 (ratio 1.37), 2.05 ms, 65 MB" in text
    assert "its eval is 0.450 ms" in text
    assert throughput_markdown({"throughput": []}, None) == []
