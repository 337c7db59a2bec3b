"""The prose of ``docs/benchmarks.md``: how the numbers are taken, what was done to make pyagent fast,
and what stands in the way of the goals that do not hold. Numbers in ``{}`` come from the run; the
before/after figures of "What was changed" were measured once, when the changes were made."""

from __future__ import annotations

from typing import Any

from bench.ingest_notes import ingest_notes

__all__ = ["notes"]


def _goal(results: dict[str, Any], ident: str) -> dict[str, Any]:
    for goal in results.get("ratios", []):
        if goal["id"] == ident:
            return dict(goal)
    return {"value": None, "pass": False, "target": "?", "op": "?"}


def _verdict(goal: dict[str, Any]) -> str:
    value = "n/a" if goal["value"] is None else f"{goal['value']:,}"
    return f"{value}, target {goal['op']} {goal['target']}: {'holds' if goal['pass'] else 'does not hold'}"


def _ms(value: object) -> str:
    return f"{value:.2f} ms" if isinstance(value, int | float) else "n/a"


def _scale_ms(results: dict[str, Any], kind: str, key: str, size: int) -> object:
    for row in results.get("scale", {}).get(kind, []):
        if row[key] == size:
            return row.get("median_ms")
    return None


HOW = """\
## How the numbers are taken

- `opa_bench_ns` is `opa bench --metrics=false --benchmem=false` of `data.pyagent.decision` over
  `policies/rego` and `policies/data` (tests ignored), the median of three runs: OPA's own evaluator
  with the query prepared once and the input parsed once. No HTTP, no JSON: the floor for any OPA server.
- `rest_raw_ms` is the least a client of `opa run --server` must do: encode the input, post it on a
  keep-alive `http.client` connection, read and decode the answer. `rest_agent_ms` is the same decision
  through pyagent (`decide()` on the `opa` engine: `pyagent/bounded_http/` on `http.client`, a
  connection kept open between decisions, a total deadline and a size limit), in alternating blocks
  against the same server.
- `embedded_ms` is `decide()` on the embedded engine: the policy compiled by `opa build -t wasm`, run by
  wasmtime in this process, after warm-up. Every engine gives the same decision (checked in the run).
- Cold start: whole processes, each command run once untimed first (which also fills the
  compiled-module cache), then alternately.
- The machine is shared with other work (see the load averages): every figure is a median, the fleet
  at 10,000 devices is run three times (each run is listed), and the goals use the medians.
"""

