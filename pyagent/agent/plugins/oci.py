"""Bundles from an OCI registry (``services.NAME.type = "oci"``), as OPA pulls them.

The bundle's ``resource`` is a reference, ``HOST[:PORT]/REPOSITORY:TAG`` or ``...@sha256:HEX``; as in
OPA, the registry asked is always the service's ``url`` (its scheme, host and port; its path is not
used), and the reference's host only names it. One pull (:meth:`OciPuller.pull`):

1. ``GET /v2/REPOSITORY/manifests/TAG`` (``Accept``: the OCI image manifest), with ``If-None-Match``
   the manifest digest that last named the active bundle. Its bytes' SHA-256 is the manifest digest:
   it must match the registry's ``Docker-Content-Digest`` and, for a reference by digest, the digest
   asked for. A 304, or that same digest, is "unchanged": nothing more is fetched.
2. The first layer of OPA's bundle media type (``application/vnd.oci.image.layer.v1.tar+gzip``) is the
   bundle, and its digest the bundle's ETag, as in OPA: a manifest that names the active bundle's
   layer (the same bundle pushed again, or under another tag) is "unchanged" too. A layer declared
   larger than ``size_limit_bytes`` is refused before it is asked for;
   ``GET /v2/REPOSITORY/blobs/DIGEST`` is streamed to the download file under the limit, hashed as it
   arrives, and refused unless its SHA-256 is the digest asked for.

Every answer comes from the service's origin: a redirect to the same origin is followed (at most
``MAX_REDIRECTS``), one to another origin is an error, so the bearer token never leaves the service;
except the bundle layer's blob, which registries send to their storage (ghcr.io, Docker Hub, ECR): it
is fetched there as OPA fetches it, without the registry's credentials, over https when the registry
is, and no more than the manifest's size of it is read; its digest is checked as always. A tag that
names an index (a multi-platform tag) is read through the first image manifest it lists, by digest.
What a registry says back (its ``errors``) is kept without the credentials it was sent; a registry
that asks for a token of its own gets the token exchange (:mod:`~pyagent.agent.plugins.ociauth`).
What is then done with the archive (signature, digests, roots, serial, activation) is the bundle
plug-in's, as for any other service.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote

from pyagent.agent.http import BodyTooLarge, Reply, ServiceClient, Sink
from pyagent.agent.plugins.ociauth import (
    RegistryError,
    check_offsite,
    fetch_token,
    get_anonymously,
    origin,
    registry_message,
    resolve,
)
from pyagent.agent.plugins.ocirefs import DIGEST, Reference, parse_reference
from pyagent.bundles.errors import BundleRejected, RejectionKind

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
"""A multi-platform tag's index: its first image manifest is the bundle's, as OPA's resolver takes it."""
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
"""Docker's index, read as an OCI index (the same structure)."""
_REDIRECTS = (301, 302, 303, 307, 308)
BUNDLE_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
"""The media type of the layer that holds the bundle (OPA's ``download/oci_download.go``)."""
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
"""The config media type OPA's documentation pushes bundles with (for ``oras push --artifact-type``)."""
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""The largest manifest read (the size registries accept, per the OCI distribution spec)."""
MAX_REDIRECTS = 3

__all__ = ["OciPuller", "PullBudget", "Pulled", "Reference", "RegistryError", "parse_reference"]


@dataclass(frozen=True)
class Pulled:
    """One pull: a new bundle in the sink (``changed``), or the active one named again."""

    changed: bool
    layer_digest: str | None
    """The bundle's ETag (OPA's): its layer's digest; the active bundle's when unchanged."""
    manifest_digest: str
    """The manifest that named it (the registry's ETag, for ``If-None-Match`` on the next pull)."""
    http_code: int
    size: int = 0


class _HashingSink:
    """Writes to ``sink`` and hashes what it writes."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> object:
        self.hash.update(data)
        self.size += len(data)
        return self.sink.write(data)


class OciPuller:
    """Pulls one bundle (``reference``) from the registry behind ``client``."""

    def __init__(self, client: ServiceClient, reference: Reference, *, size_limit: int, label: str) -> None:
        self.client = client
        self.reference = reference
        self.size_limit = size_limit
        self.label = label
        self._token: str | None = None
        """The registry's own token, once its token service issued one."""

    def pull(
        self,
        sink: Sink,
        *,
        etag: str | None,
        manifest: str | None = None,
        manifest_timeout: float,
        blob_timeout: float,
    ) -> Pulled:
        """The manifest, then, unless it names the bundle of digest ``etag`` (the active one), the
        bundle layer into ``sink``, verified. ``manifest``: the manifest digest that last named that
        bundle, asked with ``If-None-Match``.

        Each part is bounded in all, redirects and the token's requests included: the manifest (and an
        index's image manifest) by ``manifest_timeout`` seconds, the blob by ``blob_timeout``, each with
        the service's header timeout more for every request a part may take beyond its first.

        Raises :class:`RegistryError` or ``TransportError`` (no usable answer),
        :class:`BodyTooLarge` (over ``size_limit``) and :class:`BundleRejected` (bytes that are not
        what their digest says).
        """
        ref = self.reference
        headers = {"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}, {OCI_INDEX}, {DOCKER_LIST}"}
        known = manifest if etag and manifest else None
        if known:
            headers["If-None-Match"] = f'"{known}"'
        path = f"/v2/{ref.repository}/manifests/{quote(ref.version, safe=':')}"
        hops = self.client.service.timeout * (MAX_REDIRECTS + 2)  # (redirects, a token, an index)
        budget = PullBudget.of("the manifest", manifest_timeout + hops)
        try:
            reply = self._get(path, headers, max_body=MAX_MANIFEST_BYTES, budget=budget)
        except BodyTooLarge as err:  # the registry's failure, not a bundle's refusal
            raise RegistryError(f"{self._where(path)}: the manifest: {err.detail}") from err
        if reply.status == 304 and known:
            return Pulled(False, etag, known, 304)
        if reply.status != 200:
            raise RegistryError(f"{self._where(path)}: {registry_message(reply)}")
        digest = "sha256:" + hashlib.sha256(reply.body).hexdigest()
        announced = reply.headers.get("docker-content-digest")
        if announced and announced != digest:
            raise self._mismatch(f"the manifest's bytes have digest {digest}, the registry says {announced}")
        if ref.digest and ref.digest != digest:
            raise self._mismatch(f"the manifest's bytes have digest {digest}, not {ref.digest} as asked")
        if digest == known:
            return Pulled(False, etag, digest, 200)
        layer = self._bundle_layer(self._image_manifest(reply.body, digest, budget), digest)
        if etag and layer["digest"] == etag:  # the active bundle, under a new manifest
            return Pulled(False, etag, digest, 200)
        size = layer["size"]
        if size > self.size_limit:
            raise BodyTooLarge(
                f"{self.label}: the bundle layer is {size} bytes, over the limit of {self.size_limit}"
            )
        blob_path = f"/v2/{ref.repository}/blobs/{layer['digest']}"
        hashing = _HashingSink(sink)
        try:  # no more than the manifest says: a longer blob is not read to the bundle's limit
            reply = self._get(
                blob_path,
                {},
                max_body=size,
                budget=PullBudget.of("the blob", blob_timeout + hops),
                sink=hashing,
                offsite=True,
            )
        except BodyTooLarge as err:
            raise self._mismatch(f"the blob is longer than the {size} bytes the manifest says") from err
        if reply.status != 200:
            raise RegistryError(f"{self._where(blob_path)}: {registry_message(reply)}")
        got = "sha256:" + hashing.hash.hexdigest()
        if got != layer["digest"]:
            raise self._mismatch(
                f"the registry sent {hashing.size} bytes with digest {got} for blob {layer['digest']}"
            )
        if hashing.size != size:
            raise self._mismatch(f"the blob is {hashing.size} bytes, the manifest says {size}")
        return Pulled(True, layer["digest"], digest, 200, size)

    def _get(
        self,
        path: str,
        headers: dict[str, str],
        *,
        max_body: int,
        budget: PullBudget,
        sink: Sink | None = None,
        offsite: bool = False,
    ) -> Reply:
        """GET ``path``: with the registry's own token once it asked for one, and following redirects
        within the service's origin; ``offsite`` (a blob, checked against its digest) to another
        origin too, without the registry's credentials (:meth:`_offsite`)."""
        redirects, fresh_token = 0, False
        while True:
            send = dict(headers)
            if self._token is not None:
                send["Authorization"] = f"Bearer {self._token}"
            timeout = budget.left(self._where(path))
            reply = self.client.request(
                "GET", path, timeout=timeout, max_body=max_body, headers=send, sink=sink, exact_path=True
            )
            challenge = reply.headers.get("www-authenticate", "")
            if reply.status == 401 and challenge[:7].lower() == "bearer " and not fresh_token:
                timeout = budget.left(f"{self.label}: the registry's token")
                self._token = fetch_token(self.client, challenge, timeout=timeout, label=self.label)
                fresh_token = True
                continue
            location = reply.headers.get("location")
            if reply.status not in _REDIRECTS or not location:
                return reply
            what = f"{self._where(path)}: HTTP {reply.status} redirect to"
            target = resolve(self.client.origin + path, location, what=what)
            if origin(target) != self.client.origin and offsite:
                return self._offsite(target, max_body=max_body, budget=budget, sink=sink, hops=redirects + 1)
            if origin(target) != self.client.origin:
                raise RegistryError(
                    f"{self._where(path)}: HTTP {reply.status} redirect to another origin "
                    f"({origin(target)}), which is not followed"
                )
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise RegistryError(f"{self._where(path)}: more than {MAX_REDIRECTS} redirects")
            path = target.path + (f"?{target.query}" if target.query else "")

    def _offsite(
        self, url: SplitResult, *, max_body: int, budget: PullBudget, sink: Sink | None, hops: int
    ) -> Reply:
        """A blob the registry sends elsewhere (its storage: ghcr.io, Docker Hub and ECR do), asked
        there as OPA does: with no credentials, over https when the registry is, the system's CAs;
        what comes back is held to the blob's digest by the caller."""
        while True:
            if hops > MAX_REDIRECTS:
                raise RegistryError(f"{self.label}: more than {MAX_REDIRECTS} redirects for the bundle layer")
            what = f"{self.label}: the registry redirects the bundle layer to"
            check_offsite(url, tls=self._tls, what=what)
            timeout = budget.left(f"GET {origin(url)}{url.path}")
            reply = get_anonymously(self.client.service, url, timeout=timeout, max_body=max_body, sink=sink)
            location = reply.headers.get("location")
            if reply.status in _REDIRECTS and location:
                where = f"GET {origin(url)}{url.path}: HTTP {reply.status} redirect to"
                url, hops = resolve(url.geturl(), location, what=where), hops + 1
                continue
            if reply.status != 200:
                raise RegistryError(f"GET {origin(url)}{url.path}: {registry_message(reply)}")
            return reply

    @property
    def _tls(self) -> bool:
        return self.client.origin.startswith("https://")

    def _image_manifest(self, body: bytes, digest: str, budget: PullBudget) -> bytes:
        """``body``, or, when it is an index (a multi-platform tag), its first image manifest, asked by
        digest and held to it."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return body  # (refused as not JSON by _bundle_layer)
        if not isinstance(document, dict) or not (
            document.get("mediaType") in (OCI_INDEX, DOCKER_LIST)
            or ("manifests" in document and "layers" not in document)  # (mediaType is optional)
        ):
            return body
        entries = [m for m in document.get("manifests") or [] if isinstance(m, dict)]
        first = next((m for m in entries if m.get("mediaType") in (OCI_MANIFEST, DOCKER_MANIFEST)), None)
        wanted = first.get("digest") if first else None
        if not isinstance(wanted, str) or not DIGEST.fullmatch(wanted):
            raise RegistryError(f"{self.label}: index {digest} names no image manifest by a sha256 digest")
        declared = first.get("size") if first else None
        bound = (
            declared
            if isinstance(declared, int) and 0 < declared < MAX_MANIFEST_BYTES
            else MAX_MANIFEST_BYTES
        )
        path = f"/v2/{self.reference.repository}/manifests/{wanted}"
        headers = {"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}
        try:
            reply = self._get(path, headers, max_body=bound, budget=budget)
        except BodyTooLarge as err:
            raise self._mismatch(
                f"index {digest} says manifest {wanted} is {bound} bytes; it is longer"
            ) from err
        if reply.status != 200:
            raise RegistryError(f"{self._where(path)}: {registry_message(reply)}")
        got = "sha256:" + hashlib.sha256(reply.body).hexdigest()
        if got != wanted:
            raise self._mismatch(f"index {digest} names manifest {wanted}, the registry sent {got}")
        return reply.body

    def _bundle_layer(self, body: bytes, digest: str) -> dict[str, Any]:
        try:
            manifest = json.loads(body)
        except (ValueError, RecursionError) as err:
            raise RegistryError(f"{self.label}: manifest {digest} is not JSON: {err}") from err
        layers = manifest.get("layers") if isinstance(manifest, dict) else None
        if not isinstance(layers, list) or not layers:
            raise RegistryError(f"{self.label}: manifest {digest} has no layers")
        for layer in layers:
            if isinstance(layer, dict) and layer.get("mediaType") == BUNDLE_LAYER:
                size, blob = layer.get("size"), layer.get("digest")
                if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                    raise RegistryError(f"{self.label}: manifest {digest}: the layer's size is {size!r}")
                if not isinstance(blob, str) or not DIGEST.fullmatch(blob):
                    raise RegistryError(
                        f"{self.label}: manifest {digest}: the bundle layer's digest {blob!r} "
                        "is not sha256:<64 hex digits>"
                    )
                return layer
        raise RegistryError(f"{self.label}: manifest {digest} has no layer of media type {BUNDLE_LAYER}")

    def _mismatch(self, detail: str) -> BundleRejected:
        return BundleRejected(RejectionKind.DIGEST_MISMATCH, self.label, detail)

    def _where(self, path: str) -> str:
        return f"GET {self.client.origin}{path}"


@dataclass(frozen=True)
class PullBudget:
    """The time of one part of a pull (the manifest's, the blob's), for all of its requests: a chain
    of slow redirects had each hop's whole timeout, several times the part's."""

    part: str
    seconds: float
    ends: float

    @classmethod
    def of(cls, part: str, seconds: float) -> PullBudget:
        return cls(part, seconds, time.monotonic() + seconds)

    def left(self, where: str) -> float:
        """The seconds left for the next request (to ``where``, for the message when none are)."""
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise RegistryError(
                f"{where}: {self.part} not pulled within {self.seconds:g} s (redirects and token included)"
            )
        return remaining
