"""Write an image into an OCI image layout folder (``oci:DIR[:TAG]``), keeping its other tags."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import OutputError
from ..image import Artifact, Blob, all_blobs
from ..spec import Descriptor, ImageIndex, MediaType, canonical_json
from ..spec.annotations import REF_NAME
from ..store import atomic_write_bytes
from .common import atomic_dir, atomic_file, copy_blob

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def populate(root: Path, blobs: list[Blob]) -> None:
    """Copy every blob (verified) into ``root/blobs``; skip blobs already there."""
    for blob in blobs:
        desc = blob.descriptor
        target = root / desc.digest.blob_name
        if target.is_file() and target.stat().st_size == desc.size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target, f"blob {desc.digest}") as f:
            copy_blob(blob, f)


def updated_index(existing: ImageIndex | None, entry: Descriptor, tag: str | None) -> ImageIndex:
    """``existing`` with ``entry`` under ``tag``, replacing whatever had that tag (or, untagged, the
    untagged entries)."""
    kept = [d for d in (existing.manifests if existing else ()) if d.annotations.get(REF_NAME) != tag]
    return ImageIndex(manifests=(*kept, entry), media_type=MediaType.OCI_INDEX)


def check_layout(path: Path, where: str) -> None:
    """Fail early if ``path`` cannot become or be updated as an OCI layout."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot write {where}: {path} exists and is not a folder")
    if path.is_dir() and not (path / "oci-layout").is_file() and any(path.iterdir()):
        raise OutputError(f"cannot write {where}: {path} is a non-empty folder but not an OCI layout; "
                          "choose a new or empty folder")


def write_layout(path: Path, tag: str | None, artifact: Artifact) -> Descriptor:
    """Write ``artifact`` under ``tag`` (a new layout atomically, or an existing one blob by blob,
    ``index.json`` last); returns the descriptor ``index.json`` now lists."""
    where = f"oci:{path}" + (f":{tag}" if tag else "")
    entry = artifact.descriptor({REF_NAME: tag} if tag else None)
    check_layout(path, where)
    if not path.exists() or not any(path.iterdir()):
        if path.exists():
            path.rmdir()
        with atomic_dir(path, where) as tmp:
            (tmp / "oci-layout").write_bytes(OCI_LAYOUT)
            populate(tmp, all_blobs(artifact))
            (tmp / "index.json").write_bytes(canonical_json(updated_index(None, entry, tag).to_dict()))
        return entry
    if not os.access(path, os.W_OK):
        raise OutputError(f"cannot write {where}: {path} is not writable")
    try:
        existing = ImageIndex.from_dict(json.loads((path / "index.json").read_bytes()))
    except FileNotFoundError:
        existing = None
    except ValueError as exc:
        raise OutputError(f"cannot update {where}: its index.json is invalid ({exc}); fix or remove it") from None
    populate(path, all_blobs(artifact))
    atomic_write_bytes(path / "index.json", canonical_json(updated_index(existing, entry, tag).to_dict()))
    return entry
