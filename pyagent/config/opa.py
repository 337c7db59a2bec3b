"""OPA's configuration tables, with OPA's key names and meaning (OPA docs: Configuration).

``services``, ``bundles``, ``keys``, ``decision_logs``, ``status`` and ``labels``, as OPA reads them from
its ``config.yaml``, are read here from ``agent.toml`` (``[services.NAME]``, ...) or from that same
``config.yaml``, so one file can configure an OPA and an agent alike. The other keys of OPA's config
are sorted out before (:mod:`pyagent.config.opakeys`: ignored and reported, or refused with a reason);
secrets are files (``credentials.bearer.token_path``), and a literal ``credentials.bearer.token`` is
refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyagent.config.check import Section
from pyagent.config.opafields import (
    DEFAULT_BUNDLE_SIZE_LIMIT,
    delays,
    headers,
    scheme,
    size_limit,
)
from pyagent.config.opafields import partition as partition_of
from pyagent.errors import InvalidInputError

if TYPE_CHECKING:
    from pyagent.bundles.jws import VerificationKey

DEFAULT_RESPONSE_TIMEOUT = 10.0
DEFAULT_UPLOAD_LIMIT = 32768
LONG_POLL_MAX = 3600


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    token_path: Path | None = None
    scheme: str = "Bearer"
    ca_cert: Path | None = None
    system_ca: bool = False
    """``tls.system_ca_required``: the system's CAs are trusted besides ``ca_cert`` (OPA's meaning)."""
    timeout: float = DEFAULT_RESPONSE_TIMEOUT
    """``response_header_timeout_seconds``: how long a request waits for its answer (long polls add
    theirs); a bundle's body also gets ``size_limit_bytes`` at 256 KiB/s (``plugins.bundle``)."""
    oci: bool = False
    """``type = "oci"``: an OCI registry, which serves bundles only (``plugins.oci``)."""
    headers: tuple[tuple[str, str], ...] = ()
    """``headers``: sent with every request to the service (a request's own headers win)."""


@dataclass(frozen=True)
class Polling:
    min_delay: float = 60.0
    max_delay: float = 120.0
    long_polling_timeout: int | None = None


@dataclass(frozen=True)
class BundleSource:
    name: str
    service: str
    resource: str
    polling: Polling = field(default_factory=Polling)
    keyid: str | None = None
    scope: str | None = None
    signed: bool = False
    persist: bool = False
    size_limit_bytes: int = DEFAULT_BUNDLE_SIZE_LIMIT


@dataclass(frozen=True)
class KeyConfig:
    name: str
    key: str | None = None
    key_path: Path | None = None
    algorithm: str | None = None
    scope: str | None = None
    """OPA's ``keys.NAME.scope``: the scope a bundle signed with this key must carry when its
    ``signing.scope`` is not set."""

    def verification_key(self) -> VerificationKey:
        from pyagent.bundles.jws import load_verification_key, parse_verification_key

        if self.key_path is not None:
            loaded = load_verification_key(self.key_path, self.algorithm)
        else:
            assert self.key is not None
            loaded = parse_verification_key(
                self.key.encode("utf-8"), self.algorithm, source=f"keys.{self.name}"
            )
        if self.algorithm is None and loaded.algorithm != "RS256":
            from pyagent.config.opakeys import report_once

            report_once(  # the agent takes the key's own; a real OPA given this config would refuse it
                f"keys.{self.name}",
                f"keys.{self.name} sets no algorithm: the agent verifies with {loaded.algorithm}, the key's, "
                f'but OPA takes RS256 and refuses this key; set algorithm = "{loaded.algorithm}" so that '
                "an OPA can share this config",
            )
        return loaded


@dataclass(frozen=True)
class DecisionLogs:
    service: str
    resource: str = "/logs"
    min_delay: float = 300.0
    max_delay: float = 600.0
    upload_size_limit_bytes: int = DEFAULT_UPLOAD_LIMIT


@dataclass(frozen=True)
class OpaTables:
    services: dict[str, Service] = field(default_factory=dict)
    bundles: dict[str, BundleSource] = field(default_factory=dict)
    keys: dict[str, KeyConfig] = field(default_factory=dict)
    decision_logs: DecisionLogs | None = None
    status_service: str | None = None
    status_resource: str = "/status"
    """Where status messages go: ``/status``, or ``/status/PARTITION`` (``status.partition_name``)."""
    labels: dict[str, str] = field(default_factory=dict)


def opa_tables(document: dict[str, Any], source: str) -> OpaTables:
    """The OPA tables of a config document, checked; references between them resolved."""
    services = _services(document.get("services", {}), source)
    keys = {
        name: _key(name, value, source)
        for name, value in _named(document.get("keys", {}), "keys", source, listed=False)
    }
    bundles = {
        name: _bundle(name, value, source, services, keys)
        for name, value in _named(document.get("bundles", {}), "bundles", source, listed=False)
    }
    decision_logs = None
    if "decision_logs" in document:
        decision_logs = _decision_logs(document["decision_logs"], source, services)
    status_service, status_resource = None, "/status"
    if "status" in document:
        status = Section(document["status"], "status", source, known=("service", "partition_name"))
        status_service = _service_ref(status, services)
        named = partition_of(status)
        status_resource = f"/status/{named}" if named else status_resource
    return OpaTables(
        services, bundles, keys, decision_logs, status_service, status_resource, _labels(document, source)
    )


