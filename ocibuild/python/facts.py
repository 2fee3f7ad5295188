"""What a base image holds that tells which Python it has, read from its merged filesystem.

:func:`scan_image` walks the image once with :func:`ocibuild.imagefs.merged_view`, keeping only the
entries that matter (python executables and the symlinks leading to them, C library files) and reading
a few small files: the dpkg / apk package databases, ``/etc/os-release`` and, for glibc, the version
banner inside ``libc.so.6`` (scanned in chunks, never held whole). The result is :class:`ImageFacts`;
deciding what they mean is ``detect.py``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from ..imagefs import Entry, Limits, MergedView, follow_symlinks, merged_view, read_upto

if TYPE_CHECKING:
    from ..image import Image

__all__ = ["CANDIDATE_DIRS", "SCAN_LIMITS", "ImageFacts", "scan_image"]

CANDIDATE_DIRS = ("/usr/local/bin", "/usr/bin", "/bin")  # plus /opt/*/bin
_MAX_TEXT = 16 << 20  # larger "small" files (dpkg status, os-release, apk db) are ignored
_CHUNK = 1 << 20

PYTHON_NAME = re.compile(r"python3(?:\.\d+)?")
# the file CPython finds its standard library by: <prefix>/lib/python3.X/os.py
_STDLIB_LANDMARK = re.compile(r"(.*)/lib/python(3\.\d+)/os\.py")
_GLIBC_FILE = re.compile(r"libc-(\d+)\.(\d+)\.so")
_MUSL_FILE = re.compile(r"(?:ld-musl-[A-Za-z0-9_]+\.so\.1|libc\.musl-[A-Za-z0-9_]+\.so\.1)")
_GLIBC_BANNER = re.compile(rb"GNU C Library [^\n\x00]{0,200}?release version (\d+)\.(\d+)")
_GLIBC_SYMVER = re.compile(rb"GLIBC_2\.(\d+)")
_LIBC_SO = "libc.so.6"
_CONTENT_FILES = ("/etc/os-release", "/usr/lib/os-release", "/var/lib/dpkg/status", "/lib/apk/db/installed",
                  "/usr/lib/apk/db/installed")
_DPKG_STATUS = "/var/lib/dpkg/status"
_DPKG_STATUS_D = "/var/lib/dpkg/status.d/"

SCAN_LIMITS = Limits(
    entries=100_000, files=10_000, data=64 << 20,
    advice="the base image is hostile or unusual; use another base, or set python.interpreter, "
           "python.python_version, python.libc and python.libc_version so that its layers are not scanned",
)
"""What the scan keeps at most: 100,000 entries (python executables, libc files, symlinks on the way,
``os.py`` landmarks), 10,000 small files read (dpkg ``status`` / ``status.d``, apk db, os-release) and
64 MiB of their content. A base beyond that is refused with one error line; real images keep a few
hundred entries and a few MB (the largest dpkg status files are about 5 MB)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageFacts:
    """What :func:`scan_image` found in the merged view of a base image's layers.

    Paths are absolute. Only the entries that matter are kept: files and symlinks named ``python3`` /
    ``python3.X`` anywhere, symlinks that may be directories on the way to them (``/bin``,
    ``/usr/local/bin``, ``/opt/*``, ``/opt/*/bin``, ``/etc/alternatives/*``), C library files and the
    standard libraries' ``<prefix>/lib/python3.X/os.py``.
    """

    files: frozenset[str] = frozenset()
    symlinks: Mapping[str, str] = field(default_factory=dict)  # path -> link target as stored
    dpkg: Mapping[str, str] = field(default_factory=dict)  # installed package -> version
    apk: Mapping[str, str] = field(default_factory=dict)  # installed package -> version
    os_release: Mapping[str, str] = field(default_factory=dict)
    glibc_from_binary: str = ""  # "2.36", read from the banner inside libc.so.6; "" if none

    def resolve(self, path: str) -> str | None:
        """``path`` with every symlink followed, if that ends at a known file; else None."""
        real = follow_symlinks(path, self.symlinks.get)
        return real if real is not None and real in self.files else None

    def interpreter_candidates(self) -> list[str]:
        """Paths named python3 / python3.X in /usr/local/bin, /usr/bin, /bin and /opt/*/bin, sorted."""
        found: list[str] = []
        for path in (*self.files, *self.symlinks):
            parent, name = posixpath.split(path)
            if not PYTHON_NAME.fullmatch(name):
                continue
            if parent in CANDIDATE_DIRS or re.fullmatch(r"/opt/[^/]+/bin", parent):
                found.append(path)
        return sorted(found)

    def stdlib_versions(self, interpreter: str) -> list[str]:
        """major.minor of each standard library beside ``interpreter`` (``/usr/local/bin/python3`` ->
        ``/usr/local/lib/python3.X/os.py``, where CPython itself looks), sorted."""
        prefix = posixpath.dirname(posixpath.dirname(interpreter))
        found = {m.group(2) for p in self.files
                 if (m := _STDLIB_LANDMARK.fullmatch(p)) and (m.group(1) or "/") == prefix}
        return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))

    @property
    def has_glibc(self) -> bool:
        return any(posixpath.basename(p) == _LIBC_SO or _GLIBC_FILE.fullmatch(posixpath.basename(p))
                   for p in (*self.files, *self.symlinks))

    @property
    def has_musl(self) -> bool:
        return any(_MUSL_FILE.fullmatch(posixpath.basename(p)) for p in (*self.files, *self.symlinks))

    @property
    def glibc_from_name(self) -> str:
        """Lowest version named by a ``libc-2.NN.so`` file (glibc before 2.34), or ""."""
        versions = sorted(
            (int(m.group(1)), int(m.group(2)))
            for p in (*self.files, *self.symlinks)
            if (m := _GLIBC_FILE.fullmatch(posixpath.basename(p)))
        )
        return f"{versions[0][0]}.{versions[0][1]}" if versions else ""


