"""Reading ``.deb`` files: the ``ar`` container, the control paragraph, and the data tar streamed into
deterministic ``TarEntry`` values. Nothing is executed: maintainer scripts are ignored."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

from ..errors import LayerError, SourceError
from ..layers.tarwriter import TarEntry, normalize_path
from .control import parse_stanza

AR_MAGIC = b"!<arch>\n"
# Top-level folders that live under /usr in a merged-/usr system (bookworm packages still ship some;
# trixie ships everything under /usr, and its base-files ships the top-level links themselves).
MERGED_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32")


@dataclass(frozen=True, kw_only=True, slots=True)
class DebMembers:
    """The members of a ``.deb``: control archive and data archive (name and raw bytes)."""

    control_name: str
    control: bytes
    data_name: str
    data: bytes


def read_members(path: Path, what: str = "") -> DebMembers:
    """Split a ``.deb`` (an ``ar`` archive) into its control and data tar members."""
    what = what or str(path)
    members: dict[str, bytes] = {}
    try:
        with path.open("rb") as f:
            if f.read(8) != AR_MAGIC:
                raise SourceError(f"{what} is not a Debian package (no ar header)")
            while header := f.read(60):
                if len(header) < 60 or header[58:60] != b"`\n":
                    raise SourceError(f"{what}: truncated or corrupt ar member header")
                name = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
                size = int(header[48:58].decode("ascii").strip() or 0)
                data = f.read(size)
                if len(data) != size:
                    raise SourceError(f"{what}: member {name} is truncated")
                if size % 2:
                    f.read(1)
                members[name] = data
    except OSError as exc:
        raise SourceError(f"cannot read {what}: {exc.strerror}") from None
    control_names = [n for n in members if n.startswith("control.tar")]
    data_names = [n for n in members if n.startswith("data.tar")]
    if not control_names or not data_names:
        raise SourceError(f"{what} has no control.tar or data.tar member (members: {', '.join(members)})")
    return DebMembers(control_name=control_names[0], control=members[control_names[0]], data_name=data_names[0],
                      data=members[data_names[0]])


def _decompressed(name: str, raw: bytes) -> IO[bytes]:
    buf = io.BytesIO(raw)
    if name.endswith(".xz"):
        return lzma.LZMAFile(buf)
    if name.endswith(".zst"):
        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(buf)
        return reader
    if name.endswith(".gz"):
        gz: IO[bytes] = gzip.GzipFile(fileobj=buf)  # type: ignore[assignment]
        return gz
    if name.endswith(".bz2"):
        return bz2.BZ2File(buf)
    if name.endswith(".tar"):
        return buf
    raise SourceError(f"unsupported .deb member compression: {name}")


def control_files(members: DebMembers) -> dict[str, bytes]:
    """Files of the control archive (``control``, ``md5sums``, ``postinst``...) by name."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=_decompressed(members.control_name, members.control), mode="r|") as tar:
        for m in tar:
            if m.isreg():
                f = tar.extractfile(m)
                if f is not None:
                    out[posixpath.basename(m.name)] = f.read()
    return out


def control_fields(members: DebMembers) -> dict[str, str]:
    """The ``control`` paragraph of the package."""
    text = control_files(members).get("control", b"").decode("utf-8", errors="replace")
    return parse_stanza(text)


def merge_usr_path(path: str) -> str:
    """``bin/ls`` -> ``usr/bin/ls`` (and the same for sbin, lib*); other paths unchanged."""
    head = path.partition("/")[0]
    return f"usr/{path}" if head in MERGED_DIRS else path


def _moved_symlink_target(old_path: str, new_path: str, target: str) -> str:
    """Keep a relative symlink pointing at the same (merged) file after the link itself moved."""
    if target.startswith("/") or old_path == new_path:
        return target
    absolute = posixpath.normpath(posixpath.join("/", posixpath.dirname(old_path), target)).lstrip("/")
    return posixpath.relpath("/" + merge_usr_path(absolute), "/" + posixpath.dirname(new_path))


def is_usr_link(path: str, target: str) -> bool:
    """True for the merged-/usr link itself (``bin -> usr/bin``, as trixie's base-files ships it): it
    stays where it is, since moving it under /usr would make ``usr/bin -> bin``, a loop."""
    return path in MERGED_DIRS and posixpath.normpath(posixpath.join("/", target)) == f"/usr/{path}"


PathFilter = Callable[[str], bool]


def data_entries(members: DebMembers, *, merged_usr: bool = True, keep: PathFilter | None = None,
                 what: str = "") -> list[TarEntry]:
    """The package's files as ``TarEntry`` values, in archive order. Modes (setuid included) are kept,
    owners dropped (the layer writer sets 0), hard links become regular files, device nodes and fifos
    are skipped. With ``merged_usr`` paths under ``/bin``, ``/lib``... move to ``/usr``. ``keep(path)``
    drops what it returns False for (applied to the final path)."""
    out: list[TarEntry] = []
    seen: dict[str, TarEntry] = {}  # original path -> entry, for hard links
    try:
        with tarfile.open(fileobj=_decompressed(members.data_name, members.data), mode="r|") as tar:
            for m in tar:
                try:
                    old = normalize_path(m.name)
                except LayerError:
                    raise SourceError(f"{what}: unsafe path {m.name!r} in package data") from None
                if not old:
                    continue
                usr_link = m.issym() and is_usr_link(old, m.linkname)
                path = merge_usr_path(old) if merged_usr and not usr_link else old
                mode = m.mode & 0o7777
                if m.isdir():
                    entry = TarEntry.directory(path, mode)
                elif m.isreg():
                    f = tar.extractfile(m)
                    data = f.read() if f is not None else b""
                    entry = TarEntry(path=path, kind="file", mode=mode, size=len(data), data=data)
                elif m.issym():
                    target = _moved_symlink_target(old, path, m.linkname)
                    entry = TarEntry.symlink(path, target)
                elif m.islnk():
                    source = seen.get(normalize_path(m.linkname))
                    if source is None or source.kind != "file":
                        raise SourceError(f"{what}: hard link {m.name} -> {m.linkname} has no target file")
                    entry = TarEntry(path=path, kind="file", mode=mode or source.mode, size=source.size,
                                     data=source.data)
                else:
                    continue
                seen[old] = entry
                if keep is None or keep(path):
                    out.append(entry)
    except (tarfile.TarError, lzma.LZMAError, zstandard.ZstdError, OSError, EOFError) as exc:
        raise SourceError(f"{what}: cannot read {members.data_name}: {exc}") from None
    return out
