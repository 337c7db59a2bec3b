"""The OPA index section's goals and its part of ``docs/benchmarks.md``, from the figures that
:func:`bench.opa_index.measure` wrote into the results."""

from __future__ import annotations

from typing import Any

from bench import opa_throughput
from bench.opa_throughput_report import throughput_markdown


def _case_of(results: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((c for c in results.get("opa_index", {}).get("cases", []) if c["data"] == label), None)


def index_goals(results: dict[str, Any]) -> list[tuple[str, str, float | None, str, float]]:
    """The goals of the index section, as ``bench.report.goals`` rows."""
    if "opa_index" not in results:
        return []
    shipped, low, high = _case_of(results, "shipped"), _case_of(results, "100"), _case_of(results, "10000")

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    server = shipped["server"]["eval_median_ms"] if shipped else None
    rows: list[tuple[str, str, float | None, str, float]] = [
        ("opa_server_eval_ms", "OPA server eval, 200-app phone, shipped data: median ms", server, "<=", 0.5)
    ]
    if low and high:
        rows.append(
            (
                "opa_server_banned_ids",
                "OPA server eval, 10,000 / 100 banned ids",
                ratio(high["server"]["eval_median_ms"], low["server"]["eval_median_ms"]),
                "<=",
                1.2,
            )
        )
        rows.append(
            (
                "embedded_banned_ids_vs_100",
                "embedded evaluate, 10,000 / 100 banned ids",
                ratio(high["embedded"]["median_ms"], low["embedded"]["median_ms"]),
                "<=",
                1.2,
            )
        )
    if shipped:
        rows.append(
            (
                "embedded_vs_opa_server_eval",
                "embedded evaluate / OPA server eval (shipped data)",
                ratio(shipped["embedded"]["median_ms"], server),
                "<=",
                0.333,
            )
        )
    rows += opa_throughput.throughput_goals(results["opa_index"])
    return rows


def index_markdown(results: dict[str, Any]) -> list[str]:
    """The section of ``docs/benchmarks.md`` for these figures."""
    section = results.get("opa_index")
    if not section:
        return []
    head = [
        "data",
        "banned ids consulted",
        "`opa bench` ms",
        "OPA server `timer_rego_query_eval_ns` median ms",
        "p99 ms",
        "`timer_rego_input_parse_ns` median ms",
        "round trip median ms",
        "samples",
        "each server's median ms",
        "embedded `evaluate()` median ms",
        "same decision",
    ]
    rows = []
    for c in section["cases"]:
        s, e = c["server"], c["embedded"]
        rows.append(
            [
                "shipped" if c["data"] == "shipped" else f"shipped + ban of {c['banned_ids']:,}",
                f"{c['banned_ids']:,}" if c["banned_ids"] else "-",
                f"{c['opa_bench_ns'] / 1e6:.3f}",
                f"{s['eval_median_ms']:.3f}",
                f"{s['eval_p99_ms']:.3f}",
                _ms(s.get("input_parse_median_ms")),
                f"{s['round_trip_median_ms']:.3f}",
                str(s["n"]),
                ", ".join(f"{m:.3f}" for m in s.get("server_medians_ms", [])) or "-",
                f"{e['median_ms']:.3f}",
                "yes" if c["same_decision"] else "**no**",
            ]
        )
    raw = section["raw_folders"]
    rows.append(
        [
            "shipped, raw folders (no index: the policy indexes per decision)",
            "-",
            f"{raw['opa_bench_ns'] / 1e6:.3f}",
            f"{raw['server']['eval_median_ms']:.3f}",
            f"{raw['server']['eval_p99_ms']:.3f}",
            _ms(raw["server"].get("input_parse_median_ms")),
            f"{raw['server']['round_trip_median_ms']:.3f}",
            str(raw["server"]["n"]),
            "-",
            "-",
            "-",
        ]
    )
    lines = [
        "## OPA server with the ban index",
        "",
        "`python -m bench.run --only opa` (also part of `make bench`). The 200-app Android phone "
        "(corporate, European Commission); with N banned identifiers it has one of them installed and a "
        "rule of its organisation uses the ban (a `--data` overlay). Each OPA is `opa run --server` "
        "loading `policies/rego`, `policies/data`, the overlay and the index that "
        "`pyagent/policy/index.py` builds (`data.pyagent_index`, as `pyagent policy bundle` ships it); "
        "the server's eval time is its own `timer_rego_query_eval_ns` from "
        "`POST /v1/data/pyagent/decision?metrics=true`: "
        f"{section.get('server_rounds', 1)} OPA servers started in turn, each measured over one keep-alive "
        f"connection after {section.get('server_warmup', 30)} warm-up requests (a freshly started OPA's "
        "first few hundred evaluations are slower while Go's heap and collector settle: the steady state "
        "is what a serving OPA shows); the median is that of their samples pooled, and each server's own "
        "median is listed (one OPA's median moves by a tenth or more from one start to the next on this "
        "VM). The raw folders are measured on one server. "
        "`opa bench` runs on the same files. The embedded engine decides the same input with the "
        "same overlay (it builds the index when it loads).",
        "",
        *_table(head, rows),
    ]
    server = shipped["server"]["eval_median_ms"] if (shipped := _case_of(results, "shipped")) else None
    return [*lines, *_standing(results, section), *throughput_markdown(section, server)]


def _standing(results: dict[str, Any], section: dict[str, Any]) -> list[str]:
    """What the figures say about the goals, and what stands in the way."""
    shipped = _case_of(results, "shipped")
    raw = section["raw_folders"]["server"]["eval_median_ms"]
    if not shipped:
        return []
    load = " ".join(f"{v:.2f}" for v in section.get("load", [])) or "see the machine table"
    server = shipped["server"]["eval_median_ms"]
    embedded = shipped["embedded"]["median_ms"]
    one_app = shipped["embedded"].get("one_app", {}).get("median_ms")
    input_kb = shipped["embedded"].get("input_bytes", 0) / 1024
    per_call = (
        f"The same call with the device's first app only takes {one_app:.3f} ms: entering the wasm "
        "module, the host call for `time.parse_rfc3339_ns` of `input.at` and the policy's fixed work. The "
        f"other {embedded - one_app:.3f} ms are the 200 apps' {input_kb:.0f} KB of input, most of it the "
        "module parsing the input's JSON (`opa_eval` parses every input) before the policy scans the apps. "
        "The policy's strict check of `input.at` reads the timestamp's shape with string built-ins: with "
        "`regex.match` (up to policy 2023.03.15-5) the module compiled the pattern again on every "
        "evaluation (its regex cache lives on the heap that each evaluation resets), 0.05 ms of each call."
        if one_app is not None
        else ""
    )
    parse = shipped["server"].get("input_parse_median_ms")
    like_for_like = (
        f" The goal sets the whole `evaluate()` (encoding the input, the module parsing it, evaluating, "
        "decoding the result) against OPA's eval timer alone; OPA times its own parse of the same input "
        f"apart (`timer_rego_input_parse_ns`, {parse:.3f} ms: reading the request body, `encoding/json`, "
        f"then Rego values). Like for like, parse and eval, the embedded engine takes "
        f"{embedded / (server + parse):.2f} of OPA's {server + parse:.3f} ms."
        if parse
        else ""
    )
    verdict = "within" if server <= 0.5 else "above"
    return [
        f"Measured at {section.get('generated_at', '?')} (load average at the end: {load}). With the index "
        f"the OPA server's eval time for the 200-app phone is {server:.3f} ms against {raw:.3f} ms on the "
        f"raw folders (the index built per decision), {verdict} the 0.5 ms goal, and it no longer grows "
        "with the banned identifiers. (On this 2-core VM the figure moves by a tenth or more between runs "
        "of the same OPA and policy, for policy 2023.03.15-6 from 0.494 to 0.671 ms in five runs on "
        "2026-12-04 and 05; the goal sits at the low end of that spread.) Policies 2023.03.15-7 and "
        "-8 evaluate fewer rules in every decision: the strict check of `input.at` is one lookup in a "
        "literal set "
        "of its 30 shapes instead of five built-ins and three rules or functions, literal sets stand "
        "for rules of platforms, a rule's scope is worked out only when the device breaks it, and the "
        "decision lists breaches without copying each to drop its kind. `opa bench --benchmem` counts "
        "1,837 instead of 1,948 allocations per decision for this phone (1,053 instead of 1,227 for "
        "the same phone without apps), and four alternating rounds of OPA servers gave a median of "
        "0.482 ms against 0.521 ms for policy 2023.03.15-6. The index turns the work that depends on "
        "the data alone into lookups by ground key: the banned identifiers' keys (one "
        "`graph.reachable` call over the "
        "device's app IDs, or one lookup per app where the key table is large), the data's own times, "
        "and the device's organisation resolved once per bundle (its chain and rules in force, taken only "
        "where the policy finds no data error in them, with the text of their messages; "
        "`pyagent/policy/orgindex.py`). What is left is the device's own work, and OPA's evaluator spends "
        "a few microseconds on every rule, function call and built-in it evaluates (about 150 for this "
        "decision). Measured by replacing each part with a constant in `opa bench` (medians, quiet "
        "machine): collecting the 200 app IDs about 0.04 ms and finding the banned one's position 0.01 ms "
        "(iterating by reference; `some ... in` took 0.025 ms, through a membership built-in per app); the "
        "report checks 0.03 ms; classifying the breach 0.04 ms and describing it 0.04 ms. A well-formed "
        'report of a resolved organisation takes a shortcut to "no errors" (0.03 ms less than the '
        "unions and the sort). The `opa bench` column is a mean per evaluation, Go's collector included; "
        "the server's figure is a median, and each of its requests also parses a 20 KB input, whose "
        "garbage makes the collector run during evaluation.",
        "",
        f"The embedded engine is flat too; its `evaluate()` is {embedded / server:.2f} of the OPA "
        "server's eval time (goal: 1/3, which at this OPA figure means "
        f"{server / 3:.3f} ms). That goal was set when OPA took 6.5 ms; OPA's time is now the policy's "
        f"own work, and the embedded engine cannot go below it by a factor of three. {per_call}"
        f"{like_for_like}",
        "",
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]
