"""``pyagent policy``: the policy author's loop on the real ``opa``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pyagent.bundles.constants import MAX_SERIAL, PUBLIC_KEY_ALGORITHMS, TARGETS
from pyagent.cli.options import GivenPath, non_empty
from pyagent.errors import InvalidInputError
from pyagent.policy import datacheck
from pyagent.policy.opa_tool import local_policy, policy_dirs, run_opa
from pyagent.termsafe import safe_line
from pyagent.userfile import replace_file

COVERAGE_MIN = 95.0

dirs_argument = click.argument("dirs", nargs=-1, type=GivenPath(file_okay=False), metavar="[DIR]...")


@click.group()
def policy() -> None:
    """Test, format, lint and bundle the Rego policies (default: the rego/ and data/ of ./policies,
    else of the current folder, else the policy pyagent ships; one of the two alone is an error)."""


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
    """Run `opa test` (each failing test with its expected and actual value) and fail when coverage
    is under the minimum. The policy data is checked first, as `policy lint` checks it: a mistake
    there is exit 2 naming it, not a run of tests failing for a reason they do not say."""
    from pyagent.policy.testreport import run_tests

    targets = policy_dirs(dirs)
    if missing := datacheck.missing_rego(targets):
        raise InvalidInputError(missing)
    problems = datacheck.problems_in_dirs(targets)
    if problems:
        raise datacheck.PolicyDataError(problems)
    missing = datacheck.missing_policy_data(targets)
    if missing:
        raise InvalidInputError(missing)
    try:
        outcome, run = run_tests(targets, run_opa)
    except (ValueError, TypeError, AttributeError):  # not test results: opa could not run the tests
        failed = run_opa(["test", *targets])
        click.echo((failed.stdout + failed.stderr).rstrip(), err=True)
        ctx.exit(1)
    if run.returncode != 0 and not (outcome.passed or outcome.failed or outcome.skipped):
        # no test ran: the policy did not load (a parse error, v0 Rego...), which opa says on stderr
        raise InvalidInputError(f"policy test: the policy does not load: {run.problem()}")
    for failure in outcome.failures:
        click.echo("\n".join(safe_line(line) for line in failure.lines), err=True)
    click.echo(outcome.summary(), err=True)
    if run.returncode != 0 or outcome.failed:
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
    """List (or --write) Rego files that `opa fmt` would change; exit 1 when any would, 2 when a file
    does not parse."""
    targets = policy_dirs(dirs)
    if write:
        _refuse_installed_copy(targets)
    run = run_opa(["fmt", "-w" if write else "--list", *targets])
    changed = [line for line in run.stdout.splitlines() if line.strip()]
    for line in changed:
        click.echo(line)
    if run.returncode != 0:  # opa could not format: a parse error, as `policy test` and `lint` say it
        raise InvalidInputError(f"policy fmt: the policy does not load: {run.problem()}")
    ctx.exit(1 if changed and not write else 0)


def _refuse_installed_copy(targets: list[str]) -> None:
    """``fmt --write`` edits files: never the policy inside an installed package, which the package's
    compiled bundle was built from (an edit there would leave the two apart)."""
    from pyagent.policy import shipped

    if shipped.checkout() is None and [Path(t).resolve() for t in targets] == [
        p.resolve() for p in shipped.policy_sources()
    ]:
        folder = shipped.policy_sources()[0].parent
        raise InvalidInputError(
            f"policy fmt --write: no policy here, and the shipped policy ({folder}) belongs to the installed "
            "package: copy that folder to one of your own and give it (pyagent policy fmt --write DIR)"
        )


@policy.command(epilog="\b\nExamples:\n  pyagent policy lint")
@dirs_argument
@click.pass_context
def lint(ctx: click.Context, dirs: tuple[str, ...]) -> None:
    """`opa fmt` (no diff), `opa check --strict`, a `# METADATA` block on every package and rule, the
    policy data checked and the built-ins the embedded engine provides: exit 1 for what lint alone
    finds (formatting, strict checks, METADATA: checked once the policy loads with its data and
    built-ins right), 2 when the policy does not load (as `policy test` and `policy bundle` say it),
    on a data mistake or a missing built-in."""
    targets = policy_dirs(dirs)
    if missing := datacheck.missing_rego(targets):
        raise InvalidInputError(missing)
    failed = does_not_load = False
    listed = run_opa(["fmt", "--list", *targets])
    for line in listed.stdout.splitlines():
        click.echo(f"not formatted: {line}", err=True)
        failed = True
    checked = run_opa(["check", "--strict", *targets])
    if checked.returncode != 0:
        click.echo(checked.stderr.rstrip() or checked.stdout.rstrip() or checked.problem(), err=True)
        failed = True
        does_not_load = run_opa(["check", *targets]).returncode != 0  # a parse or compile error
    from pyagent.engines.wasm.capabilities import problems_in_dirs as engine_problems  # imports wasmtime

    data_problems = datacheck.problems_in_dirs(targets) + engine_problems(targets)
    if not data_problems and not does_not_load:
        data_problems = [missing] if (missing := datacheck.missing_policy_data(targets)) else []
    for line in data_problems:
        click.echo(safe_line(line), err=True)
    if not data_problems and not does_not_load:  # (a policy that cannot be used is told first)
        from pyagent.policy.metadata import missing_metadata

        for line in missing_metadata(targets):
            click.echo(safe_line(line), err=True)
            failed = True
    click.echo("lint: " + ("problems found" if failed or data_problems else "clean"), err=True)
    ctx.exit(2 if data_problems or does_not_load else 1 if failed else 0)


@policy.command(
    epilog="""\b
