"""Where the embedded engine's ``evaluate()`` goes for the 200-app phone: the whole call, the module's
``opa_eval`` alone (input written into its memory, no encoding nor decoding in Python), and the
module's own ``opa_json_parse`` of the same input (the part no policy change can cut). Medians of
2,000 warm calls, in microseconds. Issue 15's "embedded <= 1/3 of OPA's eval" is bounded by these.

    PYTHONPATH=. .venv/bin/python -m bench.wasm_parts [BUNDLE]   # default: build/bundle.tar.gz
"""

from __future__ import annotations

import ctypes
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from bench.inputs import device_report, policy_input
from bench.micro import embedded_engine
from pyagent.engines.base import ENTRYPOINT
from pyagent.engines.embedded import EmbeddedEngine
from pyagent.engines.encode import encode_json


def _median_us(call: Callable[[], object], runs: int) -> float:
    for _ in range(min(200, runs)):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - started)
    return round(statistics.median(times) / 1000, 1)


def measure(bundle: Path, runs: int = 2000) -> dict[str, float]:
    engine = cast(EmbeddedEngine, embedded_engine(bundle))
    policy = engine._policy  # (the module's exports, below the engine: what this probe is for)
    the_input = policy_input(device_report(200))
    raw = encode_json(the_input, "input")
    entry = policy._entrypoint_id(ENTRYPOINT)
    heap = policy._eval_heap

    def written() -> None:
        ctypes.memmove(policy._view_of()[0] + heap, raw, len(raw))

    def eval_call() -> None:
        written()
        policy._call(policy._ex.eval, 0, entry, policy._data_addr, heap, len(raw), heap + len(raw), 1)

    def parse_only() -> None:
        written()
        policy._call(policy._ex.heap_ptr_set, heap + len(raw))
        policy._call(policy._ex.json_parse, heap, len(raw))
        policy._call(policy._ex.heap_ptr_set, heap)

    try:
        return {
            "evaluate_us": _median_us(lambda: engine.evaluate(the_input), runs),
            "opa_eval_us": _median_us(eval_call, runs),
            "input_parse_us": _median_us(parse_only, runs),
            "input_bytes": float(len(raw)),
        }
    finally:
        engine.close()


if __name__ == "__main__":
    print(measure(Path(sys.argv[1] if len(sys.argv) > 1 else "build/bundle.tar.gz")))
