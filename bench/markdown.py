"""``docs/benchmarks.md`` from one run's results: tables, then the notes of ``bench/notes.py``."""

from __future__ import annotations

from typing import Any

from bench.fleet_views import views_markdown
from bench.ingest_report import ingest_markdown
from bench.measure import remeasured
from bench.notes import notes
from bench.opa_index_report import index_markdown

__all__ = ["markdown"]


def _ms(stats: object, key: str = "median_ms") -> str:
    value = stats.get(key) if isinstance(stats, dict) else None
    return "-" if value is None else f"{value:.3f}"


def _row(label: str, stats: dict[str, Any]) -> list[str]:
    return [label, _ms(stats), _ms(stats, "p99_ms"), str(stats.get("n", "-"))]


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


def _load(values: object) -> str:
    return " ".join(f"{v:.2f}" for v in values) if isinstance(values, list) else "?"


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    head = ["cores", "CPU", "OS", "Python", "OPA", "wasmtime", "opa-python-client", "load avg, start -> end"]
    load = f"{_load(results.get('load_start'))} -> {_load(results.get('load_end'))}"
    row = [str(m["cores"]), m["cpu"], m["os"], m["python"], f"{m['opa']} ({m['opa_go']})", m["wasmtime"]]
    note = (
        "`opa-python-client` is the installed version of a dependency the design names; pyagent's `opa`"
        " engine does not use it (it runs on `pyagent/bounded_http/`, README: Dependencies)."
    )
    return ["## Machine", "", *_table(head, [[*row, m["opa_python_client"], load]]), note, ""]


def _single(results: dict[str, Any]) -> list[str]:
    opa_ns = results["opa_bench_ns"]
    evaluations = str(results["opa_bench"]["evaluations"])
    validate = results["validate_ms"]
    rows = [
        [
            "`opa bench`: OPA's evaluator in-process, no HTTP (`opa_bench_ns`)",
            f"{opa_ns / 1e6:.3f}",
            "-",
            evaluations,
        ],
        _row("OPA server, bare keep-alive `http.client` (`rest_raw_ms`)", results["rest_raw_ms"]),
        _row(
            "OPA server through pyagent's `opa` engine, `decide()` (`rest_agent_ms`)",
            results["rest_agent_ms"],
        ),
        _row("... of which `OpaServerEngine.evaluate()`", results["rest_agent_ms"]["evaluate"]),
        _row("embedded engine, warm, `decide()` (`embedded_ms`)", results["embedded_ms"]),
        _row("... of which `EmbeddedEngine.evaluate()`", results["embedded_ms"]["evaluate"]),
        _row("schema validation, as the agent calls it (`validate_ms`)", validate),
        _row("schema validation, default arguments (per-string NUL checks)", validate["default_args"]),
        _row("`parse_report`: JSON bytes to a validated report", validate["parse_report"]),
    ]
    device = results["device"]
    agree = results.get("embedded_matches_opa") and results.get("rest_agent_matches_raw")
    return [
        "## One decision",
        "",
        f"A {device['apps']}-app Android phone, corporate, of the European Commission, with TikTok installed "
        "(one violation), decided at 2023-03-16T09:30:00Z. Warm: after warm-up calls; the REST client and "
        "the `opa` engine are measured in alternating blocks against the same server.",
        "",
        *_table(["what", "median ms", "p99 ms", "samples"], rows),
        f"Same decision from OPA and the embedded engine: {'yes' if agree else '**NO**'}.",
        "",
    ]


def _cold(results: dict[str, Any]) -> list[str]:
    cold = results["cold"]
    rows = [
        _row(f"`{cold['check_command']}`", cold["check"]),
        _row(f"`{cold['opa_eval_command']}`", cold["opa_eval"]),
        _row("the same `pyagent check`, compiled-module cache off", cold["check_without_module_cache"]),
        _row("`pyagent --help`", results["help_ms"]),
        _row("`python -c pass` (the interpreter alone)", cold["python_startup"]),
        *(
            [_row(f"`{cold['libraries_floor_command']}` (its libraries alone)", cold["libraries_floor"])]
            if "libraries_floor" in cold
            else []
        ),
    ]
    imports = cold["check_imports"]
    by_package = [[f"`{name}`", f"{ms:.1f}"] for name, ms in imports["by_package_ms"].items()]
    phases = cold.get("check_phases_ms", {})
    phase_rows = [[name, f"{ms:.1f}"] for name, ms in phases.items() if isinstance(ms, int | float)]
    return [
        "## Cold start (whole processes, alternating, after one untimed run of each)",
        "",
        "Python bytecode compiled, as in an installed package (the untimed run writes it to a private "
        "`PYTHONPYCACHEPREFIX`, also where the environment sets `PYTHONDONTWRITEBYTECODE`). "
        + remeasured(cold, "opa"),
        "",
        *_table(["command", "median ms", "p99 ms", "runs"], rows),
        "What a cold check spends once the interpreter runs (a script making the same calls, median of 3; "
        "imports done inside a phase count in that phase):",
        "",
        *_table(["phase", "ms"], phase_rows),
        f"Where the imports of that `pyagent check` go (`python -X importtime`, self time by package; "
        f"{imports['total_ms']:.0f} ms in all):",
        "",
        *_table(["package", "ms"], by_package),
    ]


