"""The ``pyagent`` command line: one click group, one error boundary."""

from __future__ import annotations

import gc

# Importing the command line (click and what it brings) makes no garbage cycles: the cycle collector
# would only walk the new modules again and again (about 2 ms of a cold check). It is off until they
# are imported, then as it was (main() decides for the command it runs); see the end of the module.
_COLLECTING = gc.isenabled()
gc.disable()

import importlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import IO, Any  # noqa: E402

import click  # noqa: E402

from pyagent import __version__  # noqa: E402
from pyagent.errors import PyagentError  # noqa: E402
from pyagent.termsafe import safe_line  # noqa: E402


@dataclass(frozen=True)
class CommandEntry:
    """Where a subcommand lives, and its one-line summary for `pyagent --help` (which therefore
    imports nothing; a test keeps the summary equal to the command's own)."""

    target: str
    summary: str


#: Commands that decide once and end (the process with them): they run without the cycle collector,
#: see :func:`main`. Every other command turns it back on when it is loaded (``validate`` too: it may
#: read thousands of reports, and the reference validator's errors of an invalid one hold cycles).
ONE_SHOT_COMMANDS = frozenset({"check"})

#: Commands that load :mod:`logging` only when something logs: every module they may log from takes
#: its logger from :func:`pyagent.logsetup.get_logger`.
LOGGING_FREE_COMMANDS = frozenset({"check"})

#: Every subcommand, by name. Explicit, and imported only when the subcommand runs, so that
#: `pyagent check` does not pay for `fleet` or `agent`.
COMMANDS: dict[str, CommandEntry] = {
    "check": CommandEntry("pyagent.cli.check:check", "Decide whether one device complies with the app bans."),
    "validate": CommandEntry(
        "pyagent.cli.validate:validate", "Check device reports against pyagent's device report schema."
    ),
    "collect": CommandEntry(
        "pyagent.cli.collect:collect",
        "Build a device report (JSON), validated against the schema before it is written.",
    ),
    "fleet": CommandEntry(
        "pyagent.cli.fleet:fleet",
        "Decide many devices: `pyagent fleet INVENTORY...` (same as `fleet run`), or `fleet generate`.",
    ),
    "impact": CommandEntry(
        "pyagent.cli.impact:impact",
        "Decide every device with both policy versions and list the devices whose decision changes.",
    ),
    "policy": CommandEntry(
        "pyagent.cli.policy:policy",
        "Test, format, lint and bundle the Rego policies (default: the rego/ and data/ of ./policies, "
        "else of the current folder, else the policy pyagent ships; one of the two alone is an error).",
    ),
    "agent": CommandEntry(
        "pyagent.cli.agent:agent",
        "Run pyagent as an agent: collect this machine, decide, record, upload, on a schedule.",
    ),
    "server": CommandEntry(
        "pyagent.cli.server:server",
        "The control plane: OPA's Bundle, Decision Log and Status APIs, and the fleet API.",
    ),
    "log": CommandEntry(
        "pyagent.cli.log:log", "The agent's tamper-evident decision log (a hash chain in the spool database)."
    ),
}


class OneLineUsageError(click.UsageError):
    """A usage error shown as every other error is: one line saying what, and where to read more
    (click's own is a usage block, a hint and the error, on four lines)."""

    def show(self, file: IO[Any] | None = None) -> None:
        hint = f" (see {self.ctx.command_path} --help)" if self.ctx is not None else ""
        click.echo(f"pyagent: error: {safe_line(self.format_message())}{hint}", file=file, err=file is None)


def _one_line(err: click.UsageError) -> click.UsageError:
    """``err`` as one line; a group run without arguments (its help, as a usage error) as it is."""
    if isinstance(err, OneLineUsageError) or type(err).__name__ == "NoArgsIsHelpError":
        return err
    return OneLineUsageError(err.format_message(), err.ctx)


