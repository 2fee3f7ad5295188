"""The artifact manifest that attaches one document to an image: OCI 1.1 ``artifactType``, the empty
config, one layer holding the document, and ``subject`` naming the image's manifest (or index).
Pure values: the same document and subject always give the same bytes and digest."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import InvalidValue
from ..image import Blob
from ..spec import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Digest, ImageManifest, MediaType, is_media_type
from ..spec.annotations import CREATED, rfc3339

SPDX_JSON = "application/spdx+json"
"""Artifact type of an SPDX 2.3 JSON SBOM."""
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
"""Artifact type of a CycloneDX JSON SBOM."""
IN_TOTO_JSON = "application/vnd.in-toto+json"
"""Artifact type of an in-toto statement (SLSA provenance)."""
SBOM_TYPES = (SPDX_JSON, CYCLONEDX_JSON)
"""The artifact types that are SBOMs, the preferred first."""

EMPTY_JSON = b"{}"
EMPTY = Descriptor(media_type=MediaType.OCI_EMPTY, digest=Digest.of(EMPTY_JSON), size=len(EMPTY_JSON))
"""The OCI empty descriptor (``{}``, ``sha256:44136fa3...``): the config of every artifact manifest."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Attachment:
    """A document to attach to an image as an OCI 1.1 referrer: its ``artifact_type`` (also the media
    type of the layer that holds it, unless ``media_type`` says otherwise), its bytes, and the
    annotations of its artifact manifest.

    >>> Attachment.of(SPDX_JSON, b'{"spdxVersion": "SPDX-2.3"}', created=0).annotations
    {'org.opencontainers.image.created': '1970-01-01T00:00:00Z'}
    """

    artifact_type: str
    payload: bytes = field(repr=False)
    media_type: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in (("artifact_type", self.artifact_type), ("media_type", self.media_type)):
            if not isinstance(value, str) or ((value or name == "artifact_type") and not is_media_type(value)):
                raise InvalidValue(f"attachment {name} {value!r} is not a media type (type/subtype)")
        if not isinstance(self.payload, bytes):
            raise InvalidValue(f"attachment payload must be bytes, not {type(self.payload).__name__}")
        for key, value in self.annotations.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key:
                raise InvalidValue(f"attachment annotation {key!r}: keys and values must be strings")

    @classmethod
    def of(cls, artifact_type: str, payload: bytes, *, created: int | None = None,
           annotations: Mapping[str, str] | None = None) -> Attachment:
        """A document of ``artifact_type``; ``created`` (seconds since the epoch: pass
        ``SOURCE_DATE_EPOCH`` when it is set, never the wall clock) becomes the
        ``org.opencontainers.image.created`` annotation."""
        notes = dict(annotations or {})
        if created is not None:
            notes[CREATED] = rfc3339(created)
        return cls(artifact_type=artifact_type, payload=payload, annotations=notes)

    @property
    def layer(self) -> Descriptor:
        """The descriptor of the layer that holds the document."""
        return Descriptor(media_type=self.media_type or self.artifact_type, digest=Digest.of(self.payload),
                          size=len(self.payload))


def subject_of(desc: Descriptor) -> Descriptor:
    """``desc`` as a ``subject``: media type, digest and size only (no platform, no annotations), so
    the artifact manifest's bytes do not depend on where the caller found the image's descriptor."""
    if str(desc.media_type) not in MANIFEST_TYPES | INDEX_TYPES:
        raise InvalidValue(f"the subject {desc.digest} has media type {str(desc.media_type)!r}; documents attach "
                           "to an image manifest or an image index")
    return Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size)


def artifact_manifest(subject: Descriptor, attachment: Attachment) -> tuple[bytes, Descriptor]:
    """The artifact manifest attaching ``attachment`` to ``subject`` (an image manifest's or index's
    descriptor): its canonical bytes, and its descriptor as a referrers index lists it (media type,
    digest, size, ``artifactType`` and the manifest's annotations).

    >>> image = Descriptor(media_type=MediaType.OCI_MANIFEST, digest=Digest.of(b"image"), size=5)
    >>> raw, desc = artifact_manifest(image, Attachment.of(SPDX_JSON, b"{}"))
    >>> desc.artifact_type, desc.size == len(raw)
    ('application/spdx+json', True)
    """
    manifest = ImageManifest(config=EMPTY, layers=(attachment.layer,), subject=subject_of(subject),
                             artifact_type=attachment.artifact_type, annotations=dict(attachment.annotations))
    raw = manifest.to_json()
    return raw, Descriptor(media_type=MediaType.OCI_MANIFEST, digest=Digest.of(raw), size=len(raw),
                           artifact_type=attachment.artifact_type, annotations=dict(attachment.annotations))


def bytes_blob(desc: Descriptor, data: bytes) -> Blob:
    """A blob a sink can write, from bytes in memory."""
    return Blob(descriptor=desc, open=lambda: io.BytesIO(data))


def artifact_blobs(subject: Descriptor, attachments: Sequence[Attachment]) -> tuple[list[Descriptor], list[Blob]]:
    """The artifact manifests' descriptors (one per attachment, in order) and every blob they need,
    each once: the empty config, the documents, the manifests (last)."""
    descs: list[Descriptor] = []
    blobs: dict[Digest, Blob] = {EMPTY.digest: bytes_blob(EMPTY, EMPTY_JSON)}
    manifests: list[Blob] = []
    for attachment in attachments:
        raw, desc = artifact_manifest(subject, attachment)
        descs.append(desc)
        blobs.setdefault(attachment.layer.digest, bytes_blob(attachment.layer, attachment.payload))
        manifests.append(bytes_blob(desc, raw))
    for blob in manifests:
        blobs.setdefault(blob.descriptor.digest, blob)
    return descs, list(blobs.values())


def fallback_tag(digest: Digest) -> str:
    """The OCI 1.1 referrers tag of a manifest without the referrers API: ``<alg>-<hex>``, the hex cut
    at 64 characters.

    >>> fallback_tag(Digest.of(b""))
    'sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return f"{digest.algorithm}-{digest.hex[:64]}"
