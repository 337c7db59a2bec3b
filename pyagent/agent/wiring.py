"""From the config to the running parts: the engine, and the bundle, decision-log and status plug-ins.

The engine: with a ``[bundles.NAME]`` and the embedded engine, it evaluates the bundle the plug-in
activated (verified again as it loads); before one is active it gives no decision (exit 3), it never
falls back to a bundle of its own. With ``--engine opa`` the OPA server decides, and a configured
bundle is still downloaded and verified (and reported), for the record. A ``[bundles.NAME]`` wins over
``--bundle`` and ``PYAGENT_BUNDLE`` (the bundle a checkout or a package ships).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyagent.agent.cycle import BundleInfo, EngineHolder
from pyagent.agent.http import ServiceClient
from pyagent.agent.plugins.bundle import BundlePlugin, Install, Notify
from pyagent.agent.plugins.bundledir import BundleDir
from pyagent.agent.plugins.logs import DecisionLogPlugin
from pyagent.agent.plugins.status import DEFAULT_PERIOD, StatusPlugin
from pyagent.bundles.errors import BundleRejected
from pyagent.bundles.jws import VerificationKey
from pyagent.bundles.state import StateError
from pyagent.bundles.verify import VerificationConfig, VerifiedBundle
from pyagent.config.agent import AgentConfig
from pyagent.config.opa import KeyConfig
from pyagent.engines.base import Engine, EngineError, EngineName, EngineSettings
from pyagent.engines.select import resolve
from pyagent.engines.wasm.bundle import BundleError, WasmBundle
from pyagent.errors import InvalidInputError, located


@dataclass
class Plugins:
    bundle: BundlePlugin | None = None
    logs: DecisionLogPlugin | None = None
    status: StatusPlugin | None = None


def build(
    config: AgentConfig,
    settings: EngineSettings,
    *,
    state_dir: Callable[[], Path],
    device_id: Callable[[], str],
    notify: Notify,
) -> tuple[Plugins, EngineHolder]:
    """The plug-ins the config asks for, and the engine holder wired to the bundle plug-in."""
    tables = config.tables
    where = config.source or "the agent config"
    clients = {name: ServiceClient(service) for name, service in tables.services.items()}
    for name, client in clients.items():  # a missing or unusable token file: the config's mistake, at once
        with located(f"services.{name}.credentials.bearer.token_path in {where}"):
            client.check_token()

    def verification_key(key: KeyConfig) -> VerificationKey:
        with located(f"keys.{key.name} in {where}"):  # named by its table and file, as every key mistake
            return key.verification_key()

    plugins = Plugins()
    if len(tables.bundles) > 1:
        names = ", ".join(sorted(tables.bundles))
        raise InvalidInputError(
            f"{where}: the agent evaluates one bundle; configure one of [bundles] ({names})"
        )
    for source in tables.bundles.values():
        verification = None
        keys: dict[str, VerificationConfig] = {}
        if source.keyid is not None:
            key = tables.keys[source.keyid]
            verification = VerificationConfig(verification_key(key), source.keyid, source.scope)
        else:  # as OPA: [keys] without a signing block verify a signature when the bundle has one
            keys = {
                name: VerificationConfig(verification_key(key), name, key.scope)
                for name, key in tables.keys.items()
            }
        plugins.bundle = BundlePlugin(
            source,
            clients[source.service],
            BundleDir(state_dir(), source.name),
            verification=verification,
            keys=keys,
            notify=notify,
        )
    if tables.decision_logs is not None:
        plugins.logs = DecisionLogPlugin(
            tables.decision_logs,
            clients[tables.decision_logs.service],
            tables.labels,
            notify=notify,
            device_id=device_id,
        )
    if tables.status_service is not None:
        period = plugins.bundle.source.polling.max_delay if plugins.bundle else DEFAULT_PERIOD
        plugins.status = StatusPlugin(
            clients[tables.status_service],
            tables.labels,
            device_id,
            bundles=[plugins.bundle] if plugins.bundle else [],
            logs=plugins.logs,
            period=period,
            resource=tables.status_resource,
            notify=notify,
            state_dir=state_dir,
        )
    bundle = plugins.bundle
    if bundle is None or resolve(settings) is not EngineName.EMBEDDED:
        return plugins, EngineHolder(settings)
    holder = EngineHolder(settings, loader=lambda: _load_active(bundle, settings))
    bundle.prepare = _preparer(bundle, holder, settings)
    return plugins, holder


def _load_active(plugin: BundlePlugin, settings: EngineSettings) -> tuple[Engine, BundleInfo]:
    path = plugin.active_path()
    if path is None:
        raise EngineError(f"no active policy bundle: bundle {plugin.name}: {plugin.problem()}")
    mark = plugin.active_mark()
    try:
        engine, info = _load(plugin, path, settings)
    except (BundleRejected, BundleError) as err:  # the file itself: corrupted, or it no longer verifies
        kind = err.kind.value if isinstance(err, BundleRejected) else None
        plugin.forget_active(str(err), mark=mark, kind=kind)
        raise
    except StateError as err:  # its serial cannot be checked (the state file unreadable): it stays
        plugin.load_failed(str(err))
        raise
    plugin.loaded(info[plugin.name]["revision"], mark=mark)
    return engine, info


def _load(plugin: BundlePlugin, path: Path, settings: EngineSettings) -> tuple[Engine, BundleInfo]:
    from pyagent.bundles.load import BundleTrust
    from pyagent.engines.embedded import EmbeddedEngine

    verification = plugin.verification
    if verification is None:  # as when it was activated: a signature checked with [keys], or refused
        from pyagent.engines.wasm.bundle import read_members

        label = f"{plugin.name} ({path})"
        verification = plugin.verification_for(read_members(path.read_bytes(), label=label), label)
    trust = None
    if verification is not None:
        trust = BundleTrust(verification, plugin.dir.rollback)
    engine = EmbeddedEngine.from_trusted_file(path, trust, data_files=settings.data_files)
    return engine, {plugin.name: {"revision": str(engine.manifest.get("revision", ""))}}


def _preparer(
    plugin: BundlePlugin, holder: EngineHolder, settings: EngineSettings
) -> Callable[[WasmBundle, VerifiedBundle | None], Install]:
    from pyagent.engines.embedded import EmbeddedEngine

    def prepare(bundle: WasmBundle, verified: VerifiedBundle | None) -> Install:
        engine = EmbeddedEngine.from_bundle(
            bundle, source=str(plugin.dir.active_path), verified=verified, data_files=settings.data_files
        )
        return lambda: holder.install(engine, {plugin.name: {"revision": bundle.revision}})

    return prepare
