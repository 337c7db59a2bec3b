"""``units.parse`` and ``units.parse_bytes`` against the pinned ``opa eval``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.engines.builtins.conftest import BATCHES, NOT_STRINGS, TEXT
from tests.engines.builtins.differential import Differential

BUILTINS = {"units.parse": 1, "units.parse_bytes": 1}

_NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=12).map(str),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30).map(repr),
    st.text(st.sampled_from("0123456789.eE+-"), max_size=5),  # exponents up to 999: results of 1,000 digits
    st.sampled_from(["", ".", "1.", ".5", "1e", "1e3", "1E-3", "2.5e+2", "1e1000000", "1e999", "0x10", "¹"]),
)
_UNITS = st.one_of(
    st.sampled_from([*'kKmMgGtTpPeEbx" ', "", "µ", 'K"i', "ki", "Ki", "KiB", "kb", "KB", "mi", "Mi"]),
    st.sampled_from(["MIB", "mb", "Gi", "gib", "Ti", "Pi", "ei", "Ei", "EIB", "kk"]),
    st.text(st.sampled_from('kKmMiIbBgGe" '), max_size=3),
)
QUANTITIES = st.one_of(st.builds(str.__add__, _NUMBERS, _UNITS), TEXT, st.sampled_from(NOT_STRINGS))

EDGES: list[Any] = ["1m", "1.5", "1e3m", "1K", "1Ki", "1.5KiB", "1kb", '"10Mi"', "0.1", "1 K", "", "Ki"]
EDGES.append("-2G")


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Differential:
    return Differential(tmp_path_factory.mktemp("units"), BUILTINS)


def test_units_edges_match_opa(engines: Differential) -> None:
    parsed = engines.check("units.parse", [[q] for q in [*EDGES, *NOT_STRINGS]])
    assert [parsed.get(str(i)) for i in range(len(EDGES))] == [
        0.001, 1.5, 1.0, 1000, 1024, None, None, 10485760, 0.1, None, None, None, -2000000000,
    ]  # fmt: skip
    sizes = engines.check("units.parse_bytes", [[q] for q in [*EDGES, *NOT_STRINGS]])
    assert [sizes.get(str(i)) for i in range(len(EDGES))] == [
        1000000, 1, 1000000000, 1000, 1024, 1536, 1000, 10485760, 0, None, None, None, -2000000000,
    ]  # fmt: skip


@BATCHES
@given(st.lists(QUANTITIES.map(lambda q: [q]), min_size=30, max_size=100))
def test_units_parse_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("units.parse", cases)


@BATCHES
@given(st.lists(QUANTITIES.map(lambda q: [q]), min_size=30, max_size=100))
def test_units_parse_bytes_matches_opa(engines: Differential, cases: list[list[Any]]) -> None:
    engines.check("units.parse_bytes", cases)
