"""Install a wheel straight into layer entries (the pypa/installer idea, with tar entries as destination).

No staging directory and nothing from the host leaks in: the entries depend only on the wheel's bytes
and the :class:`VenvLayout`, so the same wheel gives byte-identical entries on every machine. Every
member is checked against the wheel's RECORD before it is placed, and the installed RECORD is
rewritten (sorted, fixed format) so it describes exactly what the layer holds.
"""

from __future__ import annotations

import base64
import configparser
import csv
import email.parser
import hashlib
import io
import posixpath
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, LayerError
from ..layers.tarwriter import EXEC_MODE, FILE_MODE, TarEntry

__all__ = ["VenvLayout", "WheelInfo", "normalize_name", "read_wheel_info", "venv_entries", "wheel_entries"]

INSTALLER_NAME = "ocibuild"
STREAM_THRESHOLD = 1 << 20  # members larger than this are streamed from the zip, never held in memory
STREAM_CHUNK = 1 << 20
MAX_SHEBANG = 127  # the historical kernel limit for a '#!' line; longer ones get truncated on old kernels

_SCHEMES: frozenset[str] = frozenset({"purelib", "platlib", "scripts", "data", "headers"})
_UNHASHED = frozenset({"RECORD", "RECORD.jws", "RECORD.p7s"})  # dist-info files RECORD cannot hash
_HASHES = frozenset({"sha256", "sha384", "sha512", "blake2b", "blake2s", "sha3_256", "sha3_384", "sha3_512"})

_FILENAME = re.compile(
    r"^(?P<name>[^-\s]+)-(?P<version>[^-\s]+)(?:-(?P<build>\d[^-\s]*))?"
    r"-(?P<py>[^-\s]+)-(?P<abi>[^-\s]+)-(?P<plat>[^-\s]+)\.whl$"
)
_PYTHON_VERSION = re.compile(r"^\d+\.\d+$")
_ENTRY_POINT = re.compile(r"^(?P<module>[\w.]+)\s*(?::\s*(?P<attr>[\w.]+))?\s*(?:\[[^\]]*\])?$")

_LAUNCHER = """\
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({attr}())
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class VenvLayout:
    """Where things go in the image: a virtual environment at ``prefix`` on the base image's python.

    Values are validated up front because they end up in shebang lines, where spaces or a relative path
    would produce scripts that cannot start.
    """

    prefix: str = "/opt/venv"
    python_version: str = "3.11"
    interpreter: str = "/usr/bin/python3.11"

    def __post_init__(self) -> None:
        for field, value in (("prefix", self.prefix), ("interpreter", self.interpreter)):
            if not value.startswith("/") or posixpath.normpath(value) != value or value == "/":
                raise ConfigError(f"venv {field} {value!r} must be a normalised absolute path like /opt/venv")
            if re.search(r"\s", value):
                raise ConfigError(f"venv {field} {value!r} contains whitespace, which a '#!' line cannot hold")
        if not _PYTHON_VERSION.match(self.python_version):
            raise ConfigError(f"python_version {self.python_version!r} must be major.minor, like 3.11")
        if len(self.python) + 2 > MAX_SHEBANG:
            raise ConfigError(f"venv prefix {self.prefix!r} is too long for a '#!' line "
                              f"(max {MAX_SHEBANG - 2 - len('/bin/python')} characters); choose a shorter one")

    @property
    def site_packages(self) -> str:
        """Absolute path of the venv's site-packages."""
        return f"{self.prefix}/lib/python{self.python_version}/site-packages"

    @property
    def bin(self) -> str:
        """Absolute path of the venv's bin directory."""
        return f"{self.prefix}/bin"

    @property
    def python(self) -> str:
        """The interpreter scripts are pointed at: the venv's own, so they see the venv's site-packages."""
        return f"{self.prefix}/bin/python"


@dataclass(frozen=True, kw_only=True, slots=True)
class WheelInfo:
    """What a wheel is, read from its filename, WHEEL and METADATA (and the file's size and sha256)."""

    name: str
    version: str
    tags: frozenset[str]
    is_pure: bool
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True, slots=True)
class _Parsed:
    """A validated wheel's identity and its ``.dist-info`` directory name."""

    name: str
    version: str
    is_pure: bool
    tags: frozenset[str]
    dist_info: str


