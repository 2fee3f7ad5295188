"""Wheels built on this machine from sdists, for pins that have no wheel that fits the target.

The sdist is checked by sha256 (the requirements' ``--hash`` values, else the index's); its build
requirements are pinned with hashes for this machine's Python (``uv pip compile``, from the same index /
find-links settings as everything else, plus ``wheel``, which old setuptools asks for at build time);
``uv build --wheel`` then builds the unpacked sdist in an isolated environment held to those pins
(``--build-constraints``), with ``SOURCE_DATE_EPOCH`` and ``PYTHONHASHSEED`` fixed and the temporary
build folder mapped to ``/ocibuild-build`` in compiled code (``-ffile-prefix-map``), so the same sdist
gives the same wheel bytes. The wheel is stored by the sdist's sha256 and this build environment (uv,
Python, CPU, C library, compiler variables, index settings).

A pure wheel (``py3-none-any``) serves every target. One with compiled code serves only a target with
this machine's CPU, Python major.minor and a C library at least as new as this machine's; anything
else is an error, raised before anything enters the store.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform as _platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import requests

from ..errors import ResolutionError
from ..spec import Digest, Platform, canonical_json
from ..store import ContentStore
from ..transfer import redact
from .fetch import Candidate, FetchedWheel, SdistOrigin, check_hash, stored_file, stream
from .resolve import IndexSettings, Pin, parse_requirements, uv_binary
from .target import TargetPython, wheel_arch
from .wheel import normalize_name

__all__ = ["BuildHost", "build_host", "build_requires", "wheel_from_sdist"]

SDIST_VERSION = "ocibuild-sdist-1"
BUILD_ENV = {"SOURCE_DATE_EPOCH": "315532800",  # 1980-01-01, the oldest time a zip member can carry
             "PYTHONHASHSEED": "0"}
BUILD_ROOT = "/ocibuild-build"  # what compiled code records as the build folder
COMPILER_VARIABLES = ("CC", "CXX", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS")
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0",)  # what uv (and pip) use for an sdist without [build-system]
ALSO_PINNED = ("wheel",)  # asked for by get_requires_for_build_wheel of setuptools < 70.1

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildHost:
    """The machine sdists are built on: its Python (the one running ocibuild), CPU, C library and uv."""

    python: str
    version: str  # "3.11"
    full_version: str  # "3.11.7"
    platform: Platform
    libc: str  # "glibc" or "musl"
    libc_version: str
    uv: str  # "uv 0.13.9 (...)"
    compiler: tuple[str, ...] = ()  # the COMPILER_VARIABLES of the environment, in that order

    @property
    def machine(self) -> str:
        return wheel_arch(self.platform)

    def key(self) -> list[str]:
        return [self.full_version, self.machine, self.libc, self.libc_version, self.uv, *self.compiler]

    def target(self) -> TargetPython:
        """This machine as a target: the wheels its build environments install."""
        return TargetPython(interpreter=self.python, version=self.version, full_version=self.full_version,
                            implementation="cp", platform=self.platform, libc=self.libc,
                            libc_version=self.libc_version)


@functools.cache
def build_host() -> BuildHost:
    """The build machine, looked at once per process."""
    from ..sources import host_platform

    libc, libc_version = _platform.libc_ver()
    if libc != "glibc":
        libc, libc_version = "musl", "1.2"
    uv = subprocess.run([uv_binary(), "--version"], capture_output=True, text=True, check=False,
                        timeout=60).stdout.strip()
    return BuildHost(python=sys.executable, version=f"{sys.version_info[0]}.{sys.version_info[1]}",
                     full_version=_platform.python_version(), platform=host_platform(), libc=libc,
                     libc_version=".".join(libc_version.split(".")[:2]), uv=uv,
                     compiler=tuple(os.environ.get(v, "") for v in COMPILER_VARIABLES))


def _pyproject_text(sdist: Path) -> str | None:
    """The sdist's top-level ``pyproject.toml`` (``NAME-VERSION/pyproject.toml``), if it has one."""
    def top_level(name: str) -> bool:
        name = name.removeprefix("./")
        return name.count("/") == 1 and name.endswith("/pyproject.toml")

    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                names = [n for n in zf.namelist() if top_level(n)]
                return zf.read(names[0]).decode() if names else None
        with tarfile.open(sdist, "r:gz") as tf:
            for member in tf:
                if member.isfile() and top_level(member.name):
                    f = tf.extractfile(member)
                    return f.read().decode() if f is not None else None
        return None
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ResolutionError(f"{sdist.name} is not a readable sdist ({exc}); check the file in the index or "
                              "wheelhouse, or put a wheel of it in a wheelhouse (--find-links DIR)") from None