# --------------------------------------------------------------------------------------------------
# the scan
# --------------------------------------------------------------------------------------------------


def _is_content_file(path: str) -> bool:
    """The package databases and os-release (a ``status.d`` file's ``.md5sums`` says nothing we need)."""
    return path in _CONTENT_FILES or (path.startswith(_DPKG_STATUS_D) and "/" not in path[len(_DPKG_STATUS_D):]
                                      and not path.endswith(".md5sums"))


def _is_libc(name: str) -> bool:
    return name == _LIBC_SO or bool(_GLIBC_FILE.fullmatch(name) or _MUSL_FILE.fullmatch(name))


def _directory_link(path: str) -> bool:
    """Symlinks that may be directories on the way to an interpreter (``/bin``, ``/usr/local``,
    ``/opt/*``, ``/opt/*/bin``), or alternatives links."""
    parts = path[1:].split("/")
    return len(parts) <= 2 or (len(parts) == 3 and (parts[2] == "bin" or parts[:2] == ["etc", "alternatives"]))


def _keep(entry: Entry) -> bool:
    name = posixpath.basename(entry.path)
    if entry.kind not in ("file", "hardlink", "symlink"):
        return False
    if PYTHON_NAME.fullmatch(name) or _is_libc(name) or _is_content_file(entry.path):
        return True
    if name == "os.py" and entry.kind != "symlink" and _STDLIB_LANDMARK.fullmatch(entry.path):
        return True
    return entry.kind == "symlink" and _directory_link(entry.path)


def _want(path: str) -> bool:
    return posixpath.basename(path) == _LIBC_SO or _is_content_file(path)


def _glibc_banner(f: IO[bytes]) -> str:
    """The glibc release named inside a libc.so.6 ("2.36"), read in chunks; "" if not found."""
    tail = b""
    highest_symver = 0
    while chunk := f.read(_CHUNK):
        window = tail + chunk
        if m := _GLIBC_BANNER.search(window):
            return f"{int(m.group(1))}.{int(m.group(2))}"
        for sym in _GLIBC_SYMVER.finditer(window):
            highest_symver = max(highest_symver, int(sym.group(1)))
        tail = window[-256:]
    return f"2.{highest_symver}" if highest_symver else ""


_read_text = read_upto(_MAX_TEXT)


def _read(entry: Entry, stream: IO[bytes]) -> bytes | None:
    """Small text files whole; for ``libc.so.6`` only the glibc version its banner names (b"2.36")."""
    if posixpath.basename(entry.path) == _LIBC_SO:
        return _glibc_banner(stream).encode() or None
    return _read_text(entry, stream)


def _parse_stanzas(text: str) -> Iterator[dict[str, str]]:
    """RFC822-like stanzas (dpkg status) as dicts of their single-line fields."""
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        if fields:
            yield fields


def _dpkg_packages(files: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    packages: dict[str, str] = {}
    for path, data in files:
        in_status_d = path.startswith(_DPKG_STATUS_D)
        if in_status_d and path.endswith(".md5sums"):
            continue
        for stanza in _parse_stanzas(data.decode("utf-8", "replace")):
            status = stanza.get("Status", "install ok installed" if in_status_d else "")
            if "Package" in stanza and "Version" in stanza and status.split()[-1:] == ["installed"]:
                packages.setdefault(stanza["Package"], stanza["Version"])
    return packages


def _apk_packages(data: bytes) -> dict[str, str]:
    packages: dict[str, str] = {}
    name = ""
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("P:"):
            name = line[2:].strip()
        elif line.startswith("V:") and name:
            packages.setdefault(name, line[2:].strip())
        elif not line.strip():
            name = ""
    return packages


def _os_release(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = value.strip().strip("\"'")
    return out


def _facts(view: MergedView) -> ImageFacts:
    files = frozenset(p for p, e in view.items() if e.kind in ("file", "hardlink"))

    def content(path: str) -> bytes | None:
        entry = view.resolve(path)
        return entry.data if entry is not None else None

    dpkg_files = [(p, e.data) for p, e in sorted(view.items())
                  if e.data is not None and (p == _DPKG_STATUS or p.startswith(_DPKG_STATUS_D))]
    apk = content("/lib/apk/db/installed") or content("/usr/lib/apk/db/installed")
    release = content("/etc/os-release") or content("/usr/lib/os-release")
    banners = sorted((tuple(int(x) for x in v.split(".")), v) for p, e in view.items()
                     if e.data and posixpath.basename(p) == _LIBC_SO and (v := e.data.decode()))
    return ImageFacts(
        files=files,
        symlinks=view.symlinks,
        dpkg=_dpkg_packages(dpkg_files),
        apk=_apk_packages(apk) if apk else {},
        os_release=_os_release(release) if release else {},
        glibc_from_binary=banners[0][1] if banners else "",
    )


def scan_image(base: Image) -> ImageFacts:
    """Read every layer of ``base`` once, as a stream, and return what the merged image holds."""
    return _facts(merged_view(base, keep=_keep, want=_want, reader=_read, limits=SCAN_LIMITS))
