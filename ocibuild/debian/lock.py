"""The lock file: exactly which ``.deb`` files (name, version, sha256, size, pool path) make up the
base for each architecture, plus the inputs they were resolved from. TOML, one file for all
architectures, written with sorted keys so it diffs well::

    version = 1
    suite = "trixie"
    mirror = "http://deb.debian.org/debian"
    ...
    [arch.amd64]
    release = "13.8"

    [[arch.amd64.package]]
    name = "libc6"
    version = "2.41-12+deb13u5"
    ...
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..store import atomic_write_bytes
from .spec import DebianSpec

LOCK_VERSION = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class LockedPackage:
    """One ``.deb`` of the base: ``filename`` is relative to the mirror root (or the deb folder)."""

    name: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int
    mirror: str = ""  # set when the file is not on the lock's main mirror (e.g. debian-security)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version, "architecture": self.architecture,
                               "filename": self.filename, "sha256": self.sha256, "size": self.size}
        if self.mirror:
            out["mirror"] = self.mirror
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LockedPackage:
        return cls(name=str(data["name"]), version=str(data["version"]), architecture=str(data["architecture"]),
                   filename=str(data["filename"]), sha256=str(data["sha256"]).lower(), size=int(data["size"]),
                   mirror=str(data.get("mirror", "")))


@dataclass(frozen=True, kw_only=True, slots=True)
class DebianLock:
    """The resolved package set of one architecture (what ``resolve`` returns)."""

    arch: str
    suite: str
    mirror: str  # "" when resolved from a deb folder
    packages: tuple[LockedPackage, ...]
    release: str = ""  # the suite's point release ("12.15"), if known
    codename: str = ""
    inputs: str = ""  # fingerprint of the spec fields that decided the resolution

    def package(self, name: str) -> LockedPackage | None:
        return next((p for p in self.packages if p.name == name), None)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.packages)


def inputs_fingerprint(spec: DebianSpec) -> str:
    """Hash of what decides a resolution: suite, components, requested and excluded names, source kind."""
    data: dict[str, Any] = {"suite": spec.suite, "components": list(spec.components), "packages": sorted(spec.packages),
            "exclude": sorted(spec.exclude), "source": "deb_dir" if spec.deb_dir else "mirror"}
    if spec.security:
        data["security"] = True
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True, slots=True)
class LockFile:
    """All architectures of one lock file."""

    suite: str
    mirror: str
    components: tuple[str, ...]
    requested: tuple[str, ...]
    exclude: tuple[str, ...]
    inputs: str
    archs: Mapping[str, DebianLock] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> LockFile:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read lock file {path}: {exc}; fix it or delete it to resolve again") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path | str) -> LockFile:
        """A lock file's text (``path``: where it is, or comes from, for the errors)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"cannot read lock file {path}: {exc}; fix it or delete it to resolve again") from None
        try:
            if data.get("version") != LOCK_VERSION:
                raise ConfigError(f"lock file {path} has version {data.get('version')!r}, expected {LOCK_VERSION}; "
                                  "refresh it (update)")
            base = {"suite": str(data["suite"]), "mirror": str(data.get("mirror", "")),
                    "inputs": str(data.get("inputs", ""))}
            archs = {
                arch: DebianLock(arch=arch, suite=base["suite"], mirror=base["mirror"],
                                 release=str(entry.get("release", "")), codename=str(entry.get("codename", "")),
                                 inputs=base["inputs"],
                                 packages=tuple(LockedPackage.from_dict(p) for p in entry.get("package", ())))
                for arch, entry in dict(data.get("arch", {})).items()
            }
            return cls(suite=base["suite"], mirror=base["mirror"], inputs=base["inputs"],
                       components=tuple(data.get("components", ())), requested=tuple(data.get("requested", ())),
                       exclude=tuple(data.get("exclude", ())), archs=archs)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"lock file {path} is malformed ({exc!r}); delete it to resolve again") from None

    def matches(self, spec: DebianSpec) -> bool:
        """Whether the lock was made from the same resolution inputs as ``spec``."""
        return self.inputs == inputs_fingerprint(spec)

    def to_toml(self) -> str:
        lines = ["# Debian packages of an ocibuild base image. Generated: refresh with update, do not edit.",
                 f"version = {LOCK_VERSION}", f"suite = {_q(self.suite)}", f"mirror = {_q(self.mirror)}",
                 f"components = {_list(self.components)}", f"requested = {_list(self.requested)}",
                 f"exclude = {_list(self.exclude)}", f"inputs = {_q(self.inputs)}"]
        for arch in sorted(self.archs):
            lock = self.archs[arch]
            lines += ["", f"[arch.{arch}]", f"release = {_q(lock.release)}", f"codename = {_q(lock.codename)}"]
            for p in sorted(lock.packages, key=lambda p: p.name):
                lines += ["", f"[[arch.{arch}.package]]"]
                lines += [f"{k} = {v if isinstance(v, int) else _q(v)}" for k, v in p.to_dict().items()]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> bool:
        """Write the file if its content changed; return whether it was written."""
        text = self.to_toml()
        try:
            if path.is_file() and path.read_text(encoding="utf-8") == text:
                return False
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, text.encode())
        except OSError as exc:
            raise ConfigError(f"cannot write lock file {path}: {exc.strerror}") from None
        return True


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def updated(existing: LockFile | None, spec: DebianSpec, lock: DebianLock) -> LockFile:
    """``existing`` with ``lock``'s architecture replaced (other architectures are kept only if they
    were resolved from the same inputs)."""
    archs: dict[str, DebianLock] = {}
    if existing is not None and existing.matches(spec):
        archs.update(existing.archs)
    archs[lock.arch] = lock
    return LockFile(suite=spec.suite, mirror=lock.mirror, components=spec.components, requested=spec.packages,
                    exclude=spec.exclude, inputs=inputs_fingerprint(spec), archs=archs)
