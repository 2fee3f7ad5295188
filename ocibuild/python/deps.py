"""Python dependencies -> layers, for the base image's interpreter and CPU, without running either.

1. read the target from the base's layers (``target.detect_target``);
2. pin every distribution for that target (``resolve``; cached by a hash of the inputs);
3. fetch each pin's wheel for the target's tags, verified by sha256 (``fetch``; cached);
4. install wheels straight into layer entries under a virtual environment (``wheel``), grouped so that
   big distributions get a layer each and small ones share a few stable buckets; every layer is keyed
   by the wheels it holds and the install target, so the same wheel gives the same layer everywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from ..errors import ConfigError, ResolutionError
from ..explain import package_inputs
from ..image import Image
from ..layers import Compression, TarEntry, TarOptions, build_layer, keyed_layer
from ..layers.builder import BuiltLayer
from ..plan import PythonSpec
from ..spec.annotations import DEFAULT_PATH
from ..store import ContentStore
from .bytecode import Compiler, add_bytecode, choose_compiler, image_compiler
from .fetch import FetchedWheel, candidates, fetch_wheel, local_wheel, pick
from .resolve import (
    IndexSettings,
    Pin,
    compile_for_target,
    export_uv_lock,
    input_digest,
    locked_local_projects,
    marker_environment,
    merge_user_hashes,
    parse_requirements,
    pylock_pins,
    uv_binary,
)
from .target import TargetPython, detect_target
from .wheel import VenvLayout, normalize_name, venv_entries, wheel_entries

DEPS_VERSION = "ocibuild-deps-1"
KNOWN_BIG = ("torch", "tensorflow", "jaxlib", "numpy", "scipy", "pandas", "scikit-learn", "pyarrow", "onnxruntime",
             "opencv-python", "opencv-python-headless", "triton", "xgboost", "lightgbm", "polars")
SMALL_BUCKETS = 4
DEPS_MTIME = 0  # dependency layers do not depend on SOURCE_DATE_EPOCH, so images share them


@dataclass(frozen=True, kw_only=True, slots=True)
class DepsLayer:
    label: str
    built: BuiltLayer
    wheels: tuple[str, ...]
    seconds: float


@dataclass(frozen=True, kw_only=True, slots=True)
class DepsResult:
    target: TargetPython
    layout: VenvLayout
    pins: tuple[Pin, ...]
    layers: tuple[DepsLayer, ...]
    resolved_from_cache: bool
    downloaded: int
    wheels: tuple[FetchedWheel, ...] = ()  # what was installed, in pin order: sha256, origin, sdist

    def env(self, base_path: str) -> dict[str, str]:
        path = base_path or DEFAULT_PATH
        return {"PATH": f"{self.layout.bin}:{path}", "VIRTUAL_ENV": self.layout.prefix}


def _is_big(wheel: FetchedWheel, spec: PythonSpec) -> bool:
    name = wheel.pin.name
    return name in KNOWN_BIG or name.startswith("nvidia-") or wheel.file_size() >= spec.big_wheel_mb * 1e6


def group_wheels(wheels: list[FetchedWheel], spec: PythonSpec) -> list[tuple[str, list[FetchedWheel]]]:
    """Big wheels alone; small ones in up to ``SMALL_BUCKETS`` buckets by a hash of their name (pure and
    platform wheels apart), so a change to one small dependency touches one bucket. At most
    ``max_layers - 1`` groups (one layer is the venv itself)."""
    budget = max(3, spec.max_layers - 1)
    big = sorted((w for w in wheels if _is_big(w, spec)), key=lambda w: -w.file_size())
    small = [w for w in wheels if w not in big]
    keep_big = big[: max(0, budget - min(SMALL_BUCKETS, budget // 2))] if len(big) > budget - 1 else big
    small += [w for w in big if w not in keep_big]
    buckets = max(1, min(SMALL_BUCKETS, (budget - len(keep_big)) // 2))
    groups: list[tuple[str, list[FetchedWheel]]] = [(w.pin.name, [w])
                                                    for w in sorted(keep_big, key=lambda w: w.pin.name)]
    # pure-Python wheels never share a bucket with platform wheels: their layers are then identical on
    # every platform of a multi-platform build (and stored, pushed and pulled once)
    by_bucket: dict[tuple[bool, int], list[FetchedWheel]] = {}
    for w in small:
        pure = w.filename.endswith("-none-any.whl")
        bucket = int(hashlib.sha256(w.pin.name.encode()).hexdigest()[:8], 16) % buckets
        by_bucket.setdefault((pure, bucket), []).append(w)
    for pure, b in sorted(by_bucket):
        kind = "pure" if pure else "deps"
        groups.append((f"{kind}-{b + 1}of{buckets}", sorted(by_bucket[(pure, b)], key=lambda w: w.pin.name)))
    return groups


def _entries(wheels: list[Path], layout: VenvLayout, compiler: Compiler | None = None) -> list[TarEntry]:
    by_path: dict[str, TarEntry] = {}
    for wheel in wheels:
        for e in wheel_entries(wheel, layout):
            by_path[e.path] = e  # two distributions shipping one file: the later one wins, as pip would
    return _compiled(list(by_path.values()), layout, compiler)


def _compiled(entries: list[TarEntry], layout: VenvLayout, compiler: Compiler | None) -> list[TarEntry]:
    """``entries`` plus the ``.pyc`` of their ``.py`` files under site-packages (same layer: it stays
    self-contained)."""
    if compiler is None:
        return entries
    site = layout.site_packages.strip("/") + "/"
    return add_bytecode(entries, compiler, select=lambda path: path.startswith(site))


def resolve_pins(spec: PythonSpec, target: TargetPython, index: IndexSettings, project: Path,
                 store: ContentStore, session: requests.Session) -> tuple[list[Pin], bool]:
    """Pins for the target, from the cache when the inputs did not change."""
    if spec.lock is not None and spec.requirements is not None:
        raise ConfigError("python: give either 'requirements' or 'lock', not both")
    inputs = [p.absolute() for p in (spec.requirements, spec.lock) if p is not None]
    if not inputs:
        pyproject = project / "pyproject.toml"
        if not pyproject.is_file():
            raise ConfigError(f"python: no 'requirements' or 'lock' given and {pyproject} does not exist; "
                              "name a requirements.txt, uv.lock or pylock.toml")
        inputs = [pyproject]
    for path in inputs:
        if not path.is_file():
            raise ConfigError(f"python: {path} does not exist; fix the path in the build file")
    key = "resolve-" + input_digest(inputs, json.dumps(target.to_dict(), sort_keys=True), index.key(),
                                    spec.package or "")
    record = store.get_record(key)
    if isinstance(record, list):
        try:  # (a record from a shared cache is not trusted to have the right shape: resolve again)
            return [Pin.from_dict(d) for d in record], True
        except (KeyError, TypeError, ValueError, AttributeError, AssertionError):
            pass
    source = inputs[0].name
    if spec.lock is not None and spec.lock.name != "uv.lock":  # PEP 751: pylock.toml / pylock.NAME.toml
        pins = pylock_pins(spec.lock, target)
    else:
        user: dict[str, Pin] = {}
        compile_inputs = inputs
        with tempfile.TemporaryDirectory(prefix="ocibuild-resolve-") as td:
            if spec.lock is not None:  # uv.lock -> exported pins -> evaluated for the target
                exported = Path(td) / "requirements.txt"
                exported.write_text(export_uv_lock(spec.lock, project, spec.package))
                compile_inputs = [exported]
            env = marker_environment(target)  # a line whose marker is false for this target is not its pin
            user = parse_requirements(compile_inputs[0].read_text(), env, source=source) \
                if compile_inputs[0].suffix != ".toml" else {}
            try:
                text = compile_for_target(compile_inputs, target, index, project, source=source)
            except ResolutionError as exc:
                raise _explain_missing_wheel(exc, target, index, session) from None
        pins = merge_user_hashes(parse_requirements(text, env, source=source), {
            k: Pin(name=v.name, version=v.version, hashes=v.hashes, user_hashes=v.user_hashes, source=source)
            for k, v in user.items()}, source)
    result = sorted(pins.values(), key=lambda p: p.name)
    store.put_record(key, [p.to_dict() for p in result])
    return result, False


_NO_WHEEL = re.compile(r"([A-Za-z0-9._-]+)==([^\s`]+) has no wheels with a matching (?:platform|Python ABI) tag")


def _explain_missing_wheel(exc: ResolutionError, target: TargetPython, index: IndexSettings,
                           session: requests.Session) -> ResolutionError:
    """uv says a pin has no wheel for the target: name the wheel tags that do exist."""
    m = _NO_WHEEL.search(str(exc))
    if not m:
        return exc
    pin = Pin(name=normalize_name(m.group(1)), version=m.group(2))
    try:
        pick(pin, candidates(pin, index, session), target)
    except ResolutionError as explained:
        return explained
    return exc


def build_project_wheel(project: Path, out: Path, index: IndexSettings | None = None) -> Path:
    """Build the project in folder ``project`` as a wheel on the host (``uv build --wheel``; its build
    backend comes from the same index / find-links as the dependencies)."""
    index_args = index.uv_args() if index is not None else []
    proc = subprocess.run([uv_binary(), "build", "--wheel", "--out-dir", str(out), "--quiet", *index_args,
                           str(project)], capture_output=True, text=True, timeout=900, check=False)
    wheels = sorted(out.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        detail = " ".join(proc.stderr.strip().splitlines()[-4:])[:800]
        raise ResolutionError(f"building the project {project} as a wheel failed: {detail}")
    if not wheels[0].name.endswith("-none-any.whl"):
        raise ResolutionError(f"the project built a platform wheel ({wheels[0].name}); only pure-Python projects "
                              "can be installed for another platform")
    return wheels[0]


def project_wheels(spec: PythonSpec, project: Path, out: Path, target: TargetPython,
                   index: IndexSettings) -> list[Path]:
    """The wheels of the project's own code: the project folder, or, from a uv.lock, every local project
    the lock installs for the target (with ``spec.package``: that workspace member and the members it
    depends on)."""
    folders = [project]
    if spec.lock is not None and spec.lock.name == "uv.lock":
        folders = locked_local_projects(spec.lock.absolute(), project, marker_environment(target),
                                        spec.package) or folders
    elif spec.package is not None:
        raise ConfigError(f"python.package {spec.package!r} picks a member of a uv workspace: set lock = "
                          "\"uv.lock\" (the workspace's lock file)")
    return [build_project_wheel(folder, out / str(i), index) for i, folder in enumerate(folders)]


def dependency_layers(spec: PythonSpec, base: Image, store: ContentStore, project: Path, *,
                      compression: Compression, session: requests.Session | None = None,
                      note: Callable[[str], None] = lambda _: None,
                      compiler_base: Image | None = None) -> DepsResult:
    """Resolve, fetch and install ``spec`` for ``base``; return the layers (venv, dependencies, project).
    With ``spec.bytecode`` the ``.py`` files get ``.pyc`` compiled by the base's own interpreter, or by
    ``compiler_base``'s (an image of the same Python for the build machine's CPU), or by this
    machine's Python of the same version (see ``bytecode``)."""
    target = cached_target(spec, base, store)
    note(f"python  {target.interpreter} (CPython {target.version}, {target.libc} {target.libc_version}, "
         f"{target.platform})")
    layout = VenvLayout(prefix=spec.venv, python_version=target.version, interpreter=target.interpreter)
    index = IndexSettings.from_env(index_url=spec.index_url, extra_index_urls=spec.extra_index_urls,
                                   find_links=spec.find_links, no_index=spec.no_index)
    session = session or requests.Session()
    pins, cached = resolve_pins(spec, target, index, project, store, session)
    note(f"python  {len(pins)} distributions pinned" + (" (resolution cached)" if cached else " (resolved with uv)"))
    wheels = [fetch_wheel(pin, target, index, store, session) for pin in pins]
    if from_sdists := [w.filename for w in wheels if w.sdist is not None]:
        note(f"python  from sdists, built on this machine: {', '.join(from_sdists)}")
    downloaded = sum(w.downloaded for w in wheels)
    if downloaded:
        note(f"python  downloaded {downloaded} wheels")
    options = TarOptions(mtime=DEPS_MTIME)
    compiler = _compiler(spec, target, base, compiler_base, store, note)
    layers: list[DepsLayer] = []

    settings = {"recipe": DEPS_VERSION, "venv": layout.prefix, "python": layout.python_version,
                "interpreter": layout.interpreter, "bytecode": compiler.identity if compiler is not None else ""}

    def keyed(label: str, key: str, make: Callable[[], list[TarEntry]], group: Sequence[FetchedWheel]) -> DepsLayer:
        start = time.monotonic()
        inputs = package_inputs("wheel", [(w.pin.name, w.pin.version, w.sha256) for w in group], settings)
        built = keyed_layer(key, make, store, compression=compression, options=options, inputs=inputs)
        return DepsLayer(label=label, built=built, wheels=tuple(f"{w.pin.name}=={w.pin.version}" for w in group),
                         seconds=time.monotonic() - start)

    layout_key = json.dumps([DEPS_VERSION, layout.prefix, layout.python_version, layout.interpreter])
    layers.append(keyed("venv", f"venv {layout_key}", lambda: venv_entries(layout), ()))
    compiled = f" bytecode {compiler.identity}" if compiler is not None else ""

    def group_layer(label: str, group: list[FetchedWheel]) -> DepsLayer:
        return keyed(label, f"wheels {layout_key} {sorted(w.sha256 for w in group)}{compiled}",
                     lambda: _entries([local_wheel(w, target, index, store, session) for w in group], layout,
                                      compiler),
                     group)

    # layers are independent (install, compile in their own process, compress): build them side by side
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        layers += list(pool.map(lambda item: group_layer(*item), group_wheels(wheels, spec)))
    if spec.project:
        with tempfile.TemporaryDirectory(prefix="ocibuild-project-") as td:
            own = project_wheels(spec, project, Path(td), target, index)
            start = time.monotonic()
            entries = _entries(own, layout, compiler)
            built = build_layer(entries, store, compression=compression, options=TarOptions(mtime=DEPS_MTIME))
            layers.append(DepsLayer(label="project", built=built, wheels=tuple(w.name for w in own),
                                    seconds=time.monotonic() - start))
    return DepsResult(target=target, layout=layout, pins=tuple(pins), layers=tuple(layers),
                      resolved_from_cache=cached, downloaded=downloaded, wheels=tuple(wheels))