@dataclass(frozen=True, kw_only=True, slots=True)
class _RecordRow:
    """One RECORD line of the wheel as shipped."""

    algorithm: str
    digest: str
    size: int | None


def normalize_name(name: str) -> str:
    """PEP 503 name normalisation (``Foo_Bar.baz`` -> ``foo-bar-baz``), for comparing project names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _loose_version(version: str) -> str:
    """A version with the separators a filename may have changed (``-`` -> ``_``) made equal."""
    return re.sub(r"[-_.]+", ".", version.lower()).removeprefix("v")


def _err(wheel: Path, message: str) -> LayerError:
    return LayerError(f"wheel {wheel.name}: {message}")


def _broken(wheel: Path, message: str) -> LayerError:
    return _err(wheel, f"{message}; the wheel is broken or was tampered with, download it again or rebuild it")


def _urlsafe_digest(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _sha256_field(data: bytes) -> str:
    return "sha256=" + _urlsafe_digest(hashlib.sha256(data).digest())


# --------------------------------------------------------------------------------------------------
# reading and validating the wheel
# --------------------------------------------------------------------------------------------------


def _parse_filename(wheel: Path) -> tuple[str, str, frozenset[str]]:
    """``six-1.16.0-py2.py3-none-any.whl`` -> (``six``, ``1.16.0``, {py2-none-any, py3-none-any})."""
    m = _FILENAME.match(wheel.name)
    if not m:
        raise _err(wheel, "not a wheel filename (expected {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl); "
                          "do not rename wheel files")
    tags = frozenset(f"{py}-{abi}-{plat}" for py in m["py"].split(".") for abi in m["abi"].split(".")
                     for plat in m["plat"].split("."))
    return normalize_name(m["name"]), m["version"], tags


def _open_zip(wheel: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(wheel)
    except FileNotFoundError:
        raise _err(wheel, f"file {wheel} not found") from None
    except (zipfile.BadZipFile, EOFError):
        raise _err(wheel, "not a zip archive; download it again") from None
    except OSError as exc:
        raise _err(wheel, f"cannot read {wheel}: {exc.strerror}") from None


def _read_member(wheel: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _broken(wheel, f"member {info.filename!r} cannot be decompressed ({exc})") from None
    except NotImplementedError as exc:
        raise _err(wheel, f"member {info.filename!r} uses an unsupported zip feature ({exc}); rebuild the wheel"
                   ) from None
    except OSError as exc:
        raise _err(wheel, f"cannot read {wheel}: {exc.strerror}") from None


def _check_member_name(wheel: Path, name: str) -> None:
    """Refuse member names that would land outside the target or are ambiguous (``a/./b``)."""
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise _broken(wheel, f"member {name!r} has an absolute path")
    if "\\" in name or "\0" in name:
        raise _broken(wheel, f"member {name!r} contains a backslash or NUL")
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        raise _broken(wheel, f"member {name!r} escapes the install target with '..'")
    if "" in parts or "." in parts:
        raise _broken(wheel, f"member {name!r} is not a normalised path")


def _file_members(wheel: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The zip's files by name (directories dropped), names checked, no name twice."""
    files: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        _check_member_name(wheel, info.filename)
        if info.is_dir():
            continue
        if info.filename in files:
            raise _broken(wheel, f"member {info.filename!r} appears twice in the zip")
        files[info.filename] = info
    return files


def _find_dist_info(wheel: Path, files: dict[str, zipfile.ZipInfo], name: str) -> str:
    """The one top-level ``*.dist-info`` directory, and it belongs to the wheel's project."""
    dirs = sorted({f.split("/", 1)[0] for f in files if "/" in f and f.split("/", 1)[0].endswith(".dist-info")})
    matching = [d for d in dirs if normalize_name(d.removesuffix(".dist-info").partition("-")[0]) == name]
    if len(matching) != 1:
        found = ", ".join(dirs) or "none"
        raise _broken(wheel, f"expected exactly one {name}-<version>.dist-info directory, found {found}")
    return matching[0]


