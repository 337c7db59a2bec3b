"""``pyagent impact``: preview what a policy change would do to the fleet, before rollout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pyagent.cli.fleet import open_output
from pyagent.cli.options import at_option, org_option, output_option
from pyagent.engines.base import EngineSettings
from pyagent.fleet import runner
from pyagent.fleet.impact import ImpactSummary, compare, compile_version, workdir
from pyagent.fleet.progress import with_progress
from pyagent.fleet.sources import iter_items
from pyagent.termsafe import safe_line
from pyagent.timeutil import check_rfc3339, now_rfc3339


@click.command(
    epilog="""\b
Examples:
  pyagent impact --baseline policies/ --candidate proposed/ devices.jsonl --at 2023-03-20T00:00:00Z
  pyagent impact --baseline policies/ --candidate proposed/ reports/ --format json -o impact.json
"""
)
@click.option("--baseline", required=True, type=click.Path(file_okay=False), help="The policy in force.")
@click.option("--candidate", required=True, type=click.Path(file_okay=False), help="The proposed policy.")
@click.argument("inventories", nargs=-1, required=True, metavar="INVENTORY...")
@org_option
@at_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores)."
)
@output_option
@click.pass_context
def impact(
    ctx: click.Context,
    baseline: str,
    candidate: str,
    inventories: tuple[str, ...],
    org: str | None,
    at: str | None,
    fmt: str,
    jobs: int | None,
    output: str | None,
) -> None:
    """Decide every device with both policy versions and list the devices whose decision changes.

    Exit codes: 0 no decision changes, 1 some change, 2 usage or a policy that does not compile.
    """
    when = check_rfc3339(at, option="--at") if at is not None else now_rfc3339()
    summary = ImpactSummary()
    changes: list[dict[str, Any]] = []
    with workdir() as tmp:
        bundles = [
            compile_version(baseline, Path(tmp), "baseline"),
            compile_version(candidate, Path(tmp), "candidate"),
        ]
        settings = [EngineSettings(engine="embedded", bundle=str(b)) for b in bundles]
        items = with_progress(iter_items(inventories), label="impact")
        for before, after in runner.run(items, settings, at=when, org=org, jobs=jobs):
            change = compare(before, after, summary)
            if change is not None:
                changes.append(change)
    document = {"summary": summary.as_dict(), "evaluated_at": when, "changes": changes}
    if fmt == "json":
        with open_output(output) as out:
            out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    s = summary.as_dict()
    click.echo(
        f"{s['devices']} devices: {s['changed']} change, {s['flipped_to_deny']} flip to deny, "
        f"{s['flipped_to_allow']} flip to allow",
        err=True,
    )
    if fmt == "text":
        for change in changes[:50]:
            added = ", ".join(f"{v['rule']} {v['app_id']}" for v in change["violations_added"])
            removed = ", ".join(f"{v['rule']} {v['app_id']}" for v in change["violations_removed"])
            verdict = (
                "allow->deny"
                if change["before"]["allow"] and not change["after"]["allow"]
                else (
                    "deny->allow" if change["after"]["allow"] and not change["before"]["allow"] else "changed"
                )
            )
            line = (
                f"  {change['device_id']} ({change['organization']}): {verdict}"
                + (f"; +{added}" if added else "")
                + (f"; -{removed}" if removed else "")
            )
            click.echo(safe_line(line), err=True)
        if len(changes) > 50:
            click.echo(f"  ... and {len(changes) - 50} more (use --format json)", err=True)
    ctx.exit(1 if summary.changed else 0)
