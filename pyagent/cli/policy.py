"""``pyagent policy``: the policy author's loop on the real ``opa``."""

from __future__ import annotations

import json

import click

from pyagent.engines.base import ENTRYPOINT
from pyagent.policy.opa_tool import policy_dirs, run_opa

COVERAGE_MIN = 95.0

dirs_argument = click.argument("dirs", nargs=-1, type=click.Path(file_okay=False), metavar="[DIR]...")


@click.group()
def policy() -> None:
    """Test, format, lint and bundle the Rego policies (default: policies/rego and policies/data)."""


@policy.command(
    epilog="""\b
Examples:
  pyagent policy test
  pyagent policy test --min-coverage 98 policies/rego policies/data
""",
)
@dirs_argument
@click.option("--min-coverage", type=click.FloatRange(0, 100), default=COVERAGE_MIN, show_default=True)
@click.pass_context
def test(ctx: click.Context, dirs: tuple[str, ...], min_coverage: float) -> None:
    """Run `opa test` and fail when coverage is under the minimum."""
    targets = policy_dirs(dirs)
    run = run_opa(["test", *targets])
    click.echo((run.stdout + run.stderr).rstrip(), err=True)
    if run.returncode != 0:
        ctx.exit(1)
    cov = run_opa(["test", "--coverage", "--format", "json", *targets])
    coverage = float(json.loads(cov.stdout)["coverage"])
    click.echo(f"coverage: {coverage:.2f}% (minimum {min_coverage:g}%)", err=True)
    ctx.exit(0 if coverage >= min_coverage else 1)


@policy.command(epilog="\b\nExamples:\n  pyagent policy fmt\n  pyagent policy fmt --write")
@dirs_argument
@click.option("--write", is_flag=True, help="Rewrite files instead of listing them.")
@click.pass_context
def fmt(ctx: click.Context, dirs: tuple[str, ...], write: bool) -> None:
    """List (or --write) Rego files that `opa fmt` would change; exit 1 when any would."""
    targets = policy_dirs(dirs)
    run = run_opa(["fmt", "-w" if write else "--list", *targets])
    changed = [line for line in run.stdout.splitlines() if line.strip()]
    for line in changed:
        click.echo(line)
    if run.returncode != 0:
        click.echo(run.stderr.rstrip(), err=True)
        ctx.exit(1)
    ctx.exit(1 if changed and not write else 0)


@policy.command(epilog="\b\nExamples:\n  pyagent policy lint")
@dirs_argument
@click.pass_context
def lint(ctx: click.Context, dirs: tuple[str, ...]) -> None:
    """`opa fmt` (no diff) and `opa check --strict`."""
    targets = policy_dirs(dirs)
    failed = False
    listed = run_opa(["fmt", "--list", *targets])
    for line in listed.stdout.splitlines():
        click.echo(f"not formatted: {line}", err=True)
        failed = True
    checked = run_opa(["check", "--strict", *targets])
    if checked.returncode != 0:
        click.echo(checked.stderr.rstrip() or checked.stdout.rstrip(), err=True)
        failed = True
    click.echo("lint: " + ("problems found" if failed else "clean"), err=True)
    ctx.exit(1 if failed else 0)


@policy.command(
    epilog="""\b
Examples:
  pyagent policy bundle -o build/bundle.tar.gz --revision 2023.03.15-1
""",
)
@dirs_argument
@click.option(
    "-o", "--output", default="build/bundle.tar.gz", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--revision", default=None, help="Bundle revision (default: data.pyagent.revision).")
@click.pass_context
def bundle(ctx: click.Context, dirs: tuple[str, ...], output: str, revision: str | None) -> None:
    """Compile the policy to a wasm bundle with the pinned `opa build` (used by the embedded engine)."""
    targets = policy_dirs(dirs)
    args = ["build", "-t", "wasm", "-e", ENTRYPOINT, "--ignore", "*_test.rego", "-o", output]
    if revision:
        args += ["--revision", revision]
    run = run_opa([*args, *targets])
    if run.returncode != 0:
        click.echo(run.stderr.rstrip(), err=True)
        ctx.exit(2)
    click.echo(f"wrote {output}", err=True)
    ctx.exit(0)


@policy.command(epilog="\b\nExamples:\n  pyagent policy docs > docs/policy.md")
@dirs_argument
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), help="Write here, not stdout."
)
def docs(dirs: tuple[str, ...], output: str | None) -> None:
    """The bans, organisations, rules, dates and exemptions as a Markdown page."""
    from pathlib import Path

    from pyagent.policy.docs import policy_data, render_markdown

    text = render_markdown(policy_data(policy_dirs(dirs)))
    if output and output != "-":
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