def _headers(wheel: Path, zf: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo], path: str) -> dict[str, str]:
    """An RFC 822 style file (WHEEL, METADATA) as a dict of its headers (first value wins)."""
    if path not in files:
        raise _broken(wheel, f"{path} is missing")
    try:
        text = _read_member(wheel, zf, files[path]).decode("utf-8")
    except UnicodeDecodeError:
        raise _broken(wheel, f"{path} is not UTF-8") from None
    message = email.parser.HeaderParser().parsestr(text)
    out: dict[str, str] = {}
    for key, value in message.items():
        out.setdefault(key.lower(), str(value).strip())
    return out


def _inspect(wheel: Path, zf: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo]) -> _Parsed:
    """Validate filename, WHEEL and METADATA against each other."""
    name, file_version, tags = _parse_filename(wheel)
    dist_info = _find_dist_info(wheel, files, name)
    wheel_meta = _headers(wheel, zf, files, f"{dist_info}/WHEEL")
    wheel_version = wheel_meta.get("wheel-version", "")
    if wheel_version.split(".")[0] != "1":
        raise _err(wheel, f"Wheel-Version {wheel_version or '(missing)'} is not supported (only 1.x); "
                          "use a wheel built by a current build backend")
    purelib = wheel_meta.get("root-is-purelib", "").lower()
    if purelib not in ("true", "false"):
        raise _broken(wheel, f"{dist_info}/WHEEL has no valid Root-Is-Purelib (true/false)")
    metadata = _headers(wheel, zf, files, f"{dist_info}/METADATA")
    meta_name, version = metadata.get("name", ""), metadata.get("version", "")
    if not meta_name or not version:
        raise _broken(wheel, f"{dist_info}/METADATA lacks Name or Version")
    if normalize_name(meta_name) != name or _loose_version(version) != _loose_version(file_version):
        raise _broken(wheel, f"METADATA says {meta_name} {version}, the filename says {name} {file_version}")
    return _Parsed(name=name, version=version, is_pure=purelib == "true", tags=tags, dist_info=dist_info)


def _file_digest(wheel: Path) -> tuple[int, str]:
    try:
        with wheel.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        return wheel.stat().st_size, digest
    except OSError as exc:
        raise _err(wheel, f"cannot read {wheel}: {exc.strerror}") from None


def read_wheel_info(path: Path) -> WheelInfo:
    """Read and validate what ``path`` is (filename, WHEEL, METADATA) without installing anything."""
    with _open_zip(path) as zf:
        files = _file_members(path, zf)
        parsed = _inspect(path, zf, files)
    size, sha256 = _file_digest(path)
    return WheelInfo(name=parsed.name, version=parsed.version, tags=parsed.tags, is_pure=parsed.is_pure,
                     size=size, sha256=sha256)


# --------------------------------------------------------------------------------------------------
# RECORD: verify what the wheel ships, write what the layer holds
# --------------------------------------------------------------------------------------------------


