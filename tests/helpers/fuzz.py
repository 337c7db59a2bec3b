"""How hard the property-based fuzz tests try: bounded in `make test`, long in `make fuzz`.

``PYAGENT_FUZZ_EXAMPLES`` sets the examples per property (default 200); `make fuzz` raises it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("PYAGENT_FUZZ_EXAMPLES", "200"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 200,  # the bounded run is reproducible; the long run explores
)
