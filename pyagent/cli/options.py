"""Options shared by commands: those that decide (check, fleet, impact), and those that read the
agent's config (agent, collect, log)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pyagent.engines.base import EngineName
from pyagent.errors import InvalidInputError

if TYPE_CHECKING:
    from pyagent.engines.base import EngineSettings

F = TypeVar("F", bound=Callable[..., Any])

#: ``--engine``: ``auto`` (OPA when a URL is given, else embedded), then every engine of the registry.
ENGINE_CHOICES = ("auto", *(engine.value for engine in EngineName))


class Finite(click.FloatRange):
    """A ``FloatRange`` that also refuses ``nan`` (which passes every comparison: ``--max-policy-age nan``
    turned the guard off) and infinities (``--opa-timeout inf`` overflowed a clock)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class GivenPath(click.Path):
    """A ``click.Path`` that refuses the empty string: ``""`` is the working directory to the file
    system, so ``check ""`` said ": report is a directory" and ``policy docs ""`` read every folder
    under it, a virtual environment's included; and a ``~`` the shell left quoted (``--state-dir
    '~/state'``), which would be a folder named ``~`` in the working directory."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from pyagent.config.check import unexpanded_part

        if isinstance(value, str) and not value:
            self.fail("must not be empty", param, ctx)
        if isinstance(value, str) and unexpanded_part(value) == "'~'":
            self.fail(
                f"{value!r} must be a full path: '~' is not expanded (the shell left it quoted)", param, ctx
            )
        return super().convert(value, param, ctx)


#: The longest wait any option takes, in seconds (a year: past it a clock overflows, and no wait is meant).
MAX_SECONDS = 365 * 24 * 3600.0


def non_empty(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: an option given as an empty string is a usage error naming it."""
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty", param=param)
    return value