def _compiler(spec: PythonSpec, target: TargetPython, base: Image, compiler_base: Image | None,
              store: ContentStore, note: Callable[[str], None]) -> Compiler | None:
    if not spec.bytecode:
        return None
    cache = store.root / "rootfs"
    images = [base] + ([compiler_base] if compiler_base is not None else [])
    compiler, why = choose_compiler(target.version, *(
        (lambda image=image: image_compiler(image, target.interpreter, target.version, cache_dir=cache))
        for image in images))
    if compiler is None:
        note(f"python  {why}")
    return compiler


def cached_target(spec: PythonSpec, base: Image, store: ContentStore) -> TargetPython:
    """``detect_target``, remembered per base manifest digest: scanning a base's layers is done once."""
    overrides = [spec.interpreter, spec.python_version, spec.libc, spec.libc_version]
    key = "target-" + hashlib.sha256(json.dumps([DEPS_VERSION, str(base.digest), str(base.config.platform),
                                                 overrides]).encode()).hexdigest()
    d = store.get_record(key)
    if isinstance(d, dict) and all(isinstance(d.get(k), str) for k in (
            "interpreter", "version", "full_version", "implementation", "libc", "libc_version")):
        return TargetPython(interpreter=str(d["interpreter"]), version=str(d["version"]),
                            full_version=str(d["full_version"]), implementation=str(d["implementation"]),
                            platform=base.config.platform, libc=str(d["libc"]), libc_version=str(d["libc_version"]))
    target = detect_target(base, interpreter=spec.interpreter, python_version=spec.python_version,
                           libc=spec.libc, libc_version=spec.libc_version)
    store.put_record(key, target.to_dict())
    return target


