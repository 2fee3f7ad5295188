"""The unit that referrer and signing code attaches to an image: a :class:`Document` (its bytes, media
type and the manifest or index it describes), and :func:`documents`, every document of a build."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..spec import Descriptor, Digest
from .inventory import inventory
from .provenance import IN_TOTO_JSON, slsa_provenance
from .sbom import CYCLONEDX_JSON, SPDX_JSON, cyclonedx_document, spdx_document

if TYPE_CHECKING:
    from ..build import BuildResult

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
    bytes. Reads every layer of each image once (for the SBOM).

    >>> [d.artifact_type for d in documents(result)]  # doctest: +SKIP
    ['application/spdx+json', 'application/vnd.in-toto+json']
    """
    if kind not in (*SBOM_KINDS, None):
        raise ConfigError(f"SBOM format {kind!r} is not one of {', '.join(SBOM_KINDS)}")
    images = [p.image for p in result.platforms if p.image is not None] or [result.image]
    out: list[Document] = []
    epoch = result.plan.source_date_epoch
    for image in images:
        subject = image.descriptor(with_platform=True)
        if kind == "spdx":
            out.append(Document(artifact_type=SPDX_JSON, media_type=SPDX_JSON, subject=subject,
                                payload=spdx_document(inventory(result, image), created_epoch=epoch)))
        elif kind == "cyclonedx":
            out.append(Document(artifact_type=CYCLONEDX_JSON, media_type=CYCLONEDX_JSON, subject=subject,
                                payload=cyclonedx_document(inventory(result, image), created_epoch=epoch)))
    if provenance:
        payload = slsa_provenance(result, images)
        subjects = [image.descriptor(with_platform=True) for image in images]
        if result.index is not None:
            subjects.append(result.index.descriptor())
        out += [Document(artifact_type=IN_TOTO_JSON, media_type=IN_TOTO_JSON, subject=s, payload=payload)
                for s in subjects]
    return out