def build_requires(sdist: Path) -> list[str]:
    """``[build-system].requires`` of the sdist; setuptools (as uv and pip assume) when it names none."""
    text = _pyproject_text(sdist)
    if text is None:
        return list(DEFAULT_BUILD_REQUIRES)
    try:
        system = tomllib.loads(text).get("build-system")
    except tomllib.TOMLDecodeError as exc:
        raise ResolutionError(f"{sdist.name}: its pyproject.toml is not valid TOML ({exc}); put a wheel of it "
                              "in a wheelhouse (--find-links DIR)") from None
    requires = system.get("requires") if isinstance(system, dict) else None
    return [str(r) for r in requires] if isinstance(requires, list) else list(DEFAULT_BUILD_REQUIRES)


def _build_env(work: Path) -> dict[str, str]:
    """Variables that make a build reproducible: fixed time and hash seed, build folder mapped."""
    env = dict(BUILD_ENV)
    for var in ("CFLAGS", "CXXFLAGS"):
        env[var] = f"{os.environ.get(var, '')} -ffile-prefix-map={work}={BUILD_ROOT}".strip()
    return env


def _unpack(sdist: Path, dest: Path) -> Path:
    """Unpack the sdist into ``dest`` (no member may leave it); its one top-level folder."""
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                if any(n.startswith("/") or ".." in n.split("/") for n in zf.namelist()):
                    raise ResolutionError(f"{sdist.name} has members outside its folder; it is not a valid sdist")
                zf.extractall(dest)
        else:
            with tarfile.open(sdist, "r:gz") as tf:
                tf.extractall(dest, filter="data")
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise ResolutionError(f"{sdist.name} cannot be unpacked ({exc}); check the file in the index or "
                              "wheelhouse, or put a wheel of it in a wheelhouse (--find-links DIR)") from None
    tops = list(dest.iterdir())
    if len(tops) != 1 or not tops[0].is_dir():
        raise ResolutionError(f"{sdist.name} does not hold exactly one top-level folder; it is not a valid sdist: "
                              "put a wheel of it in a wheelhouse (--find-links DIR)")
    return tops[0]


