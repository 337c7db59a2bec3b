"""Writing a decision in the chosen format to the right place."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from pyagent.errors import InvalidInputError, NoDecisionError
from pyagent.outputs.registry import OutputFormatName, get_format
from pyagent.termsafe import safe_line
from pyagent.userfile import replace_file


@contextlib.contextmanager
def writing(where: str) -> Iterator[None]:
    """A write to ``where`` (``-o FILE``, standard output) that fails (a full disk behind a redirection)
    is the user's to fix, exit 2 naming where, not a crash; a reader that went away (``| head``) stays a
    ``BrokenPipeError`` for the CLI's boundary."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as err:
        raise InvalidInputError(f"{where}: cannot write: {err.strerror or err}") from err


def emit(decision: Mapping[str, Any], *, fmt: str, output: str | None, source: str) -> None:
    """Text to stderr (or ``-o``), machine formats to stdout (or ``-o``)."""
    name = OutputFormatName(fmt)
    is_text = name is OutputFormatName.TEXT
    color = is_text and output is None and sys.stderr is not None and sys.stderr.isatty()
    formatter = get_format(name, color=color)
    _deliver(formatter.render(decision, source=source), output, err=is_text)


def check_output_apart(
    output: str | None, inputs: Sequence[str | None], *, options: Sequence[tuple[str, str | None]] = ()
) -> None:
    """Refuse (exit 2) an ``-o`` file that is one of the ``inputs`` (writing would overwrite it), or
    that lies in an input directory (it would be read as a report, or overwrite one, since ``-o`` is
    opened before the inventory is read); likewise for the files and directories named by ``options``
    (``("--bundle", path)``: the policy, its key, its data, the state directory)."""
    if not output or output == "-":
        return
    target = Path(output)
    for option, given in [*((None, given) for given in inputs), *options]:
        if not given or given == "-" or not Path(given).exists():
            continue
        if target.exists() and target.samefile(given):
            named = f"an input ({given})" if option is None else f"{option} {given}"
            raise InvalidInputError(f"-o {output} is also {named}: writing would overwrite it")
        if Path(given).is_dir() and target.resolve().is_relative_to(Path(given).resolve()):
            raise InvalidInputError(
                f"-o {output} is inside the inventory directory {given}: it would be read as a report, "
                "or overwrite one; write it elsewhere"
                if option is None
                else f"-o {output} is inside {option} {given}: it would be read as part of it, or overwrite "
                "a file there; write it elsewhere"
            )


@contextlib.contextmanager
def results_or_nothing(output: str | None) -> Iterator[None]:
    """The run of a command that writes its results to ``output`` (``-o FILE``, checked apart from its
    inputs first): when it fails before its results are written (an error, exit 2 or 3, or an
    interrupt), an earlier run's file there is emptied (:func:`clear_output`) rather than left to be
    read as this run's. A run that wrote its results ends by its exit code (0, 1, or 3 when they
    say no device could be decided), and they stay."""
    try:
        yield
    except click.exceptions.Exit:
        raise
    except BaseException:
        clear_output(output)
        raise


def clear_output(output: str | None) -> None:
    """No results where this run's would go (``-o FILE``) when it has none: an earlier run's results
    left there would read as this run's (a passing JUnit file after a refused report)."""
    if output and output != "-" and Path(output).is_file():
        with contextlib.suppress(OSError):
            Path(output).write_text("", encoding="utf-8")


def _deliver(rendered: str, output: str | None, *, err: bool) -> None:
    """``rendered`` to ``-o`` (a file), else to stdout (or stderr with ``err``)."""
    if output and output != "-":
        with writing(f"-o {output}"):
            replace_file(output, rendered.encode("utf-8"))
        return
    stream = f"standard {'error' if err else 'output'}"
    if (sys.stderr if err else sys.stdout) is None:  # (closed: ``>&-``) said, never dropped unsaid
        raise InvalidInputError(f"{stream}: cannot write: it is closed")
    with writing(stream):
        click.echo(rendered, nl=not rendered.endswith("\n"), err=err)


def text_report(text: str) -> None:
    """A command's text report on stderr, where people read it: a closed stderr (``2>&-``) is an error
    (exit 2), as a closed stdout is for the machine formats, not a report dropped unsaid."""
    _deliver(text, None, err=True)


def emit_refusal(err: InvalidInputError, *, fmt: str, output: str | None, source: str) -> None:
    """What ``fmt`` says of a refused input (:meth:`OutputFormat.render_refusal`), where its output
    goes; nothing for a format that says nothing more than the error on stderr."""
    from pyagent.report.load import ReportInvalidError  # (loaded by then: the report was read with it)

    # a report that does not match the schema: each of its problems; anything else: the refusal
    issues = err.issues if isinstance(err, ReportInvalidError) else []
    problems = [str(issue) for issue in issues] or [err.message]
    _emit_problems(problems, fmt=fmt, output=output, source=source)


def emit_no_decision(err: NoDecisionError, *, fmt: str, output: str | None, source: str) -> None:
    """What ``fmt`` says of a run no engine decided (exit 3), as :func:`emit_refusal` (a GitHub run
    shows an annotation, not only a red step); otherwise an earlier run's output is cleared."""
    _emit_problems([safe_line(str(err))], fmt=fmt, output=output, source=source, title="no decision")


def _emit_problems(problems: list[str], *, fmt: str, output: str | None, source: str, **title: str) -> None:
    rendered = get_format(OutputFormatName(fmt), color=False).render_refusal(problems, source=source, **title)
    if rendered is None:
        clear_output(output)
        return
    with contextlib.suppress(InvalidInputError):  # unwritable -o: the error itself follows, on stderr
        _deliver(rendered, output, err=False)


def summary_line(decision: Mapping[str, Any]) -> str:
    """One line for a person, on stderr, next to machine output; what came from the report (device id,
    organisation) escaped, so that it can neither move the cursor nor start another line."""
    verdict = "COMPLIANT" if decision["allow"] else "NON-COMPLIANT"
    counts = ", ".join(
        f"{len(decision[key])} {name if len(decision[key]) == 1 else key}"
        for key, name in (("violations", "violation"), ("warnings", "warning"), ("exempted", "exempted"))
        if decision[key]
    )
    tail = f": {counts}" if counts else ""
    if decision.get("fallback_reason"):
        tail += f" (decided by the embedded fallback: {decision['fallback_reason']})"
    return safe_line(f"pyagent: {verdict}: {decision['device_id']} ({decision['organization']}){tail}")
