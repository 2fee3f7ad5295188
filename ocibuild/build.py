"""Build: plan -> base -> layers -> config -> ``Image`` (or ``Index``). No output is written here:
``ocibuild.publish`` writes a result to sinks. Emits events, prints nothing."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import mutate
from .errors import ConfigError, OutputError, ResolutionError
from .events import BaseResolved, BuildStarted, Event, EventHandler, LayerDone, LayerExplained, Note, ignore
from .image import Artifact, Image, Index, Layer, store_layer
from .layers import TarEntry, TarOptions, build_layer, collect
from .layers.policy import compression_for, split
from .models import MODEL_ANNOTATION, ModelBuild, WeightsLock, build_model, embedded_layers, model_env, model_reference
from .plan import BuildPlan, FileEntry, LayerSpec
from .sinks import Sink, sink_for
from .sources import base_platforms, host_platform, resolve_base
from .spec import Descriptor, Platform
from .spec.annotations import BASE_DIGEST, BASE_NAME, CREATED, rfc3339
from .store import ContentStore
from .transports import DebianBase, DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch

if TYPE_CHECKING:
    import requests

    from .debian import DebianLock
    from .python.fetch import FetchedWheel
    from .registry import RegistryClient

__all__ = ["BuildInputs", "BuildMemo", "BuildResult", "BuildResultPlatform", "LayerReport", "build",
           "build_file_layers", "plan_sinks"]

T = TypeVar("T")
_SHARED_LOCK = threading.Lock()  # opening a batch's shared caches


class BuildMemo:
    """What a long-lived caller (``ocibuild dev``) keeps in memory between builds of one plan: each
    platform's base ``Image``, its Python dependency layers and Debian lock, the platforms a base
    offers. Only the file layers are then built again (each still served by the content store when
    its files did not change). ``clear()`` it when anything else may have changed: the build file,
    a requirements or lock file, the base (a moved tag is not noticed while it is kept)."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The value kept under ``key``, else ``make()`` (kept unless it raised)."""
        with self._lock:
            if key in self._values:
                return self._values[key]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            self._values[key] = value
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values

    def clear(self) -> None:
        """Forget everything kept."""
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)


