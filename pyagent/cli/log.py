"""``pyagent log verify``: is the agent's decision log intact?"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from pyagent.agent.chain import load_key
from pyagent.agent.spoolfile import check_not_lost
from pyagent.agent.store import Spool
from pyagent.agent.verify import verify_spool
from pyagent.cli.options import GivenPath, agent_config_option, text_or_json_option
from pyagent.config.agent import agent_settings, load_config
from pyagent.termsafe import safe_line

MAX_SHOWN = 50


@click.group()
def log() -> None:
    """The agent's tamper-evident decision log (a hash chain in the spool database)."""


@log.command(
    epilog="""\b
Examples:
  pyagent log verify
  pyagent log verify --db /var/lib/pyagent/spool.sqlite --key-file /etc/pyagent/log.key
  pyagent log verify --format json
\b
Exit codes: 0 intact; 1 tampered (each problem names the record's seq and id: edited, deleted,
inserted, reordered, or the anchor or key changed); 2 the database cannot be read (missing,
corrupt, not a spool) or the key is missing or wrong.
""",
)
@click.option(
    "--db",
    "db_path",
    type=GivenPath(dir_okay=False),
    help="The spool database (default: agent.spool_path, else STATE_DIR/spool.sqlite).",
)
@click.option(
    "--key-file",
    type=GivenPath(dir_okay=False),
    help="HMAC key of a keyed log (default: agent.hmac_key_file).",
)
@agent_config_option
@text_or_json_option
@click.pass_context
def verify(
    ctx: click.Context, db_path: str | None, key_file: str | None, config_path: str | None, fmt: str
) -> None:
    """Walk the hash chain from its anchor to its head; name every record that breaks it."""
    settings = agent_settings(load_config(config_path))
    path = settings.spool_for(db_path, os.environ.get("PYAGENT_STATE_DIR"))
    key = load_key(Path(key_file) if key_file else settings.hmac_key_file)
    check_not_lost(path)  # a spool deleted is not "no run yet"
    with Spool.open(path, key=key, readonly=True) as spool:
        result = verify_spool(spool, key)
    if fmt == "json":
        click.echo(json.dumps(result.json(), indent=2, ensure_ascii=False))
    first = result.anchor_seq + 1
    span = f"seq {first}..{result.head_seq}" if result.head_seq >= first else "no records"
    if result.intact:
        click.echo(
            f"pyagent: log: {path}: intact: {result.records} records ({span}), {result.mac}, "
            f"head {result.head_hash}, {result.dropped} dropped before seq {first}",
            err=True,
        )
        ctx.exit(0)
    click.echo(f"pyagent: log: {path}: TAMPERED: {len(result.problems)} problem(s)", err=True)
    for problem in result.problems[:MAX_SHOWN]:
        click.echo(f"  {problem.kind}: {safe_line(problem.message)}", err=True)
    if len(result.problems) > MAX_SHOWN:
        click.echo(f"  ... and {len(result.problems) - MAX_SHOWN} more (--format json lists all)", err=True)
    ctx.exit(1)