Examples:
  pyagent policy docs > build/policy.md
  pyagent policy docs -o build/policy.md
  pyagent policy docs --bundle bundle.tar.gz

\b
Without DIR or --bundle: ./policies when it holds rego/ and data/ (one of them alone is an error),
else the current folder when it holds rego/ and data/, else the policy bundle an installed pyagent
ships (read directly: no opa needed). The data is
checked as `policy lint` checks it: a mistake is exit 2.
""",
)
@dirs_argument
@click.option(
    "--bundle",
    type=GivenPath(dir_okay=False, exists=True),
    default=None,
    help="Document the data of this compiled bundle instead of policy directories (no opa needed).",
)
@click.option(
    "-o",
    "--output",
    type=GivenPath(dir_okay=False),
    default=None,
    callback=non_empty,
    help="Write the page to FILE, not stdout.",
)
def docs(dirs: tuple[str, ...], bundle: str | None, output: str | None) -> None:
    """The policy data (bans, organisations and their rules, the timeline) as a Markdown page."""
    from pyagent.policy import shipped
    from pyagent.policy.docs import bundle_policy_data, policy_data, render_markdown
    from pyagent.policy.index import NO_POLICY_DATA, has_policy_data

    if bundle and dirs:
        raise InvalidInputError("give policy directories or --bundle, not both")
    if not bundle and not dirs and shipped.checkout() is None and not local_policy():
        bundle = str(shipped.packaged_bundle())
    from pyagent.cli.render import writing
    from pyagent.errors import NoDecisionError

    try:
        if bundle:
            _output_apart(output, [], ("--bundle", bundle))
            data = bundle_policy_data(bundle)
        else:
            targets = policy_dirs(dirs)
            _output_apart(output, targets)
            data = policy_data(targets)
            if missing := datacheck.missing_policy_data(targets, data):  # (data read once)
                raise InvalidInputError(missing)
            if not has_policy_data(data):  # (no pyagent policy at all: an empty folder, say)
                raise InvalidInputError(f"{', '.join(targets)}: {NO_POLICY_DATA}")
    except NoDecisionError as err:  # a bundle that does not read: a bad input here, no decision asked
        raise InvalidInputError(str(err)) from err
    page = render_markdown(data)
    if output:
        with writing(f"-o {output}"):
            replace_file(output, page.encode("utf-8"))
        click.echo(f"wrote {output}", err=True)
    else:
        with writing("standard output"):
            click.echo(page, nl=not page.endswith("\n"))


@policy.command(
    epilog="""\b
Examples:
  pyagent policy bundle                 # bundle.tar.gz, revision from data.pyagent.revision
  pyagent policy bundle -o build/bundle.tar.gz --revision 2023.03.15-1
  pyagent policy bundle --signing-key keys/bundle-signing.pem --revision 2023.03.15-1 --serial 42
  pyagent policy bundle --signing-key keys/ec.pem --signing-alg ES256 --scope eu-fleet
  pyagent policy bundle --signing-key keys/bundle-signing.pem --target rego -o build/server.tar.gz