CHANGED = """\
## What was changed to make it fast

Measured before and after on this machine, alternating, when the changes were made:

- **Calls into wasm without wasmtime-py's per-call cost** (`pyagent/engines/wasm/fastcall.py`).
  `wasmtime.Func.__call__` asks for the function's type, wraps every argument in a `Val`, compares
  value types and unroots every value on each call: 10-16 us per call, more for `opa_eval`'s seven
  arguments. OPA's ABI is i32 only, so the type is checked once and `wasmtime_func_call_unchecked` is
  called directly with a reused argument buffer: about 1 us per call. Host built-ins that call back
  into wasm get a fresh buffer (re-entrancy); traps, errors and Python exceptions raised in host
  functions surface as before. Together with one reused `json.JSONEncoder`: `evaluate()` 443 -> 357 us
  for a 40-app fleet device, 938 -> 825 us for the 200-app device.
- **A compiled-module cache** (`pyagent/engines/wasm/modcache.py`): `Module.serialize()` output, keyed
  by the BLAKE2b-256 of the wasm and the identity of the wasmtime library, in `$XDG_CACHE_HOME/pyagent/wasm`
  (`PYAGENT_CACHE_DIR` moves it, `PYAGENT_WASM_CACHE=0` turns it off). Deserialising runs machine code,
  so the directory must be a real directory owned by the user with mode 0700 (checked on the open
  handle), entries are opened with `O_NOFOLLOW` and must be private regular files, each carries the
  length and CRC-32 of its bytes (a corrupted or truncated entry is recompiled and rewritten), wasmtime checks
  its own header (version, target, configuration), writes are atomic renames and at most 16 entries are
  kept. Building the engine: 167 -> 5 ms (on a busy moment the compile takes 0.3-0.6 s); a cold
  `pyagent check`: about 530 -> 300 ms (the table above has it with the cache off).
- **Fleet start-up** (`pyagent/fleet/runner.py`): the engines are built once in the parent (which
  also fails fast on bad settings) and reused when the run stays in-process (`--jobs 1`, or a single
  batch of at most 500 devices: a pool would cost more than it saves); pool workers come from a
  forkserver that has already imported the worker code and the main module, and they load the
  compiled policy from the cache instead of compiling it. With the faster calls, 10,000 devices:
  `--jobs 1` 4.95 -> 3.64 s, `--jobs 2` 3.21 -> 2.28 s (2,020 -> 2,750 and 3,110 -> 4,380 devices/s, on
  the quietest round). What travels between processes was measured and left as it is: pickling a batch
  of items and unpickling its results costs 2-3 us per device, against about 350 us of decision; the
  parent's summary and JSON writing about 5 us per device. In those A/B rounds two workers beat one
  process even before the change; they came out slower only in rounds where other work kept a core busy
  (then three busy processes share two cores, and the pool's start-up is paid on top).
- **Cold `pyagent check`** (issue 15), on the bench's inputs (the 200-app phone, a bundle from `pyagent
  policy bundle`), whole processes alternating 80 times on a busy machine: 146.6 -> 107.3 ms median
  (min 130.1 -> 96.6), against 77.1 ms (min 63.9) for `opa eval` and 89.7 ms (min 78.3) for the
  interpreter with click, jsonschema-rs and wasmtime imported and nothing else. (1) The cycle
  collector, about 20 ms of passes over what the imports and the engine build, none of it garbage:
  `pyagent check` runs without it (the console entry turns it off; any other command turns it back on
  when it is loaded), what exists when it ends is frozen so that the interpreter's exit does not walk
  it, and importing the command line runs without it and freezes what it made. (2) The members of an
  activated bundle archive are cached beside the compiled modules (`bundlecache.py`, same rules), keyed
  by the archive's bytes, its limits, the Python and the code that reads it and checks its ban index,
  and stored only once the archive has passed every check and been activated: a cached archive needs
  no `tarfile`, no inflating and no second index check (about 9 ms). (3) The caches' keys are CPython's
  own BLAKE2b, not `hashlib`'s SHA-256, whose OpenSSL costs 2.5-3 ms to load; an entry's damage check
  is its length and CRC-32. (4) `logging` (2.5 ms) is loaded by a check only when something logs: the
  modules a check may log from give the `pyagent` logger its `NullHandler` themselves
  (`pyagent/logsetup.py`). (5) A cached module is mapped and handed to wasmtime in place (3.5 -> 2.1
  ms). (6) Smaller: no deep copy of the bundle's data without `--data`, a pattern compiled on first
  use, two private dataclasses without generated `__eq__`/`__repr__`.
- **The input written by orjson** (`pyagent/engines/encode.py`): the standard encoder took
  0.14 ms for the 200-app input, more than a third of `evaluate()`, and grew faster than the apps;
  orjson takes about 0.02 ms. Its output is used where it is byte for byte the standard encoder's
  (anything it would write differently, NaN included, goes to the standard encoder as before):
  `evaluate()` 0.44 -> 0.28 ms for the 200-app phone.
- **Organisations resolved in the ban index** (issue 15; `pyagent/policy/orgindex.py`): the chain and
  the rules in force of every organisation in which the policy would find no error, so that a decision
  reads them by ground key and skips resolving the chain and checking the rules for data errors.
  `opa bench` of the 200-app phone, median: 0.53 -> 0.46 ms; allocations per decision 2,224 -> 1,887.
  Then the report checks (`policies/rego/pyagent/lib/report`, a security fix: a crafted app name made
  OPA allow a banned app) added about 0.025 ms back.
- **Host built-ins memoised** (`pyagent/engines/wasm/hostcalls.py`): the shipped policy calls one
  built-in the wasm module lacks, `time.parse_rfc3339_ns(input.at)`, through a host call that decoded
  its operand and parsed the instant in Python on every decision. The shipped host built-ins are pure,
  so their results are kept by operand text (256 entries, no errors, not a caller's own built-ins):
  a fleet decides every device at one instant. A/B in one process, alternating (a slower machine
  than this run's; median of 15 blocks of 100): `evaluate()` of the 200-app phone 0.890 -> 0.814 ms,
  of a 10-app phone 0.513 -> 0.466 ms. The module's calls to the host now enter Python through a
  ctypes callback that reads wasmtime's raw argument buffer (`fastcall.RawImport`) instead of
  wasmtime-py's trampoline, which built a `Caller` and a `Val` per argument: 39.6 -> 3.6 us a call on
  that machine (a loop of 20,000 calls), and the 200-app `evaluate()` 0.814 -> 0.720 ms.
- Ruled out: other Cranelift optimisation levels (no gain), and sending the raw report bytes to the
  policy instead of re-encoding the parsed report (5 % at most, and a different JSON reading than
  the one the schema checked). In the policy (`opa bench` A/B, no gain beyond noise): locating the
  banned app by a string search over the joined IDs instead of a scan, one sort of all breaches for
  the three lists, folding the kind into the kind's fields, a fast path for no errors.
"""