def fetch_wheelhouse(spec: PythonSpec, bases: list[Image], store: ContentStore, project: Path, dest: Path, *,
                     note: Callable[[str], None] = lambda _: None,
                     session: requests.Session | None = None) -> list[Path]:
    """Download every wheel ``spec`` needs on each base's platform into ``dest`` (a wheelhouse for
    ``--find-links DIR --no-index`` builds on a machine without network). A pin built from an sdist
    brings the sdist and its build requirements (wheels for this machine), not the built wheel."""
    import shutil

    from .fetch import stored_file
    from .sdist import build_host

    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    session = session or requests.Session()
    index = IndexSettings.from_env(index_url=spec.index_url, extra_index_urls=spec.extra_index_urls,
                                   find_links=spec.find_links, no_index=spec.no_index)
    for base in bases:
        target = cached_target(spec, base, store)
        pins, _ = resolve_pins(spec, target, index, project, store, session)
        files: list[tuple[str, Path]] = []
        sdists = 0
        for pin in pins:
            wheel = fetch_wheel(pin, target, index, store, session, shared=False)
            if wheel.sdist is None:
                files.append((wheel.filename, wheel.path))
                continue
            sdists += 1
            files.append((wheel.sdist.filename, stored_file(store, wheel.sdist.sha256, wheel.sdist.filename)))
            for req in wheel.sdist.build_requirements:
                built_with = fetch_wheel(req, build_host().target(), index, store, session, build_sdists=False)
                files.append((built_with.filename, built_with.path))
        for filename, path in files:
            target_path = dest / filename
            if not target_path.exists():
                tmp = dest / f".{filename}.tmp"
                shutil.copyfile(path, tmp)
                os.replace(tmp, target_path)
            written.append(target_path)
        extra = f" ({sdists} of them as sdists, with their build requirements)" if sdists else ""
        note(f"fetch   {target.platform}: {len(pins)} wheels{extra}")
    return sorted(set(written))
