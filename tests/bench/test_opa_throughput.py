"""The throughput section: which environment each OPA gets (and that OPA's Go runtime runs with it),
a failing client, which runs a goal is judged on, and what the report says. (That the section runs
end to end: test_bench_smoke.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.opa import opa_server
from bench.opa_throughput import (
    DEPLOYED,
    GO_DEFAULTS,
    OPA_UNIT,
    _clients,
    go_metrics,
    opa_environments,
    rate,
    throughput_goals,
    unit_environment,
)
from bench.opa_throughput_report import throughput_markdown
from tests.helpers.opa_server import POLICY_DIRS


def _unit(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "opa.service"
    path.write_text("\n".join(["[Service]", *lines, "ExecStart=/usr/local/bin/opa run --server"]) + "\n")
    return path


def test_every_environment_line_and_word_of_the_service_section_is_read(tmp_path: Path) -> None:
    unit = _unit(
        tmp_path, "Environment=GOGC=400 GOMEMLIMIT=512MiB", "# Environment=GOGC=1", "Environment = A=",
        "[Install]", "Environment=GOGC=1",
    )  # fmt: skip
    assert unit_environment(unit) == {"GOGC": "400", "GOMEMLIMIT": "512MiB", "A": ""}


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('Environment="GOGC=400"', "cannot read"), ("Environment=GOGC='400'", "cannot read"),
        ("Environment=GOGC=4\\00", "cannot read"), ("Environment=GOGC=%i", "cannot read"),
        ("Environment=GOGC", "cannot read"), ("Environment==400", "cannot read"),
        ("Environment=GO-GC=1", "cannot read"), ("Environment=", "an empty Environment= resets the list"),
        ("EnvironmentFile=/etc/default/opa", "EnvironmentFile= is not read by the bench"),
    ],
)  # fmt: skip
def test_what_the_bench_cannot_read_exactly_is_refused_with_its_line(
    tmp_path: Path, line: str, why: str
) -> None:
    unit = _unit(tmp_path, "Environment=GOMAXPROCS=2", line)
    with pytest.raises(ValueError, match=rf"^{tmp_path}/opa.service:3: {why}"):
        unit_environment(unit)


def test_the_go_defaults_server_gets_no_go_runtime_variable_and_the_deployed_one_the_units(
    tmp_path: Path,
) -> None:
    unit = _unit(tmp_path, "Environment=GOGC=400")
    base = {"PATH": "/usr/bin", "GOGC": "50", "GOMEMLIMIT": "1GiB", "GODEBUG": "x=1", "GOMAXPROCS": "1"}
    envs = opa_environments(unit, base)
    assert envs == {DEPLOYED: {"PATH": "/usr/bin", "GOGC": "400"}, GO_DEFAULTS: {"PATH": "/usr/bin"}}


@pytest.mark.parametrize(("server", "gogc"), [(DEPLOYED, 400.0), (GO_DEFAULTS, 100.0)])
def test_each_opa_runs_with_its_collector_setting_whatever_the_shell_had(
    opa_bin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str, gogc: float
) -> None:
    monkeypatch.setenv("GOGC", "25")
    assert unit_environment(OPA_UNIT)["GOGC"] == "400"
    with opa_server(opa_bin, POLICY_DIRS, tmp_path, opa_environments()[server]) as opa:
        assert go_metrics(opa.host, opa.port)["gogc"] == gogc  # as OPA's Go runtime reports it


def test_a_client_that_fails_fails_the_run_instead_of_counting_zero(opa_bin: str, tmp_path: Path) -> None:
    failed = r"(?s)^a throughput client failed \(exit 1\): .*FileNotFoundError.*missing\.json'$"
    with opa_server(opa_bin, POLICY_DIRS, tmp_path) as opa, pytest.raises(RuntimeError, match=failed):
        _clients(opa, tmp_path / "missing.json", 2, 0.2)


def _run(opa: str | None, clients: int, per_s: float, cpu: float = 1.5) -> dict[str, Any]:
    row = {
        "clients": clients,
        "decisions": int(per_s * 8),
        "per_s": per_s,
        "opa_cpu_ms": cpu,
        "client_cpu_ms": 0.3,
    }
    return row if opa is None else {"opa": opa, **row}


GC = {"gc_cpu_ms": 0.2, "gc_per_1000": 2.0}
SECTION: dict[str, Any] = {
    "throughput_seconds": 8.0,
    "throughput": [
        _run(DEPLOYED, 1, 700.0) | GC, _run(DEPLOYED, 8, 1200.0) | GC, _run(GO_DEFAULTS, 1, 600.0, 1.9),
        _run(GO_DEFAULTS, 8, 800.0, 2.1), _run(DEPLOYED, 1, 680.0) | GC, _run(DEPLOYED, 8, 1180.0) | GC,
        _run(GO_DEFAULTS, 1, 580.0, 1.9), _run(GO_DEFAULTS, 8, 820.0, 2.0),
    ],
    "throughput_opa": {
        DEPLOYED: {"env": {"GOGC": "400"}, "peak_rss_kb": 102_400},
        GO_DEFAULTS: {"env": {}, "peak_rss_kb": None},
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
    assert "| GOGC=400 | 8 | 9,600 | 1,200.0 | 1.500 | 0.200 | 2.0 | 0.300 |" in text
    assert "| Go's defaults | 1 | 4,640 | 580.0 | 1.900 | - | - | 0.300 |" in text
    assert "N client processes (1, 8), each" in text and "Two OPA servers run side by side" in text
    assert (
        "With GOGC=400: one client 690 and eight 1,190 decisions/s (ratio 1.73); at eight clients OPA used "
        "1.50 ms of CPU per decision, of which the collector 0.20 ms in 2.0 collections per 1,000 decisions; "
        "it held at most 100 MB. With Go's defaults: one client 590 and eight 810 decisions/s (ratio 1.37); "
        "at eight clients OPA used 2.05 ms of CPU per decision; it held at most ?. Of OPA's CPU per "
        "decision, its eval is 0.450 ms;"
    ) in text
    assert throughput_markdown({"throughput": []}, None) == []
    old = "\n".join(throughput_markdown({"throughput": [_run(None, 1, 600.0), _run(None, 8, 900.0)]}, None))
    assert (
        "One OPA server (Go's defaults)." in old
        and "| Go's defaults | 8 | 7,200 | 900.0 | 1.500 | - |" in old
    )