def _banned(results: dict[str, Any]) -> str:
    goal = _goal(results, "banned_ids")
    opa = results.get("scale", {}).get("banned_ids_opa_bench_ns", {})
    sizes = [int(row["banned_ids"]) for row in results.get("scale", {}).get("banned_ids", [])] or [10, 10_000]
    low, high = min(sizes), max(sizes)
    opa_text = (
        f"OPA's own evaluator pays for it too (`opa bench`: {_ms(opa[str(low)] / 1e6)} with {low:,} "
        f"identifiers, {_ms(opa[str(high)] / 1e6)} with {high:,})"
        if str(low) in opa and str(high) in opa
        else "OPA's own evaluator pays for it too"
    )
    embedded_low = _scale_ms(results, "banned_ids", "banned_ids", low)
    embedded_high = _scale_ms(results, "banned_ids", "banned_ids", high)
    return f"""\
### {high:,} banned identifiers ({_verdict(goal)})

The embedded decision takes {_ms(embedded_low)} with {low:,} banned identifiers and {_ms(embedded_high)}
with {high:,}. Two costs were in the policy (`policies/rego/pyagent/lib/matching/matching.rego`), and both
were removed:

1. **`x in idx` was a linear scan in OPA's wasm runtime**: OPA compiles `in` to `internal.member_2`,
   which iterates over the whole collection, so a device cost apps x identifiers. The index is now an
   object keyed by `name NUL hash` strings and `matches` looks keys up (`idx[key]`): a hash lookup in
   wasm and in OPA's evaluator alike. (Prototype figures: 10,000 identifiers 1,138 -> 11.3 ms.)
2. **The index was rebuilt on every decision**, O(banned identifiers) however the lookup is done;
   {opa_text}. Rego keeps nothing from one evaluation to the next, so the index now comes with the
   data: `pyagent/policy/index.py` builds it from the policy data and ships it as bundle data under
   its own root, `data.pyagent_index` (`pyagent policy bundle`, `check --policy`; the embedded engine
   builds it after merging `--data` overlays; `pyagent server publish` refuses a bundle whose index
   does not match its bans). The policy reads it by ground key, one entry per app, so OPA servers are
   flat in the number of banned identifiers too (the section "OPA server with the ban index" above);
   without it (the raw folders) the policy indexes per decision as before, with the same decisions
   (the differential tests and a Rego test compare both paths).
"""


