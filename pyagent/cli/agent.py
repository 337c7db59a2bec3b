"""``pyagent agent run|status``: the agent mode (collect, decide, record, upload, on a schedule), with
OPA's plug-ins: policy bundles in, decision logs and status out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pyagent.agent.chain import load_key
from pyagent.agent.http import resource_url
from pyagent.agent.lock import agent_locks
from pyagent.agent.runner import ActivityLog, RunPlan, run_agent
from pyagent.agent.statusview import status_document, status_lines
from pyagent.agent.wiring import build
from pyagent.cli.options import (
    MAX_SECONDS,
    Finite,
    GivenPath,
    agent_config_option,
    check_flags_used,
    device_fact_options,
    engine_options,
    org_option,
    text_or_json_option,
)
from pyagent.config.agent import AgentConfig, agent_settings, engine_settings, load_config
from pyagent.config.statedir import private_dir, private_file
from pyagent.config.trust import check_trusted_files
from pyagent.engines.base import EngineSettings
from pyagent.errors import InvalidInputError, located
from pyagent.facts import FactFlags, this_machine_id
from pyagent.jsonio import storable
from pyagent.termsafe import safe_line, safe_lines

spool_option = click.option(
    "--spool",
    "spool_path",
    type=GivenPath(dir_okay=False),
    help="The spool database (default: agent.spool_path, else STATE_DIR/spool.sqlite).",
)
FACT_FLAGS = "--device-id ID, --ownership corporate|personal, --mdm-enrolled/--no-mdm-enrolled, --org ORG"


def _echo_err(text: str) -> None:
    click.echo(safe_lines(text), err=True)


def _echo_out(text: str) -> None:
    click.echo(text)  # machine output: ASCII JSON (json.dumps escapes every control character)


@click.group()
def agent() -> None:
    """Run pyagent as an agent: collect this machine, decide, record, upload, on a schedule."""


@agent.command(
    epilog="""\b
Examples:
  pyagent agent run --once --config /etc/pyagent/agent.toml
  pyagent agent run --config /etc/pyagent/opa.yaml --state-dir ~/.local/state/pyagent
  pyagent agent run --once --device-id laptop-1 --ownership corporate --mdm-enrolled --org eu-council
  pyagent agent run --once --move-corrupt-aside     # a corrupt spool is renamed, a new chain starts