class PyagentGroup(click.Group):
    """A group whose ``invoke`` is the error boundary: every error becomes one line and an exit code.

    Living in the group (not only in ``main``) means click's test runner sees the same behaviour.
    Subcommands come from :data:`COMMANDS`, imported on first use.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name].summary) for name in self.list_commands(ctx) if name in COMMANDS]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module_name, attribute = COMMANDS[cmd_name].target.split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{COMMANDS[cmd_name].target} is not a click command")
            self.add_command(command, cmd_name)
        if cmd_name not in ONE_SHOT_COMMANDS:
            gc.enable()  # a long-running command (agent, server, fleet...) collects its cycles
        return self.commands.get(cmd_name)

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as err:  # the group's own options
            raise _one_line(err) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as err:  # a command's options, or no such command
            raise _one_line(err) from None
        except PyagentError as err:
            # Messages quote reports, servers and file names: secrets redacted, controls shown escaped.
            _say(
                f"pyagent: error: {safe_line(str(err))}", *(f"  {safe_line(line)}" for line in err.details())
            )
            ctx.exit(err.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            _say("pyagent: interrupted")
            ctx.exit(3)
        except BrokenPipeError:  # the reader of our output went away (`| head`): as a closed stdout, exit 2
            _quiet_stdout()
            _say("pyagent: error: output closed by its reader (broken pipe)")
            ctx.exit(2)
        except Exception as err:  # never a traceback, never "allow": report it and exit 3
            if os.environ.get("PYAGENT_DEBUG"):
                raise
            _say(
                f"pyagent: internal error: {type(err).__name__}: {safe_line(str(err))} "
                "(set PYAGENT_DEBUG=1 for details)"
            )
            ctx.exit(3)


def _say(*lines: str) -> None:
    """``lines`` on stderr; a stderr that cannot be written (closed, full) changes no exit code."""
    try:
        for line in lines:
            click.echo(line, err=True)
    except (OSError, ValueError):  # (ValueError: a closed stream)
        pass


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # (no real stdout: a test runner's)
        pass


@click.group(
    "pyagent",
    cls=PyagentGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples (examples/reports/ is in pyagent's source tree, not in the installed package):
  pyagent check --ownership corporate --mdm-enrolled --org eu-commission   # this machine
  pyagent check examples/reports/eu-commission-personal-enrolled-tiktok.json --at 2023-03-16T09:30:00Z
  pyagent validate examples/reports/*.json
  pyagent policy test
""",
)
@click.version_option(__version__, prog_name="pyagent")
@click.option("-v", "--verbose", count=True, help="Log more to stderr (-v: info, -vv: debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """App bans on managed devices, written as Rego policy and decided by OPA.

    Exit codes: 0 compliant, 1 non-compliant, 2 invalid input or usage, 3 no decision.
    """
    # Errors reach the user once, as the error line; logs add detail only when asked for (-v). A check
    # that logs nothing does not load logging (2.5 ms): where it is not loaded yet, nothing has
    # logged, and the modules a check may log from quiet the root themselves (pyagent.logsetup).
    if verbose or "logging" in sys.modules or ctx.invoked_subcommand not in LOGGING_FREE_COMMANDS:
        log_to_stderr(verbose)


def log_to_stderr(verbose: int, *, warnings: bool = False) -> None:
    """The ``pyagent`` logger quieted (:func:`pyagent.logsetup.quiet_root`) and, with ``verbose``,
    writing to stderr (1: info, 2: debug), secrets redacted and control characters shown escaped;
    ``warnings``: warnings and errors even without ``verbose`` (a server: its log is stderr)."""
    import logging

    from pyagent import logsetup

    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logsetup.log_to_stderr(level if verbose or warnings else None)


# What the import made lives as long as the process: kept out of every later collection (gc.freeze),
# which also spares the collector's first pass, once it is on again, a walk over all of it.
gc.freeze()
if _COLLECTING:
    gc.enable()


def main() -> None:
    """Console entry point.

    A one-shot command (:data:`ONE_SHOT_COMMANDS`) makes no garbage cycles worth collecting, while the
    cycle collector's passes over what it imports and builds (the command line, the wasm runtime, the
    compiled policy) cost a cold ``pyagent check`` about a tenth of its time: the collector is off
    until a command that needs it is loaded, and what exists when the command ends is frozen, so
    that the interpreter's exit does not walk it once more. Objects are still freed by reference
    counting as usual."""
    gc.disable()
    try:
        cli.main(prog_name="pyagent")
    finally:
        gc.freeze()