def _validation(results: dict[str, Any]) -> str:
    goal = _goal(results, "validate_vs_embedded")
    validate = results.get("validate_ms", {})
    apps = results.get("device", {}).get("apps", 200)
    decision = results.get("embedded_ms", {}).get("median_ms")
    why = (
        ""
        if goal["pass"]
        else f"""
The goal divides by the embedded decision ({_ms(decision)}), which policy 2023.03.15-6 made 0.05 ms
faster (its strict timestamp check no longer has the compiled policy compile a pattern per call); the
validation did not change (0.023 ms in the run before it, at 0.276 ms a decision). It is one call into
jsonschema-rs, nearly all of it reading the Python objects (the same call without the schema's
patterns takes as long), so it does not shrink with the decision.
"""
    )
    return f"""\
### Schema validation ({_verdict(goal)})

Validating the {apps}-app report takes {_ms(validate.get("median_ms"))}. The hot path is now jsonschema-rs
(Rust) on the schema file as shipped, with its local `$ref`s written in place where that cannot change a
verdict (`pyagent/report/refs.py`: jsonschema-rs follows a reference for each of the report's 800
strings; about 0.019 instead of 0.021 ms); it was fastjsonschema, which took about 0.19 ms here (about 0.23 us
per string, close to what generated Python code can do). jsonschema (Python) stays the reference: it
runs only on invalid reports, to list every error with its path, and the agreement tests prove both
give the same verdict on generated valid, invalid and mutated corpora (`format` is an annotation on
both sides, `$` means end of text on both sides).
{why}"""


def _cold(results: dict[str, Any]) -> str:
    goal = _goal(results, "cold_check_vs_opa_eval")
    cold = results.get("cold", {})
    check = cold.get("check", {}).get("median_ms")
    opa = cold.get("opa_eval", {}).get("median_ms")
    python = cold.get("python_startup", {}).get("median_ms")
    target = 1.5 * opa if isinstance(opa, int | float) else None
    phases = cold.get("check_phases_ms", {})
    spent = ", ".join(f"{name} {ms:.0f} ms" for name, ms in phases.items() if isinstance(ms, int | float))
    floor = cold.get("libraries_floor", {}).get("median_ms")
    floor_command = cold.get("libraries_floor_command", "python -c ...")
    left = target - floor if isinstance(target, float) and isinstance(floor, int | float) else None
    above = check - floor if isinstance(check, int | float) and isinstance(floor, int | float) else None
    return f"""\
### Cold start ({_verdict(goal)})

A cold `pyagent check` takes {_ms(check)} against {_ms(opa)} for `opa eval`, so the goal asks for
{_ms(target)}. The interpreter alone takes {_ms(python)}; after it: {spent or "see above"}. Nearly all
of that is imports; the work itself is a few milliseconds (the engine loads the compiled policy from
the module cache in about 5 ms, the decision takes about 1 ms). Done to get here: subcommands are
imported on demand (`pyagent check` no longer imports fleet, agent, impact or the collectors), and
the bundle-signature code (`cryptography`, about 35 ms) is imported only when verification is
configured; a cold check went from about 300 to about 175 ms. Then (issue 15, measured with
`python -X importtime` and cProfile): the facts module imported the collectors and the agent
configuration for type annotations only, the output and engine registries imported every format and
both engines, and `hashlib` (OpenSSL's start-up), `socket`, `tempfile` and the `opa` tooling were
imported where only a few commands use them; all of those now load on first use (about 35 ms).
The figures are taken with Python's bytecode compiled, as an installed package has it: without it
(`PYTHONDONTWRITEBYTECODE`, as in this repository's environment), compiling pyagent's sources adds
about 40 ms to every cold check.

Then (issue 15 item 4, measured with `python -X importtime`, cProfile and alternating whole runs):
`difflib` (a refused report's "did you mean"), the device facts of `check` without a report, Go's
time layouts (`time.format` and `time.parse_ns`, which the shipped policy does not call) and the
report's size bounds (needed only to refuse) now load on first use, and `make policy` builds the
bundle `pyagent policy bundle` builds, ban index included, whenever a file under `policies/` changes
(an out-of-date `build/bundle.tar.gz` sent every check in a checkout to the policy compiled on the
fly, with a note). 40 alternating rounds of the same check before and after: 133.5 -> 130.0 ms
median (`opa eval` 63.6 ms): 2.10 -> 2.04 x.

Then (issue 15, the cold check itself; "What was changed" has the details): the cycle collector is
off for a check and its objects frozen, an activated bundle's members come from a cache beside the
compiled module (no `tarfile`, no second ban-index check), the caches hash without OpenSSL, and
`logging` loads only when something logs: 146.6 -> 107.3 ms median over 80 alternating rounds.

The floor of a fresh Python process: the interpreter and the three libraries a check decides with,
imported and nothing else (`{floor_command}`), take {_ms(floor)}, so 1.5 x leaves {_ms(left)} for
everything pyagent adds: its own modules and the standard-library ones it needs (`dataclasses`,
`json`, `orjson`; a frozen dataclass costs 0.4-0.7 ms to create), reading the bundle's members and
the compiled module from the caches, instantiating the policy, validating, deciding and printing,
which today take {_ms(above)}. Inside the floor, wasmtime-py's ctypes bindings alone take about 10 ms
and jsonschema-rs imports `email.utils`, `socket` and `decimal` when it loads; an editable install's
import finder costs the floor about 3.5 ms and a check 1-2.5 ms more than a wheel's plain files
(measured with a second virtual environment that sees the same site-packages without processing its
`.pth` files). `opa eval` is one static Go binary; its own time varies by a fifth between runs on this
shared machine, and the ratio with it. Decisions that must be cheap should not start a new process
each: the agent as a service (`pyagent agent run`), or a fleet run, pays the start once.
"""


