"""Collectors: each reads one kind of inventory and returns the ``apps`` list and device facts of a report.

Use :func:`get_collector` with a :class:`CollectorName` (``--source``) and the collector's options::

    inventory = get_collector("android-pm", from_file="phone.txt").collect()
    report_apps = inventory.apps_json()

Errors: :class:`CollectorInputError` (bad input file or option, exit code 2) and :class:`CollectorError`
(a tool missing, hung or failed, exit code 3).
"""

from __future__ import annotations

from pyagent.collectors.base import (
    App,
    Collector,
    CollectorError,
    CollectorInputError,
    Evidence,
    Inventory,
    Platform,
)
from pyagent.collectors.registry import COLLECTORS, CollectorName, collector_options, get_collector

__all__ = [
    "COLLECTORS",
    "App",
    "Collector",
    "CollectorError",
    "CollectorInputError",
    "CollectorName",
    "Evidence",
    "Inventory",
    "Platform",
    "collector_options",
    "get_collector",
]