def _read_record(wheel: Path, zf: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo],
                 dist_info: str) -> dict[str, _RecordRow | None]:
    """The wheel's RECORD as {member: hash row, or None when listed without a hash}."""
    path = f"{dist_info}/RECORD"
    if path not in files:
        raise _broken(wheel, f"{path} is missing, so its contents cannot be verified")
    try:
        lines = list(csv.reader(io.StringIO(_read_member(wheel, zf, files[path]).decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _broken(wheel, f"{path} cannot be parsed ({exc})") from None
    rows: dict[str, _RecordRow | None] = {}
    for line in lines:
        if not line or not line[0]:
            continue
        if len(line) != 3:
            raise _broken(wheel, f"{path} line {line!r} does not have 3 fields (path, hash, size)")
        name, hash_field, size_field = line
        row: _RecordRow | None = None
        if hash_field:
            algorithm, sep, digest = hash_field.partition("=")
            if not sep or algorithm not in _HASHES:
                raise _broken(wheel, f"{path} has an unsupported or weak hash {hash_field!r} for {name!r}")
            if size_field and not size_field.isdigit():
                raise _broken(wheel, f"{path} has an invalid size {size_field!r} for {name!r}")
            row = _RecordRow(algorithm=algorithm, digest=digest.rstrip("="),
                             size=int(size_field) if size_field else None)
        if name in rows and rows[name] != row:
            raise _broken(wheel, f"{path} lists {name!r} twice with different hashes")
        rows[name] = row
    return rows


def _verify(wheel: Path, name: str, data: bytes, rows: dict[str, _RecordRow | None], dist_info: str) -> None:
    """Refuse a member that RECORD does not vouch for: unlisted, unhashed, or with other content."""
    if name.startswith(f"{dist_info}/") and name.rpartition("/")[2] in _UNHASHED:
        return
    if name not in rows:
        raise _broken(wheel, f"member {name!r} is not listed in RECORD")
    row = rows[name]
    if row is None:
        raise _broken(wheel, f"member {name!r} has no hash in RECORD")
    if row.size is not None and row.size != len(data):
        raise _broken(wheel, f"member {name!r} is {len(data)} bytes but RECORD says {row.size}")
    actual = _urlsafe_digest(hashlib.new(row.algorithm, data).digest())
    if actual != row.digest:
        raise _broken(wheel, f"member {name!r} does not match its RECORD hash "
                             f"({row.algorithm}={row.digest} expected, {row.algorithm}={actual} found)")


def _record_bytes(files: Mapping[str, bytes | _Streamed], record_target: str, site_packages: str) -> bytes:
    """The installed RECORD: every file relative to site-packages (``../../../bin/x`` for scripts),
    sha256 and size, sorted, RECORD itself without a hash, ``\\n`` line ends."""
    rows = [(posixpath.relpath(target, site_packages),
             data.sha256_field if isinstance(data, _Streamed) else _sha256_field(data),
             str(data.size if isinstance(data, _Streamed) else len(data)))
            for target, data in files.items()]
    rows.append((posixpath.relpath(record_target, site_packages), "", ""))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(sorted(rows))
    return out.getvalue().encode("utf-8")


# --------------------------------------------------------------------------------------------------
# placing files and generating scripts
# --------------------------------------------------------------------------------------------------


def _split_scheme(wheel: Path, name: str, parsed: _Parsed) -> tuple[str, str]:
    """Zip member -> (scheme, path inside that scheme); ``<name>-<ver>.data/<scheme>/...`` picks the scheme."""
    data_dir = parsed.dist_info.removesuffix(".dist-info") + ".data"
    if not name.startswith(f"{data_dir}/"):
        return ("purelib" if parsed.is_pure else "platlib"), name
    scheme, _, rest = name[len(data_dir) + 1:].partition("/")
    if scheme not in _SCHEMES or not rest:
        raise _broken(wheel, f"member {name!r} is not inside a known {data_dir}/ subdirectory "
                             f"({', '.join(sorted(_SCHEMES))})")
    return scheme, rest


def _scheme_root(scheme: str, layout: VenvLayout, project: str) -> str:
    """Absolute directory a scheme installs into, pip's venv layout."""
    if scheme in ("purelib", "platlib"):
        return layout.site_packages
    if scheme == "scripts":
        return layout.bin
    if scheme == "data":
        return layout.prefix
    return f"{layout.prefix}/include/site/python{layout.python_version}/{project}"


def _rewrite_shebang(data: bytes, python: str) -> bytes:
    """``#!python -u`` -> ``#!/opt/venv/bin/python -u``: the wheel spec's placeholder for "the target's
    interpreter" (``#!pythonw`` too). Arguments are kept; the line ends in ``\\n``; anything else is untouched."""
    if not data.startswith(b"#!python"):
        return data
    first, _, rest = data.partition(b"\n")
    first = first.rstrip(b"\r")
    args = first[len(first.split(None, 1)[0]):]
    return b"#!" + python.encode("utf-8") + args + b"\n" + rest


def _zip_executable(info: zipfile.ZipInfo) -> bool:
    """Any x bit in the unix mode a zip made on unix keeps in the high 16 bits of external_attr."""
    return info.create_system == 3 and bool((info.external_attr >> 16) & 0o111)


class _CaseSensitiveParser(configparser.ConfigParser):
    """entry_points.txt keys are script names: case matters."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def _entry_point_scripts(wheel: Path, text: str) -> list[tuple[str, str, str]]:
    """``[console_scripts]`` and ``[gui_scripts]`` as (script name, module, attribute), in file order."""
    parser = _CaseSensitiveParser(delimiters=("=",), interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise _broken(wheel, f"entry_points.txt cannot be parsed ({str(exc).splitlines()[0]})") from None
    scripts: list[tuple[str, str, str]] = []
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        for script, value in parser.items(section):
            m = _ENTRY_POINT.match(value.strip())
            if not m or not m["attr"] or not all(p.isidentifier() for p in (*m["module"].split("."),
                                                                            *m["attr"].split("."))):
                raise _broken(wheel, f"entry point {script} = {value!r} in [{section}] is not 'module:function'")
            if not script or script in (".", "..") or re.search(r"[/\\\s\0]", script):
                raise _broken(wheel, f"entry point name {script!r} in [{section}] is not a valid file name")
            scripts.append((script, m["module"], m["attr"]))
    return scripts


def _launcher(python: str, module: str, attr: str) -> bytes:
    """The console-script launcher pip and installer write, pointed at the venv's python."""
    body = _LAUNCHER.format(module=module, head=attr.split(".")[0], attr=attr)
    return f"#!{python}\n{body}".encode()


@dataclass(frozen=True, slots=True)
class _Streamed:
    """A big member, verified but not kept: it is read again from the zip when the layer is written."""

    wheel: Path
    member: str
    size: int
    sha256_field: str

    def open(self) -> _MemberReader:
        return _MemberReader(self.wheel, self.member)


class _MemberReader:
    """One zip member as a stream that closes its archive too."""

    def __init__(self, wheel: Path, member: str) -> None:
        self._zip = zipfile.ZipFile(wheel)
        self._stream = self._zip.open(member)

    def read(self, n: int = -1, /) -> bytes:
        return self._stream.read(n)

    def __enter__(self) -> _MemberReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()
        self._zip.close()


class _Files:
    """Installed files by absolute target path; a second file for one path is an error naming both."""

    def __init__(self, wheel: Path) -> None:
        self._wheel = wheel
        self.data: dict[str, bytes | _Streamed] = {}
        self.executable: dict[str, bool] = {}
        self._origin: dict[str, str] = {}

    def add(self, target: str, data: bytes | _Streamed, *, executable: bool, origin: str) -> None:
        if target in self.data:
            raise _broken(self._wheel, f"{self._origin[target]} and {origin} both install {target}")
        self.data[target] = data
        self.executable[target] = executable
        self._origin[target] = origin


def _stream_verify(wheel: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, rows: dict[str, _RecordRow | None],
                   dist_info: str) -> _Streamed:
    """Check a big member against RECORD in one streaming pass, keeping only its hash."""
    row = rows.get(info.filename)
    if info.filename not in rows:
        raise _broken(wheel, f"member {info.filename!r} is not listed in RECORD")
    if row is None:
        raise _broken(wheel, f"member {info.filename!r} has no hash in RECORD")
    recorded, sha = hashlib.new(row.algorithm), hashlib.sha256()
    size = 0
    try:
        with zf.open(info) as f:
            while chunk := f.read(STREAM_CHUNK):
                recorded.update(chunk)
                sha.update(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _broken(wheel, f"member {info.filename!r} cannot be decompressed ({exc})") from None
    if row.size is not None and row.size != size:
        raise _broken(wheel, f"member {info.filename!r} is {size} bytes but RECORD says {row.size}")
    actual = _urlsafe_digest(recorded.digest())
    if actual != row.digest:
        raise _broken(wheel, f"member {info.filename!r} does not match its RECORD hash "
                             f"({row.algorithm}={row.digest} expected, {row.algorithm}={actual} found)")
    return _Streamed(wheel=wheel, member=info.filename, size=size,
                     sha256_field="sha256=" + _urlsafe_digest(sha.digest()))


def wheel_entries(path: Path, layout: VenvLayout) -> list[TarEntry]:
    """Every file ``path`` installs into the venv ``layout``, as layer entries (parents are left to the
    tar writer). Members are verified against RECORD, scripts get the venv's python, console and gui
    entry points get launchers, and INSTALLER and a rewritten RECORD are added.

    Small members are held as bytes; members over ``STREAM_THRESHOLD`` are verified in one streaming
    pass and read again from the zip when the layer is written, so memory does not grow with the wheel
    (``libtorch_cpu.so`` alone is 434 MB).
    """
    with _open_zip(path) as zf:
        members = _file_members(path, zf)
        parsed = _inspect(path, zf, members)
        rows = _read_record(path, zf, members, parsed.dist_info)
        record_name, installer_name = f"{parsed.dist_info}/RECORD", f"{parsed.dist_info}/INSTALLER"
        files = _Files(path)
        for name, info in members.items():
            if name == record_name:
                continue
            scheme, rel = _split_scheme(path, name, parsed)
            if info.file_size > STREAM_THRESHOLD and scheme != "scripts" and name != installer_name:
                files.add(f"{_scheme_root(scheme, layout, parsed.name)}/{rel}",
                          _stream_verify(path, zf, info, rows, parsed.dist_info),
                          executable=_zip_executable(info), origin=f"member {name!r}")
                continue
            data = _read_member(path, zf, info)
            _verify(path, name, data, rows, parsed.dist_info)
            if name == installer_name:  # ours replaces it
                continue
            executable = _zip_executable(info)
            if scheme == "scripts":
                data, executable = _rewrite_shebang(data, layout.python), True
            files.add(f"{_scheme_root(scheme, layout, parsed.name)}/{rel}", data, executable=executable,
                      origin=f"member {name!r}")
        entry_points = members.get(f"{parsed.dist_info}/entry_points.txt")
        if entry_points is not None:
            try:
                text = _read_member(path, zf, entry_points).decode("utf-8")
            except UnicodeDecodeError:
                raise _broken(path, "entry_points.txt is not UTF-8") from None
            for script, module, attr in _entry_point_scripts(path, text):
                files.add(f"{layout.bin}/{script}", _launcher(layout.python, module, attr), executable=True,
                          origin=f"entry point {script!r}")
    files.add(f"{layout.site_packages}/{installer_name}", f"{INSTALLER_NAME}\n".encode(), executable=False,
              origin="INSTALLER")
    record_target = f"{layout.site_packages}/{record_name}"
    record = _record_bytes(files.data, record_target, layout.site_packages)
    files.add(record_target, record, executable=False, origin="RECORD")
    return [_entry(target, data, files.executable[target]) for target, data in files.data.items()]


def _entry(target: str, data: bytes | _Streamed, executable: bool) -> TarEntry:
    mode = EXEC_MODE if executable else FILE_MODE
    if isinstance(data, _Streamed):
        return TarEntry(path=target.lstrip("/"), kind="file", mode=mode, size=data.size, opener=data.open)
    return TarEntry(path=target.lstrip("/"), kind="file", mode=mode, size=len(data), data=data)


def venv_entries(layout: VenvLayout) -> list[TarEntry]:
    """The virtual environment skeleton python needs to treat ``prefix`` as a venv: pyvenv.cfg, the
    bin/python symlinks to the base interpreter, an empty site-packages, and lib64 -> lib."""
    root = layout.prefix.lstrip("/")
    major = layout.python_version.split(".")[0]
    cfg = (f"home = {posixpath.dirname(layout.interpreter)}\n"
           "include-system-site-packages = false\n"
           f"version = {layout.python_version}\n")
    return [
        TarEntry.file(f"{root}/pyvenv.cfg", cfg.encode()),
        TarEntry.symlink(f"{root}/bin/python", layout.interpreter),
        TarEntry.symlink(f"{root}/bin/python{major}", "python"),
        TarEntry.symlink(f"{root}/bin/python{layout.python_version}", "python"),
        TarEntry.directory(f"{layout.site_packages.lstrip('/')}"),
        TarEntry.symlink(f"{root}/lib64", "lib"),
    ]
