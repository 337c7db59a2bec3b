"""Shared generators for the differential built-in tests."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Few, deterministic examples: each one is a batch of cases for one ``opa eval``.
BATCHES = settings(
    max_examples=int(os.environ.get("BUILTIN_EXAMPLES", "4")),  # more, at random, to hunt by hand
    deadline=None,
    derandomize="BUILTIN_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Any text JSON can carry: unicode of every plane, no lone surrogates.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
SHORT_ASCII = st.text(st.sampled_from("ab.-_/0 "), max_size=6)
#: Operands of the wrong type.
NOT_STRINGS: list[Any] = [None, True, 0, -1.5, 10**30, [], ["a"], {}, {"a": 1}]
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
