"""The agent's configuration file: device facts, how the agent runs, and OPA's tables.

One documented location per OS, overridable with ``--config`` or ``PYAGENT_CONFIG``
(:func:`~pyagent.config.files.default_config_path`). Example (``deploy/systemd/agent.toml.example``)::

    [device]                     # facts the collectors cannot see; flags win
    id = "fr-brussels-0042"
    organization = "eu-commission"
    ownership = "corporate"      # corporate | personal
    mdm_enrolled = true
    mdm_provider = "intune"

    [agent]                      # `pyagent agent run`
    source = "linux"             # what reads this machine: linux (dpkg/rpm/flatpak/snap), osquery (osqueryi)
    osquery_table = "apps"       # osquery only: apps, programs, deb_packages, rpm_packages (default: per OS)
    interval = 3600              # seconds between decisions (0: back to back)
    jitter = 0.1                 # each sleep is interval * (1 +- jitter), at random
    state_dir = "/var/lib/pyagent"   # spool, bundles, serials (default: see pyagent.config.statedir)
    spool_path = "/var/lib/pyagent/spool.sqlite"   # default: STATE_DIR/spool.sqlite
    log_path = "/var/log/pyagent/agent.jsonl"      # activity log, one JSON object a line
    max_records = 10000          # the spool keeps at most this many results; the oldest go first
    hmac_key_file = "/etc/pyagent/log.key"         # key the decision log's chain (HMAC-SHA256)

    [opa]                        # decide on an OPA server instead of the embedded engine
    url = "https://opa.internal:8181"
    token_file = "/etc/pyagent/opa.token"
    ca = "/etc/pyagent/opa-ca.pem"

    [services.pyagent]           # OPA's tables, OPA's keys: see pyagent.config.opa
    url = "https://pyagent.internal:8282"
    credentials.bearer.token_path = "/etc/pyagent/agent.token"

Before OPA's tables, ``agent.collector_url`` (with ``collector_token_file``, ``collector_ca``,
``collector_timeout``) named where results went; it still works, as a service ``collector`` that the
decision logs are uploaded to (``POST collector_url``), and cannot be combined with ``[decision_logs]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyagent.config.check import Section, check_url, unexpanded_part
from pyagent.config.files import default_config_path, read_document, read_secret
from pyagent.config.opa import DecisionLogs, OpaTables, Service, opa_tables
from pyagent.config.opakeys import report_ignored, screen
from pyagent.config.statedir import default_state_dir
from pyagent.engines.base import EngineSettings
from pyagent.errors import InvalidInputError

if TYPE_CHECKING:
    from pyagent.collectors.base import Collector

DEFAULT_INTERVAL = 3600.0
MAX_INTERVAL = 365 * 24 * 3600.0
"""A year: a longer interval overflowed the clock the next run is timed by."""
DEFAULT_JITTER = 0.1
DEFAULT_MAX_RECORDS = 10_000
DEVICE_KEYS = ("id", "organization", "ownership", "mdm_enrolled", "mdm_provider")
#: The collectors that read the machine the agent runs on (``agent.source``, and ``check`` without a
#: report), the first the default: :data:`pyagent.collectors.registry.THIS_MACHINE`'s names.
AGENT_SOURCES = ("linux", "osquery")
AGENT_KEYS = (
    "source",
    "osquery_table",
    "interval",
    "jitter",
    "state_dir",
    "spool_path",
    "log_path",
    "max_records",
    "hmac_key_file",
    "collector_url",
    "collector_token_file",
    "collector_ca",
    "collector_timeout",
)
OPA_KEYS = ("url", "token_file", "ca")
SPOOL_FILE = "spool.sqlite"


@dataclass(frozen=True)
class AgentConfig:
    """The parsed configuration file (every table optional)."""

    source: str | None = None
    device: dict[str, Any] = field(default_factory=dict)
    opa: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    tables: OpaTables = field(default_factory=OpaTables)


def load_config(path: str | Path | None = None, *, required: bool = False) -> AgentConfig:
    """Read the config at ``path`` (default location when None). A missing default file is empty; a
    missing file that ``--config`` or ``PYAGENT_CONFIG`` names is an error.

    Any key OPA's own config takes is accepted: what the agent does not use is reported once on stderr
    and ignored, and what it would be unsafe to ignore is refused (:mod:`pyagent.config.opakeys`).
    """
    target = Path(path) if path is not None else default_config_path()
    named = path is not None or bool(os.environ.get("PYAGENT_CONFIG"))  # (not the default location)
    if not target.exists():
        if required or named:
            where = "" if path is not None else " (PYAGENT_CONFIG)"
            raise InvalidInputError(f"{target}: config file not found{where}")
        return AgentConfig()
    source = str(target)
    document, ignored = screen(read_document(target), source)
    report_ignored(source, ignored)
    device = Section(document.get("device", {}), "device", source, known=DEVICE_KEYS).value
    agent = Section(document.get("agent", {}), "agent", source, known=AGENT_KEYS).value
    opa = Section(document.get("opa", {}), "opa", source, known=OPA_KEYS).value
    tables = _with_legacy_collector(opa_tables(document, source), agent, source)
    return AgentConfig(source=source, device=device, opa=opa, agent=agent, tables=tables)


def _with_legacy_collector(tables: OpaTables, agent: dict[str, Any], source: str) -> OpaTables:
    section = Section(agent, "agent", source, known=AGENT_KEYS)
    url = section.string("collector_url")
    if url is None:
        for key in ("collector_token_file", "collector_ca", "collector_timeout"):
            if key in agent:
                raise InvalidInputError(f"agent.{key} in {source} needs agent.collector_url")
        return tables
    check_url(url, what=f"agent.collector_url in {source}")
    if tables.decision_logs is not None:
        raise InvalidInputError(
            f"agent.collector_url in {source}: decision logs go to [decision_logs] now; remove one of them"
        )
    service = Service(
        name="collector",
        url=url,
        token_path=section.path("collector_token_file"),
        ca_cert=section.path("collector_ca"),
        timeout=section.number("collector_timeout", 10.0, minimum=0.01),
    )
    logs = DecisionLogs(service="collector", resource="", min_delay=5, max_delay=10)
    return replace(tables, services={**tables.services, "collector": service}, decision_logs=logs)


@dataclass(frozen=True)
class AgentSettings:
    """How the agent runs and records: ``[agent]``, checked, with defaults."""

    interval: float = DEFAULT_INTERVAL
    jitter: float = DEFAULT_JITTER
    state_dir: Path | None = None
    """``agent.state_dir`` as given (None: the default, see :func:`state_dir`)."""
    spool_path: Path | None = None
    """``agent.spool_path`` as given (None: ``STATE_DIR/spool.sqlite``)."""
    log_path: Path | None = None
    max_records: int = DEFAULT_MAX_RECORDS
    hmac_key_file: Path | None = None
    source: str = AGENT_SOURCES[0]
    """The collector that reads this machine (``agent.source``)."""
    osquery_table: str | None = None
    """With ``source = "osquery"``: the table queried (None: this OS's, see the osquery collector)."""

    def collector(self) -> Collector:
        """The collector that reads this machine (``agent.source``): what ``agent run``, ``check``
        without a report and ``collect`` without ``--source`` read."""
        from pyagent.collectors.registry import this_machine  # (the collectors: only when one reads)

        return this_machine(self.source, osquery_table=self.osquery_table)

    def state_dir_for(self, flag: str | None) -> Path:
        """The state directory: ``--state-dir`` (env ``PYAGENT_STATE_DIR``), else ``agent.state_dir``,
        else the default for this user."""
        if flag:
            return _flag_path("--state-dir", flag)
        return self.state_dir or default_state_dir()

    def spool_for(self, flag: str | None, state_dir_flag: str | None) -> Path:
        """The spool: ``--spool``, else ``agent.spool_path``, else ``STATE_DIR/spool.sqlite``."""
        if flag:
            return _flag_path("--spool", flag)
        return self.spool_path or self.state_dir_for(state_dir_flag) / SPOOL_FILE


def _flag_path(option: str, value: str) -> Path:
    """A path option's value (or its environment variable's), refused where a shell would have expanded
    something that was quoted instead: ``--state-dir '~/state'``."""
    unexpanded = unexpanded_part(value)
    if unexpanded is not None:
        raise InvalidInputError(
            f"{option} {value!r} must be a full path: {unexpanded} is not expanded (the shell left it quoted)"
        )
    return Path(value)


def agent_settings(config: AgentConfig) -> AgentSettings:
    """The ``[agent]`` table, checked: a wrong type or range names the key and the file."""
    section = Section(config.agent, "agent", config.source or "the agent config", known=AGENT_KEYS)
    jitter = section.number("jitter", DEFAULT_JITTER)
    if jitter >= 1:
        raise section.fail("jitter", "must be below 1 (0.1 is +-10 %)")
    source = section.string("source", AGENT_SOURCES[0])
    if source not in AGENT_SOURCES:
        raise section.fail(
            "source", f"must be one of {', '.join(AGENT_SOURCES)} (the collectors that read this machine)"
        )
    osquery_table = section.string("osquery_table")
    if osquery_table is not None and source != "osquery":
        raise section.fail("osquery_table", 'is for source = "osquery" only')
    return AgentSettings(
        source=str(source),
        osquery_table=osquery_table,
        interval=section.number("interval", DEFAULT_INTERVAL, maximum=MAX_INTERVAL),
        jitter=jitter,
        state_dir=section.path("state_dir"),
        spool_path=section.path("spool_path"),
        log_path=section.path("log_path"),
        max_records=section.integer("max_records", DEFAULT_MAX_RECORDS, minimum=1),
        hmac_key_file=section.path("hmac_key_file"),
    )


def engine_settings(config: AgentConfig, flags: EngineSettings) -> EngineSettings:
    """The engine settings: flags first, then ``[opa]`` (``url``, ``token_file``, ``ca``)."""
    source = config.source or "the agent config"
    section = Section(config.opa, "opa", source, known=OPA_KEYS)
    url = flags.opa_url or section.string("url")
    if url is not None and not flags.opa_url:  # a mistake told as the config's, not as a flag never given
        from pyagent.engines.opa_server import parse_url

        parse_url(url, what=f"opa.url in {source}")
    token = flags.opa_token
    token_file = section.path("token_file")
    if token is None and token_file is not None:
        token = read_secret(token_file, what="OPA token (opa.token_file)", header=True)
    ca = flags.opa_ca or section.string("ca")
    return replace(flags, opa_url=url, opa_token=token, opa_ca=ca)
