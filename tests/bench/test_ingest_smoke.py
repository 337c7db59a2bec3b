"""The server benchmark (`python -m bench.ingest`) runs end to end at toy sizes, on SQLite and on a real
PostgreSQL: every event stored exactly once, memory sampled at both marks, long polls woken, storage
measured, goals reported. No timing is checked (the numbers of a smoke run mean nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import ingest
from bench.ingest_report import ingest_goals, ingest_markdown
from tests.helpers.services import require_binary


@pytest.mark.timeout(240)  # a hang guard, with room for a loaded machine
def test_the_server_bench_runs_on_both_databases(
    policy_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("initdb")
    monkeypatch.setenv("PYAGENT_BUNDLE", str(policy_bundle))
    out = tmp_path / "ingest.json"
    assert ingest.main(["--smoke", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    section = results["server_ingest"]
    plan = ingest.SMOKE
    assert section["corpus"]["events"] == plan.fleet.events
    assert section["corpus"]["changed_share_after_first_run"] == pytest.approx(1 / plan.fleet.change_every)
    for kind in ("sqlite", "postgresql"):
        run = section[kind]
        assert run["stored_equals_sent"] and run["stored"]["decisions"] == plan.fleet.events
        assert run["stored"]["devices"] == plan.fleet.devices
        upload = run["upload"]
        assert upload["events_acknowledged"] == upload["stored"] == plan.fleet.events
        assert upload["duplicates"] == 0 and not upload["errors"]
        assert set(upload["rss_kb"]) == {str(m) for m in plan.rss_marks} and upload["rss_ratio"] > 0
        assert run["longpoll"]["after_commit"]["n"] == plan.longpoll_runs
        assert all(held > 0.4 for held in run["longpoll"]["held_s"])  # held until the publish
        assert run["storage"]["bytes_per_event"] > 0 and run["storage"]["report_bytes"] > 0
        assert run["steps"]["total_us_per_event"] > 0
    goals = ingest_goals(results)
    assert {g[0] for g in goals} == {
        f"server_{what}_{kind}"
        for what in ("ingest", "rss_flat", "longpoll")
        for kind in ("sqlite", "postgresql")
    }
    assert all(value is not None for _, _, value, _, _ in goals)
    text = "\n".join(ingest_markdown(results))
    assert "## Server: decision-log ingest" in text and "| PostgreSQL |" in text and "| SQLite |" in text