\b
Every run is committed to the spool (SQLite, WAL, synchronous=FULL) before it is reported: stdout
gets one JSON line per recorded run ({"event": "recorded", "seq", "id", "hash", "outcome", ...}),
stderr a human line. With OPA's tables in the config, the bundle plug-in downloads and activates
policy ([bundles.NAME]), the decision-log plug-in uploads every record ([decision_logs]) and the
status plug-in reports ([status]). --once: one download attempt, one decision, one upload, one
status message. SIGTERM, SIGINT or SIGHUP ends the sleep at once (a run in progress is finished), and the
decisions not yet uploaded are sent once more before the agent exits.
Exit codes with --once: those of `pyagent check` for the run (0, 1, 2, 3); 2 also for a bad config,
an unsafe state directory, a corrupt or unreadable spool, or a flag no run would use (--interval or
--jitter with --once; --opa-token with the embedded engine), before any run. Without --once: 0 after
SIGTERM.
""",
)
@click.option("--once", is_flag=True, help="Run once (download, decide, record, upload, status) and exit.")
@click.option(
    "--interval",
    type=Finite(min=0, max=MAX_SECONDS),
    metavar="SECONDS",
    help="Seconds between runs (default: agent.interval, else 3600). 0: back to back.",
)
@click.option(
    "--jitter",
    type=Finite(min=0, max=1, max_open=True),
    metavar="FRACTION",
    help="Random spread of the interval, as a fraction (default: agent.jitter, else 0.1 = +-10 %).",
)
@click.option(
    "--move-corrupt-aside",
    is_flag=True,
    help="When the spool is corrupt, rename it to <spool>.corrupt-<time> and start a new chain.",
)
@agent_config_option
@spool_option
@device_fact_options
@org_option
@engine_options
@click.pass_context
def run(
    ctx: click.Context,
    /,
    once: bool,
    interval: float | None,
    jitter: float | None,
    move_corrupt_aside: bool,
    config_path: str | None,
    spool_path: str | None,
    ownership: str | None,
    mdm_enrolled: bool | None,
    mdm_provider: str | None,
    device_id: str | None,
    org: str | None,
    **engine_flags: Any,
) -> None:
    """Collect this machine, validate, decide, record and upload; repeat every interval (+- jitter)."""
    if once and (unused := [f for f, v in (("--interval", interval), ("--jitter", jitter)) if v is not None]):
        raise InvalidInputError(f"{', '.join(unused)}: a running agent's; --once runs once")
    config = load_config(config_path)
    flags = FactFlags(device_id, ownership, mdm_enrolled, org, mdm_provider)
    if config.source is None and flags == FactFlags():
        raise InvalidInputError(
            "agent run: no agent config (give --config FILE, or create /etc/pyagent/agent.toml) and no "
            f"device facts: give {FACT_FLAGS}"
        )
    engine = engine_settings(config, EngineSettings(**engine_flags))
    check_flags_used(ctx, engine)
    _check_before_running(engine)
    check_trusted_files(config, engine)  # as root: what it trusts is root's alone, before anything is made
    settings = agent_settings(config)
    with located(f"{config.source or 'the agent config'}: agent.osquery_table"):
        settings.collector()  # a table the collector refuses is told now, not at each run
    state_flag = engine_flags.get("state_dir")
    state_dir = settings.state_dir_for(state_flag)
    spool = settings.spool_for(spool_path, state_flag)
    if spool.parent == state_dir:
        private_dir(state_dir)
    private_file(spool, what="spool")
    bundles_dir = private_dir(state_dir) if config.tables.bundles else None
    with agent_locks(spool, bundles_dir):  # one agent at a time on a spool and a state directory
        log = ActivityLog(settings.log_path, _echo_err)
        try:
            plugins, engines = build(
                config,
                engine,
                state_dir=lambda: private_dir(state_dir),
                device_id=lambda: _device_id(config, flags),
                notify=log.notify,
            )
            plan = RunPlan(
                spool_path=spool,
                key=load_key(settings.hmac_key_file),
                max_records=settings.max_records,
                interval=settings.interval if interval is None else interval,
                jitter=settings.jitter if jitter is None else jitter,
                once=once,
                move_corrupt_aside=move_corrupt_aside,
            )
            with engines:
                code = run_agent(plan, config, engines, _echo_out, log, plugins, flags)
        finally:
            log.close()
    ctx.exit(code)


def _check_before_running(engine: EngineSettings) -> None:
    """A flag every run would fail on alike is a usage error (exit 2) before the first, not a run
    recorded as invalid (and, as a service, again at every interval): an OPA URL that does not parse.
    (Missing device facts are a run's result, recorded: the record says the agent ran and why it could
    not report.)"""
    from pyagent.engines.base import EngineName
    from pyagent.engines.opa_server import check_url_given
    from pyagent.engines.select import resolve

    if resolve(engine) is EngineName.OPA:
        check_url_given(engine)


def _device_id(config: AgentConfig, flags: FactFlags) -> str:
    value = flags.device_id or config.device.get("id") or this_machine_id()
    return str(value) if value else "unknown"


@agent.command(
    epilog="""\b
Examples:
  pyagent agent status
  pyagent agent status --format json --config /etc/pyagent/agent.toml
""",
)
@text_or_json_option
@click.option(
    "--state-dir",
    envvar="PYAGENT_STATE_DIR",
    type=GivenPath(file_okay=False),
    help="The agent's state directory (env PYAGENT_STATE_DIR; either wins over agent.state_dir, as for "
    "`agent run`; default: agent.state_dir, else as `agent run`).",
)
@agent_config_option
@spool_option
def status(fmt: str, state_dir: str | None, config_path: str | None, spool_path: str | None) -> None:
    """Bundles (active revision, last refusal), last run, spool depth, decision-log and status uploads
    (the last attempt, success or error), records set aside. Exit 0.

    Exit 2 when the spool is corrupt or unreadable, or --spool names none. Text goes to stderr, json
    to stdout.
    """
    config = load_config(config_path)
    settings = agent_settings(config)
    path = settings.spool_for(spool_path, state_dir)
    if spool_path is not None and not Path(path).exists():  # (a typo: "none yet" would hide it)
        raise InvalidInputError(f"--spool {spool_path}: no such spool")
    logs = config.tables.decision_logs
    services, status_service = config.tables.services, config.tables.status_service
    uploads_to = resource_url(services[logs.service].url, logs.resource) if logs is not None else None
    status_to = None  # (as the status plug-in names its service, so that its kept outcome is found)
    if status_service is not None:
        status_to = resource_url(services[status_service].url, config.tables.status_resource)
    document = status_document(path, uploads_to, settings.state_dir_for(state_dir), status_to)
    if fmt == "json":
        click.echo(
            json.dumps(storable(document), indent=2, ensure_ascii=False)
        )  # (UTF-8, whatever a server said)
    else:
        for line in status_lines(document):  # server errors and bundle names: shown, never obeyed
            click.echo(safe_line(line), err=True)
