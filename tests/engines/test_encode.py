"""``encode_json``: the JSON text every evaluation hands the wasm module. orjson's fast output must be
what the standard encoder writes (a float may be spelt otherwise, the same number), and whatever
orjson would write differently (NaN, integer keys, huge integers, subclasses, lone surrogates) goes
to the standard encoder, which writes or refuses it exactly as before."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

import pytest

from pyagent.engines.encode import encode_json
from pyagent.errors import InvalidInputError

REPORTS = Path(__file__).resolve().parents[2] / "examples" / "reports"


def _standard(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("path", sorted(REPORTS.glob("*.json")), ids=lambda p: p.stem)
def test_a_report_is_written_as_the_standard_encoder_writes_it(path: Path) -> None:
    policy_input = {"at": "2023-03-16T09:30:00.5+01:00", "report": json.loads(path.read_text())}
    assert encode_json(policy_input, "input") == _standard(policy_input)


class Label(str):
    pass


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"name": "抖音", "tab": "a\tb", "quote": '"', "e": 1e16, "f": 0.1, "ok": True}, None),
        ({"approved_by": None}, b'{"approved_by":null}'),
        ({1: "one", 2.5: "two and a half"}, b'{"1":"one","2.5":"two and a half"}'),
        ({"big": 2**70}, b'{"big":1180591620717411303424}'),
        ({"label": Label("x"), "level": Level.HIGH}, b'{"label":"x","level":3}'),
    ],
)
def test_what_orjson_would_write_differently_is_written_by_the_standard_encoder(
    value: Any, expected: bytes | None
) -> None:
    assert encode_json(value, "input") == (expected if expected is not None else _standard(value))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": float("nan")}, "input is not JSON: Out of range float values are not JSON compliant"),
        ({"x": float("-inf")}, "input is not JSON: Out of range float values are not JSON compliant"),
        (
            {"id": "\ud800"},
            (
                "input is not JSON: 'utf-8' codec can't encode character '\\ud800' in position 7: "
                "surrogates not allowed"
            ),
        ),
        ({"apps": [object()]}, "input is not JSON: Object of type object is not JSON serializable"),
    ],
)
def test_what_is_not_json_is_refused_with_the_standard_encoders_reason(value: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        encode_json(value, "input")
    assert str(caught.value) == message


def test_floats_are_the_same_numbers_however_spelt() -> None:
    floats = [1e-05, 1e-07, 0.1 + 0.2, -0.0, 5e-324, 1.5e300, 123456789012345678.0]
    written = encode_json({"values": floats}, "input")
    assert (
        written
        == b'{"values":[0.00001,1e-7,0.30000000000000004,-0.0,5e-324,1.5e+300,1.2345678901234568e+17]}'
    )
    assert json.loads(written) == {"values": floats}