def _kept(memo: BuildMemo | None, key: Hashable, make: Callable[[], T]) -> T:
    return memo.get(key, make) if memo is not None else make()


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerReport:
    """A layer the build added: its label (``app``, ``py:numpy``, ...), the layer, and whether the
    cache served it."""

    label: str
    layer: Layer = field(repr=False, compare=False)
    cached: bool

    @property
    def descriptor(self) -> Descriptor:
        return self.layer.descriptor()


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildInputs:
    """Exactly what one platform's image was built from, for SBOMs and provenance (``ocibuild.attest``):
    the base (``base_location`` as written in the plan; no digest for ``scratch``), every wheel installed
    (sha256, where it came from, the sdist it was built from), the locked ``.deb`` files of a base
    assembled from Debian packages, and which of the added layers hold the project's own files and
    which the files of embedded models."""

    base: Image = field(repr=False, compare=False)
    base_location: str
    scratch: bool = False
    wheels: tuple[FetchedWheel, ...] = ()
    debian: DebianLock | None = None
    app_layers: tuple[LayerReport, ...] = ()
    model_layers: tuple[LayerReport, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildResultPlatform:
    """One platform's image of a (multi-platform) build; ``image`` and ``inputs`` are set by ``build``."""

    platform: str
    digest: str
    layers: tuple[LayerReport, ...]
    image: Image | None = field(default=None, repr=False, compare=False)
    inputs: BuildInputs | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildResult:
    """What a build produced, in memory: the ``artifact`` (an ``Image``, or an ``Index`` for several
    platforms), the first platform's image and the layers it added, and the plan it came from.
    Nothing has been written to the plan's outputs yet: pass it to ``ocibuild.publish``."""

    artifact: Artifact
    image: Image
    layers: tuple[LayerReport, ...]
    plan: BuildPlan = field(repr=False)
    base: Image = field(repr=False)
    python: dict[str, Any] | None = None
    platforms: tuple[BuildResultPlatform, ...] = ()
    models: tuple[ModelBuild, ...] = ()  # the model images the app refers to (not with embed_models)
    model_references: Mapping[str, str] = field(default_factory=dict)  # name -> the app's annotation value
    outputs: tuple[str, ...] = ()  # filled in by publish()
    store: ContentStore | None = field(default=None, repr=False, compare=False)  # where its layers are

    @property
    def index(self) -> Index | None:
        """The index of a multi-platform build, else None."""
        return self.artifact if isinstance(self.artifact, Index) else None

    @property
    def digest(self) -> str:
        """The digest to refer to the result by: the index's for several platforms, else the manifest's."""
        return str(self.artifact.digest)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form: digests, layers (with cache hits), platforms and outputs."""
        def layers(reports: tuple[LayerReport, ...]) -> list[dict[str, Any]]:
            return [{"label": r.label, "cached": r.cached, **r.descriptor.to_dict()} for r in reports]

        multi = {}
        if self.index is not None:
            multi = {"index": {"mediaType": str(self.index.descriptor().media_type), "digest": self.digest,
                               "size": len(self.index.index_bytes)},
                     "platforms": [{"platform": p.platform, "digest": p.digest, "layers": layers(p.layers)}
                                   for p in self.platforms]}
        base_digest = None if isinstance(self.plan.base_for(self.image.config.platform), Scratch) \
            else str(self.base.digest)
        return {
            **multi,
            "digest": self.digest,
            "manifest": {"mediaType": str(self.image.manifest.media_type), "digest": str(self.image.digest),
                         "size": len(self.image.manifest_bytes)},
            "config": self.image.manifest.config.to_dict(),
            "platform": str(self.image.config.platform),
            "base": {"digest": base_digest, "layers": len(self.base.layers)},
            "layers": layers(self.layers),
            "outputs": list(self.outputs),
            **({"python": self.python} if self.python is not None else {}),
            **({"models": [{**m.to_dict(), "reference": self.model_references.get(m.name)} for m in self.models]}
               if self.models else {}),
        }


def _local_outputs(plan: BuildPlan) -> list[Path]:
    return [o.path.absolute() for o in plan.outputs if isinstance(o, OciLayout | OciArchive | DockerArchive)]


def _describe(spec: LayerSpec, project: Path) -> str:
    if spec.files:
        return f"ocibuild: COPY {len(spec.files)} files {spec.dest if spec.dest != '/' else ''}".rstrip()
    src = spec.src
    if src.is_absolute():
        try:
            src = src.relative_to(project.absolute())
        except ValueError:
            src = Path(src.name)
    return f"ocibuild: COPY {src.as_posix()} {spec.dest}"


def _explicit_entries(files: tuple[FileEntry, ...], skip: list[Path]) -> list[TarEntry]:
    entries: list[TarEntry] = []
    for f in files:
        found = collect(f.src, f.dest, skip=skip)
        if f.mode is not None:
            found = [replace(e, mode=f.mode) if e.kind == "file" else e for e in found]
        entries += found
    return entries


def build_file_layers(spec: LayerSpec, plan: BuildPlan, store: ContentStore, *,
                      skip: list[Path] | None = None) -> list[tuple[str, Layer, bool, int]]:
    """The layers for one ``LayerSpec``: one per large file (model weights; see ``layers.policy``),
    then the rest (the code), last. Returns (label, layer, cached, file count) for each."""
    if spec.files:
        entries = _explicit_entries(spec.files, skip or [])
    else:
        src = spec.src if spec.src.is_absolute() else plan.project_dir.absolute() / spec.src
        entries = collect(src, spec.dest, excludes=spec.exclude, skip=skip or ())
    options = TarOptions(uid=plan.uid, gid=plan.gid, mtime=plan.source_date_epoch)
    big, rest = split(entries)
    out: list[tuple[str, Layer, bool, int]] = []
    for entry in big:
        built = build_layer([entry], store, compression=compression_for(entry, plan.compression), options=options)
        out.append((f"{spec.label}:{entry.path.rsplit('/', 1)[-1]}",
                    store_layer(store, built.descriptor, built.diff_id), built.cached, 1))
    built = build_layer(rest, store, compression=plan.compression, options=options)
    out.append((spec.label, store_layer(store, built.descriptor, built.diff_id), built.cached,
                sum(1 for e in rest if e.kind == "file")))
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class _FileLayer:
    spec: LayerSpec
    label: str
    layer: Layer
    cached: bool
    files: int
    seconds: float


def _file_layers(plan: BuildPlan, store: ContentStore) -> list[_FileLayer]:
    """The plan's file layers: platform-independent, so built once for every platform."""
    skip = [*_local_outputs(plan), store.root]
    skip += [b.lock.absolute() for b in (plan.base, *plan.bases.values())
             if isinstance(b, DebianBase) and b.lock is not None]  # written by the build itself
    # models are images (or layers) of their own: never copied into a code layer, nor their lock
    skip += [(m.src if m.src.is_absolute() else plan.project_dir / m.src).absolute() for m in plan.models]
    skip += [plan.weights_lock.absolute()] if plan.weights_lock is not None else []
    out = []
    for spec in plan.layers:
        start = time.monotonic()
        for label, layer, cached, files in build_file_layers(spec, plan, store, skip=skip):
            out.append(_FileLayer(spec=spec, label=label, layer=layer, cached=cached, files=files,
                                  seconds=time.monotonic() - start))
            start = time.monotonic()
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class _Built:
    image: Image
    base: Image
    reports: tuple[LayerReport, ...]
    python: dict[str, Any] | None
    inputs: BuildInputs


def _python_layers(plan: BuildPlan, location: Location, base: Image, store: ContentStore, on_event: EventHandler,
                   session: requests.Session | None, created: str) -> tuple[list[mutate.Addendum],
                                                                          list[LayerReport], dict[str, str],
                                                                          dict[str, Any], tuple[FetchedWheel, ...]]:
    from .python.deps import dependency_layers

    assert plan.python is not None
    deps = dependency_layers(plan.python, base, store, plan.project_dir.absolute(), compression=plan.compression,
                             note=lambda text: on_event(Note(text=text)), session=session,
                             compiler_base=_compiler_base(plan, location, base, store))
    addenda, reports = [], []
    for d in deps.layers:
        layer = store_layer(store, d.built.descriptor, d.built.diff_id)
        what = ", ".join(d.wheels[:8]) + (f" and {len(d.wheels) - 8} more" if len(d.wheels) > 8 else "")
        addenda.append(mutate.Addendum(layer=layer, created=created,
                                       created_by=f"ocibuild: python {d.label}" + (f" ({what})" if what else "")))
        label = f"py:{d.label}"
        reports.append(LayerReport(label=label, layer=layer, cached=d.built.cached))
        on_event(LayerDone(label=label, descriptor=layer.descriptor(), cached=d.built.cached, seconds=d.seconds,
                           files=len(d.wheels), platform=str(base.config.platform)))
    env = deps.env(base.config.config.env_dict().get("PATH", ""))
    info = {"target": deps.target.to_dict(), "venv": deps.layout.prefix,
            "pins": [f"{p.name}=={p.version}" for p in deps.pins],
            "resolved_from_cache": deps.resolved_from_cache, "downloaded": deps.downloaded}
    return addenda, reports, env, info, deps.wheels


def _compiler_base(plan: BuildPlan, location: Location, base: Image, store: ContentStore) -> Image | None:
    """For a Debian base of another CPU: the same base for this machine's CPU, whose interpreter (the
    same Python package) compiles the ``.pyc`` (they do not depend on the CPU)."""
    if plan.python is None or not plan.python.bytecode or not isinstance(location, DebianBase):
        return None
    host = host_platform()
    if base.config.platform.architecture == host.architecture:
        return None
    from .sources.debian import load_debian

    return load_debian(location, store, host, any_arch=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Models:
    """What the plan's models give the app: model images (referred to by annotations, found through
    variables), or with ``embed_models`` their layers."""

    builds: tuple[ModelBuild, ...] = ()
    references: Mapping[str, str] = field(default_factory=dict)
    addenda: tuple[mutate.Addendum, ...] = ()
    reports: tuple[LayerReport, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


def _models(plan: BuildPlan, store: ContentStore, on_event: EventHandler, update_lock: bool) -> _Models:
    if not plan.models:
        return _Models()
    project = plan.project_dir.absolute()
    env = model_env([m.name for m in plan.models])
    if plan.embed_models:
        laid = [(m.name, *one) for m in plan.models
                for one in embedded_layers(m, store, project_dir=project, mtime=plan.source_date_epoch,
                                           on_event=on_event)]
        return _Models(addenda=tuple(a for _, a, _ in laid), env=env,
                       reports=tuple(LayerReport(label=f"{name}:{a.created_by.removeprefix('ocibuild model: ')}",
                                                 layer=a.layer, cached=cached) for name, a, cached in laid))
    lock = WeightsLock.read(plan.weights_lock) if plan.weights_lock is not None else None
    builds = []
    for spec in plan.models:
        model, updated = build_model(spec, store, project_dir=project, source_date_epoch=plan.source_date_epoch,
                                     lock=lock, update_lock=update_lock, on_event=on_event)
        if updated is not None:
            lock = updated
        builds.append(model)
    if lock is not None and lock.to_bytes() != _read_or_empty(lock.path):
        lock.write()
        on_event(Note(text=f"wrote   {lock.path}"))
    refs = {m.name: model_reference(plan.outputs, project, m.name, m.digest) for m in builds}
    return _Models(builds=tuple(builds), references=refs, env=env)


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _build_one(plan: BuildPlan, store: ContentStore, platform: Platform | None, client: RegistryClient | None,
               on_event: EventHandler, file_layers: list[_FileLayer], session: requests.Session | None,
               models: _Models = _Models(), memo: BuildMemo | None = None, explain: bool = False) -> _Built:
    location = plan.base_for(platform)
    base = _kept(memo, ("base", str(location), str(platform)),
                 lambda: resolve_base(location, store, platform, client=client))
    scratch = isinstance(location, Scratch)
    if not scratch:  # where `ocibuild rebase` finds it again by the base.digest annotation
        store.put_bytes(base.manifest_bytes)
        store.put_bytes(base.config_bytes)
    on_event(BaseResolved(base=str(location), digest=None if scratch else base.digest, layers=len(base.layers),
                          platform=str(base.config.platform)))
    if isinstance(location, DebianBase):
        _explain_base(plan, store, on_event, base, explain)
    created = rfc3339(plan.source_date_epoch)
    addenda: list[mutate.Addendum] = []
    reports: list[LayerReport] = []
    settings = plan.settings
    python_info: dict[str, Any] | None = None
    wheels: tuple[FetchedWheel, ...] = ()
    if plan.python is not None:
        key = ("python", str(platform), str(base.digest))
        kept = memo is not None and key in memo
        addenda, reports, env, python_info, wheels = _kept(
            memo, key, lambda: _python_layers(plan, location, base, store, on_event, session, created))
        # kept ones are never changed in place, and count as served from the cache
        addenda, reports = list(addenda), [replace(r, cached=True) if kept else r for r in reports]
        settings = replace(settings, env={**env, **settings.env})
    if models.env:
        settings = replace(settings, env={**models.env, **settings.env})
    addenda += models.addenda
    reports += models.reports
    app_layers = []
    for fl in file_layers:
        what = _describe(fl.spec, plan.project_dir) + (f" ({fl.label.split(':', 1)[1]})" if ":" in fl.label else "")
        addenda.append(mutate.Addendum(layer=fl.layer, created=created, created_by=what))
        app_layers.append(LayerReport(label=fl.label, layer=fl.layer, cached=fl.cached))
    reports += app_layers
    image = mutate.append(base, *addenda)
    image = mutate.with_created(mutate.with_settings(image, settings), plan.source_date_epoch)
    notes = {**{MODEL_ANNOTATION + name: ref for name, ref in models.references.items()},
             **_annotations(plan, location, base, created)}
    image = mutate.with_annotations(image, notes)
    debian = None
    if isinstance(location, DebianBase):
        from .sources.debian import base_lock

        debian = _kept(memo, ("debian", str(platform), str(base.digest)), lambda: base_lock(location, store, base))
    inputs = BuildInputs(base=base, base_location=str(location), scratch=scratch, wheels=wheels, debian=debian,
                         app_layers=tuple(app_layers), model_layers=models.reports)
    return _Built(image=image, base=base, reports=tuple(reports), python=python_info, inputs=inputs)


def _targets(plan: BuildPlan, store: ContentStore, client: RegistryClient | None,
             on_event: EventHandler, memo: BuildMemo | None = None) -> list[Platform | None]:
    if plan.platforms == "all":
        if plan.bases:
            return [Platform.parse(k) for k in plan.bases]
        offered = _kept(memo, ("platforms", str(plan.base)), lambda: base_platforms(plan.base, store, client=client))
        on_event(Note(text=f"platforms {', '.join(map(str, offered))} (all the base offers)"))
        return list(offered)
    if plan.platforms:
        return list(plan.platforms)
    if plan.bases:
        return [Platform.parse(k) for k in plan.bases]
    return [None]


def plan_sinks(plan: BuildPlan, *, client: RegistryClient | None = None, session: requests.Session | None = None,
               on_event: EventHandler | None = None) -> list[Sink]:
    """The sinks for the plan's outputs, archive entries stamped with its ``source_date_epoch``."""
    return [sink_for(o, client=client, session=session, mtime=plan.source_date_epoch, on_event=on_event)
            for o in plan.outputs]


def _registry_client(plan: BuildPlan, client: RegistryClient | None, session: requests.Session | None,
                     on_event: EventHandler) -> RegistryClient | None:
    if client is not None:
        return client
    if session is None and not any(isinstance(loc, Registry) for loc in (plan.base, *plan.bases.values())):
        return None
    from .registry import RegistryClient

    return RegistryClient(session, on_event=on_event)


def build(plan: BuildPlan, *, store: ContentStore | None = None, on_event: EventHandler = ignore,
          client: RegistryClient | None = None, session: requests.Session | None = None,
          update_lock: bool = False, memo: BuildMemo | None = None, explain: bool = False) -> BuildResult:
    """Build the image ``plan`` describes: one per platform, joined in an index when there are
    several. Layers go to ``store`` (the content-addressed cache); nothing is written to the plan's
    outputs, but each is checked now, so a build never ends with an unwritable output: give the
    result to ``publish`` to write it. Registry bases (and PyPI downloads) use ``client`` or
    ``session`` when given.

    The plan's ``models`` are built into model images of their own (``result.models``, written by
    ``publish`` beside each output) that the app refers to; their files must match the plan's
    ``weights_lock`` unless ``update_lock``, which rewrites it.

    ``memo`` (a ``BuildMemo`` kept by the caller across builds of one plan) keeps the bases and the
    Python dependency layers in memory, so a rebuild after an edit of the project's files only
    builds the file layers again.

    With ``explain``, a ``LayerExplained`` event follows each layer that was built rather than
    taken from the cache: what differs from that layer's last build in this store (which file,
    which wheel version, which setting).

    >>> result = build(load_plan("examples/hello").with_outputs("oci:out/hello:v1"))  # doctest: +SKIP
    >>> publish(result)  # doctest: +SKIP
    """
    store = store or ContentStore.default()
    for sink in plan_sinks(plan, client=client, session=session):
        sink.check()
    client = _registry_client(plan, client, session, on_event)
    store = _with_cache_repo(store, plan, client, session, on_event)
    on_event = _explaining(plan, store, on_event, explain)
    targets = _targets(plan, store, client, on_event, memo)
    on_event(BuildStarted(platforms=tuple(str(t) for t in targets if t is not None)))
    if len(targets) > 1 and any(isinstance(o, DockerArchive) for o in plan.outputs):
        raise OutputError(f"a docker archive holds one platform, but {len(targets)} were asked for "
                          f"({', '.join(map(str, targets))}); choose one with --platform, or write oci:/oci-archive:")
    models = _models(plan, store, on_event, update_lock)
    file_layers = _file_layers(plan, store)
    for fl in file_layers:
        on_event(LayerDone(label=fl.label, descriptor=fl.layer.descriptor(), cached=fl.cached, seconds=fl.seconds,
                           files=fl.files))
    built: list[_Built] = []
    if len(targets) == 1:
        built.append(_build_one(plan, store, targets[0], client, on_event, file_layers, session, models, memo,
                                explain))
    else:
        def one(platform: Platform | None) -> _Built | None:
            try:
                return _build_one(plan, store, platform, client, on_event, file_layers, session, models, memo,
                                  explain)
            except ResolutionError as exc:
                if plan.platforms != "all":
                    raise
                on_event(Note(text=f"skip    {platform}: {exc}"))
                return None

        with ThreadPoolExecutor(max_workers=max(1, min(len(targets), os.cpu_count() or 1))) as pool:
            results = list(pool.map(one, targets))
        built = [b for b in results if b is not None]
        if not built:
            raise ConfigError("no platform of the base can be built (see the lines above for why)")
    artifact: Artifact = built[0].image if len(built) == 1 else mutate.index_of(
        [b.image for b in built], created=plan.source_date_epoch)
    from .explain import note_project

    note_project(store, str(plan.project_dir.absolute()), [artifact.digest, *(b.image.digest for b in built)])
    return BuildResult(artifact=artifact, image=built[0].image, layers=built[0].reports, plan=plan, store=store,
                       base=built[0].base, python=built[0].python, models=models.builds,
                       model_references=models.references,
                       platforms=tuple(BuildResultPlatform(platform=str(b.image.config.platform),
                                                           digest=str(b.image.digest), layers=b.reports,
                                                           image=b.image, inputs=b.inputs)
                                       for b in built))


def _role(plan: BuildPlan, label: str, platform: str | None) -> tuple[str, str, str]:
    """Whose layer this is, for ``explain_layer``: the project folder, the layer's label, its platform."""
    return (str(plan.project_dir.absolute()), label, platform or "")


def _explaining(plan: BuildPlan, store: ContentStore, on_event: EventHandler, explain: bool) -> EventHandler:
    """``on_event``, noting each layer a ``LayerDone`` reports as this project's last of its label and
    platform; with ``explain``, followed by a ``LayerExplained`` for each one that was built."""
    from .explain import explain_layer

    def handle(event: Event) -> None:
        on_event(event)
        if isinstance(event, LayerDone):
            why = explain_layer(store, _role(plan, event.label, event.platform), event.descriptor.digest, event.cached)
            if explain and why:
                on_event(LayerExplained(label=event.label, platform=event.platform, causes=why))

    return handle


def _explain_base(plan: BuildPlan, store: ContentStore, on_event: EventHandler, base: Image, explain: bool) -> None:
    """A base built from Debian packages here: each of its layers that is not the one the last build
    had (its packages changed) is explained like a built layer."""
    from .explain import explain_layer

    made = [h.created_by for h in base.config.history if not h.empty_layer]
    platform = str(base.config.platform)
    for i, layer in enumerate(base.layers):
        label = "base:" + (made[i].rsplit(": ", 1)[-1] if len(made) == len(base.layers) else str(i + 1))
        why = explain_layer(store, _role(plan, label, platform), layer.digest, None)
        if explain and why:
            on_event(LayerExplained(label=label, platform=platform, causes=why))


def _with_cache_repo(store: ContentStore, plan: BuildPlan, client: RegistryClient | None,
                     session: requests.Session | None, on_event: EventHandler) -> ContentStore:
    """The store this build uses: ``store`` itself, or with ``plan.cache_repo`` a view of it whose shared
    tier is that cache (one per repository and store, so the builds of a batch share it; the store the
    caller passed is never changed: another plan on it uses its own cache, or none)."""
    if not plan.cache_repo:
        return store
    with _SHARED_LOCK:
        cache = store.shared_caches.get(plan.cache_repo)
        if cache is None:
            from .cacherepo import open_cache_repo

            cache = store.shared_caches[plan.cache_repo] = open_cache_repo(plan.cache_repo, client, session, on_event)
    return store.with_shared(cache)


def _annotations(plan: BuildPlan, location: object, base: Image, created: str) -> Mapping[str, str]:
    out = {CREATED: created}
    if not isinstance(location, Scratch):
        out[BASE_DIGEST] = str(base.digest)
    if isinstance(location, Registry):
        out[BASE_NAME] = str(location.reference)
    out.update(plan.settings.annotations)
    return out


