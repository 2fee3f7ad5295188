"""Which Python a base image has, found by reading its layers (nothing from the image is ever run).

One streaming pass over the layers (:func:`scan_image`) collects the few facts needed, applying
whiteouts in layer order: python executables and the symlinks leading to them, dpkg / apk package
databases, the names of C library files (and, for glibc, the version banner inside ``libc.so.6``)
and ``/etc/os-release``. :func:`detect_target` turns those facts into a :class:`TargetPython`,
which knows the wheel tags the interpreter accepts and the matching ``uv --python-platform``.
"""

from __future__ import annotations

import posixpath
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Literal

from ..errors import ConfigError, SourceError
from ..layers.compress import decode_errors
from ..spec import ImageConfig, Platform
from ..spec.annotations import DEFAULT_PATH

if TYPE_CHECKING:
    from packaging.tags import Tag

    from ..image import Image

__all__ = ["ImageFacts", "TargetPython", "detect_target", "scan_image", "target_from_facts"]

CANDIDATE_DIRS = ("/usr/local/bin", "/usr/bin", "/bin")  # plus /opt/*/bin
_MAX_TEXT = 16 << 20  # larger "small" files (dpkg status, os-release, apk db) are ignored
_CHUNK = 1 << 20
_MAX_SYMLINK_HOPS = 40

_PYTHON_NAME = re.compile(r"python3(?:\.\d+)?")
_VERSIONED_PYTHON = re.compile(r"python(\d+)\.(\d+)")
_GLIBC_FILE = re.compile(r"libc-(\d+)\.(\d+)\.so")
_MUSL_FILE = re.compile(r"(?:ld-musl-[A-Za-z0-9_]+\.so\.1|libc\.musl-[A-Za-z0-9_]+\.so\.1)")
_GLIBC_BANNER = re.compile(rb"GNU C Library [^\n\x00]{0,200}?release version (\d+)\.(\d+)")
_GLIBC_SYMVER = re.compile(rb"GLIBC_2\.(\d+)")
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?\S*")
_LIBC_VERSION = re.compile(r"\d+\.\d+")
_PKG_VERSION = re.compile(r"(?:\d+:)?(\d+)\.(\d+)((?:\.\d+)*)")
_CONTENT_FILES = ("etc/os-release", "usr/lib/os-release", "var/lib/dpkg/status", "lib/apk/db/installed",
                  "usr/lib/apk/db/installed")
_DPKG_STATUS_D = "var/lib/dpkg/status.d/"

