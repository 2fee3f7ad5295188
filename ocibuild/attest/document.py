"""The unit that referrer and signing code attaches to an image: a :class:`Document` (its bytes, media
type and the manifest or index it describes), and :func:`documents`, every document of a build."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from ..errors import ConfigError, OcibuildError
from ..spec import Descriptor, Digest
from .inventory import inventory
from .provenance import IN_TOTO_JSON, slsa_provenance
from .sbom import CYCLONEDX_JSON, SPDX_JSON, cyclonedx_document, spdx_document

if TYPE_CHECKING:
    from ..build import BuildResult
    from ..image import Image

__all__ = ["SBOM_KINDS", "Document", "documents"]

SBOM_KINDS = ("spdx", "cyclonedx", "none")
"""The values ``documents(kind=...)`` (and ``--sbom``) take."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Document:
    """An SBOM or provenance document about one image manifest or index (``subject``): the payload
    bytes, their media type, and the ``artifactType`` of the OCI artifact manifest that carries it."""

    artifact_type: str
    media_type: str
    payload: bytes = field(repr=False)
    subject: Descriptor

    @property
    def digest(self) -> Digest:
        """The payload's sha256 digest."""
        return Digest.of(self.payload)

    def descriptor(self) -> Descriptor:
        """The descriptor of the payload blob (a layer of the artifact manifest)."""
        return Descriptor(media_type=self.media_type, digest=self.digest, size=len(self.payload))


def documents(result: BuildResult, kind: str | None = "spdx", provenance: bool = True) -> list[Document]:
    """The documents to attach to ``result``: per platform image an SBOM (``kind`` ``"spdx"`` or
    ``"cyclonedx"``; ``"none"`` or None for none) and, with ``provenance``, the SLSA provenance, which
    covers every image and the index and is attached to each of them. The same build gives the same
    bytes. Reads every layer of each image once (for the SBOM), unless the content store remembers the
    SBOM of the same image and inputs.

    >>> [d.artifact_type for d in documents(result)]  # doctest: +SKIP
    ['application/spdx+json', 'application/vnd.in-toto+json']
    """
    if kind not in (*SBOM_KINDS, None):
        raise ConfigError(f"SBOM format {kind!r} is not one of {', '.join(SBOM_KINDS)}")
    images = [p.image for p in result.platforms if p.image is not None] or [result.image]
    out: list[Document] = []
    epoch = result.plan.source_date_epoch
    statement = slsa_provenance(result, images) if provenance or kind in ("spdx", "cyclonedx") else b""
    for image in images:
        if kind in ("spdx", "cyclonedx"):
            media = SPDX_JSON if kind == "spdx" else CYCLONEDX_JSON
            render = spdx_document if kind == "spdx" else cyclonedx_document
            payload = _remembered(result, f"{kind} {image.digest} {epoch}", statement,
                                  partial(_sbom, render, result, image, epoch))
            out.append(Document(artifact_type=media, media_type=media, subject=image.descriptor(with_platform=True),
                                payload=payload))
    if provenance:
        payload = statement
        subjects = [image.descriptor(with_platform=True) for image in images]
        if result.index is not None:
            subjects.append(result.index.descriptor())
        out += [Document(artifact_type=IN_TOTO_JSON, media_type=IN_TOTO_JSON, subject=s, payload=payload)
                for s in subjects]
    return out


def _sbom(render: Callable[..., bytes], result: BuildResult, image: Image, epoch: int) -> bytes:
    return render(inventory(result, image), created_epoch=epoch)


def _remembered(result: BuildResult, what: str, statement: bytes, make: Callable[[], bytes]) -> bytes:
    """An SBOM made once per image and inputs: ``make()``, kept in the build's content store under the
    image's digest and the provenance ``statement`` (which names every input the SBOM reads besides the
    image's own files: wheels, .deb files, the base, models, the plan), so an unchanged image of a batch
    or a rebuild does not walk its layers again."""
    store = result.store
    if store is None:
        return make()
    from ..spec import canonical_json

    key = "sbom-doc-1-" + hashlib.sha256(canonical_json([what, statement.decode("utf-8")])).hexdigest()
    record = store.get_record(key)
    try:
        if isinstance(record, str):
            return store.read_bytes(Digest.parse(record))
    except OcibuildError:
        pass
    payload = make()
    with contextlib.suppress(OcibuildError):
        store.put_record(key, str(store.put_bytes(payload)))
    return payload