def _named(value: Any, table: str, source: str, *, listed: bool = True) -> list[tuple[str, Any]]:
    """The named tables of ``table``; ``listed``: also OPA's list form (services only, as in OPA)."""
    if isinstance(value, list) and not listed:
        raise InvalidInputError(
            f"{table} in {source} must be a table of named tables (OPA takes no list here)"
        )
    if isinstance(value, list):  # OPA also takes a list of {name: ..., ...} for services
        pairs = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                raise InvalidInputError(f"{table}[{index}] in {source} must be a table with a name")
            pairs.append((item["name"], {k: v for k, v in item.items() if k != "name"}))
        return pairs
    if not isinstance(value, dict):
        raise InvalidInputError(f"{table} in {source} must be a table of named tables")
    return [(str(name), item) for name, item in value.items()]


def _services(value: Any, source: str) -> dict[str, Service]:
    services: dict[str, Service] = {}
    for name, item in _named(value, "services", source):
        section = Section(
            item,
            f"services.{name}",
            source,
            known=("url", "credentials", "tls", "response_header_timeout_seconds", "type", "headers"),
        )
        kind = section.string("type")
        if kind is not None and kind != "oci":
            raise section.fail("type", 'must be "oci" (an OCI registry) or absent (an HTTP service)')
        url = section.url("url")
        if url is None:
            raise InvalidInputError(f"services.{name}.url in {source} is required")
        credentials = section.sub("credentials", known=("bearer",))
        bearer = credentials.sub("bearer", known=("token", "token_path", "scheme"))
        if bearer.has("token"):
            raise InvalidInputError(
                f"{bearer.key('token')} in {source}: secrets are not kept in the config; "
                f"put the token in a file and set {bearer.key('token_path')}"
            )
        tls = section.sub("tls", known=("ca_cert", "system_ca_required"))
        ca_cert = tls.path("ca_cert")
        if ca_cert is not None and not url.startswith("https:"):
            raise InvalidInputError(f"{tls.key('ca_cert')} in {source} is for an https:// url, not {url}")
        services[name] = Service(
            name=name,
            url=url.rstrip("/"),
            token_path=bearer.path("token_path"),
            scheme=scheme(bearer),
            ca_cert=ca_cert,
            system_ca=tls.boolean("system_ca_required", False),
            timeout=section.number(
                "response_header_timeout_seconds", DEFAULT_RESPONSE_TIMEOUT, minimum=0.1, maximum=86400
            ),
            oci=kind == "oci",
            headers=headers(section),
        )
    return services


def _service_ref(section: Section, services: dict[str, Service], *, bundles: bool = False) -> str:
    name = section.string("service")
    if name is None:
        if len(services) == 1:
            name = next(iter(services))
        else:
            raise InvalidInputError(
                f"{section.key('service')} in {section.source} is required: name a service"
            )
    if name not in services:
        known = ", ".join(sorted(services)) or "none"
        raise InvalidInputError(
            f"{section.key('service')} in {section.source}: no service {name!r} (services: {known})"
        )
    if services[name].oci and not bundles:
        raise InvalidInputError(
            f"{section.key('service')} in {section.source}: service {name!r} is an OCI registry "
            '(type = "oci"), which serves bundles only'
        )
    return name


def _key(name: str, value: Any, source: str) -> KeyConfig:
    section = Section(
        value, f"keys.{name}", source, known=("key", "key_path", "algorithm", "private_key", "scope")
    )
    if section.has("private_key"):
        raise InvalidInputError(
            f"keys.{name}.private_key in {source}: agents verify bundles and never hold a signing key"
        )
    algorithm = section.string("algorithm")
    if algorithm is not None and algorithm.upper().startswith("HS"):  # whether a bundle uses it or not
        raise InvalidInputError(
            f"keys.{name}.algorithm in {source}: {algorithm!r} refused: HMAC would put a signing secret on "
            "every device; use a public-key algorithm (RS256, ES256, ...)"
        )
    key, key_path = section.string("key"), section.path("key_path")
    if (key is None) == (key_path is None):
        raise InvalidInputError(f"keys.{name} in {source}: give one of key (a PEM public key) or key_path")
    return KeyConfig(name, key, key_path, algorithm, section.string("scope"))