def _uv(args: list[str], what: str, cwd: Path, *, build: bool = False) -> str:
    """Run uv with only our settings (no ``UV_*`` variable, no uv.toml); errors say what to do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env["UV_NO_PROGRESS"] = "1"
    if build:
        env.update(_build_env(cwd))
    proc = subprocess.run([uv_binary(), "--no-config", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=1800, check=False, umask=0o022)
    if proc.returncode == 0:
        return proc.stdout
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    detail = " ".join(lines[-6:])[:1200] or f"exit code {proc.returncode}"
    if any(s in detail for s in ("Request failed", "Connect", "dns error", "timed out", "connection")):
        hint = ("the package index is unreachable: offline, build with --no-index --find-links DIR, a wheelhouse "
                "made by 'ocibuild fetch' (it holds sdists and their build requirements)")
    elif build:
        hint = ("if it needs a compiler or system libraries, install them on this machine, or put a wheel of it "
                "in a wheelhouse (--find-links DIR)")
    else:
        hint = "check the sdist's [build-system].requires, or put a wheel of it in a wheelhouse (--find-links DIR)"
    raise ResolutionError(f"{what} failed: {detail}; {hint}")


def _pin_build_requirements(sdist: Path, host: BuildHost, index: IndexSettings, work: Path,
                            label: str) -> tuple[Pin, ...]:
    wanted = [*build_requires(sdist), *ALSO_PINNED]
    source = work / "build-requires.in"
    source.write_text("".join(f"{r}\n" for r in wanted))
    text = _uv(["pip", "compile", str(source), "--python", host.python, "--generate-hashes", "--no-header",
                "--no-annotate", "--quiet", *index.uv_args()],
               f"pinning the build requirements of {label} ({', '.join(wanted)})", work)
    return tuple(sorted(parse_requirements(text).values(), key=lambda p: p.name))


def _build(sdist: Path, requirements: tuple[Pin, ...], host: BuildHost, index: IndexSettings, work: Path,
           pin: Pin) -> Path:
    label = f"{pin.name}=={pin.version}"
    constraints = work / "build-constraints.txt"
    constraints.write_text("".join(f"{p.name}=={p.version} " + " ".join(f"--hash=sha256:{h}" for h in
                                                                       sorted(p.hashes)) + "\n"
                                   for p in requirements))
    out = work / "out"
    tree = _unpack(sdist, work / "src")
    _uv(["build", "--wheel", "--out-dir", str(out), "--python", host.python, "--build-constraints",
         str(constraints), *index.uv_args(), str(tree)], f"building a wheel of {label} from {sdist.name}", work,
        build=True)
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise ResolutionError(f"building {sdist.name} gave {len(wheels)} wheels, not one; put a wheel of {label} "
                              "in a wheelhouse (--find-links DIR)")
    from packaging.utils import parse_wheel_filename
    from packaging.version import Version

    name, version, _, _ = parse_wheel_filename(wheels[0].name)
    if normalize_name(str(name)) != pin.name or version != Version(pin.version):
        raise ResolutionError(f"{sdist.name} built {wheels[0].name}, not a wheel of {label}; the sdist is "
                              "mislabelled: put a wheel of it in a wheelhouse (--find-links DIR)")
    return wheels[0]


def _native_mismatch(target: TargetPython, host: BuildHost) -> str:
    """Why a wheel with compiled code built here cannot run on ``target`` ('' if it can)."""
    if wheel_arch(target.platform) != host.machine:
        return f"{target.platform} on {host.machine}"
    if target.version != host.version:
        return f"CPython {target.version} with this machine's CPython {host.version}"
    if target.libc != host.libc or (target.libc == "glibc" and
                                    target.libc_version_tuple < tuple(map(int, host.libc_version.split(".")))):
        return f"{target.libc} {target.libc_version} on this machine's {host.libc} {host.libc_version}"
    return ""


def _check_fits(pin: Pin, filename: str, target: TargetPython, host: BuildHost, wheel_tags: list[str]) -> None:
    """``ResolutionError`` unless the wheel built here can be installed on ``target``."""
    from packaging.utils import parse_wheel_filename

    tags = parse_wheel_filename(filename)[3]
    fits = bool({str(t) for t in tags} & {str(t) for t in target.tags()})
    pure = all(t.abi == "none" and t.platform == "any" for t in tags)
    label = f"{pin.name}=={pin.version}"
    if pure:
        if not fits:
            raise ResolutionError(f"{label}: the wheel built from its sdist, {filename}, is not for CPython "
                                  f"{target.version}; pick a version of {pin.name} that supports it")
        return
    why = _native_mismatch(target, host) or ("" if fits else f"{target.platform} ({filename} does not fit it)")
    if not why:
        return
    only = "only an sdist exists" if not wheel_tags else \
        f"no wheel fits (wheel tags: {', '.join(wheel_tags[:6])}{' ...' if len(wheel_tags) > 6 else ''})"
    raise ResolutionError(f"{label} has C extensions; {only}; cannot build for {why}: build a wheel on a matching "
                          "machine and put it in a wheelhouse (--find-links DIR)")


def _download(cand: Candidate, session: requests.Session, dest: Path) -> str:
    """Save ``cand`` as ``dest``; its sha256."""
    h = hashlib.sha256()
    with dest.open("wb") as f:
        def write(chunk: bytes) -> None:
            h.update(chunk)
            f.write(chunk)

        stream(cand, session, write)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _lock(key: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def wheel_from_sdist(pin: Pin, sdist: Candidate, target: TargetPython, index: IndexSettings, store: ContentStore,
                     session: requests.Session, *, wheel_tags: list[str]) -> FetchedWheel:
    """A wheel of ``pin`` for ``target`` built here from ``sdist``, or the one built before (same sdist
    sha256, same build environment). ``wheel_tags``: the tags of the pin's wheels (none fit the target).

    >>> wheel_from_sdist(Pin(name="docopt", version="0.6.2"), cand, target, index, store, session,
    ...                  wheel_tags=[]).filename  # doctest: +SKIP
    'docopt-0.6.2-py2.py3-none-any.whl'
    """
    host = build_host()
    label = f"{pin.name}=={pin.version}"
    with _lock(sdist.url), tempfile.TemporaryDirectory(dir=store.tmp_dir, prefix="sdist-") as td:
        work = Path(td)
        path = work / sdist.filename
        stored = bool(sdist.sha256) and store.has(Digest("sha256", sdist.sha256)) and \
            (not pin.hashes or sdist.sha256 in pin.hashes)
        if stored:
            sha = sdist.sha256
        else:
            sha = _download(sdist, session, path)
            check_hash(sha, sdist, pin)  # the file is in a temporary folder: a bad one never enters the store
        key = "sdist-wheel-" + hashlib.sha256(canonical_json([SDIST_VERSION, sha, host.key(),
                                                                index.key()])).hexdigest()
        record = store.get_selector(key)
        if record is not None and store.has(Digest("sha256", sha)):
            filename = str(record["filename"])
            _check_fits(pin, filename, target, host, wheel_tags)
            origin = SdistOrigin.from_dict(dict(record["sdist"]))
            wheel_sha = str(record["digest"]).split(":", 1)[1]
            return FetchedWheel(pin=pin, path=stored_file(store, wheel_sha, filename), sha256=wheel_sha,
                                filename=filename, downloaded=False, sdist=origin)
        if stored:
            shutil.copyfile(store.blob_path(Digest("sha256", sha)), path)
        requirements = _pin_build_requirements(path, host, index, work, label)
        wheel = _build(path, requirements, host, index, work, pin)
        _check_fits(pin, wheel.name, target, host, wheel_tags)  # before anything enters the store
        wheel_sha = _sha256(wheel)
        store.put_file(path, Digest("sha256", sha))
        store.put_file(wheel, Digest("sha256", wheel_sha))
        origin = SdistOrigin(filename=sdist.filename, sha256=sha, build_requirements=requirements,
                             url=redact(sdist.url))
        store.put_selector(key, {"digest": f"sha256:{wheel_sha}", "filename": wheel.name,
                                 "sdist": origin.to_dict()})
        return FetchedWheel(pin=pin, path=stored_file(store, wheel_sha, wheel.name), sha256=wheel_sha,
                            filename=wheel.name, downloaded=True, sdist=origin)
