"""One base error per plug-in area (collectors, engines, outputs), and each error's exit code that of
its kind (CONTRACT section 3: 2 invalid input or usage, 3 no decision): a caller may catch an area's
errors as one, and the CLI's boundary maps every one to its exit code."""

from __future__ import annotations

import pytest

from pyagent.collectors.base import BaseCollectorError, CollectorError, CollectorInputError
from pyagent.engines.base import EngineError
from pyagent.engines.wasm import errors as wasm
from pyagent.errors import InvalidInputError, NoDecisionError, PyagentError
from pyagent.outputs.base import OutputError
from pyagent.outputs.registry import UnknownFormatError, format_class


@pytest.mark.parametrize(
    ("error", "area", "kind", "exit_code"),
    [
        (CollectorError("dpkg-query: not found"), BaseCollectorError, NoDecisionError, 3),
        (CollectorInputError("capture.txt: input is empty"), BaseCollectorError, InvalidInputError, 2),
        (wasm.WasmRuntimeError("trap"), EngineError, NoDecisionError, 3),
        (wasm.MissingBuiltinError(["http.send"]), EngineError, NoDecisionError, 3),
        (OutputError("allow must be true or false"), OutputError, PyagentError, 3),
        (UnknownFormatError("unknown output format 'xml'"), OutputError, InvalidInputError, 2),
    ],
)
def test_each_error_is_of_its_area_and_of_its_kind(
    error: PyagentError, area: type[PyagentError], kind: type[PyagentError], exit_code: int
) -> None:
    assert (isinstance(error, area), isinstance(error, kind), error.exit_code) == (True, True, exit_code)


def test_the_engines_runtime_errors_all_derive_from_the_areas() -> None:
    runtime = [getattr(wasm, name) for name in wasm.__all__ if name.endswith("Error")]
    assert sorted(cls.__name__ for cls in runtime) == [
        "BuiltinEvalError", "MissingBuiltinError", "PolicyAbortError", "UndefinedResultError",
        "UnknownEntrypointError", "WasmRuntimeError",
    ]  # fmt: skip
    assert [issubclass(cls, wasm.WasmRuntimeError) and issubclass(cls, EngineError) for cls in runtime] == [
        True
    ] * len(runtime)


def test_a_collectors_message_stays_one_line_in_both_kinds() -> None:
    told = [str(cls("line one\nline two\r")) for cls in (CollectorError, CollectorInputError)]
    assert told == ["line one\\nline two\\r"] * 2


def test_an_unknown_format_is_an_output_error_of_exit_2() -> None:
    with pytest.raises(OutputError) as info:
        format_class("xml")
    assert (type(info.value), info.value.exit_code) == (UnknownFormatError, 2)
