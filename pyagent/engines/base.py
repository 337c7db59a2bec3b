"""The engine interface: something that evaluates the ban policy for one input."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pyagent.errors import InvalidInputError, NoDecisionError

#: The policy's entrypoint package, as a path (OPA's Data API and `opa build -e`).
ENTRYPOINT = "pyagent/decision"


class EngineName(enum.StrEnum):
    """Engines a user can choose with ``--engine``."""

    OPA = "opa"
    EMBEDDED = "embedded"


@dataclass(frozen=True)
class EngineSettings:
    """Everything the engines need, as the user gave it (flags, environment)."""

    engine: str = "auto"
    opa_url: str | None = None
    opa_token: str | None = None
    opa_ca: str | None = None
    opa_timeout: float = 5.0
    opa_deadline: float = 10.0
    opa_retries: int = 2
    fallback_embedded: bool = False
    max_policy_age: float | None = None
    bundle: str | None = None
    verification_key: str | None = None
    verification_alg: str | None = None
    verification_key_id: str | None = None
    bundle_scope: str | None = None
    state_dir: str | None = None
    bundle_fallback: bool = False
    data_files: Sequence[str] = field(default_factory=tuple)
    expect_revision: str | None = None

    def __post_init__(self) -> None:
        if self.max_policy_age is not None and not self.fallback_embedded:  # (it was ignored, said nothing)
            raise InvalidInputError(
                "--max-policy-age bounds the bundle --fallback-embedded decides with: give both, or neither"
            )


class EngineError(NoDecisionError):
    """The engine could not produce a decision (exit code 3)."""


class Engine(ABC):
    """Evaluates ``data.pyagent.decision`` for one policy input.

    ``evaluate`` returns the policy's raw result document. It never returns a partial or
    default result: when no result can be had it raises :class:`EngineError`.
    """

    name: ClassVar[EngineName]
    #: The engine that produced the last result (differs from ``name`` only for a fallback).
    decided_by: EngineName
    #: Why the last result came from a fallback engine, if it did.
    fallback_reason: str | None = None
    #: The decision id the engine gave its last result (an OPA server with decision logging does), so
    #: that the decision and the engine's own log name the same decision.
    last_decision_id: str | None = None
    #: The bundles the last result was made with, as OPA's decision log names them (``{name:
    #: {"revision": ...}}``); None when the engine cannot tell.
    last_bundles: dict[str, dict[str, str]] | None = None
    #: When set, an answer from any other policy revision is refused (``--expect-revision``).
    expected_revision: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls.decided_by = cls.name

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: EngineSettings) -> Engine:
        """Build the engine from the user's settings; bad settings raise InvalidInputError."""

    @abstractmethod
    def evaluate(self, policy_input: Mapping[str, Any]) -> dict[str, Any]:
        """The policy result for ``policy_input`` (``{"at": ..., "report": ...}``)."""

    @property
    def revision_suffix(self) -> str:
        """Appended to the policy revision when the engine's data differs from the bundle's."""
        return ""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (connections, wasm instances)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
