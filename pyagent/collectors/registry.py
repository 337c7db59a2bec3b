"""The collectors by name: ``pyagent collect --source NAME``."""

from __future__ import annotations

import enum
import inspect
from types import MappingProxyType

from pyagent.collectors.android_pm import AndroidPmCollector
from pyagent.collectors.base import Collector, CollectorInputError
from pyagent.collectors.intune import IntuneCollector
from pyagent.collectors.ios_mdm import IosMdmCollector
from pyagent.collectors.linux import LinuxCollector
from pyagent.collectors.osquery import OsqueryCollector


class CollectorName(enum.StrEnum):
    """The names ``--source`` accepts (a ``str`` enum: members compare equal to their values)."""

    LINUX = "linux"
    ANDROID_PM = "android-pm"
    OSQUERY = "osquery"
    INTUNE = "intune"
    IOS_MDM = "ios-mdm"

    def __str__(self) -> str:
        return self.value


COLLECTORS: MappingProxyType[CollectorName, type[Collector]] = MappingProxyType(
    {
        CollectorName.LINUX: LinuxCollector,
        CollectorName.ANDROID_PM: AndroidPmCollector,
        CollectorName.OSQUERY: OsqueryCollector,
        CollectorName.INTUNE: IntuneCollector,
        CollectorName.IOS_MDM: IosMdmCollector,
    }
)


def collector_options(name: CollectorName | str) -> tuple[str, ...]:
    """The option names the collector ``name`` takes."""
    cls = COLLECTORS[_name(name)]
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def _name(name: CollectorName | str) -> CollectorName:
    try:
        return CollectorName(name)
    except ValueError as exc:
        choices = ", ".join(n.value for n in CollectorName)
        raise CollectorInputError(f"unknown collector {str(name)!r}; choose from {choices}") from exc


def get_collector(name: CollectorName | str, **options: object) -> Collector:
    """The collector ``name``, built with ``options``.

    Options whose value is None count as not given, so a caller may pass every option it has (for
    example ``from_file=None``) to any collector. An option the collector does not take is a usage error
    (CollectorInputError, exit code 2) naming the options it does take.
    """
    key = _name(name)
    cls = COLLECTORS[key]
    given = {k: v for k, v in options.items() if v is not None}
    accepted = collector_options(key)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise CollectorInputError(
            f"collector {key.value} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return cls(**given)


#: The collectors that read the machine pyagent runs on (the agent's ``agent.source``, and ``check``
#: without a report), the first the default.
THIS_MACHINE = (CollectorName.LINUX, CollectorName.OSQUERY)


def this_machine(source: str = THIS_MACHINE[0], *, osquery_table: str | None = None) -> Collector:
    """The collector that reads this machine: ``source`` one of :data:`THIS_MACHINE` (checked by the
    config that names it), osquery with ``osquery_table`` (None: this OS's table)."""
    if source == CollectorName.OSQUERY:
        return get_collector(CollectorName.OSQUERY, table=osquery_table)
    return get_collector(CollectorName.LINUX)
