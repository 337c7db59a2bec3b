"""Which of OPA's configuration keys the agent acts on, ignores (and says so) or refuses, and why.

An OPA ``config.yaml`` given to ``--config`` is read whole: every key OPA v1.22.4 knows is accepted
(the key lists below are OPA's own, from ``v1/config/validate.rego`` and the structs it names:
``plugins/bundle``, ``download``, ``bundle/keys.go``, ``plugins/rest``, ``plugins/logs``,
``plugins/status`` and ``plugins/server/*``), and a key OPA does not know either is an error naming the
key and the file (OPA itself only warns of it: a typo such as ``persit`` would silently leave the bundle
unpersisted). Each key is one of:

* **acted on** (with OPA's meaning): read by :mod:`pyagent.config.opa`;
* **ignored**: OPA-only machinery the agent has no use for (OPA's HTTP server, storage, caches, tracing,
  console logging, Prometheus, plugins, ...). Ignoring it cannot make the agent accept anything OPA
  would refuse, so it is accepted and reported once on stderr (:func:`report_ignored`), never silently;
* **refused**, with the reason, where ignoring the key would weaken what the operator asked for:

  - ``bundles.NAME.signing.exclude_files`` (non-empty): OPA evaluates the excluded files without
    verifying them. The agent verifies every file it evaluates, and the signed ``.manifest`` carries the
    serial that rollback protection compares (:mod:`pyagent.bundles.verify`); ignoring the list would
    refuse every such bundle, honouring it would evaluate unsigned content. An empty list is honoured.
  - ``decision_logs.mask_decision`` and ``drop_decision``: OPA masks or drops fields of an event with a
    policy before it leaves the host. The agent cannot, so ignoring them would upload what the operator
    meant to keep on the device.
  - ``services.NAME.allow_insecure_tls: true``: the agent always verifies TLS (give ``tls.ca_cert``);
    ``false`` is what it does anyway.
  - ``services.NAME.credentials`` other than ``bearer``: the agent presents a bearer token only;
    ignoring the others would send its requests unauthenticated.
  - ``bundle`` (OPA's deprecated single-bundle table): write it as ``bundles.NAME``.
  - ``discovery``: OPA takes the rest of its configuration from a discovery bundle; ignoring it would
    leave the agent deciding on a policy the discovery service never named.

``keys.NAME.scope`` is acted on (OPA's meaning: the scope a bundle signed with that key must carry
when ``bundles.NAME.signing.scope`` is not set), as are ``keys.NAME.key`` and ``algorithm``. The agent
also reads ``keys.NAME.key_path`` (a PEM file), which OPA does not have.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from pyagent.errors import InvalidInputError

Pattern = tuple[str, ...]
"""A path of keys; ``*`` matches any name (a service, a bundle, a key)."""

AGENT_TABLES = ("device", "agent", "opa")
POLLING = frozenset(
    {"min_delay_seconds", "max_delay_seconds", "long_polling_timeout_seconds", "superseded_etag_ttl_seconds"}
)
BUNDLE = frozenset({"service", "resource", "signing", "persist", "size_limit_bytes", "trigger", "polling"})
CREDENTIALS = frozenset(
    {"bearer", "oauth2", "client_tls", "s3_signing", "gcp_metadata", "azure_managed_identity", "plugin"}
)

KNOWN: dict[Pattern, frozenset[str]] = {
    (): frozenset(
        {
            *AGENT_TABLES,
            "services",
            "labels",
            "discovery",
            "bundle",
            "bundles",
            "decision_logs",
            "status",
            "plugins",
            "keys",
            "default_decision",
            "default_authorization_decision",
            "caching",
            "nd_builtin_cache",
            "persistence_directory",
            "distributed_tracing",
            "metrics_export",
            "server",
            "storage",
        }
    ),
    ("services", "*"): frozenset(
        {
            "name",
            "url",
            "headers",
            "allow_insecure_tls",
            "response_header_timeout_seconds",
            "tls",
            "credentials",
            "type",
        }
    ),
    ("services", "*", "tls"): frozenset({"ca_cert", "system_ca_required"}),
    ("services", "*", "credentials"): CREDENTIALS,
    ("services", "*", "credentials", "bearer"): frozenset({"token", "token_path", "scheme"}),
    ("bundles", "*"): BUNDLE,
    ("bundles", "*", "polling"): POLLING,
    ("bundles", "*", "signing"): frozenset(
        {"keyid", "scope", "exclude_files", "allow_unsigned_delta_bundles"}
    ),
    ("keys", "*"): frozenset({"key", "key_path", "private_key", "algorithm", "scope"}),
    ("decision_logs",): frozenset(
        {
            "plugin",
            "service",
            "partition_name",
            "reporting",
            "request_context",
            "mask_decision",
            "drop_decision",
            "console",
            "resource",
            "nd_builtin_cache",
        }
    ),
    ("decision_logs", "reporting"): frozenset(
        {
            "buffer_type",
            "buffer_size_limit_bytes",
            "buffer_size_limit_events",
            "upload_size_limit_bytes",
            "min_delay_seconds",
            "max_delay_seconds",
            "max_decisions_per_second",
            "trigger",
        }
    ),
    ("decision_logs", "request_context"): frozenset({"http"}),
    ("decision_logs", "request_context", "http"): frozenset({"headers"}),
    ("status",): frozenset(
        {"plugin", "service", "partition_name", "console", "prometheus", "prometheus_config", "trigger"}
    ),
    ("status", "prometheus_config"): frozenset({"collectors"}),
    ("status", "prometheus_config", "collectors"): frozenset({"bundle_loading_duration_ns"}),
    ("status", "prometheus_config", "collectors", "bundle_loading_duration_ns"): frozenset({"buckets"}),
    ("discovery",): frozenset(
        {"name", "prefix", "decision", "service", "resource", "signing", "persist", "trigger", "polling"}
    ),
    ("discovery", "polling"): POLLING,
    ("bundle",): frozenset({"name", "prefix", *BUNDLE}),
    ("bundle", "polling"): POLLING,
    ("server",): frozenset({"metrics", "encoding", "decoding", "logger_plugin"}),
    ("server", "metrics"): frozenset({"prom"}),
    ("server", "metrics", "prom"): frozenset({"http_request_duration_seconds"}),
    ("server", "metrics", "prom", "http_request_duration_seconds"): frozenset({"buckets"}),
    ("server", "encoding"): frozenset({"gzip"}),
    ("server", "encoding", "gzip"): frozenset({"min_length", "compression_level"}),
    ("server", "decoding"): frozenset({"max_length", "gzip"}),
    ("server", "decoding", "gzip"): frozenset({"max_length"}),
    ("storage",): frozenset({"disk"}),
    ("storage", "disk"): frozenset({"directory", "auto_create", "partitions", "badger"}),
    ("caching",): frozenset({"inter_query_builtin_cache", "inter_query_builtin_value_cache"}),
    ("caching", "inter_query_builtin_cache"): frozenset(
        {
            "max_size_bytes",
            "forced_eviction_threshold_percentage",
            "stale_entry_eviction_period_seconds",
        }
    ),
    ("caching", "inter_query_builtin_value_cache"): frozenset({"max_num_entries", "named"}),
    ("caching", "inter_query_builtin_value_cache", "named", "*"): frozenset({"max_num_entries", "disabled"}),
    ("distributed_tracing",): frozenset(
        {
            "type",
            "address",
            "service_name",
            "sample_percentage",
            "encryption",
            "allow_insecure_tls",
            "tls_cert_file",
            "tls_private_key_file",
            "tls_ca_cert_file",
            "resource",
            "batch_span_processor_options",
        }
    ),
    ("distributed_tracing", "resource"): frozenset(
        {"service_version", "service_instance_id", "service_namespace", "deployment_environment"}
    ),
    ("distributed_tracing", "batch_span_processor_options"): frozenset(
        {
            "blocking",
            "batch_timeout_ms",
            "export_timeout_ms",
            "max_export_batch_size",
            "max_queue_size",
        }
    ),
}
"""Every object whose keys OPA checks ("closed"), with the keys OPA knows there (and the agent's own
``device``, ``agent``, ``opa`` and ``keys.NAME.key_path``). Other objects (``plugins``, ``labels``,
``services.NAME.headers``, ...) take any key, as in OPA."""

IGNORED: frozenset[Pattern] = frozenset(
    {
        ("plugins",),
        ("default_decision",),
        ("default_authorization_decision",),
        ("caching",),
        ("nd_builtin_cache",),
        ("persistence_directory",),
        ("distributed_tracing",),
        ("metrics_export",),
        ("server",),
        ("storage",),
        ("services", "*", "name"),
        ("bundles", "*", "trigger"),
        ("bundles", "*", "polling", "superseded_etag_ttl_seconds"),
        ("bundles", "*", "signing", "allow_unsigned_delta_bundles"),  # the agent takes no delta bundle
        ("decision_logs", "plugin"),
        ("decision_logs", "request_context"),
        ("decision_logs", "console"),
        ("decision_logs", "nd_builtin_cache"),
        ("decision_logs", "reporting", "buffer_type"),
        ("decision_logs", "reporting", "buffer_size_limit_bytes"),
        ("decision_logs", "reporting", "buffer_size_limit_events"),
        ("decision_logs", "reporting", "max_decisions_per_second"),
        ("decision_logs", "reporting", "trigger"),
        ("status", "plugin"),
        ("status", "console"),
        ("status", "prometheus"),
        ("status", "prometheus_config"),
        ("status", "trigger"),
    }
)
"""OPA keys the agent does not act on: accepted, reported once, and dropped before the tables are read."""

HONOURED_AS_IS: dict[Pattern, Any] = {
    ("bundles", "*", "signing", "exclude_files"): [],
    ("services", "*", "allow_insecure_tls"): False,
}
"""Keys whose value asks for what the agent does anyway: dropped without a word; other values are refused."""

REFUSED: dict[Pattern, str] = {
    ("bundles", "*", "signing", "exclude_files"): (
        "OPA would evaluate the excluded files unverified; the agent verifies every file of a bundle "
        "(sign the bundle without exclusions)"
    ),
    ("services", "*", "allow_insecure_tls"): (
        "the agent always verifies TLS certificates (give tls.ca_cert for a private CA)"
    ),
    ("decision_logs", "mask_decision"): (
        "the agent cannot apply a mask policy and would upload the fields it masks (remove it from the "
        "agent's copy only if nothing needs masking)"
    ),
    ("decision_logs", "drop_decision"): (
        "the agent cannot apply a drop policy and would upload the events it drops"
    ),
    ("bundle",): "OPA's deprecated single-bundle table; write it as bundles.NAME",
    ("discovery",): (
        "OPA would take its bundles, decision log and status settings from the discovery bundle; the agent "
        "does not, and would decide on a policy the discovery service never named (configure bundles, "
        "decision_logs and status directly)"
    ),
    **{
        ("services", "*", "credentials", kind): (
            "the agent authenticates with credentials.bearer.token_path only; without it, its requests "
            "would go unauthenticated"
        )
        for kind in sorted(CREDENTIALS - {"bearer"})
    },
}
"""OPA keys that would weaken what the operator asked for if ignored: an error giving the reason."""

UNROUTED = {"decision_logs": ("console", "plugin"), "status": ("console", "prometheus", "plugin")}
"""OPA sends decision logs (status) to no service when the table names none and logs them to the console,
Prometheus or a plugin instead; so does the agent: it does not upload them (the whole table is ignored)."""

_reported: set[tuple[str, str]] = set()


def screen(document: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """``document`` without the keys the agent ignores, and those keys (dotted, in file order).

    A key OPA does not know is an error naming it and the file; a refused key is an error with the reason.
    """
    ignored: list[str] = []
    screened = _screen(document, (), source, ignored)
    for table, elsewhere in UNROUTED.items():
        value = document.get(table)
        if isinstance(value, dict) and "service" not in value and any(value.get(k) for k in elsewhere):
            screened.pop(table, None)
            ignored[:] = [key for key in ignored if not key.startswith(f"{table}.")] + [table]
    return screened, ignored


def report_ignored(
    source: str, keys: list[str], *, why: str = "an OPA setting the agent does not use"
) -> None:
    """One line on stderr per ignored key (``KEY is WHY; ignored``), once per file and key in this process."""
    for key in keys:
        if (source, key) not in _reported:
            _reported.add((source, key))
            print(f"pyagent: {source}: {key} is {why}; ignored", file=sys.stderr)


_warned: set[str] = set()


def report_once(what: str, warning: str) -> None:
    """``pyagent: warning: WARNING`` on stderr, once per ``what`` in this process (a loop re-reads its
    config at every run)."""
    if what not in _warned:
        _warned.add(what)
        print(f"pyagent: warning: {warning}", file=sys.stderr)


def _screen(value: dict[str, Any], path: Pattern, source: str, ignored: list[str]) -> dict[str, Any]:
    closed = _match(KNOWN, path)
    known = KNOWN[closed] if closed is not None else None
    kept: dict[str, Any] = {}
    for raw_key, item in value.items():
        key = str(raw_key)
        here = (*path, key)
        if known is not None and key not in known:
            raise _unknown(here, known, source)
        as_is = _match(HONOURED_AS_IS, here)
        if as_is is not None and item == HONOURED_AS_IS[as_is]:
            continue
        refused = _match(REFUSED, here)
        if refused is not None:
            raise InvalidInputError(
                f"{'.'.join(here)} in {source}: not supported by the agent: {REFUSED[refused]}"
            )
        if isinstance(item, dict):
            item = _screen(item, here, source, ignored)
        elif isinstance(item, list) and path == () and key in ("services", "bundles", "keys"):
            item = [_named_item(entry, here, source, ignored) for entry in item]
        if _match(IGNORED, here) is not None:
            ignored.append(".".join(here))
            continue
        kept[raw_key] = item
    return kept


def _named_item(entry: Any, path: Pattern, source: str, ignored: list[str]) -> Any:
    """One table of OPA's list form (``services: [{name: ..., ...}]``): its ``name`` is its name."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return entry  # refused, with its position, by pyagent.config.opa
    name = entry["name"]
    rest = {key: value for key, value in entry.items() if key != "name"}
    return {"name": name, **_screen(rest, (*path, name), source, ignored)}


def _unknown(here: Pattern, known: frozenset[str], source: str) -> InvalidInputError:
    listed = ", ".join(sorted(known))
    if len(here) == 1:
        return InvalidInputError(f"{source}: unknown section [{here[0]}]; known: {listed}")
    return InvalidInputError(f"{source}: unknown key {'.'.join(here)}; known: {listed}")


def _match(patterns: Iterable[Pattern], path: Pattern) -> Pattern | None:
    """The pattern of ``patterns`` that matches ``path`` (``*``: any one name), if any."""
    for pattern in patterns:
        if len(pattern) == len(path) and all(p in ("*", k) for p, k in zip(pattern, path, strict=True)):
            return pattern
    return None
