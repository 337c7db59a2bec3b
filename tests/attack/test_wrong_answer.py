"""Issue 16, item 1: an answer about another question never decides.

A man-in-the-middle between the agent and its OPA asks the real OPA about another device (one that
complies) or another instant (before the ban), and passes the real, well-formed ``allow: true`` on.
The policy echoes what it decided about, so the agent refuses the answer: exit 3, naming the
mismatch, on both engines' common check. An expected revision refuses any other policy revision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pyagent.decide import check_answer
from pyagent.engines.base import Engine, EngineError, EngineName, EngineSettings
from tests.attack.conftest import run_pyagent
from tests.helpers import domain
from tests.helpers.fault_proxy import ProxyFault, fault_proxy
from tests.helpers.opa_server import RunningOpa
from tests.helpers.policy_data import shipped_revision

AT = "2023-03-16T09:30:00Z"
BEFORE_BAN = "2023-03-01T00:00:00Z"
SHIPPED_REVISION = shipped_revision()
BANNED = domain.make_report(
    "eu-commission", "android", "corporate", True, ["com.zhiliaoapp.musically"], device_id="attacked-phone"
)
CLEAN = domain.make_report("eu-commission", "android", "corporate", True, [], device_id="clean-phone")


def test_the_honest_path_through_the_proxy_denies(opa_server: RunningOpa, write_report: Any) -> None:
    """The control: the same proxy, forwarding untouched, gives the real verdict (exit 1)."""
    with fault_proxy(opa_server.url, []) as proxy:
        run = run_pyagent(
            "check", write_report(BANNED), "--at", AT, "--engine", "opa", "--opa-url", proxy.url
        )
    assert run.code == 1, run.stderr
    assert proxy.forwarded == 1


@pytest.mark.parametrize(
    ("other_input", "message"),
    [
        (
            {"at": AT, "report": CLEAN},
            "pyagent: error: opa engine: the answer is about device 'clean-phone', not 'attacked-phone'; "
            "refused",
        ),
        (
            {"at": BEFORE_BAN, "report": BANNED},
            f"pyagent: error: opa engine: the answer is about the instant '{BEFORE_BAN}', not '{AT}'; "
            "refused",
        ),
    ],
    ids=["another-device", "another-instant"],
)
def test_an_allow_about_another_question_is_refused(
    opa_server: RunningOpa, write_report: Any, other_input: dict[str, Any], message: str
) -> None:
    with fault_proxy(opa_server.url, [ProxyFault("ask_other", other_input=other_input)]) as proxy:
        run = run_pyagent(
            "check", write_report(BANNED), "--at", AT, "--engine", "opa", "--opa-url", proxy.url,
            "--opa-retries", "0",
        )  # fmt: skip
    assert proxy.forwarded == 1  # the real OPA answered (allow: true), about the other question
    assert (run.code, run.stderr.strip()) == (3, message)
    assert run.stdout == ""
    assert run.seconds < 10


@pytest.mark.parametrize("engine", ["opa", "embedded"])
def test_another_revision_than_the_expected_one_is_refused(
    opa_server: RunningOpa, policy_bundle: object, write_report: Any, engine: str
) -> None:
    where = ["--engine", "opa", "--opa-url", opa_server.url] if engine == "opa" else ["--engine", "embedded"]
    report = write_report(BANNED)
    run = run_pyagent("check", report, "--at", AT, *where, "--expect-revision", "2024.01.01-1")
    assert (run.code, run.stderr.strip()) == (
        3,
        f"pyagent: error: {engine} engine: the answer is from policy revision '{SHIPPED_REVISION}', "
        "not the expected '2024.01.01-1'; refused",
    )
    assert run.seconds < 20
    same = run_pyagent("check", report, "--at", AT, *where, "--expect-revision", SHIPPED_REVISION)
    assert same.code == 1, same.stderr


class _Answers(Engine):
    """An engine that answers what it is told to: for the common check's own cases."""

    name = EngineName.EMBEDDED

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> Engine:
        raise NotImplementedError

    def evaluate(self, policy_input: Any) -> dict[str, Any]:
        return self.answer


ANSWER = {"device_id": "d", "evaluated_at": AT, "policy_revision": "r1"}


@pytest.mark.parametrize(
    ("change", "expected", "message"),
    [
        (lambda a: a.pop("device_id"), None, "the answer is about device (none), not 'd'; refused"),
        (lambda a: a.update(device_id=["d"]), None, "the answer is about device [\"d\"], not 'd'; refused"),
        (
            lambda a: a.pop("evaluated_at"),
            None,
            f"the answer is about the instant (none), not '{AT}'; refused",
        ),
        (
            lambda a: a.update(evaluated_at="2023-03-16T10:30:00+01:00"),
            None,
            f"the answer is about the instant '2023-03-16T10:30:00+01:00', not '{AT}'; refused",
        ),
        (
            lambda a: a.pop("policy_revision"),
            "r1",
            "the answer is from policy revision (none), not the expected 'r1'",
        ),
    ],
    ids=["no-device", "device-not-a-string", "no-instant", "same-instant-other-spelling", "no-revision"],
)
def test_the_common_check_refuses_anything_but_the_question(
    change: Callable[[dict[str, Any]], object], expected: str | None, message: str
) -> None:
    answer = dict(ANSWER)
    change(answer)
    engine = _Answers(answer)
    engine.expected_revision = expected
    with pytest.raises(EngineError) as caught:
        check_answer(answer, engine, device_id="d", at=AT)
    assert str(caught.value).startswith(f"embedded engine: {message}")
    assert caught.value.exit_code == 3
    engine.expected_revision = "r1"
    check_answer(ANSWER, engine, device_id="d", at=AT)  # the question's own answer passes
