"""OCI references (``HOST[:PORT]/REPOSITORY:TAG`` or ``...@sha256:HEX``), read as OPA's resolver
reads them: the first path component names the registry."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyagent.errors import InvalidInputError

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]+)?|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?")


@dataclass(frozen=True)
class Reference:
    """``HOST[:PORT]/REPOSITORY`` with a ``:TAG``, an ``@sha256:DIGEST``, or both (the digest wins)."""

    host: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def version(self) -> str:
        return self.digest or self.tag or ""

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        text += f":{self.tag}" if self.tag else ""
        return text + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str, *, what: str) -> Reference:
    """A reference as OPA's resolver reads it: the first path component is the registry host."""
    name, _, digest = text.partition("@")
    if digest and not DIGEST.fullmatch(digest):
        raise InvalidInputError(f"{what}: {text!r}: the digest must be sha256:<64 hex digits>")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash >= 0:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidInputError(f"{what}: {text!r}: {tag!r} is not a valid tag")
    host, _, repository = name.partition("/")
    if not host or not _HOST.fullmatch(host) or not repository:
        raise InvalidInputError(
            f"{what}: {text!r} is not an OCI reference (HOST[:PORT]/REPOSITORY:TAG or @sha256:DIGEST)"
        )
    if not all(_COMPONENT.fullmatch(part) for part in repository.split("/")):
        raise InvalidInputError(f"{what}: {text!r}: {repository!r} is not a valid repository name")
    if tag is None and not digest:
        raise InvalidInputError(f"{what}: {text!r} names no tag and no digest (as OPA, one is required)")
    return Reference(host, repository, tag, digest or None)
