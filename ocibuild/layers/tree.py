"""Turn a file or folder on disk into layer entries, mapped to a destination path in the image."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Sequence
from pathlib import Path

from ..errors import LayerError
from .ignore import IgnoreRules, load_rules
from .tarwriter import DIR_MODE, EXEC_MODE, FILE_MODE, TarEntry, normalize_path


def _file_mode(st: os.stat_result) -> int:
    return EXEC_MODE if st.st_mode & 0o111 else FILE_MODE


def _check_link(link: Path, root: Path, rel: str) -> str:
    target = os.readlink(link)
    if posixpath.isabs(target):
        raise LayerError(
            f"symlink {link} points to the absolute path {target!r}, outside the source tree {root}; "
            "make it a relative link inside the tree, or exclude it"
        )
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../"):
        raise LayerError(
            f"symlink {link} -> {target!r} escapes the source tree {root}; "
            "point it inside the tree, or exclude it"
        )
    return target


def _entry_for(path: Path, st: os.stat_result, dest: str, root: Path, rel: str) -> TarEntry:
    if stat.S_ISLNK(st.st_mode):
        return TarEntry.symlink(dest, _check_link(path, root, rel))
    if stat.S_ISREG(st.st_mode):
        return TarEntry(path=dest, kind="file", mode=_file_mode(st), size=st.st_size, source=path)
    if stat.S_ISDIR(st.st_mode):
        return TarEntry.directory(dest, DIR_MODE)
    raise LayerError(
        f"{path} is a device, FIFO or socket; layers hold only files, folders and symlinks: exclude it"
    )


def collect(src: Path, dest: str, *, excludes: Sequence[str] = (), rules: IgnoreRules | None = None,
            skip: Sequence[Path] = ()) -> list[TarEntry]:
    """Entries for ``src`` placed at ``dest``.

    A folder's contents go below ``dest``; a file becomes ``dest`` (or ``dest/<name>`` when ``dest``
    ends with ``/``). ``excludes`` add to the defaults (which leave out every virtual environment, any
    folder with a ``pyvenv.cfg``: it only works on the machine that made it) and the folder's
    ``.ociignore``; ``skip``
    names absolute paths never to include (e.g. an output folder inside the project).

    >>> collect(Path("app"), "/app")  # doctest: +SKIP
    [TarEntry(path='app/main.py', kind='file', ...)]
    """
    try:
        top = src.lstat()
    except FileNotFoundError:
        raise LayerError(f"layer source {src} does not exist; fix 'src' or create it") from None
    if not dest.startswith("/"):
        raise LayerError(f"layer destination {dest!r} must be an absolute path in the image, e.g. '/app'")
    dest_norm = normalize_path(dest)
    if not stat.S_ISDIR(top.st_mode):
        name = dest_norm + "/" + src.name if dest.endswith("/") or not dest_norm else dest_norm
        return [_entry_for(src, top, name, src.parent, src.name)]

    root = src.absolute()
    rules = rules or load_rules(root, excludes)
    skipped = {p.absolute() for p in skip}
    entries: list[TarEntry] = [TarEntry.directory(dest_norm)] if dest_norm else []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dir_rel = os.path.relpath(dirpath, root)
        dir_rel = "" if dir_rel == "." else dir_rel.replace(os.sep, "/")
        keep_dirs = []
        for name in sorted(dirnames):
            rel = f"{dir_rel}/{name}" if dir_rel else name
            full = Path(dirpath) / name
            if full in skipped:
                continue
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                filenames.append(name)  # a symlink to a folder is kept as a symlink
                continue
            venv = rules.skip_venvs and (full / "pyvenv.cfg").is_file()
            if rules.excluded(rel, venv=venv):
                if rules.has_negations and not venv:
                    keep_dirs.append(name)  # something below may be re-included
                continue
            keep_dirs.append(name)
            entries.append(TarEntry.directory(posixpath.join(dest_norm, rel), DIR_MODE))
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            rel = f"{dir_rel}/{name}" if dir_rel else name
            full = Path(dirpath) / name
            if full in skipped or rules.excluded(rel):
                continue
            entries.append(_entry_for(full, full.lstat(), posixpath.join(dest_norm, rel), root, rel))
    return entries
