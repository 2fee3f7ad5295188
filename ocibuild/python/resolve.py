"""Turn a project's Python inputs into exact pins for one target: ``name==version`` plus the hashes a
wheel may have.

Inputs: ``requirements.txt`` (pinned or not, with or without ``--hash``), ``uv.lock``, ``pylock.toml``
(PEP 751) or the project's own ``[project].dependencies``. Resolution for the *target* platform is
uv's job (``uv pip compile --python-platform ... --python-version ...``); hashes the user wrote are
kept and enforced over what the index says.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, ResolutionError
from .target import TargetPython, wheel_arch
from .wheel import normalize_name

RESOLVER_VERSION = "ocibuild-resolve-2"  # 2: markers per target, workspaces
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")
_HASH = re.compile(r"--hash[=\s]+sha256:([0-9a-fA-F]{64})")
_OPTION = re.compile(r"\s--[A-Za-z]")  # a per-requirement option (--hash=...) after the marker


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexSettings:
    """Where packages come from. Read from the build file / flags, then ``UV_*`` / ``PIP_*`` variables."""

    index_url: str = ""
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, index_url: str = "",
                 extra_index_urls: Sequence[str] = (), find_links: Sequence[str] = (),
                 no_index: bool | None = None) -> IndexSettings:
        env = environ if environ is not None else os.environ

        def first(*names: str) -> str:
            return next((env[n] for n in names if env.get(n)), "")

        links = list(find_links) or first("UV_FIND_LINKS", "PIP_FIND_LINKS").split()
        extras = list(extra_index_urls) or first("UV_EXTRA_INDEX_URL", "PIP_EXTRA_INDEX_URL").split()
        flag = first("UV_NO_INDEX", "PIP_NO_INDEX").lower() in ("1", "true", "yes", "on")
        return cls(index_url=index_url or first("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"),
                   extra_index_urls=tuple(extras), find_links=tuple(links),
                   no_index=flag if no_index is None else no_index)

    @property
    def indexes(self) -> list[str]:
        if self.no_index:
            return []
        return [self.index_url or "https://pypi.org/simple", *self.extra_index_urls]

    def uv_args(self) -> list[str]:
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        elif self.index_url:
            args += ["--index-url", self.index_url]
        for extra in self.extra_index_urls if not self.no_index else ():
            args += ["--extra-index-url", extra]
        for link in self.find_links:
            args += ["--find-links", link]
        return args

    def key(self) -> str:
        return json.dumps([self.index_url, self.extra_index_urls, self.find_links, self.no_index])


@dataclass(frozen=True, kw_only=True, slots=True)
class Pin:
    """One distribution at one version, and the sha256 hashes its file may have (empty: any)."""

    name: str
    version: str
    hashes: frozenset[str] = field(default_factory=frozenset)
    user_hashes: bool = False  # hashes came from the user's lock: a mismatch is their error
    source: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "hashes": sorted(self.hashes),
                "user_hashes": self.user_hashes}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Pin:
        hashes = d.get("hashes") or []
        assert isinstance(hashes, list)
        return cls(name=str(d["name"]), version=str(d["version"]), hashes=frozenset(map(str, hashes)),
                   user_hashes=bool(d.get("user_hashes")))


def parse_requirements(text: str, env: Mapping[str, str] | None = None, *,
                       source: str = "requirements") -> dict[str, Pin]:
    """Exact pins (``name==version``) and their ``--hash`` values from requirements text.

    With ``env`` (a target's :func:`marker_environment`), a line whose environment marker is false
    for that target is left out, so one file may pin a package differently per CPU or Python.

    >>> text = 'six==1.16.0 ; platform_machine == "x86_64"\\nsix==1.15.0 ; platform_machine == "aarch64"\\n'
    >>> parse_requirements(text, {"platform_machine": "aarch64"})["six"].version
    '1.15.0'
    """
    pins: dict[str, Pin] = {}
    logical = re.sub(r"\\\n", " ", text)
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = _PIN.match(line)
        if m and (env is None or marker_applies(line_marker(line), env, source)):
            hashes = frozenset(h.lower() for h in _HASH.findall(line))
            name = normalize_name(m.group(1))
            pins[name] = Pin(name=name, version=m.group(2), hashes=hashes, user_hashes=bool(hashes))
    return pins


def line_marker(line: str) -> str:
    """The environment marker of one requirement line (``""`` if none), options such as ``--hash`` cut off.

    >>> line_marker('numpy==1.26.4 ; python_version < "3.12" --hash=sha256:00')
    'python_version < "3.12"'
    """
    _, sep, rest = line.partition(";")
    return _OPTION.split(rest, maxsplit=1)[0].strip() if sep else ""


def marker_applies(marker: str, env: Mapping[str, str], source: str) -> bool:
    """Whether PEP 508 ``marker`` (``""``: none) is true in the marker environment ``env``."""
    if not marker:
        return True
    from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName

    try:
        return Marker(marker).evaluate(dict(env))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
        raise ConfigError(f"{source}: environment marker {marker!r} cannot be evaluated ({str(exc).splitlines()[0]}); "
                          "fix it (PEP 508 syntax, e.g. platform_machine == \"x86_64\")") from None


def uv_binary() -> str:
    """The uv executable (a dependency of ocibuild: the ``uv`` package ships it)."""
    from shutil import which

    found = which("uv")
    if found:
        return found
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        raise ConfigError("uv is not installed; install ocibuild with its dependencies (pip install ocibuild)") \
            from None


def _run_uv(args: list[str], what: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}  # our settings are explicit
    env["UV_NO_PROGRESS"] = "1"
    proc = subprocess.run([uv_binary(), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900,
                          check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        detail = " ".join(lines[-6:])[:1200] or f"exit code {proc.returncode}"
        hint = ""
        if any(s in detail for s in ("Request failed", "Connect", "dns error", "timed out", "connection")):
            hint = ("; the package index is unreachable: if this machine is offline, build with --find-links DIR "
                    "(a wheelhouse, e.g. made by 'ocibuild fetch') and --no-index")
        raise ResolutionError(f"{what} failed: {detail}{hint}")
    return proc.stdout


def compile_for_target(inputs: Sequence[Path], target: TargetPython, index: IndexSettings, project: Path,
                       *, source: str) -> str:
    """``uv pip compile`` the inputs for the target platform; returns pinned requirements with hashes."""
    args = ["pip", "compile", *map(str, inputs), "--python-platform", target.uv_python_platform(),
            "--python-version", target.version, "--generate-hashes", "--no-header", "--no-annotate", "--quiet",
            "--no-strip-extras", *index.uv_args()]
    return _run_uv(args, f"resolving {source} for {target.platform} (Python {target.version})", project)


def export_uv_lock(lock: Path, project: Path, package: str | None = None) -> str:
    """``uv export`` of a uv.lock as pinned requirements with hashes, markers kept (the project and
    every workspace member left out: they are built as wheels); ``package`` picks one workspace member."""
    return _run_uv(["export", "--format", "requirements-txt", "--frozen", "--no-emit-workspace", "--no-header",
                    "--no-annotate", "--quiet", "--project", str(lock.parent), *_package_args(lock, package)],
                   f"reading {lock}", project)


def locked_local_projects(lock: Path, project: Path, env: Mapping[str, str], package: str | None = None) -> list[Path]:
    """The folders of the project and the workspace members a uv.lock installs (for ``package``: that
    member and the members it depends on), those whose markers are false in ``env`` left out."""
    text = _run_uv(["export", "--format", "requirements-txt", "--frozen", "--no-editable", "--no-hashes",
                    "--no-header", "--no-annotate", "--quiet", "--project", str(lock.parent),
                    *_package_args(lock, package)], f"reading {lock}", project)
    folders: list[Path] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("-e "):
            line = line[3:].strip()
        if not line.startswith((".", "/")):
            continue  # a pinned distribution, not a local folder
        path, _, marker = line.partition(";")
        if marker_applies(_OPTION.split(marker, maxsplit=1)[0].strip(), env, lock.name):
            folders.append((lock.parent / path.strip()).resolve())
    return folders


def _package_args(lock: Path, package: str | None) -> list[str]:
    if package is None:
        return []
    from .workspace import check_member

    check_member(lock.parent, package)
    return ["--package", package]


def pylock_pins(path: Path, target: TargetPython) -> dict[str, Pin]:
    """Pins from a PEP 751 ``pylock.toml`` (markers evaluated for the target)."""
    from packaging.markers import InvalidMarker, Marker

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the lock file: {exc}") from None
    env = marker_environment(target)
    pins: dict[str, Pin] = {}
    for pkg in data.get("packages", []):
        marker = pkg.get("marker")
        try:
            if marker and not Marker(marker).evaluate(env):
                continue
        except InvalidMarker:
            raise ConfigError(f"{path}: invalid marker {marker!r} for {pkg.get('name')}") from None
        name = normalize_name(str(pkg.get("name", "")))
        version = str(pkg.get("version", ""))
        if not name or not version:
            raise ConfigError(f"{path}: every [[packages]] entry needs a name and a version")
        hashes = {str(w.get("hashes", {}).get("sha256", "")).lower() for w in pkg.get("wheels", [])}
        hashes.discard("")
        pins[name] = Pin(name=name, version=version, hashes=frozenset(hashes), user_hashes=bool(hashes),
                         source=str(path))
    return pins


def marker_environment(target: TargetPython) -> dict[str, str]:
    """The PEP 508 marker values of the target (not of the build machine): ``platform_machine`` of its
    CPU as wheels name it, its Python version, Linux."""
    machine = wheel_arch(target.platform)
    full = target.full_version or f"{target.version}.0"
    return {"implementation_name": "cpython", "implementation_version": full, "os_name": "posix",
            "platform_machine": machine, "platform_release": "", "platform_system": "Linux",
            "platform_version": "", "python_full_version": full, "platform_python_implementation": "CPython",
            "python_version": target.version, "sys_platform": "linux"}


def input_digest(paths: Sequence[Path], *extra: str) -> str:
    h = hashlib.sha256(RESOLVER_VERSION.encode())
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    for e in extra:
        h.update(e.encode() + b"\0")
    return h.hexdigest()


def merge_user_hashes(resolved: dict[str, Pin], user: Mapping[str, Pin], source: str) -> dict[str, Pin]:
    """Where the user's file gave hashes, only those hashes are allowed; conflicting pins are errors."""
    out = dict(resolved)
    for name, pin in user.items():
        got = out.get(name)
        if got is None:
            continue
        if got.version != pin.version:
            raise ResolutionError(f"{source} pins {name}=={pin.version} but the resolver chose {got.version}; "
                                  "fix the conflicting pins")
        if pin.hashes:
            out[name] = Pin(name=name, version=pin.version, hashes=pin.hashes, user_hashes=True, source=source)
    return out
