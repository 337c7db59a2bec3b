"""``pyagent agent run|status``: the agent mode (collect, decide, record, ship, on a schedule)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pyagent.agent.chain import load_key
from pyagent.agent.cycle import EngineHolder, decision_summary
from pyagent.agent.runner import ActivityLog, RunPlan, run_agent
from pyagent.agent.settings import agent_settings, engine_settings
from pyagent.agent.ship import Collector
from pyagent.agent.store import Spool
from pyagent.agentconfig import load_config
from pyagent.cli.options import engine_options
from pyagent.engines.base import EngineSettings

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Agent config file (default: /etc/pyagent/agent.toml, env PYAGENT_CONFIG).",
)
spool_option = click.option(
    "--spool",
    "spool_path",
    type=click.Path(dir_okay=False),
    help="The spool database (default: agent.spool_path, else /var/lib/pyagent/spool.sqlite).",
)


def _echo_err(text: str) -> None:
    click.echo(text, err=True)


def _echo_out(text: str) -> None:
    click.echo(text)


@click.group()
def agent() -> None:
    """Run pyagent as an agent: collect this machine, decide, record, ship, on a schedule."""


@agent.command(
    epilog="""\b
Examples:
  pyagent agent run --once --config /etc/pyagent/agent.toml
  pyagent agent run --interval 900
  pyagent agent run --once --move-corrupt-aside     # a corrupt spool is renamed, a new chain starts
\b
Every run is committed to the spool (SQLite, WAL, synchronous=FULL) before it is reported: stdout
gets one JSON line per recorded run ({"event": "recorded", "seq", "id", "hash", "outcome", ...}),
stderr a human line. SIGTERM or SIGINT ends the sleep at once (a run in progress is finished).
Exit codes with --once: those of `pyagent check` for the run (0, 1, 2, 3); 2 also when the spool is
corrupt or unreadable. Without --once: 0 after SIGTERM.
""",
)
@click.option("--once", is_flag=True, help="Run once, record, ship, and exit with the run's exit code.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Seconds between runs (default: agent.interval, else 3600). 0: back to back.",
)
@click.option(
    "--jitter",
    type=click.FloatRange(min=0, max=1, max_open=True),
    metavar="FRACTION",
    help="Random spread of the interval, as a fraction (default: agent.jitter, else 0.1 = +-10 %).",
)
@click.option(
    "--move-corrupt-aside",
    is_flag=True,
    help="When the spool is corrupt, rename it to <spool>.corrupt-<time> and start a new chain.",
)
@config_option
@spool_option
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
    **engine_flags: Any,
) -> None:
    """Collect this machine, validate, decide, record and ship; repeat every interval (+- jitter)."""
    config = load_config(config_path)
    settings = agent_settings(config)
    plan = RunPlan(
        spool_path=Path(spool_path) if spool_path else settings.spool_path,
        key=load_key(settings.hmac_key_file),
        max_records=settings.max_records,
        interval=settings.interval if interval is None else interval,
        jitter=settings.jitter if jitter is None else jitter,
        once=once,
        move_corrupt_aside=move_corrupt_aside,
        collector=Collector.from_settings(settings),
    )
    log = ActivityLog(settings.log_path, _echo_err)
    try:
        with EngineHolder(engine_settings(config, EngineSettings(**engine_flags))) as engines:
            code = run_agent(plan, config, engines, _echo_out, log)
    finally:
        log.close()
    ctx.exit(code)


@agent.command(
    epilog="""\b
Examples:
  pyagent agent status
  pyagent agent status --format json --config /etc/pyagent/agent.toml
""",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@config_option
@spool_option
def status(fmt: str, config_path: str | None, spool_path: str | None) -> None:
    """Last run, last decision, spool depth, dropped count and the decision log's head. Exit 0.

    Exit 2 when the spool is corrupt or unreadable. Text goes to stderr, json to stdout.
    """
    config = load_config(config_path)
    settings = agent_settings(config)
    path = Path(spool_path) if spool_path else settings.spool_path
    document = status_document(path, settings.collector_url)
    if fmt == "json":
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for line in status_lines(document):
            click.echo(line, err=True)


def status_document(path: Path, collector_url: str | None) -> dict[str, Any]:
    """What ``agent status`` reports, as one JSON object."""
    document: dict[str, Any] = {"spool": str(path), "exists": path.is_file(), "collector": collector_url}
    if not document["exists"]:
        return {**document, "records": 0, "pending": 0, "dropped": 0, "last_run": None, "head": None}
    with Spool.open(path, key=load_key(None), readonly=True) as spool, spool.snapshot():
        state = spool.state()
        records, pending = spool.counts()
        head = spool.head()
        ship = spool.ship_status()
    body: Any = None
    if head is not None:
        try:
            body = json.loads(head.body)
        except ValueError:  # an edited head record: status says so, `log verify` tells the rest
            body = {
                "outcome": "unreadable",
                "error": f"record seq {head.seq} is not JSON; run pyagent log verify",
            }
    return {
        **document,
        "chain_id": state.chain_id,
        "mac": state.mac,
        "origin": state.origin or None,
        "records": records,
        "pending": pending,
        "dropped": state.dropped,
        "dropped_unshipped": state.dropped_unshipped,
        "head": {"seq": state.head_seq, "hash": state.head_hash, "id": state.head_id},
        "anchor": {"seq": state.anchor_seq, "hash": state.anchor_hash},
        "last_run": decision_summary(body) if isinstance(body, dict) else None,
        "shipping": {
            "last_attempt_at": ship.last_attempt_at,
            "last_ok_at": ship.last_ok_at,
            "last_error": ship.last_error,
        },
    }


def status_lines(doc: dict[str, Any]) -> list[str]:
    if not doc["exists"]:
        return [f"spool: {doc['spool']} (none yet: the agent has not recorded a run)"]
    lines = [f"spool: {doc['spool']} (chain {doc['chain_id']}, {doc['mac']})"]
    last = doc["last_run"]
    if last is None:
        lines.append("last run: none")
    else:
        rules = f" ({', '.join(last['violations'])})" if last["violations"] else ""
        error = f": {last['error']}" if last["error"] else ""
        lines.append(f"last run: {last['at']} {last['outcome']}{rules}{error}")
        lines.append(
            f"  device {last['device_id']}, organization {last['organization']}, "
            f"policy {last['policy_revision']}, engine {last['engine']}"
        )
    lines.append(
        f"records: {doc['records']} kept, {doc['pending']} not shipped, {doc['dropped']} dropped "
        f"({doc['dropped_unshipped']} of them unshipped)"
    )
    head = doc["head"]
    lines.append(f"log head: seq {head['seq']} {head['hash']}")
    ship = doc["shipping"]
    if doc["collector"]:
        state = f"error: {ship['last_error']}" if ship["last_error"] else f"ok at {ship['last_ok_at']}"
        lines.append(f"collector: {doc['collector']} (last attempt {ship['last_attempt_at']}, {state})")
    else:
        lines.append("collector: none configured")
    return lines
