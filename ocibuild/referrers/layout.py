"""Attached documents in an OCI image layout (``oci:DIR``) or archive (``oci-archive:FILE``), as OCI
1.1 layouts hold referrers: the artifact manifests and their blobs go into ``blobs/``, and
``index.json`` lists each manifest with its ``artifactType`` and without an
``org.opencontainers.image.ref.name``, so skopeo, umoci and podman see no new tag.

A layout is changed under its lock (``sinks.layout.layout_lock``), as every ocibuild writer does: the
blobs first, ``index.json`` last by an atomic rename; a failure takes back the blobs it added. An
archive is written in one go, so its sink takes the additions up front (``layout_additions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import OutputError
from ..image import Blob
from ..sinks.common import output_target
from ..sinks.layout import check_layout, layout_lock, populate, read_index, take_back, write_file
from ..spec import Descriptor, Digest, ImageIndex, MediaType, canonical_json
from .artifact import Attachment, artifact_blobs


@dataclass(frozen=True, kw_only=True, slots=True)
class LayoutAdditions:
    """What attaching documents adds to a layout or archive: the ``index.json`` entries (untagged,
    with ``artifactType``) and every blob they need, each once."""

    entries: tuple[Descriptor, ...]
    blobs: tuple[Blob, ...]


def layout_additions(attached: Sequence[tuple[Descriptor, Sequence[Attachment]]]) -> LayoutAdditions:
    """The entries and blobs that attach each ``(subject, documents)`` pair: for an archive sink, which
    writes them with the image (``write_oci_archive(..., extra_entries=a.entries, extra_blobs=a.blobs)``).

    >>> a = layout_additions([(image.descriptor(), [Attachment.of(SPDX_JSON, sbom)])])  # doctest: +SKIP
    >>> [d.artifact_type for d in a.entries]  # doctest: +SKIP
    ['application/spdx+json']
    """
    entries: dict[Digest, Descriptor] = {}
    blobs: dict[Digest, Blob] = {}
    for subject, attachments in attached:
        descs, needed = artifact_blobs(subject, attachments)
        for desc in descs:
            entries.setdefault(desc.digest, desc)
        for blob in needed:
            blobs.setdefault(blob.descriptor.digest, blob)
    return LayoutAdditions(entries=tuple(entries.values()), blobs=tuple(blobs.values()))


def attach_to_layout(path: Path, subject: Descriptor, attachments: Sequence[Attachment]) -> list[Descriptor]:
    """Attach each document to ``subject`` (a manifest or index whose blob the layout at ``path``
    holds): blobs and artifact manifests into ``blobs/``, the manifests listed untagged in
    ``index.json``. Idempotent; other entries stay. Returns the artifact manifests' descriptors.

    >>> attach_to_layout(Path("out/app"), image.descriptor(), [Attachment.of(SPDX_JSON, sbom)])  # doctest: +SKIP
    [Descriptor(media_type=<MediaType.OCI_MANIFEST: ...>, ..., artifact_type='application/spdx+json')]
    """
    where = f"oci:{path}"
    check_layout(path, where)
    root = output_target(path, where)
    if not (root / "oci-layout").is_file():
        raise OutputError(f"cannot attach documents to {where}: it is not an OCI layout; write the image there first")
    descs, blobs = artifact_blobs(subject, attachments)
    with layout_lock(root, where):
        if not (root / subject.digest.blob_name).is_file():
            raise OutputError(f"cannot attach documents to {where}@{subject.digest}: the layout holds no such "
                              "manifest; write the image there first")
        existing = read_index(root, where) or ImageIndex(manifests=(), media_type=MediaType.OCI_INDEX)
        added: list[Path] = []
        try:
            populate(root, blobs, added)
            have = {d.digest for d in existing.manifests}
            new: list[Descriptor] = []
            for desc in descs:
                if desc.digest not in have:
                    new.append(desc)
                    have.add(desc.digest)
            if new:
                index = replace(existing, manifests=(*existing.manifests, *new))
                write_file(root / "index.json", canonical_json(index.to_dict()))
        except BaseException:
            take_back(root, added, False, False)
            raise
    return descs