def _bundle(
    name: str, value: Any, source: str, services: dict[str, Service], keys: dict[str, KeyConfig]
) -> BundleSource:
    section = Section(
        value,
        f"bundles.{name}",
        source,
        known=("service", "resource", "polling", "signing", "persist", "size_limit_bytes"),
    )
    polling = section.sub(
        "polling", known=("min_delay_seconds", "max_delay_seconds", "long_polling_timeout_seconds")
    )
    min_delay, max_delay = delays(polling, 60, 120)
    long_poll = None
    if polling.has("long_polling_timeout_seconds"):
        long_poll = polling.integer("long_polling_timeout_seconds", 0, minimum=1)
        if long_poll > LONG_POLL_MAX:
            raise polling.fail("long_polling_timeout_seconds", f"must be at most {LONG_POLL_MAX}")
    signing = section.sub("signing", known=("keyid", "scope"))
    keyid = signing.string("keyid")
    if keys and not section.has("signing"):
        from pyagent.config.opakeys import report_once

        unnamed = (  # where the agent and OPA part: OPA refuses such a bundle
            ", and a signed one that names no key (as pyagent policy bundle signs) is verified with the one "
            "key where OPA refuses it (its key id is empty)"
            if len(keys) == 1
            else ""
        )
        report_once(  # OPA's own warning, for the same config
            f"{source}: bundles.{name}",
            f"{source}: keys are configured but bundles.{name} has no signing table: a bundle without "
            f"/.signatures.json is accepted, as OPA accepts it{unnamed}; add bundles.{name}.signing to "
            "require signatures and name the key",
        )
    if section.has("signing") and keyid is None:
        if len(keys) != 1:
            raise InvalidInputError(f"{signing.key('keyid')} in {source} is required: name one of [keys]")
        keyid = next(iter(keys))
    if keyid is not None and keyid not in keys:
        known = ", ".join(sorted(keys)) or "none"
        raise InvalidInputError(f"{signing.key('keyid')} in {source}: no key {keyid!r} (keys: {known})")
    service = _service_ref(section, services, bundles=True)
    resource = section.string("resource", f"bundles/{name}/wasm") or ""
    if resource.lower().startswith("file:"):
        raise InvalidInputError(
            f"{section.key('resource')} in {source}: {resource!r} is a local file, which OPA reads from "
            "its disk; the agent downloads its bundles from a service (for a local policy, give "
            "check --policy DIR or PYAGENT_BUNDLE instead)"
        )
    if not services[service].oci:
        resource = resource.strip("/")  # as OPA, which trims the resource's slashes at both ends
    if services[service].oci:
        _check_oci_bundle(section, name)
        if long_poll is not None:  # as OPA, which does not long poll a registry either
            from pyagent.config.opakeys import report_ignored

            key = polling.key("long_polling_timeout_seconds")
            report_ignored(source, [key], why="not used with an OCI registry, which does not long poll")
            long_poll = None
    return BundleSource(
        name=name,
        service=service,
        resource=resource,
        polling=Polling(min_delay, max_delay, long_poll),
        keyid=keyid,
        scope=signing.string("scope") or (keys[keyid].scope if keyid is not None else None),
        signed=keyid is not None,
        persist=section.boolean("persist", False),
        size_limit_bytes=size_limit(section),
    )


def _check_oci_bundle(section: Section, name: str) -> None:
    """A bundle from an OCI registry: ``resource`` is a reference."""
    from pyagent.agent.plugins.oci import parse_reference

    resource = section.string("resource")
    if resource is None:
        raise InvalidInputError(
            f"{section.key('resource')} in {section.source} is required for an OCI registry: "
            f"a reference such as registry.example.com/policies/{name}:TAG"
        )
    parse_reference(resource, what=f"{section.key('resource')} in {section.source}")


def _decision_logs(value: Any, source: str, services: dict[str, Service]) -> DecisionLogs:
    section = Section(
        value, "decision_logs", source, known=("service", "resource", "reporting", "partition_name")
    )
    reporting = section.sub(
        "reporting", known=("min_delay_seconds", "max_delay_seconds", "upload_size_limit_bytes")
    )
    min_delay, max_delay = delays(reporting, 300, 600)
    partition = partition_of(section)
    return DecisionLogs(
        service=_service_ref(section, services),
        # as OPA: a partition name wins over resource
        resource=f"/logs/{partition}" if partition else section.string("resource", "/logs") or "/logs",
        min_delay=min_delay,
        max_delay=max_delay,
        upload_size_limit_bytes=reporting.integer(
            "upload_size_limit_bytes", DEFAULT_UPLOAD_LIMIT, minimum=1024
        ),
    )


def _labels(document: dict[str, Any], source: str) -> dict[str, str]:
    value = document.get("labels", {})
    if not isinstance(value, dict):
        raise InvalidInputError(f"labels in {source} must be a table of strings")
    labels: dict[str, str] = {}
    for key, item in value.items():
        if key in ("id", "version"):
            raise InvalidInputError(
                f"labels.{key} in {source}: set by the agent (id: the device id, version: pyagent's)"
            )
        if item is None:  # (``team:`` with no value, or an empty ``${VAR}``: OPA reads it as "")
            item = ""
        if not isinstance(item, str):
            raise InvalidInputError(f"labels.{key} in {source} must be a string, got {item!r}")
        labels[str(key)] = item
    return labels
