"""Write an image into an OCI image layout folder (``oci:DIR[:TAG]``), keeping its other tags.

Every write takes an exclusive ``flock`` on ``DIR/.ocibuild.lock`` (the image-layout spec allows
extra files; umoci, skopeo and oci-image-tool read such a layout) and does the whole
read-modify-write of ``index.json`` under it, so concurrent builds into one layout never lose a tag.
A new layout is made in place under the same lock: the folder and the lock first, then
``oci-layout``, the blobs, and ``index.json`` last by an atomic rename, so a reader never sees an
``index.json`` naming a blob that is not there yet. A write that fails (disk full, Ctrl-C, a corrupt
blob) takes back every blob it added; a layout it was creating is removed again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError
from ..image import Artifact, Blob, all_blobs
from ..spec import Descriptor, ImageIndex, MediaType, canonical_json
from ..spec.annotations import REF_NAME
from ..store import atomic_writer, sweep_stale, write_error
from .common import OUTPUT_HINT, copy_blob, output_target, sweep_beside, writable_parent

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
LOCK_NAME = ".ocibuild.lock"


def _ours(name: str) -> bool:
    """Files ocibuild itself leaves in a layout folder that is not (yet) a layout: its lock and temp files."""
    return name == LOCK_NAME or (name.startswith(".") and ".tmp-" in name)


def _foreign(root: Path) -> bool:
    """Whether ``root`` holds something other than an OCI layout (or one being made). The folder is
    listed before ``oci-layout`` is looked for: a writer making a layout writes ``oci-layout`` before
    anything else, so whatever the listing saw of it, ``oci-layout`` is there by the time it is looked
    for (looking first would race with that writer)."""
    names = [p.name for p in root.iterdir()]
    return any(not _ours(n) for n in names) and not (root / "oci-layout").is_file()


def populate(root: Path, blobs: list[Blob], added: list[Path] | None = None) -> None:
    """Copy every blob (verified) into ``root/blobs``; skip blobs already there. Each blob written is
    appended to ``added`` as soon as it is in place (so a caller can take them back)."""
    for blob in blobs:
        desc = blob.descriptor
        target = root / desc.digest.blob_name
        if target.is_file() and target.stat().st_size == desc.size:
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, target.parent, OUTPUT_HINT, OutputError) from None
        with atomic_writer(target, mode=0o644, hint=OUTPUT_HINT) as f:
            copy_blob(blob, f, target)
        if added is not None:
            added.append(target)


def write_file(path: Path, data: bytes) -> None:
    """``path`` := ``data``, atomically (temp file + rename), readable by all like the blobs."""
    try:
        with atomic_writer(path, mode=0o644, hint=OUTPUT_HINT) as f:
            f.write(data)
    except OSError as exc:
        raise write_error(exc, path, OUTPUT_HINT, OutputError) from None


def updated_index(existing: ImageIndex | None, entry: Descriptor, tag: str | None) -> ImageIndex:
    """``existing`` with ``entry`` under ``tag``, replacing whatever had that tag (or, untagged, the
    untagged images; the untagged artifacts attached to images, listed with an ``artifactType``, stay)."""
    kept = [d for d in (existing.manifests if existing else ())
            if d.annotations.get(REF_NAME) != tag or (tag is None and d.artifact_type)]
    return ImageIndex(manifests=(*kept, entry), media_type=MediaType.OCI_INDEX)


def check_layout(path: Path, where: str) -> None:
    """Fail early if ``path`` (or the folder it links to) cannot become or be updated as an OCI layout."""
    root = output_target(path, where)
    if root.exists() and not root.is_dir():
        raise OutputError(f"cannot write {where}: {path} exists and is not a folder")
    if root.is_dir():
        if _foreign(root):
            raise OutputError(f"cannot write {where}: {path} is a non-empty folder but not an OCI layout; "
                              "choose a new or empty folder")
        if not os.access(root, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write {where}: {path} is not writable; choose another output")


@contextlib.contextmanager
def layout_lock(root: Path, where: str) -> Iterator[bool]:
    """Hold the exclusive lock of the layout folder ``root`` (created, with its parents, if missing);
    yields whether this call created the folder. A lock file removed by a writer that took back a
    layout it was creating is noticed after waiting for it, and the lock taken anew."""
    writable_parent(root, where)
    while True:
        created = False
        try:
            root.mkdir()
            created = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise write_error(exc, root, OUTPUT_HINT, OutputError) from None
        lock = root / LOCK_NAME
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            continue  # the folder went away between mkdir and open: make it again
        except OSError as exc:
            raise write_error(exc, lock, OUTPUT_HINT, OutputError) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(lock)
                same = (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev)
            except FileNotFoundError:
                same = False
            if same:
                yield created
                return
        finally:
            os.close(fd)  # releases the lock


def read_index(root: Path, where: str) -> ImageIndex | None:
    """The ``index.json`` of the layout folder ``root`` (None if it has none); ``OutputError`` if it is invalid."""
    try:
        data = (root / "index.json").read_bytes()
    except FileNotFoundError:
        return None
    try:
        return ImageIndex.from_dict(json.loads(data))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise OutputError(f"cannot update {where}: its index.json is invalid ({exc}); fix or remove it") from None


def take_back(root: Path, added: list[Path], new_layout: bool, created: bool) -> None:
    """Undo a failed write (under the lock): the blobs it added and, for a layout it was creating,
    ``oci-layout``, the lock file and the folder (if it made that too). Best effort, never raises."""
    for blob in reversed(added):
        with contextlib.suppress(OSError):
            blob.unlink()
    if not new_layout:
        return
    for sub in ("blobs/sha256", "blobs"):
        with contextlib.suppress(OSError):
            (root / sub).rmdir()
    for name in ("oci-layout", LOCK_NAME):
        with contextlib.suppress(OSError):
            (root / name).unlink()
    if created:
        with contextlib.suppress(OSError):
            root.rmdir()


def write_layout(path: Path, tag: str | None, artifact: Artifact) -> Descriptor:
    """Write ``artifact`` under ``tag`` into the layout at ``path`` (a symlink is followed; a missing
    folder is created): blobs first, ``index.json`` last, all under the layout's lock. Returns the
    descriptor ``index.json`` now lists."""
    where = f"oci:{path}" + (f":{tag}" if tag else "")
    entry = artifact.descriptor({REF_NAME: tag} if tag else None)
    check_layout(path, where)
    root = output_target(path, where)
    sweep_beside(root)  # temp folders of the old rename-into-place writer, killed
    with layout_lock(root, where) as created:
        added: list[Path] = []
        new_layout = not (root / "oci-layout").is_file()
        if new_layout and _foreign(root):  # something came in since check_layout
            with contextlib.suppress(OSError):
                (root / LOCK_NAME).unlink()
            raise OutputError(f"cannot write {where}: {path} is a non-empty folder but not an OCI "
                              "layout; choose a new or empty folder")
        try:
            # under the lock, every ocibuild writer of this layout is this one: temp files here are
            # a killed build's (those older than a few hours go; fresher ones may be another tool's)
            sweep_stale(root, ".*.tmp-*")
            sweep_stale(root / "blobs" / "sha256", ".*.tmp-*")
            existing = read_index(root, where)
            if new_layout:
                write_file(root / "oci-layout", OCI_LAYOUT)
            populate(root, all_blobs(artifact), added)
            write_file(root / "index.json", canonical_json(updated_index(existing, entry, tag).to_dict()))
        except BaseException:
            take_back(root, added, new_layout, created)
            raise
    return entry