def _scale(results: dict[str, Any]) -> list[str]:
    scale = results["scale"]
    apps = [[f"{r['apps']:,}", _ms(r), _ms(r, "p99_ms"), str(r["us_per_app"])] for r in scale["apps"]]
    opa = scale.get("banned_ids_opa_bench_ns", {})
    banned = [
        [
            f"{r['banned_ids']:,}",
            _ms(r),
            _ms(r, "p99_ms"),
            f"{opa[str(r['banned_ids'])] / 1e6:.3f}" if str(r["banned_ids"]) in opa else "-",
        ]
        for r in scale["banned_ids"]
    ]
    return [
        "## Scale (embedded engine, warm `decide()`)",
        "",
        *_table(["apps on the device", "median ms", "p99 ms", "us per app"], apps),
        "The 200-app device again, when a rule of its organisation uses a ban of N Android identifiers "
        "(a `--data` overlay; one of them is installed). `opa bench` is OPA's evaluator on the same data.",
        "",
        *_table(["banned identifiers", "median ms", "p99 ms", "`opa bench` ms"], banned),
    ]


def _fleet(results: dict[str, Any]) -> list[str]:
    fleet = results["fleet"]
    head = [
        "engine",
        "jobs",
        "devices",
        "wall s",
        "devices/s",
        "peak RSS of the process tree, MB",
        "largest process, MB",
    ]
    rows = [
        [
            r["engine"],
            str(r["jobs"]),
            f"{r['devices']:,}" + (" (capped)" if r.get("capped") else ""),
            f"{r['wall_s']:.2f}",
            f"{r['devices_per_s']:,}",
            f"{r['peak_tree_rss_mb']:.1f}",
            f"{r['peak_process_rss_mb']:.1f}",
        ]
        for r in fleet["runs"]
    ]
    cap = fleet.get("opa_cap_s")
    capped = (
        f" On the `opa` engine the largest fleet is streamed to `pyagent fleet -` for {cap:g} s and then the "
        "stream is closed: the devices fed by then are decided and counted (the run would take many minutes)."
        if cap
        else ""
    )
    return [
        "## Fleet",
        "",
        "`pyagent fleet FILE --at ... --format json -o /dev/null --engine E` as a subprocess, on devices "
        "from `pyagent fleet generate --seed 7` (40 apps each); jobs `default` is one worker per core. "
        "Wall time includes start-up. Peak RSS of the process tree: the largest sum of the resident memory "
        "of the process and all its descendants, sampled every 50 ms (shared pages count once per process, "
        f"so this is an upper bound).{capped}",
        "",
        *_table(head, rows),
    ]


def _goals(results: dict[str, Any]) -> list[str]:
    rows = [
        [
            g["goal"],
            "-" if g["value"] is None else f"{g['value']:,}",
            f"{g['op']} {g['target']}",
            "pass" if g["pass"] else "**FAIL**",
        ]
        for g in results["ratios"]
    ]
    return ["## Goals (ratios from this run)", "", *_table(["goal", "value", "target", "result"], rows)]


def markdown(results: dict[str, Any]) -> str:
    out = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python -m bench.run`, mode `{results['mode']}`) at "
        f"{results['generated_at']}, in {results.get('total_seconds', '?')} s: one run, the same policy and "
        "the same inputs for every engine. Do not edit: the text comes from `bench/markdown.py` and "
        "`bench/notes.py`, the raw numbers are in `bench/results.json`.",
        "",
        *_machine(results),
        *_goals(results),
        *_single(results),
        *_cold(results),
        *_scale(results),
        *index_markdown(results),
        *_fleet(results),
        *ingest_markdown(results),
        *views_markdown(results),
        *notes(results),
    ]
    return "\n".join(out).rstrip() + "\n"