def identifier(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback for an id others match on (a device's, which exemptions name): not empty, no
    white space at either end and no invisible character, which a shell's quoting slips in and no
    exemption would match."""
    value = non_empty(ctx, param, value)
    if value is None:
        return None
    from pyagent.termsafe import unmatchable

    if (reason := unmatchable(value)) is not None:
        raise click.BadParameter(f"{value!r} {reason}", param=param)
    return value


def at_option(f: F) -> F:
    return click.option(
        "--at",
        "at",
        metavar="TIME",
        help="Evaluate as of this RFC 3339 instant (default: now). Decisions replay exactly.",
    )(f)


def org_option(f: F) -> F:
    return click.option(
        "--org",
        "org",
        metavar="ORG",
        callback=non_empty,
        help="The device's organisation; wins over the report's.",
    )(f)


def engine_options(f: F) -> F:
    options = [
        click.option(
            "--engine",
            type=click.Choice(ENGINE_CHOICES),
            default="auto",
            show_default=True,
            help="opa: an OPA server; embedded: in-process; auto: opa when a URL is set.",
        ),
        click.option(
            "--opa-url",
            envvar="PYAGENT_OPA_URL",
            metavar="URL",
            callback=non_empty,  # (an empty PYAGENT_OPA_URL is unset, as click reads the environment)
            help="OPA server base URL, http(s)://host[:port][/prefix] (a prefix: the path a reverse "
            "proxy serves OPA under), or unix:///path for an OPA on this machine's Unix socket "
            "(env PYAGENT_OPA_URL).",
        ),
        click.option(
            "--opa-token",
            envvar="PYAGENT_OPA_TOKEN",
            metavar="TOKEN",
            callback=non_empty,
            help="Bearer token for the OPA server (env PYAGENT_OPA_TOKEN).",
        ),
        click.option(
            "--opa-ca",
            envvar="PYAGENT_OPA_CA",
            type=GivenPath(dir_okay=False),
            callback=non_empty,
            help="CA certificate that signs the OPA server's TLS certificate.",
        ),
        click.option(
            "--opa-timeout",
            type=Finite(min=0.01, max=MAX_SECONDS),
            default=5.0,
            show_default=True,
            help="Seconds to wait for the OPA server.",
        ),
        click.option(
            "--opa-deadline",
            type=Finite(min=0.01, max=MAX_SECONDS),
            default=10.0,
            show_default=True,
            help="Seconds for one decision from the OPA server, retries included.",
        ),
        click.option(
            "--opa-retries",
            type=click.IntRange(min=0, max=10),
            default=2,
            show_default=True,
            help="Retries on connection errors and 5xx, with exponential backoff and jitter.",
        ),
        click.option(
            "--fallback-embedded/--no-fallback-embedded",
            default=False,
            show_default=True,
            help="When the OPA server gives no decision, decide with the embedded engine and the last "
            "verified bundle (default: fail closed, exit 3).",
        ),
        click.option(
            "--max-policy-age",
            type=Finite(min=0, max=100 * MAX_SECONDS),
            default=None,
            metavar="SECONDS",
            help="With --fallback-embedded: a bundle built longer ago than this fails closed too.",
        ),
        click.option(
            "--bundle",
            envvar="PYAGENT_BUNDLE",
            type=GivenPath(dir_okay=False),
            help="Compiled policy bundle for the embedded engine (env PYAGENT_BUNDLE).",
        ),
        click.option(
            "--verification-key",
            envvar="PYAGENT_BUNDLE_VERIFICATION_KEY",
            type=GivenPath(dir_okay=False),
            help="Public key (PEM) that signed bundles must verify against; unsigned bundles are refused.",
        ),
        click.option(
            "--verification-alg",
            envvar="PYAGENT_BUNDLE_VERIFICATION_ALG",
            help="Signature algorithm (RS256, PS256, ES256, ...; default from the key).",
        ),
        click.option(
            "--verification-key-id", envvar="PYAGENT_BUNDLE_VERIFICATION_KEY_ID", help="Expected key id."
        ),
        click.option("--bundle-scope", envvar="PYAGENT_BUNDLE_SCOPE", help="Expected signature scope."),
        click.option(
            "--state-dir",
            envvar="PYAGENT_STATE_DIR",
            type=GivenPath(file_okay=False),
            help="Where the last accepted bundle and its serial are kept (env PYAGENT_STATE_DIR; for "
            "`agent run` also the spool, and it wins over agent.state_dir; default /var/lib/pyagent as "
            "root, else $XDG_STATE_HOME/pyagent).",
        ),
        click.option(
            "--bundle-fallback/--no-bundle-fallback",
            envvar="PYAGENT_BUNDLE_FALLBACK",
            default=False,
            help="When a bundle is refused, decide with the last accepted one instead of failing.",
        ),
        click.option(
            "--expect-revision",
            envvar="PYAGENT_EXPECT_REVISION",
            metavar="REVISION",
            callback=non_empty,
            help="Refuse (exit 3) a decision from any other policy revision (env PYAGENT_EXPECT_REVISION).",
        ),
        click.option(
            "--data",
            "data_files",
            multiple=True,
            type=GivenPath(dir_okay=False),
            metavar="FILE",
            help='JSON document merged into the policy data, e.g. {"pyagent": {"exemptions": {...}}}. '
            "Repeatable.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def device_fact_options(f: F) -> F:
    """Facts the collectors cannot see; they win over the agent config (device.* keys)."""
    options = [
        click.option(
            "--ownership", type=click.Choice(["corporate", "personal"]), help="config: device.ownership"
        ),
        click.option("--mdm-enrolled/--no-mdm-enrolled", default=None, help="config: device.mdm_enrolled"),
        click.option("--mdm-provider", callback=non_empty, help="config: device.mdm_provider"),
        click.option(
            "--device-id",
            callback=identifier,
            help="config: device.id (this machine: its host name by default)",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def agent_config_option(f: F) -> F:
    """``--config``: the agent's config file (``agent``, ``collect``, ``log``)."""
    return click.option(
        "--config",
        "config_path",
        type=GivenPath(dir_okay=False),
        help="Agent config: agent.toml, or an OPA config.yaml "
        "(default: /etc/pyagent/agent.toml, env PYAGENT_CONFIG).",
    )(f)


def text_or_json_option(f: F) -> F:
    """``--format text|json``: for people (stderr or stdout, as the command says), or one JSON document."""
    return click.option(
        "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
    )(f)


def output_option(f: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=GivenPath(dir_okay=False, writable=True, allow_dash=True),
        callback=non_empty,  # ("" wrote to standard output)
        help="Write the output to this file instead of stdout.",
    )(f)


def engine_inputs(flags: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """The files and directories the engine options name (:func:`engine_options`), by option: what an
    ``-o`` must not overwrite, nor write into (:func:`~pyagent.cli.render.check_output_apart`)."""
    from pyagent.policy import shipped

    named = [
        (option, flags.get(key))
        for option, key in (
            ("--bundle", "bundle"),
            ("--verification-key", "verification_key"),
            ("--opa-ca", "opa_ca"),
            ("--state-dir", "state_dir"),
        )
    ]
    if not flags.get("bundle"):  # the bundle decided with when none is named (a checkout's build/)
        named.append(("the shipped policy bundle", str(shipped.default_bundle())))
    return named + [("--data", path) for path in flags.get("data_files") or ()]


def check_bundle_given(ctx: click.Context, settings: EngineSettings) -> None:
    """A bundle the user named (``--bundle`` or env ``PYAGENT_BUNDLE``) that the embedded engine would
    decide with but that is not a file: a usage error (exit 2) naming it, before anything is decided.
    (No bundle named and none built is exit 3, "no compiled policy bundle": nothing to decide with.)"""
    from pyagent.engines.base import EngineName
    from pyagent.engines.select import resolve

    try:
        if not settings.bundle or Path(settings.bundle).is_file():
            return
        problem = "no such file"
    except OSError as err:  # a directory on the way that this user may not enter
        problem = f"cannot reach it: {err.strerror or err}"
    if resolve(settings) is not EngineName.EMBEDDED and not settings.fallback_embedded:
        return  # an OPA server decides: the bundle is not read
    named = (
        "PYAGENT_BUNDLE"
        if ctx.get_parameter_source("bundle") is click.core.ParameterSource.ENVIRONMENT
        else "--bundle"
    )
    raise InvalidInputError(
        f"{named} {settings.bundle}: {problem} (the compiled policy bundle to decide with)"
    )


#: Flags of an OPA server's (``--engine opa``): unused when the embedded engine alone decides.
_OPA_ONLY = (
    "opa_url",
    "opa_token",
    "opa_ca",
    "opa_timeout",
    "opa_deadline",
    "opa_retries",
    "fallback_embedded",
)
#: Flags that say how to verify a bundle's signature: unused without a key to verify it with.
_VERIFY_ONLY = ("verification_alg", "verification_key_id", "bundle_scope", "bundle_fallback")


def check_flags_used(ctx: click.Context, settings: EngineSettings) -> None:
    """A flag given on the command line that this run would not use is a usage error (exit 2): an OPA
    server's with ``--engine embedded``, a signature's without ``--verification-key``. Dropped unsaid,
    ``--opa-ca junk`` passed, and ``--verification-alg`` unchecked. (Set in the environment, they may be
    meant for other runs: not refused.)"""
    from pyagent.engines.select import resolve

    def given(name: str) -> str | None:
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.COMMANDLINE:
            return None
        if ctx.params.get(name) is False:  # (--no-fallback-embedded: a feature turned off, as it is)
            return None
        return next(p.opts[0] for p in ctx.command.params if p.name == name)

    opa_flag = next(filter(None, map(given, _OPA_ONLY)), None)
    if opa_flag and resolve(settings) is EngineName.EMBEDDED:
        raise InvalidInputError(
            f"{opa_flag} is for an OPA server (--engine opa); the embedded engine decides"
        )
    verify_flag = next(filter(None, map(given, _VERIFY_ONLY)), None)
    if verify_flag and not settings.verification_key:
        raise InvalidInputError(f"{verify_flag} needs --verification-key (the key that verifies the bundle)")


@dataclass(frozen=True)
class ManyDevices:
    """What ``fleet`` and ``impact`` are asked: the inventories, and how to decide and write them."""

    inventories: tuple[str, ...]
    org: str | None
    at: str | None
    fmt: str
    jobs: int | None
    output: str | None