# image architecture (OCI name, variant) -> the machine name in wheel platform tags
_WHEEL_ARCH = {
    ("amd64", ""): "x86_64",
    ("arm64", ""): "aarch64",
    ("arm", "v7"): "armv7l",
    ("arm", "v6"): "armv6l",
    ("386", ""): "i686",
    ("ppc64le", ""): "ppc64le",
    ("s390x", ""): "s390x",
    ("riscv64", ""): "riscv64",
    ("loong64", ""): "loongarch64",
}
# glibc minors uv's --python-platform can name per wheel architecture (uv 0.13; checked by the tests)
_UV_GLIBC_MINORS = {
    "x86_64": (17, 28, *range(31, 41)),
    "aarch64": (17, 28, *range(31, 41)),
    "s390x": (17, 28, *range(31, 41)),
    "ppc64le": (17, 28, *range(31, 41)),
    "loongarch64": tuple(range(36, 41)),
}
_UV_RISCV64_GLIBC = 39  # "riscv64-unknown-linux" means manylinux_2_39 to uv
_UV_MUSL_ARCHS = ("x86_64", "aarch64")  # "<arch>-unknown-linux-musl" means musllinux_1_2 to uv
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def wheel_arch(platform: Platform) -> str:
    """The machine name wheels use for ``platform`` (``linux/arm64`` -> ``aarch64``)."""
    variant = platform.variant if platform.architecture == "arm" else ""
    try:
        return _WHEEL_ARCH[(platform.architecture, variant)]
    except KeyError:
        raise ConfigError(
            f"no Python wheel platform is known for {platform}; build for linux/amd64, linux/arm64, "
            "linux/arm/v7, linux/386, linux/ppc64le, linux/s390x or linux/riscv64"
        ) from None


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetPython:
    """The Python of a base image: where it is, its version, and the C library it is built against."""

    interpreter: str  # absolute path in the image: /usr/bin/python3.11, /usr/local/bin/python3.12
    version: str  # major.minor: "3.11"
    full_version: str  # "3.11.2" if known, else ""
    implementation: str  # "cp"
    platform: Platform
    libc: str  # "glibc" or "musl"
    libc_version: str  # "2.36" (glibc) or "1.2" (musl)

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)

    @property
    def libc_version_tuple(self) -> tuple[int, int]:
        major, minor = self.libc_version.split(".")
        return int(major), int(minor)

    def manylinux_platform_tags(self) -> list[str]:
        """Platform tags best-first, in the order ``packaging.tags`` gives them on such a machine.

        glibc 2.36 on x86_64: ``manylinux_2_36_x86_64`` ... ``manylinux_2_17_x86_64``,
        ``manylinux2014_x86_64`` ... ``manylinux1_x86_64``, ``linux_x86_64``. musl 1.2:
        ``musllinux_1_2_<arch>``, ``musllinux_1_1_<arch>``, ``musllinux_1_0_<arch>``, ``linux_<arch>``.
        """
        arch = wheel_arch(self.platform)
        major, minor = self.libc_version_tuple
        tags: list[str] = []
        if self.libc == "musl":
            tags += [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
        elif major == 2:
            # manylinux starts at glibc 2.17 except on x86 (2.5); same rule and order as packaging
            oldest = 5 if arch in ("x86_64", "i686") else 17
            for m in range(minor, oldest - 1, -1):
                tags.append(f"manylinux_2_{m}_{arch}")
                legacy = _LEGACY_MANYLINUX.get(m)
                if legacy and (legacy == "manylinux2014" or arch in ("x86_64", "i686")):
                    tags.append(f"{legacy}_{arch}")
        tags.append(f"linux_{arch}")
        return tags

    def tags(self) -> list[Tag]:
        """Wheel tags this interpreter accepts, best first (``packaging.tags.cpython_tags`` followed by
        ``compatible_tags``), computed for the image's platform, not the host's."""
        from packaging.tags import compatible_tags, cpython_tags

        version = self.version_tuple
        nodot = f"{version[0]}{version[1]}"
        platforms = self.manylinux_platform_tags()
        return [
            *cpython_tags(python_version=version, abis=[f"cp{nodot}"], platforms=platforms),
            *compatible_tags(python_version=version, interpreter=f"cp{nodot}", platforms=platforms),
        ]

    def uv_python_platform(self) -> str:
        """The value for ``uv pip compile/install --python-platform`` that matches this target.

        glibc: the newest ``<arch>-manylinux_2_NN`` uv knows that is not newer than the image's glibc
        (so uv never picks a wheel the image cannot load). musl: ``<arch>-unknown-linux-musl``.
        """
        arch = wheel_arch(self.platform)
        major, minor = self.libc_version_tuple
        if self.libc == "musl":
            if arch in _UV_MUSL_ARCHS and (major, minor) >= (1, 2):
                return f"{arch}-unknown-linux-musl"
            raise ConfigError(
                f"uv cannot resolve for musl {self.libc_version} on {arch} (it knows musl 1.2 on x86_64 and "
                "aarch64 only); use a glibc base image, or resolve with pip and these platform tags: "
                + ", ".join(self.manylinux_platform_tags())
            )
        if arch == "riscv64" and major == 2 and minor >= _UV_RISCV64_GLIBC:
            return "riscv64-unknown-linux"
        usable = [m for m in _UV_GLIBC_MINORS.get(arch, ()) if major == 2 and m <= minor]
        if usable:
            return f"{arch}-manylinux_2_{max(usable)}"
        raise ConfigError(
            f"uv cannot resolve for glibc {self.libc_version} on {arch}; use a newer base image "
            "(glibc 2.17 or later on x86_64/aarch64/ppc64le/s390x), or resolve with pip and these platform "
            "tags: " + ", ".join(self.manylinux_platform_tags())
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "interpreter": self.interpreter,
            "version": self.version,
            "full_version": self.full_version,
            "implementation": self.implementation,
            "platform": str(self.platform),
            "libc": self.libc,
            "libc_version": self.libc_version,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageFacts:
    """What :func:`scan_image` found in the merged view of a base image's layers.

    Paths are absolute. Only the entries that matter are kept: files and symlinks named ``python3`` /
    ``python3.X`` anywhere, symlinks that may be directories on the way to them (``/bin``,
    ``/usr/local/bin``, ``/opt/*``, ``/opt/*/bin``, ``/etc/alternatives/*``) and C library files.
    """

    files: frozenset[str] = frozenset()
    symlinks: Mapping[str, str] = field(default_factory=dict)  # path -> link target as stored
    dpkg: Mapping[str, str] = field(default_factory=dict)  # installed package -> version
    apk: Mapping[str, str] = field(default_factory=dict)  # installed package -> version
    os_release: Mapping[str, str] = field(default_factory=dict)
    glibc_from_binary: str = ""  # "2.36", read from the banner inside libc.so.6; "" if none

    def resolve(self, path: str) -> str | None:
        """``path`` with every symlink followed, if that ends at a known file; else None."""
        real = self._follow(path)
        return real if real is not None and real in self.files else None

    def _follow(self, path: str) -> str | None:
        pending = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            current = "/" + "/".join([*done, part])
            target = self.symlinks.get(current)
            if target is None:
                done.append(part)
                continue
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                return None
            if target.startswith("/"):
                done = []
            pending = [p for p in target.split("/") if p] + pending
        return "/" + "/".join(done)

    def interpreter_candidates(self) -> list[str]:
        """Paths named python3 / python3.X in /usr/local/bin, /usr/bin, /bin and /opt/*/bin, sorted."""
        found: list[str] = []
        for path in (*self.files, *self.symlinks):
            parent, name = posixpath.split(path)
            if not _PYTHON_NAME.fullmatch(name):
                continue
            if parent in CANDIDATE_DIRS or re.fullmatch(r"/opt/[^/]+/bin", parent):
                found.append(path)
        return sorted(found)

    @property
    def has_glibc(self) -> bool:
        return any(posixpath.basename(p) == "libc.so.6" or _GLIBC_FILE.fullmatch(posixpath.basename(p))
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


@dataclass(frozen=True, kw_only=True, slots=True)
class _Node:
    kind: Literal["file", "symlink"]
    link: str = ""
    data: bytes | None = None  # content of the small text files we read
    glibc: str = ""  # version from a libc.so.6 banner


def _norm(name: str) -> str:
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def _ancestors(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for p in paths:
        parent = posixpath.dirname(p)
        while parent and parent not in out:
            out.add(parent)
            parent = posixpath.dirname(parent)
    return out


def _wanted_symlink(path: str) -> bool:
    """Symlinks that may be directories on the way to an interpreter, or alternatives links."""
    parts = path.split("/")
    return (len(parts) <= 2 or (len(parts) == 3 and (parts[2] == "bin" or parts[:2] == ["etc", "alternatives"])))


def _is_content_file(path: str) -> bool:
    return path in _CONTENT_FILES or (path.startswith(_DPKG_STATUS_D) and "/" not in path[len(_DPKG_STATUS_D):])


def _is_libc(name: str) -> bool:
    return name == "libc.so.6" or bool(_GLIBC_FILE.fullmatch(name) or _MUSL_FILE.fullmatch(name))


def _read_small(f: IO[bytes], size: int) -> bytes | None:
    if size > _MAX_TEXT:
        return None
    return f.read()


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


def _collect(member: tarfile.TarInfo, path: str, tar: tarfile.TarFile, upper: Mapping[str, _Node]) -> _Node | None:
    """The node to remember for ``member`` at ``path``, or None if it does not matter."""
    name = posixpath.basename(path)
    if member.issym():
        if _PYTHON_NAME.fullmatch(name) or _is_libc(name) or _is_content_file(path) or _wanted_symlink(path):
            return _Node(kind="symlink", link=member.linkname)
        return None
    if member.islnk():  # a hard link to an earlier member of this layer
        if _PYTHON_NAME.fullmatch(name) or _is_libc(name) or _is_content_file(path):
            earlier = upper.get(_norm(member.linkname))
            if earlier is not None and earlier.kind == "file":
                return _Node(kind="file", data=earlier.data, glibc=earlier.glibc)
            return _Node(kind="file")
        return None
    if not member.isreg():
        return None
    if _PYTHON_NAME.fullmatch(name) or _MUSL_FILE.fullmatch(name) or _GLIBC_FILE.fullmatch(name):
        return _Node(kind="file")
    if name == "libc.so.6" or _is_content_file(path):
        f = tar.extractfile(member)
        if f is None:
            return _Node(kind="file")
        with f:
            if name == "libc.so.6":
                return _Node(kind="file", glibc=_glibc_banner(f))
            return _Node(kind="file", data=_read_small(f, member.size))
    return None


def _scan_layer(tar: tarfile.TarFile, lower: dict[str, _Node]) -> None:
    """Apply one layer to ``lower`` (the merged view of the layers below it) in place."""
    ancestors = _ancestors(lower)
    upper: dict[str, _Node] = {}
    gone: set[str] = set()  # lower paths this layer deletes or replaces
    gone_trees: set[str] = set()  # lower directories whose contents this layer hides
    while (member := tar.next()) is not None:
        tar.members.clear()  # type: ignore[attr-defined]  # stream mode would keep every TarInfo
        path = _norm(member.name)
        if not path:
            continue
        parent, name = posixpath.split(path)
        if name.startswith(".wh."):
            if name == ".wh..wh..opq":
                if parent in ancestors:
                    gone_trees.add(parent)
            elif not name.startswith(".wh..wh."):
                target = posixpath.join(parent, name[4:])
                if target in lower:
                    gone.add(target)
                if target in ancestors:
                    gone_trees.add(target)
            continue
        if path in lower:
            gone.add(path)
        if path in ancestors and not member.isdir():
            gone_trees.add(path)
        node = _collect(member, path, tar, upper)
        if node is not None:
            upper[path] = node
        else:
            upper.pop(path, None)
    for path in gone:
        lower.pop(path, None)
    if gone_trees:
        prefixes = tuple(d + "/" for d in gone_trees)
        for path in [p for p in lower if p.startswith(prefixes)]:
            del lower[path]
    lower.update(upper)


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


def _facts(merged: Mapping[str, _Node]) -> ImageFacts:
    files = frozenset("/" + p for p, n in merged.items() if n.kind == "file")
    symlinks = {"/" + p: n.link for p, n in merged.items() if n.kind == "symlink"}
    probe = ImageFacts(files=files, symlinks=symlinks)

    def content(path: str) -> bytes | None:
        real = probe.resolve("/" + path)
        node = merged.get(real.lstrip("/")) if real else None
        return node.data if node is not None else None

    dpkg_files = [(p, n.data) for p, n in sorted(merged.items())
                  if n.data is not None and (p == "var/lib/dpkg/status" or p.startswith(_DPKG_STATUS_D))]
    apk = content("lib/apk/db/installed") or content("usr/lib/apk/db/installed")
    release = content("etc/os-release") or content("usr/lib/os-release")
    banners = sorted((tuple(int(x) for x in n.glibc.split(".")), n.glibc) for n in merged.values() if n.glibc)
    return ImageFacts(
        files=files,
        symlinks=symlinks,
        dpkg=_dpkg_packages(dpkg_files),
        apk=_apk_packages(apk) if apk else {},
        os_release=_os_release(release) if release else {},
        glibc_from_binary=banners[0][1] if banners else "",
    )


def scan_image(base: Image) -> ImageFacts:
    """Read every layer of ``base`` once, as a stream, and return what the merged image holds."""
    merged: dict[str, _Node] = {}
    errors = decode_errors()
    for index, layer in enumerate(base.layers):
        with layer.uncompressed() as stream:
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    _scan_layer(tar, merged)
            except tarfile.ReadError as exc:
                if str(exc) == "empty file":
                    continue
                raise SourceError(
                    f"base layer {index + 1} ({layer.digest}) is not a readable tar: {exc}; "
                    "the base image is corrupt, fetch it again"
                ) from None
            except errors as exc:
                raise SourceError(
                    f"base layer {index + 1} ({layer.digest}) cannot be read: {exc}; "
                    "the base image is corrupt, fetch it again"
                ) from None
    return _facts(merged)


# --------------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------------


def _parse_python_version(text: str, what: str) -> tuple[str, str]:
    """("3.12", "3.12.1") from "3.12.1"; ("3.12", "") from "3.12"."""
    m = _VERSION.fullmatch(text.strip())
    if not m or m.group(1) != "3":
        raise ConfigError(f"{what} {text!r} is not a Python 3 version; give it as X.Y (e.g. 3.12)")
    mm = f"{m.group(1)}.{int(m.group(2))}"
    return mm, (text.strip() if text.strip() != mm else "")


def _package_version(version: str) -> str:
    """Upstream x.y.z of a dpkg/apk version ("3.11.2-6+deb12u6" -> "3.11.2"); "" if none."""
    m = _PKG_VERSION.match(version)
    return f"{m.group(1)}.{m.group(2)}{m.group(3)}" if m else ""


def _packaged_pythons(facts: ImageFacts) -> dict[str, str]:
    """major.minor -> full version of the Pythons the package databases know."""
    found: dict[str, str] = {}
    for name, version in facts.dpkg.items():
        m = re.fullmatch(r"(?:lib)?python(\d+\.\d+)-minimal", name)
        if m:
            full = _package_version(version)
            if full.startswith(m.group(1) + ".") or full == m.group(1):
                found.setdefault(m.group(1), full)
    for name in ("python3", "python3-dev"):
        if name in facts.apk:
            full = _package_version(facts.apk[name])
            if full.count(".") >= 1:
                found.setdefault(".".join(full.split(".")[:2]), full)
    return found


def _path_rank(path: str, search_path: list[str]) -> tuple[int, str]:
    parent = posixpath.dirname(path)
    return (search_path.index(parent) if parent in search_path else len(search_path), path)


def _name_version(path: str) -> str:
    m = _VERSIONED_PYTHON.fullmatch(posixpath.basename(path))
    return f"{m.group(1)}.{m.group(2)}" if m else ""


def _choose_interpreter(facts: ImageFacts, wanted: str, search_path: list[str]) -> tuple[str, str] | None:
    """(real interpreter path, its major.minor or "") for ``wanted`` ("" = the newest), or None."""
    real: dict[str, str] = {}  # real file -> best-ranked candidate path pointing at it
    for cand in sorted(facts.interpreter_candidates(), key=lambda p: _path_rank(p, search_path)):
        target = facts.resolve(cand)
        if target is not None:
            real.setdefault(target, cand)
    if not real:
        return None
    ranked = sorted(real, key=lambda r: _path_rank(real[r], search_path))
    versioned = [(r, _name_version(r)) for r in ranked if _name_version(r)]
    if wanted:
        for r, v in versioned:
            if v == wanted:
                return r, v
        unversioned = [r for r in ranked if not _name_version(r)]
        if unversioned:
            return unversioned[0], wanted
        return None
    if versioned:
        best = max(versioned, key=lambda rv: tuple(int(x) for x in rv[1].split(".")))[1]
        return next((r, v) for r, v in versioned if v == best)
    return ranked[0], ""


def _no_python() -> ConfigError:
    return ConfigError(
        "base image has no Python interpreter (looked in /usr/bin, /usr/local/bin, /bin, /opt/*/bin); use a "
        "base with Python or set python.interpreter (e.g. /usr/bin/python3.X) and python.python_version (X.Y)"
    )


def _detect_python(config: ImageConfig, facts: ImageFacts, interpreter: str | None,
                   python_version: str | None) -> tuple[str, str, str]:
    """(interpreter, major.minor, full version or "")."""
    env = config.config.env_dict()
    search_path = [p.rstrip("/") or "/" for p in (env.get("PATH") or DEFAULT_PATH).split(":") if p]
    search_path += [d for d in CANDIDATE_DIRS if d not in search_path]
    wanted, full = _parse_python_version(python_version, "python.python_version") if python_version else ("", "")
    env_wanted = env_full = ""
    if env.get("PYTHON_VERSION"):
        try:
            env_wanted, env_full = _parse_python_version(env["PYTHON_VERSION"], "PYTHON_VERSION")
        except ConfigError:
            env_wanted = env_full = ""  # not a CPython version we can use; go by the files
    packaged = _packaged_pythons(facts)

    if interpreter is not None:
        if not interpreter.startswith("/"):
            raise ConfigError(f"python.interpreter {interpreter!r} must be an absolute path in the image, "
                              "e.g. /usr/bin/python3")
        path = facts.resolve(interpreter) or posixpath.normpath(interpreter)
        version = wanted or _name_version(path) or env_wanted
        if not version:
            if len(packaged) != 1:
                raise ConfigError(
                    f"cannot tell which Python version {interpreter} is; set python.python_version = \"X.Y\""
                )
            version = next(iter(packaged))
    elif wanted:
        chosen = _choose_interpreter(facts, wanted, search_path)
        if chosen is None:
            have = _choose_interpreter(facts, "", search_path)
            if have is None:
                raise _no_python()
            raise ConfigError(
                f"base image has no Python {wanted} (it has {have[0]}); name the interpreter with "
                "python.interpreter, or drop python.python_version"
            )
        path, version = chosen[0], wanted
    else:
        chosen = None
        if env_wanted:
            chosen = _choose_interpreter(facts, env_wanted, search_path)
        if chosen is None:
            chosen = _choose_interpreter(facts, "", search_path)
        if chosen is None:
            raise _no_python()
        path, version = chosen
        if not version:
            if len(packaged) == 1:
                version = next(iter(packaged))
            else:
                raise ConfigError(
                    f"cannot tell which Python version {path} in the base image is; set python.python_version = \"X.Y\""
                )
    if not full and env_wanted == version:
        full = env_full
    if not full:
        full = packaged.get(version, "")
    if full == version:
        full = ""
    return path, version, full


def _detect_libc(facts: ImageFacts, libc: str | None, libc_version: str | None) -> tuple[str, str]:
    if libc is not None:
        kind = {"glibc": "glibc", "gnu": "glibc", "musl": "musl"}.get(libc.strip().lower())
        if kind is None:
            raise ConfigError(f"python.libc {libc!r} is not known; use glibc or musl")
    else:
        kind = ""
    if libc_version is not None and not _LIBC_VERSION.fullmatch(libc_version.strip()):
        raise ConfigError(f"python.libc_version {libc_version!r} is not a version; give it as X.Y (e.g. 2.36 or 1.2)")

    glibc = ""
    if "libc6" in facts.dpkg:
        glibc = _package_version(facts.dpkg["libc6"])
        glibc = ".".join(glibc.split(".")[:2]) if glibc else ""
    musl = ""
    if "musl" in facts.apk:
        full = _package_version(facts.apk["musl"])
        musl = ".".join(full.split(".")[:2]) if full else "1.2"
    if not kind:
        if glibc:
            kind = "glibc"
        elif musl:
            kind = "musl"
        elif facts.has_glibc:
            kind = "glibc"
        elif facts.has_musl:
            kind = "musl"
        elif libc_version is not None:
            raise ConfigError("cannot tell the base image's C library; set python.libc = \"glibc\" or \"musl\"")
        else:
            raise ConfigError(
                "cannot tell the base image's C library (no libc.so.6 or ld-musl-*.so.1 found); add "
                "python.libc (glibc or musl) and python.libc_version (X.Y)"
            )
    if libc_version is not None:
        return kind, libc_version.strip()
    if kind == "musl":
        return kind, musl or "1.2"
    version = glibc or facts.glibc_from_name or facts.glibc_from_binary
    if not version:
        raise ConfigError(
            "base image uses glibc but its version could not be read (no dpkg libc6 entry, no libc-2.NN.so, "
            "no version inside libc.so.6); set python.libc_version = \"2.NN\""
        )
    return kind, version


def target_from_facts(config: ImageConfig, facts: ImageFacts, *, interpreter: str | None = None,
                      python_version: str | None = None, libc: str | None = None,
                      libc_version: str | None = None) -> TargetPython:
    """The :class:`TargetPython` for an image with ``config`` whose layers gave ``facts``."""
    path, version, full = _detect_python(config, facts, interpreter, python_version)
    kind, lversion = _detect_libc(facts, libc, libc_version)
    target = TargetPython(interpreter=path, version=version, full_version=full, implementation="cp",
                          platform=config.platform, libc=kind, libc_version=lversion)
    wheel_arch(target.platform)  # fail early on a platform wheels cannot target
    return target


def detect_target(base: Image, *, interpreter: str | None = None,
                  python_version: str | None = None, libc: str | None = None,
                  libc_version: str | None = None) -> TargetPython:
    """Find the base image's Python by reading its layers; keyword arguments override what is found.

    With all four overrides given the layers are not read at all.
    """
    everything_given = bool(interpreter and python_version and libc and libc_version)
    facts = ImageFacts() if everything_given else scan_image(base)
    return target_from_facts(base.config, facts, interpreter=interpreter, python_version=python_version,
                             libc=libc, libc_version=libc_version)