def _rest(results: dict[str, Any]) -> str:
    agent = results.get("rest_agent_ms", {}).get("median_ms")
    raw = results.get("rest_raw_ms", {}).get("median_ms")
    extra = agent - raw if isinstance(agent, int | float) and isinstance(raw, int | float) else None
    return f"""\
### The `opa` engine ({_verdict(_goal(results, "rest_agent_vs_raw"))})

It costs {_ms(extra)} per decision more than the bare client. What the engine does that the bare
client does not: a new connection for each decision (the bounded request closes it; the bare client
keeps one alive), a watchdog timer for the deadline, and `decide()`'s work around `evaluate()` (the
rows above split the two). In fleets the OPA server shares the cores with the workers, which bounds
the `opa` engine's throughput far below the embedded one's.
"""


def _fleet(results: dict[str, Any]) -> str:
    rates = [g for g in results.get("ratios", []) if g["id"].startswith("fleet_embedded_")]
    memory = _goal(results, "fleet_memory_flat")
    lines = "\n".join(f"- {g['goal']}: {_verdict(g)}" for g in [*rates, memory])
    return f"""\
### Fleet

{lines}

A fleet decision costs about 0.35 ms of CPU in a worker, four fifths of it in the policy's wasm code
(`perf` with wasmtime's perfmap: `matching.matches` and the `in` scans above, `clock.ns`'s date
parsing, OPA's value hashing and comparison); two workers give twice that, less the parent's share and
whatever else runs on the machine. Memory is flat: at most `2 x jobs` batches of 500 devices are in
flight and the device list is streamed through a temporary file.
"""


def notes(results: dict[str, Any]) -> list[str]:
    failing = [g for g in results.get("ratios", []) if not g["pass"]]
    parts = [HOW, CHANGED, "## What stands in the way", ""]
    if not failing:
        parts.append("Every goal holds in this run.\n")
    parts += [_banned(results), _validation(results), _cold(results), _rest(results), _fleet(results)]
    parts += [ingest_notes(results)]
    return "\n".join(parts).splitlines()
