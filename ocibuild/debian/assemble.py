"""Resolve (or read from the lock) and assemble a base image per platform: package layers grouped
so that unrelated updates touch unrelated layers, a generated-files layer, and the nonroot home."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import LayerError
from ..explain import package_inputs
from ..image import MemoryImage, store_layer
from ..layers.builder import BuiltLayer, keyed_layer
from ..layers.compress import Compression
from ..layers.tarwriter import TarEntry, TarOptions
from ..python.bytecode import (
    BYTECODE_VERSION,
    Compiler,
    add_bytecode,
    cached_root,
    host_compiler,
    materialize,
    rootfs_compiler,
    tar_root_entries,
)
from ..spec import ContainerConfig, History, ImageConfig, Platform, canonical_json
from ..spec.annotations import DEFAULT_PATH, rfc3339
from ..store import ContentStore
from . import rootfs
from .deb import control_files, data_entries, merge_usr_path, read_members
from .lock import DebianLock, LockedPackage, LockFile, inputs_fingerprint, updated
from .resolve import Resolver
from .sources import fetch_all, open_source
from .spec import NONROOT_UID, DebianSpec, debian_arch

RECIPE = "ocibuild-debian-layer-2"
PATH_ENV = f"PATH={DEFAULT_PATH}"
GROUPS = ("core", "python", "rest")
GROUP_TITLES = {"core": "C library and core shared libraries", "python": "Python runtime",
                "rest": "other packages", "config": "generated configuration", "home": "nonroot home"}


def resolve(spec: DebianSpec, arch: str, store: ContentStore, *, lock: Path | None = None,
            update: bool = False) -> DebianLock:
    """The package set for ``arch``: read from ``lock`` when it holds this architecture for the same
    inputs (suite, components, packages, exclude) and ``update`` is False; otherwise resolved against
    the verified indexes (or the deb folder) and, if ``lock`` is given, written into it (other
    architectures in the file are kept)."""
    existing = LockFile.read(lock) if lock is not None and lock.is_file() else None
    if existing is not None and not update and existing.matches(spec) and arch in existing.archs:
        return existing.archs[arch]
    source = open_source(spec)
    found = source.index(arch, store)
    where = (f"{spec.suite} ({' '.join(spec.components)}) for {arch} at {found.mirror}" if found.mirror
             else f"the deb folder {spec.deb_dir} for {arch}")
    chosen = Resolver(found.index, exclude=spec.exclude, where=where).resolve(spec.packages)
    result = DebianLock(
        arch=arch, suite=spec.suite, mirror=found.mirror, release=found.release, codename=found.codename,
        inputs=inputs_fingerprint(spec),
        packages=tuple(LockedPackage(name=p.name, version=p.version, architecture=p.architecture,
                                     filename=p.filename, sha256=p.sha256, size=p.size, mirror=p.origin)
                      for p in chosen))
    if lock is not None:
        updated(existing, spec, result).write(lock)
    return result


def group_of(name: str) -> str:
    """Layer group of a package: ``python`` (python3*, libpython3*), ``core`` (other lib*, gcc-*-base)
    or ``rest`` (ca-certificates, openssl, tzdata, ...)."""
    if name.startswith(("python3", "libpython3")):
        return "python"
    if name.startswith("lib") or (name.startswith("gcc-") and name.endswith("-base")):
        return "core"
    return "rest"


@dataclass(frozen=True, kw_only=True, slots=True)
class BaseLayer:
    """One layer of a Debian base: which group and packages, and the built layer."""

    group: str
    packages: tuple[LockedPackage, ...]
    built: BuiltLayer


def _key(*parts: object) -> str:
    return hashlib.sha256(canonical_json([RECIPE, *parts])).hexdigest()


def _dedupe(entries: list[TarEntry]) -> list[TarEntry]:
    """One entry per path: a directory keeps its first mode (as dpkg keeps an existing folder);
    anything else is replaced by the later entry (a later package's file wins)."""
    by_path: dict[str, TarEntry] = {}
    for e in entries:
        old = by_path.get(e.path)
        if old is not None and old.kind == "dir" and e.kind == "dir":
            continue
        by_path[e.path] = e
    return list(by_path.values())


class _Unpacker:
    """Fetches and unpacks the packages of one image lazily (only for layers the cache lacks)."""

    def __init__(self, spec: DebianSpec, lock: DebianLock, store: ContentStore) -> None:
        self.spec, self.lock, self.store = spec, lock, store
        self.source = open_source(spec, spec.mirror or lock.mirror or None)

    def entries(self, packages: Sequence[LockedPackage]) -> dict[str, tuple[list[TarEntry], dict[str, bytes]]]:
        paths = fetch_all(self.source, list(packages), self.store)
        keep = rootfs.slim_filter if self.spec.slim else None
        out = {}
        for p in packages:
            members = read_members(paths[p.name], f"{p.filename} ({p.name})")
            out[p.name] = (data_entries(members, merged_usr=self.spec.merged_usr, keep=keep, what=p.filename),
                           control_files(members))
        return out


def _package_layer(unpacker: _Unpacker, packages: tuple[LockedPackage, ...],
                   bytecode: _Bytecode | None = None) -> Callable[[], list[TarEntry]]:
    def make() -> list[TarEntry]:
        entries: list[TarEntry] = []
        for name, (files, control) in unpacker.entries(packages).items():
            entries += files
            entries += rootfs.status_records(name, control)
            if name == "libc6":
                _check_loader(unpacker.lock.arch, files, unpacker.spec.merged_usr)
        entries = _dedupe(entries)
        if bytecode is not None:
            entries = add_bytecode(entries, bytecode.compiler(), select=lambda path: bool(_STDLIB.match(path)))
        return entries
    return make


_STDLIB = re.compile(r"usr/lib/python3(?:\.\d+)?/")
_MINIMAL = re.compile(r"python(3\.\d+)-minimal")


def _python_minor(lock: DebianLock) -> str | None:
    """The ``3.X`` of the lock's interpreter package (``python3.X-minimal``), if any."""
    return next((m.group(1) for p in lock.packages if (m := _MINIMAL.fullmatch(p.name))), None)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Bytecode:
    """Who compiles the standard library of a Python runtime layer: the ``python3.X`` of ``lock``
    (the image's own, or its twin for this machine's CPU), unpacked from its core and Python
    packages, or else this machine's Python of the same version."""

    identity: str
    version: str
    store: ContentStore
    unpacker: _Unpacker | None

    def compiler(self) -> Compiler:
        found = None
        if self.unpacker is not None:
            packages = tuple(p for p in self.unpacker.lock.packages if group_of(p.name) in ("core", "python"))
            unpacker = self.unpacker

            def fill(work: Path) -> None:
                spec = unpacker.spec
                materialize(tar_root_entries(rootfs.skeleton(unpacker.lock.arch, merged_usr=spec.merged_usr)), work)
                for files, _control in unpacker.entries(packages).values():
                    materialize(tar_root_entries(files), work)

            root = cached_root(self.store.root / "rootfs", self.identity, fill)
            found = rootfs_compiler(root, f"/usr/bin/python{self.version}", identity=self.identity,
                                    version=self.version)
        found = found or host_compiler(self.version)
        if found is None:
            raise LayerError(f"cannot run Python {self.version} of the Debian base to compile its standard library; "
                             "set bytecode = false in [base.debian]")
        return found


def _bytecode(spec: DebianSpec, lock: DebianLock, store: ContentStore,
              twin: DebianLock | None) -> _Bytecode | None:
    """The compiler plan for ``lock``'s Python layer, or None (no Python, bytecode off, or no
    interpreter of the same version can run here)."""
    version = _python_minor(lock)
    if not spec.bytecode or version is None:
        return None
    runnable = lock if lock.arch == _host_arch() else twin
    if runnable is not None and _python_minor(runnable) == version and \
            _package_version(runnable, version) == _package_version(lock, version):
        identity = _key("bytecode", runnable.arch, [(p.name, p.sha256) for p in runnable.packages
                                                    if group_of(p.name) in ("core", "python")])
        return _Bytecode(identity=identity, version=version, store=store,
                         unpacker=_Unpacker(spec, runnable, store))
    host = host_compiler(version)
    if host is None:
        return None
    return _Bytecode(identity=host.identity, version=version, store=store, unpacker=None)


def _package_version(lock: DebianLock, version: str) -> str:
    found = lock.package(f"python{version}-minimal")
    return found.version if found is not None else ""


def _host_arch() -> str:
    from ..sources.base import host_platform

    return debian_arch(host_platform())


def _check_loader(arch: str, files: list[TarEntry], merged_usr: bool) -> None:
    loader = rootfs.LOADERS.get(arch)
    if loader is None:
        return
    path = merge_usr_path(loader) if merged_usr else loader
    if not any(e.path == path for e in files):
        raise LayerError(f"libc6 for {arch} does not ship the dynamic loader /{loader} binaries expect")


def _config_layer(unpacker: _Unpacker, lock: DebianLock) -> Callable[[], list[TarEntry]]:
    def make() -> list[TarEntry]:
        spec = unpacker.spec
        entries = rootfs.skeleton(lock.arch, merged_usr=spec.merged_usr) + rootfs.users()
        wanted = [p for p in lock.packages if p.name == "ca-certificates"]
        if wanted:
            files, _ = unpacker.entries(wanted)["ca-certificates"]
            entries += rootfs.ca_bundle(files)
        if lock.package("base-files") is None:
            entries += rootfs.os_release(spec.suite, lock.release, lock.codename)
        return _dedupe(entries)
    return make


def build_layers(spec: DebianSpec, lock: DebianLock, store: ContentStore, *, mtime: int = 0,
                 compression: Compression = Compression(), twin: DebianLock | None = None) -> list[BaseLayer]:
    """Build (or take from the cache) every layer of the base described by ``lock``. Package layers
    are keyed by their ``.deb`` sha256s, so an unchanged lock reads no ``.deb`` at all. With
    ``spec.bytecode`` the Python layer holds the standard library's ``.pyc``, compiled by its own
    interpreter or, for another CPU, by that of ``twin`` (the same packages for this machine's CPU)."""
    unpacker = _Unpacker(spec, lock, store)
    bytecode = _bytecode(spec, lock, store, twin)
    options = TarOptions(mtime=mtime)
    content = [spec.merged_usr, spec.slim, lock.arch]
    out: list[BaseLayer] = []
    for group in GROUPS:
        packages = tuple(p for p in lock.packages if group_of(p.name) == group)
        if not packages:
            continue
        compiles = bytecode if group == "python" else None
        key = _key(group, content, [(p.name, p.sha256) for p in packages],
                   *([BYTECODE_VERSION, compiles.identity] if compiles is not None else []))
        inputs = package_inputs("deb", [(p.name, p.version, p.sha256) for p in packages],
                                {"group": group, "content": content, "recipe": RECIPE,
                                 "bytecode": compiles.identity if compiles is not None else ""})
        built = keyed_layer(key, _package_layer(unpacker, packages, compiles), store, compression=compression,
                            options=options, inputs=inputs)
        out.append(BaseLayer(group=group, packages=packages, built=built))
    config_key = _key("config", content, spec.suite, lock.release, lock.codename,
                      [(p.name, p.sha256) for p in lock.packages])
    out.append(BaseLayer(group="config", packages=(), built=keyed_layer(
        config_key, _config_layer(unpacker, lock), store, compression=compression, options=options)))
    home = keyed_layer(_key("home"), lambda: [TarEntry.directory("home/nonroot", 0o700)], store,
                       compression=compression, options=TarOptions(uid=NONROOT_UID, gid=NONROOT_UID, mtime=mtime))
    out.append(BaseLayer(group="home", packages=(), built=home))
    return out


def image_for(spec: DebianSpec, lock: DebianLock, platform: Platform, layers: Sequence[BaseLayer],
              store: ContentStore, *, mtime: int = 0) -> MemoryImage:
    """The image config and manifest for built ``layers``."""
    created = rfc3339(mtime)
    history = []
    for layer in layers:
        what = " ".join(f"{p.name}={p.version}" for p in layer.packages)
        history.append(History(created=created, created_by=f"ocibuild debian {spec.suite}: {GROUP_TITLES[layer.group]}",
                               comment=what))
    nonroot = spec.user in (str(NONROOT_UID), f"{NONROOT_UID}:{NONROOT_UID}", "nonroot")
    config = ContainerConfig(
        user=spec.user if spec.user not in ("0", "root") else "",
        env=(PATH_ENV, "LANG=C.UTF-8"),
        cmd=("python3",) if lock.package("python3") is not None else None,
        working_dir="/home/nonroot" if nonroot else "",
    )
    image_config = ImageConfig(platform=platform, config=config, created=created,
                               diff_ids=tuple(layer.built.diff_id for layer in layers), history=tuple(history))
    return MemoryImage.assemble(image_config, [store_layer(store, layer.built.descriptor, layer.built.diff_id)
                                               for layer in layers])


def build_base(spec: DebianSpec, platforms: Sequence[Platform], store: ContentStore, *,
               lock_path: Path | None = None, update: bool = False, mtime: int = 0,
               compression: Compression = Compression()) -> list[MemoryImage]:
    """One single-platform image per platform (same order), every blob in ``store``; see the package
    docstring. With ``lock_path`` the package set comes from (or is written to) that lock file."""
    images = []
    for platform in platforms:
        arch = debian_arch(platform)
        lock = resolve(spec, arch, store, lock=lock_path, update=update)
        twin = None
        if spec.bytecode and arch != _host_arch() and _python_minor(lock) is not None:
            # the interpreter that compiles the .pyc: the same packages for this machine's CPU (kept in the lock)
            twin = resolve(spec, _host_arch(), store, lock=lock_path, update=update)
        layers = build_layers(spec, lock, store, mtime=mtime, compression=compression, twin=twin)
        image = image_for(spec, lock, platform, layers, store, mtime=mtime)
        images.append(image)
    return images
