"""Issue 16, item 2 (decision queries): every byte from the OPA URL is bounded.

- a 302/307 from the OPA URL to a real OPA that would allow is refused, never followed;
- a body fed one byte a second is cut at ``--opa-deadline``, which covers connect, headers and body;
- a huge answer (a declared gigabyte, or gigabytes of JSON whitespace with no length) is refused
  while it arrives, with the pyagent process's peak RSS under 128 MB.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.attack.conftest import run_pyagent, run_pyagent_measured
from tests.helpers import domain
from tests.helpers.fault_proxy import fault_proxy
from tests.helpers.fault_server import Fault, fault_server
from tests.helpers.opa_server import RunningOpa

AT = "2023-03-16T09:30:00Z"
BANNED = domain.make_report("eu-commission", "android", "corporate", True, ["com.zhiliaoapp.musically"])
CLEAN = domain.make_report("eu-commission", "android", "corporate", True, [])
PATH = "/v1/data/pyagent/decision"
MB = 1024 * 1024
#: The decision answer's memory goal (issue 16) for the whole pyagent process.
RSS_BOUND = 128 * MB


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_an_allowing_opa_is_refused_not_followed(
    opa_server: RunningOpa, write_report: Any, status: int
) -> None:
    report = write_report(CLEAN)
    # The redirect's target: the real OPA (through a counting proxy) that answers this device "allow".
    with fault_proxy(opa_server.url, []) as target:
        control = run_pyagent("check", report, "--at", AT, "--opa-url", target.url)
        assert control.code == 0, control.stderr
        asked = target.requests
        location = f"{target.url}{PATH}"
        with fault_server(Fault(status=status, body=b"", headers=(("Location", location),))) as url:
            run = run_pyagent("check", report, "--at", AT, "--opa-url", url)
        assert target.requests == asked  # nothing went to the redirect's target
    assert (run.code, run.stderr.strip()) == (
        3,
        f"pyagent: error: OPA at {url}: HTTP {status} redirect to '{location}', not followed "
        "(point --opa-url at the OPA server itself)",
    )
    assert run.stdout == ""


def test_a_drip_fed_body_is_cut_at_the_deadline(write_report: Any) -> None:
    """Headers at once, then one byte a second: the deadline (4 s) ends the decision, not the bytes."""
    body = b'{"result": {"allow": true' + b" " * 100 + b"}}"
    with fault_server(Fault(status=200, body=body, drip=1.0)) as url:
        run = run_pyagent("check", write_report(BANNED), "--at", AT, "--opa-url", url, "--opa-deadline", "4")
    assert (run.code, run.stderr.strip()) == (
        3,
        f"pyagent: error: OPA at {url}: no answer within 4 s (gave up after 1 attempt, deadline 4 s)",
    )
    assert 4 <= run.seconds < 4 + 3  # the deadline, plus the interpreter's start


def test_slow_headers_are_cut_at_the_deadline_too(write_report: Any) -> None:
    with fault_server(Fault(status=200, body=b"{}", delay=30)) as url:
        run = run_pyagent(
            "check", write_report(BANNED), "--at", AT, "--opa-url", url, "--opa-deadline", "2",
            "--opa-timeout", "10",
        )  # fmt: skip
    assert (run.code, run.stderr.strip()) == (
        3,
        f"pyagent: error: OPA at {url}: no answer within 2 s (gave up after 1 attempt, deadline 2 s)",
    )
    assert run.seconds < 2 + 3


def test_a_declared_gigabyte_is_refused_before_it_is_read(write_report: Any) -> None:
    with fault_server(Fault(status=200, body=b"{}", declared_length=2**30)) as url:
        run = run_pyagent_measured("check", write_report(BANNED), "--at", AT, "--opa-url", url)
    assert (run.code, run.stderr.strip()) == (
        3,
        f"pyagent: error: OPA at {url}: the answer is {2**30} bytes, over the limit of {16 * MB}",
    )
    assert run.seconds < 10
    assert 0 < run.peak_rss < RSS_BOUND


def test_gigabytes_of_whitespace_are_refused_while_they_arrive(write_report: Any) -> None:
    """A 200 without a length, then JSON whitespace: refused at 16 MiB, memory flat."""
    with fault_server(Fault(status=200, body=b'{"result": ', stream=2 * 2**30)) as url:
        run = run_pyagent_measured("check", write_report(BANNED), "--at", AT, "--opa-url", url)
    assert (run.code, run.stderr.strip()) == (
        3,
        f"pyagent: error: OPA at {url}: the answer is over the limit of {16 * MB} bytes; refused",
    )
    assert run.seconds < 15
    assert 0 < run.peak_rss < RSS_BOUND, run.peak_rss