\b
A signed bundle's .manifest carries metadata.pyagent.serial (--serial, default: milliseconds since
the epoch) and built_at; /.signatures.json signs every file, the manifest included. The embedded
engine refuses a serial older than the last one it accepted. Serve one to OPA with
`opa run --server --verification-key PUB.pem [--signing-alg ALG] [--scope S] --bundle FILE`
(--target rego: the server build of opa runs no wasm).
""",
)
@dirs_argument
@click.option(
    "-o",
    "--output",
    default=None,
    type=GivenPath(dir_okay=False),
    callback=non_empty,
    help="Bundle file [default: bundle.tar.gz here, as `opa build`; not the make-built build/bundle.tar.gz].",
)
@click.option(
    "--revision",
    default=None,
    callback=lambda _ctx, param, value: _revision(param, value),
    help="Bundle revision (default: data.pyagent.revision).",
)
@click.option(
    "--signing-key",
    type=GivenPath(dir_okay=False, exists=True),
    default=None,
    help="PEM private key (RSA or EC): sign the bundle, with a build serial for rollback protection.",
)
@click.option(
    "--signing-alg",
    type=click.Choice(PUBLIC_KEY_ALGORITHMS),
    default=None,
    help="JWS algorithm of the signature [default: RS256; ES256/384/512 for EC keys].",
)
@click.option(
    "--serial",
    type=click.IntRange(min=0, max=MAX_SERIAL),
    default=None,
    help="Build serial, compared for rollback protection [default: milliseconds since the epoch].",
)
@click.option("--scope", default=None, help="Signed scope; verifiers must be configured with the same.")
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    default="wasm",
    show_default=True,
    help="wasm for the embedded engine, rego for an OPA server.",
)
@click.pass_context
def bundle(
    ctx: click.Context,
    dirs: tuple[str, ...],
    output: str | None,
    revision: str | None,
    signing_key: str | None,
    signing_alg: str | None,
    serial: int | None,
    scope: str | None,
    target: str,
) -> None:
    """Compile the policy to a bundle with the pinned `opa build` (optionally signed)."""
    targets = policy_dirs(dirs)
    if missing := datacheck.missing_rego(targets):
        raise InvalidInputError(missing)
    checked = datacheck.check_dirs(targets)  # a data mistake: exit 2 with file, line and path
    revision = revision or datacheck.revision_of(checked)
    if output == "-":  # (elsewhere "-" is standard output; a bundle is a file others are given)
        raise click.UsageError("-o -: a bundle is written to a file; give its path")
    output = output or default_output()
    _output_apart(output, targets, ("--signing-key", signing_key))
    if signing_key is None:
        unused = [
            f"--{n}" for n, v in (("signing-alg", signing_alg), ("serial", serial), ("scope", scope)) if v
        ]
        if unused:
            raise click.UsageError(f"{', '.join(unused)} needs --signing-key")
        from pyagent.bundles.build import build_unsigned_bundle

        build_unsigned_bundle(targets, output, revision=revision, target=target)
        click.echo(f"wrote {output}", err=True)
        ctx.exit(0)
    from pyagent.bundles.build import build_signed_bundle

    algorithm = signing_alg or _default_algorithm(signing_key)
    built = build_signed_bundle(
        targets,
        output,
        signing_key=signing_key,
        algorithm=algorithm,
        revision=revision,
        serial=serial,
        scope=scope,
        target=target,
    )
    scoped = f", scope {built.scope}" if built.scope else ""
    click.echo(
        f"wrote {output} (signed {built.algorithm}, serial {built.serial}, "
        f"revision {built.revision or '-'}{scoped})",
        err=True,
    )
    ctx.exit(0)


def default_output() -> str:
    """``bundle.tar.gz`` in the working directory, as ``opa build``; refused when that is the bundle
    ``make policy`` built (``check`` decides with it): name it with ``-o`` to replace it."""
    from pyagent.policy import shipped

    made = shipped.checkout_bundle()
    if made is not None and Path("bundle.tar.gz").resolve() == made.resolve():
        raise click.UsageError(f"{made} is the make-built bundle; give -o to replace it")
    return "bundle.tar.gz"


def _revision(param: click.Parameter, value: str | None) -> str | None:
    """A revision is a name decisions carry and dashboards show: printable, one line, not blank."""
    if value is not None and (not value.strip() or len(value) > 200 or not value.isprintable()):
        raise click.BadParameter("must be one line of printable characters, at most 200", param=param)
    return value


def _default_algorithm(signing_key: str) -> str:
    """RS256 (OPA's default) for RSA keys, the curve's ES algorithm for EC keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from pyagent.bundles.jws import read_pem

    try:
        key = serialization.load_pem_private_key(read_pem(signing_key, what="signing key"), password=None)
    except (InvalidInputError, ValueError, TypeError):
        return "RS256"  # build_signed_bundle reports the unreadable key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp384r1": "ES384", "secp521r1": "ES512"}.get(key.curve.name, "ES256")
    return "RS256"


#: The files opa reads in a policy directory: an output among them would become part of the policy.
_POLICY_FILES = (".rego", ".json", ".yaml", ".yml")


def _output_apart(output: str | None, dirs: list[str], *files: tuple[str, str | None]) -> None:
    """Refuse (exit 2) an ``-o`` that is one of ``files`` (``--bundle``, ``--signing-key``), or a file
    opa would read in a policy directory: writing it would overwrite what the user gave."""
    from pyagent.cli.render import check_output_apart

    check_output_apart(output, [], options=files)
    if not output or output == "-" or Path(output).suffix.lower() not in _POLICY_FILES:
        return
    for directory in dirs:
        if Path(output).resolve().is_relative_to(Path(directory).resolve()):
            raise InvalidInputError(
                f"-o {output} is inside the policy directory {directory}: opa would read it as part of the "
                "policy, or it would overwrite a file there; write it elsewhere"
            )
