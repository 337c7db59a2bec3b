"""The bundle plug-in: downloads policy as OPA does (Bundle API), verifies it, activates it atomically.

One attempt (:meth:`BundlePlugin.step`):

1. From an OCI registry (``services.NAME.type = "oci"``): the manifest, and its bundle layer unless
   the manifest is the active bundle's (:mod:`pyagent.agent.plugins.oci`). From any other service:
   ``GET service.url/resource`` with ``If-None-Match`` (the active bundle's ETag; 304 = unchanged) and,
   with ``polling.long_polling_timeout_seconds``, ``Prefer: wait=N``. Long polling goes on only while
   the service answers ``Content-Type: application/vnd.openpolicyagent.bundles``, as in OPA; otherwise,
   and after a long poll the service answered at once with a 304 (it did not hold it: a static server),
   the next attempt is in ``min..max_delay_seconds`` (at random), and after an error in an exponential
   backoff capped at ``max_delay_seconds``. A redirect is an error; so is an answer that does not end
   within the service's timeout (plus the long poll's wait).
2. The body is streamed to a file in the bundle's directory and refused as soon as it passes
   ``size_limit_bytes`` (or the 64 MiB an archive may have, when lower); so is a file of the bundle
   larger than that once decompressed (OPA's meaning of the key: a limit per file).
3. Before activation: the archive is read safely; with ``signing``, its signature and every file's
   digest are verified against ``[keys.KEYID]`` (:mod:`pyagent.bundles.verify`), its ``roots`` checked
   (:mod:`pyagent.bundles.roots`), its build serial must not be older than the active one's
   (:mod:`pyagent.bundles.state`), and the engine must load it (``prepare``).
4. Activation: the archive replaces the active one by rename, the serial is recorded, then the engine
   switches. On any failure the active bundle stays, and the refusal is recorded with its reason.

With ``persist``, the active bundle is used again after a restart (verified again as it loads), else
the agent starts with no bundle and downloads one, as OPA does."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyagent.agent.http import BodyTooLarge, ServiceClient, TransportError, backoff
from pyagent.agent.plugins.bundledir import MAX_TEXT, BundleDir, BundleStatus, CorruptStatus, usable_etag
from pyagent.agent.plugins.oci import MAX_MANIFEST_BYTES, OciPuller, parse_reference
from pyagent.agent.store import utc_now
from pyagent.bundles.errors import NO_KEY_CONFIGURED, BundleRejected, RejectionKind, reject
from pyagent.bundles.roots import check_roots
from pyagent.bundles.verify import (
    SIGNATURES_FILE,
    VerificationConfig,
    VerifiedBundle,
    signer_config,
    verify_members,
)
from pyagent.config.opa import BundleSource
from pyagent.engines.wasm.bundle import (
    DEFAULT_LIMITS,
    BundleError,
    BundleLimits,
    WasmBundle,
    bundle_from_members,
    read_members,
)
from pyagent.errors import PyagentError
from pyagent.termsafe import shorten

LONG_POLL_TYPE = "application/vnd.openpolicyagent.bundles"
HELD_SECONDS = 1.0  # a long poll answered 304 sooner than this was not held by the service
BACKOFF_BASE = 0.5

Install = Callable[[], None]
Prepare = Callable[[WasmBundle, VerifiedBundle | None], Install]
Notify = Callable[[str, str, dict[str, object]], None]
Mark = tuple[str | None, str | None]


@dataclass(frozen=True)
class Fetched:
    """What one download attempt brought: a new archive (with its ETag), nothing new, or an error."""

    changed: bool
    etag: str | None = None
    error: str | None = None
    manifest: str | None = None  # from an OCI registry: the manifest digest that named the bundle


class BundlePlugin:
    """One ``[bundles.NAME]``: its downloads, its active bundle and its status."""

    def __init__(
        self,
        source: BundleSource,
        client: ServiceClient,
        directory: BundleDir,
        *,
        verification: VerificationConfig | None,
        keys: Mapping[str, VerificationConfig] | None = None,
        prepare: Prepare | None = None,
        notify: Notify | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.client = client
        self.dir = directory
        self.verification = verification
        self.keys = dict(keys or {})  # [keys] without signing: as OPA, a signature checked, unsigned taken
        self.prepare = prepare
        self.notify = notify or (lambda event, text, fields: None)
        self._rng = rng or random.Random()
        self.oci: OciPuller | None = None
        self._read_limit = bundle_limits(source.size_limit_bytes).max_archive_bytes  # (the download's)
        if client.service.oci:  # an OCI registry: a reference to pull, and no long polling
            reference = parse_reference(source.resource, what=f"bundles.{source.name}.resource")
            label = f"{source.name} ({source.resource})"
            self.oci = OciPuller(client, reference, size_limit=self._read_limit, label=label)
        self._long_poll_ok = source.polling.long_polling_timeout is not None and self.oci is None
        self._failures = 0
        self._answer_code: int | None = None  # the HTTP status of this attempt's answer, if one came
        self.status = BundleStatus(source.name)
        self.active = False
        self.version = 0  # grows with every change a status message should report

    @property
    def name(self) -> str:
        return self.source.name

    def start(self) -> None:
        """Prepare the directory; with ``persist``, the bundle active before the restart is active again."""
        self.dir.prepare()
        try:
            self.status, readable = self.dir.load_status(), True
        except CorruptStatus as err:
            self.status, readable = BundleStatus(self.name), False
            self.notify(
                "bundle_status_reset",
                f"bundle {self.name}: {err}; its status starts over, and a persisted bundle is verified "
                "again as it loads",
                {"bundle": self.name, "error": str(err)},
            )
        # the revision saved says the persisted bundle was active (a bundle that stopped loading is
        # forgotten there); with no readable record, the bundle itself is tried, and verified again
        self.active = (
            self.source.persist
            and self.dir.active_path.is_file()
            and (self.status.active_revision is not None or not readable)  # ("" is a revision: opa build's)
        )
        if not self.active:
            self.status.etag = self.status.manifest = None
            self.status.active_revision = self.status.active_serial = self.status.size = None
        self.version += 1

    def active_mark(self) -> Mark:
        """What identifies the active bundle now (its ETag and revision), for :meth:`forget_active`."""
        return self.status.etag, self.status.active_revision

    def forget_active(self, reason: str, *, mark: Mark, kind: str | None = None) -> None:
        """The active bundle on disk does not load (corrupted, or refused as ``kind``): download afresh, with
        no ETag to get a 304 for it forever, as OPA. ``mark``: :meth:`active_mark` before the load."""
        if self.active_mark() != mark:
            return
        self.active = False
        self.status.etag = self.status.manifest = None
        self.status.active_revision = self.status.active_serial = self.status.size = None
        if kind is not None:  # kept with the refusals: the next download's error replaces the message
            self.status.refused(utc_now(), kind, reason)  # (the reason names the file on disk)
        self._failed("bundle_error", f"the active bundle does not load: {reason}")
        self._save()

    def load_failed(self, reason: str) -> None:
        """The active bundle stays, not loaded for a reason outside it (its serial record unreadable)."""
        self._failed("bundle_error", f"the active bundle cannot be loaded: {reason}")
        self._save()

    def active_path(self) -> Path | None:
        return self.dir.active_path if self.active else None

    def loaded(self, revision: str, *, mark: Mark) -> None:
        """The active bundle on disk loaded and verified as ``revision``: the status reports what was
        loaded, not what a saved record said (unless a download activated another bundle since)."""
        if self.active_mark() != mark or self.status.active_revision == revision:
            return
        self.status.active_revision = revision
        self.version += 1
        self._save()

    def problem(self) -> str:
        """Why no bundle is active, in a few words."""
        return self.status.message or "not downloaded yet"

    # -- one attempt --------------------------------------------------------------------------

    def step(self, *, wait: bool = True) -> float:
        """Download once, long polling with ``wait`` or with no ETag to send (as OPA's first request asks
        ``Prefer: wait`` too: nothing to hold it on); returns the seconds until the next attempt."""
        polling, unheld = self.source.polling, not (self.active and self.status.etag)
        long_poll = polling.long_polling_timeout if (wait or unheld) and self._long_poll_ok else None
        started = time.monotonic()
        fd, download = self.dir.new_download()
        self._answer_code = None  # as OPA: an error without an answer has no HTTP code
        try:
            try:
                with os.fdopen(fd, "wb") as sink:
                    fetched = self._pull(sink) if self.oci is not None else self._get(sink, long_poll)
            finally:  # as OPA: when the answer (or the failure) came, not when a long poll began
                self.status.last_request = utc_now()
                self.status.http_code = self._answer_code  # with the outcome, never before it
            if fetched.error is not None:
                return self._failed("bundle_error", fetched.error)
            if not fetched.changed or (self.active and self.dir.same_as_active(download)):  # (a 200 of it)
                if fetched.etag and self.active:  # as OPA: a 304 with another ETag is its new name
                    self.status.etag = fetched.etag
                    self.status.manifest = fetched.manifest
                return self._succeeded(long_poll, started, changed=False)
            self._activate(download, fetched.etag, fetched.manifest)
            return self._succeeded(long_poll, started, changed=True)
        except BodyTooLarge as err:
            return self._refused(RejectionKind.UNREADABLE.value, str(err))
        except BundleRejected as err:
            return self._refused(err.kind.value, str(err))
        except (TransportError, PyagentError) as err:
            return self._failed("bundle_error", str(err))
        except OSError as err:  # the download or the active bundle could not be written (a full disk)
            return self._failed("bundle_error", f"bundle {self.name}: cannot keep it: {err.strerror or err}")
        finally:
            download.unlink(missing_ok=True)
            self._save()

    def _get(self, sink: BinaryIO, long_poll: int | None) -> Fetched:
        """``GET service.url/resource`` (the Bundle API), the body into ``sink``."""
        headers = {"Accept": "application/gzip, */*"}
        if self.active and self.status.etag:
            headers["If-None-Match"] = self.status.etag
        if long_poll:
            headers["Prefer"] = f"wait={long_poll}"
        reply = self.client.request(
            "GET",
            self.source.resource,
            timeout=download_deadline(self.client.service.timeout, long_poll, self._read_limit),
            max_body=self._read_limit,
            headers=headers,
            sink=sink,
            long_poll=long_poll,
        )
        if reply.status == 200 and self.source.polling.long_polling_timeout is not None:
            # as OPA: every bundle answer, long poll or not, says whether the service long polls (a
            # static server's first 200 ends it); a 304 or an error says nothing of it
            self._long_poll_ok = reply.headers.get("content-type", "").startswith(LONG_POLL_TYPE)
        self._answer_code = reply.status
        asked = self.client.url(self.source.resource)
        conditional = "If-None-Match" in headers
        if reply.status == 304:  # (to a request without If-None-Match: an error, which OPA leaves unsaid)
            error = None if conditional else f"GET {asked}: HTTP 304 to a request without If-None-Match"
            return Fetched(changed=False, etag=usable_etag(reply.headers.get("etag")), error=error)
        if reply.status != 200:  # (as an OCI pull says it: which URL answered what)
            if reply.status == 400 and conditional:
                self.status.etag = None  # (the service cannot take it back: ask for the whole bundle next)
            return Fetched(changed=False, error=f"GET {asked}: {reply.message()}")
        if reply.size == 0:  # no bundle: an answer cut in its headers reads so (a failure, not a refusal)
            return Fetched(changed=False, error=f"GET {asked}: HTTP 200 with no body (cut short)")
        return Fetched(changed=True, etag=usable_etag(reply.headers.get("etag")))

    def _pull(self, sink: BinaryIO) -> Fetched:
        """From an OCI registry: the manifest, then its bundle layer unless the manifest is the active one."""
        assert self.oci is not None
        header_timeout = self.client.service.timeout
        pulled = self.oci.pull(
            sink,
            etag=self.status.etag if self.active else None,
            manifest=self.status.manifest if self.active else None,
            manifest_timeout=download_deadline(header_timeout, None, MAX_MANIFEST_BYTES),
            blob_timeout=download_deadline(header_timeout, None, self._read_limit),
        )
        self._answer_code = pulled.http_code
        return Fetched(changed=pulled.changed, etag=pulled.layer_digest, manifest=pulled.manifest_digest)

    def _activate(self, download: Path, etag: str | None, manifest: str | None) -> None:
        label = self._label()
        limits = bundle_limits(self.source.size_limit_bytes)
        with download.open("rb") as handle:  # (streamed under that bound: a file edited since is not)
            raw = handle.read(limits.max_archive_bytes + 1)
        try:
            files = read_members(raw, label=label, limits=limits)
        except BundleError as err:
            raise BundleRejected(RejectionKind.UNREADABLE, label, _detail(err, label)) from err
        config = self.verification_for(files, label)
        verified = verify_members(files, config, label=label) if config else None
        check_roots(files, label)
        if verified is not None:
            self.dir.rollback.check(verified)
        # As OPA: a bundle read whole and verified (its signature, and here its serial) is a successful
        # request and download, whether it then loads or not (an unreadable or unverified one is neither:
        # OPA's download errors).
        self.status.last_successful_request = self.status.last_request
        self.status.last_successful_download = self.status.last_request
        try:
            bundle = bundle_from_members(files, label=label)
            install = self.prepare(bundle, verified) if self.prepare else None
        except PyagentError as err:
            raise BundleRejected(RejectionKind.UNREADABLE, label, f"does not load: {err}") from err
        if verified is not None:
            self.dir.rollback.accept(verified, raw)  # atomic: the archive, then its serial
        else:
            self.dir.activate_unsigned(raw)
        self.active = True
        self.status.etag, self.status.manifest = etag, manifest
        self.status.active_revision = bundle.revision
        self.status.active_serial = verified.serial if verified else None
        self.status.size = len(raw)
        self.status.last_successful_activation = utc_now()
        if install is not None:
            install()
        self.notify(
            "bundle_activated",
            f"bundle {self.name}: revision {bundle.revision} active",
            {"bundle": self.name, "revision": bundle.revision},
        )

    def verification_for(self, files: Mapping[str, bytes], label: str) -> VerificationConfig | None:
        """The key ``files`` must verify with: the configured signing key; else, with ``[keys]`` and
        a signature present, the key it names (:func:`~pyagent.bundles.verify.signer_config`); a
        signature with no key configured is refused, as OPA refuses it."""
        if self.verification is not None or SIGNATURES_FILE not in files:
            return self.verification
        if not self.keys:
            raise reject(RejectionKind.UNVERIFIABLE, label, NO_KEY_CONFIGURED)
        return signer_config(files, self.keys, label=label)

    def _label(self) -> str:
        where = self.source.resource if self.oci is not None else self.client.url(self.source.resource)
        return f"{self.name} ({where})"

    # -- outcomes -----------------------------------------------------------------------------

    def _succeeded(self, long_poll: int | None, started: float, *, changed: bool) -> float:
        self.status.last_successful_request = self.status.last_request
        had_error = self.status.code is not None
        self.status.code = self.status.message = None
        self._failures = 0
        if changed or had_error:
            self.version += 1
        polling = self.source.polling
        if polling.long_polling_timeout is not None and self._long_poll_ok:
            held = long_poll is None or changed or time.monotonic() - started >= HELD_SECONDS
            if held:
                return 0.0  # the next long poll at once
            # a 304 at once to a long poll: the service did not hold it (a static server that knows no
            # Prefer: wait, after a first answer that was not asked to wait): poll as configured
        return self._rng.uniform(polling.min_delay, polling.max_delay)

    def _failed(self, code: str, message: str, *, told: bool = False) -> float:
        message = shorten(message, MAX_TEXT)
        if (self.status.code, self.status.message) != (code, message):
            self.version += 1
        self.status.code, self.status.message = code, message
        if not told:
            self.notify(
                "bundle_failed", f"bundle {self.name}: {message}", {"bundle": self.name, "error": message}
            )
        self._failures += 1
        return backoff(self._failures, base=BACKOFF_BASE, cap=self.source.polling.max_delay, rng=self._rng)

    def _refused(self, kind: str, reason: str) -> float:
        self.status.refused(utc_now(), kind, reason)
        self.notify(
            "bundle_refused",
            f"bundle {self.name}: refused{', the active bundle stays' if self.active else ''}: {reason}",
            {"bundle": self.name, "kind": kind, "reason": reason},
        )
        self.version += 1
        return self._failed("bundle_error", reason, told=True)

    def _save(self) -> None:
        self.dir.save_status(self.status)


def _detail(err: BundleError, label: str) -> str:
    return str(err).removeprefix(f"bundle {label}: ")


#: The slowest transfer a bundle download is allowed (bytes per second), so that its total deadline
#: grows with ``size_limit_bytes``: ``response_header_timeout_seconds`` bounds the wait for the
#: answer, as in OPA, not the whole download of a large bundle.
MIN_DOWNLOAD_RATE = 256 * 1024


def bundle_limits(size_limit_bytes: int) -> BundleLimits:
    """What a downloaded bundle may hold: ``size_limit_bytes`` as OPA reads it, a bound on each file
    once decompressed (and on the download, while streaming), within this engine's own bounds on a
    file and on all of them, and on the archive (held in memory; the bound a saved bundle is read
    with again), which also bounds the download while it streams."""
    return BundleLimits(
        max_archive_bytes=min(size_limit_bytes, DEFAULT_LIMITS.max_archive_bytes),
        max_member_bytes=min(size_limit_bytes, DEFAULT_LIMITS.max_member_bytes),
    )


#: The longest one download may take, whatever ``size_limit_bytes`` says (OPA takes any int64 there).
MAX_DOWNLOAD_SECONDS = 24 * 3600.0


def download_deadline(header_timeout: float, long_poll: int | None, size_limit: int) -> float:
    """Seconds one download may take: the wait for the answer, the long poll, the body at the slowest
    rate; a day at most."""
    body = max(60.0, size_limit / MIN_DOWNLOAD_RATE)
    return min(MAX_DOWNLOAD_SECONDS, header_timeout + (long_poll or 0) + body)
