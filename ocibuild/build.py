"""Orchestration: plan -> base -> layers -> config -> image -> outputs. Emits events, prints nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, LayerError, OutputError
from .events import BaseResolved, EventHandler, LayerDone, Note, OutputDone, ignore
from .image import Artifact, Image, Index
from .layers import Compression, TarEntry, TarOptions, build_layer, collect
from .layers.builder import BuiltLayer
from .plan import BuildPlan, ImageSettings, LayerSpec
from .sinks import check_output, write_output
from .sources import ANY_PLATFORM, BaseImage, resolve_base
from .spec import ContainerConfig, Descriptor, History, ImageConfig, Platform
from .store import ContentStore
from .transports import DebianBase, DockerArchive, Location, OciArchive, OciLayout, Registry

if TYPE_CHECKING:
    from .registry import RegistryClient

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerReport:
    label: str
    descriptor: Descriptor
    cached: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildResultPlatform:
    platform: str
    digest: str
    layers: tuple[LayerReport, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildResult:
    """What a build produced: the image (the first platform's, with the layers it added), and for a
    multi-platform build the index over all of them."""

    image: Image
    layers: tuple[LayerReport, ...]
    outputs: tuple[str, ...]
    base: BaseImage = field(repr=False)
    python: dict[str, Any] | None = None
    index: Index | None = None
    platforms: tuple[BuildResultPlatform, ...] = ()

    @property
    def digest(self) -> str:
        """The digest to refer to the result by: the index's for several platforms, else the manifest's."""
        return str(self.index.digest if self.index is not None else self.image.digest)

    def to_dict(self) -> dict[str, Any]:
        multi = {}
        if self.index is not None:
            multi = {"index": {"mediaType": str(self.index.descriptor().media_type), "digest": self.digest,
                               "size": len(self.index.index_bytes)},
                     "platforms": [{"platform": p.platform, "digest": p.digest,
                                    "layers": [{"label": r.label, "cached": r.cached, **r.descriptor.to_dict()}
                                               for r in p.layers]} for p in self.platforms]}
        return {
            **multi,
            "digest": self.digest,
            "manifest": {"mediaType": str(self.image.manifest.media_type), "digest": str(self.image.digest),
                         "size": len(self.image.manifest_bytes)},
            "config": self.image.manifest.config.to_dict(),
            "platform": str(self.image.config.platform),
            "base": {"digest": str(self.base.digest) if self.base.digest else None,
                     "layers": len(self.base.layers)},
            "layers": [{"label": r.label, "cached": r.cached, **r.descriptor.to_dict()} for r in self.layers],
            "outputs": list(self.outputs),
            **({"python": self.python} if self.python is not None else {}),
        }


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merged_config(base: ContainerConfig, s: ImageSettings) -> ContainerConfig:
    """The base's runtime config with the build's settings on top (Docker's rules: setting an
    entrypoint without a cmd clears the base's cmd)."""
    env = base.env_dict()
    env.update(s.env)
    entrypoint, cmd = base.entrypoint, base.cmd
    if s.entrypoint is not None:
        entrypoint = s.entrypoint
        cmd = s.cmd
    elif s.cmd is not None:
        cmd = s.cmd
    return replace(
        base,
        env=tuple(f"{k}={v}" for k, v in env.items()),
        entrypoint=entrypoint,
        cmd=cmd,
        working_dir=s.workdir if s.workdir is not None else base.working_dir,
        user=s.user if s.user is not None else base.user,
        labels={**base.labels, **s.labels},
        exposed_ports=tuple(sorted({*base.exposed_ports, *s.ports})),
        volumes=tuple(sorted({*base.volumes, *s.volumes})),
        stop_signal=s.stop_signal if s.stop_signal is not None else base.stop_signal,
    )


def _local_outputs(plan: BuildPlan) -> list[Path]:
    return [o.path.absolute() for o in plan.outputs if isinstance(o, OciLayout | OciArchive | DockerArchive)]


def _describe(spec: LayerSpec, project: Path) -> str:
    src = spec.src
    if src.is_absolute():
        try:
            src = src.relative_to(project.absolute())
        except ValueError:
            src = Path(src.name)
    return f"ocibuild: COPY {src.as_posix()} {spec.dest}"


MODEL_SUFFIXES = (".safetensors", ".onnx", ".joblib", ".pkl", ".pt", ".pth", ".bin", ".gguf", ".ggml", ".h5",
                  ".keras", ".tflite", ".npy", ".npz", ".parquet", ".ckpt", ".msgpack", ".pb")
LARGE_FILE = 16 << 20  # any file this big gets its own layer
MODEL_FILE = 1 << 20  # a model/data file this big gets its own layer


def is_large(entry: TarEntry) -> bool:
    """Model weights and other big files: kept out of the code layer so a code edit never re-uploads them."""
    return entry.kind == "file" and (entry.size >= LARGE_FILE or (
        entry.size >= MODEL_FILE and entry.path.lower().endswith(MODEL_SUFFIXES)))


def compression_for(entry: TarEntry, chosen: Compression) -> Compression:
    """Big files that gzip cannot shrink (float weights) are stored uncompressed: readable by every
    runtime, and no CPU is burnt for nothing. zstd (fast on such data) and none are kept as chosen."""
    if chosen.algorithm != "gzip" or entry.source is None:
        return chosen
    import zlib

    with entry.source.open("rb") as f:
        f.seek(max(0, entry.size // 2 - (1 << 19)))
        sample = f.read(1 << 20)
    if sample and len(zlib.compress(sample, 1)) > 0.9 * len(sample):
        return Compression.parse("none")
    return chosen


def build_file_layers(spec: LayerSpec, plan: BuildPlan, store: ContentStore, *,
                      skip: list[Path] | None = None) -> list[tuple[str, BuiltLayer, int]]:
    """The layers for one ``LayerSpec``: one per large file (model weights; see ``is_large``), then the
    rest (the code), last. Returns (label, layer, file count) for each."""
    project = plan.project_dir.absolute()
    src = spec.src if spec.src.is_absolute() else project / spec.src
    try:
        src.absolute().resolve().relative_to(project.resolve())
    except ValueError:
        raise LayerError(
            f"layer source {spec.src} is outside the project folder {project}; "
            "move it into the project or build from a folder that contains it"
        ) from None
    entries = collect(src, spec.dest, excludes=spec.exclude, skip=skip or ())
    options = TarOptions(uid=plan.uid, gid=plan.gid, mtime=plan.source_date_epoch)
    big = sorted((e for e in entries if is_large(e)), key=lambda e: e.path)
    out = []
    for entry in big:
        built = build_layer([entry], store, compression=compression_for(entry, plan.compression), options=options)
        out.append((f"{spec.label}:{entry.path.rsplit('/', 1)[-1]}", built, 1))
    rest = [e for e in entries if not is_large(e)]
    built = build_layer(rest, store, compression=plan.compression, options=options)
    out.append((spec.label, built, sum(1 for e in rest if e.kind == "file")))
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class _FileLayer:
    spec: LayerSpec
    label: str
    built: BuiltLayer
    files: int
    seconds: float


def _file_layers(plan: BuildPlan, store: ContentStore, on_event: EventHandler) -> list[_FileLayer]:
    """The plan's file layers: platform-independent, so built once for every platform."""
    skip = [*_local_outputs(plan), store.root]
    skip += [b.lock.absolute() for b in (plan.base, *plan.base_by_platform.values())
             if isinstance(b, DebianBase) and b.lock is not None]  # written by the build itself
    out = []
    for spec in plan.layers:
        start = time.monotonic()
        for label, built, files in build_file_layers(spec, plan, store, skip=skip):
            out.append(_FileLayer(spec=spec, label=label, built=built, files=files,
                                  seconds=time.monotonic() - start))
            start = time.monotonic()
    return out


def _base_location(plan: BuildPlan, platform: Platform | None) -> Location:
    if not plan.base_by_platform:
        return plan.base
    for key, location in plan.base_by_platform.items():
        if platform is not None and Platform.parse(key).matches(platform):
            return location
    have = ", ".join(plan.base_by_platform)
    raise ConfigError(f"no base is configured for {platform or 'the host platform'} (bases are given for: {have}); "
                      "add one to the base table or pick a configured --platform")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Built:
    image: Image
    base: BaseImage
    reports: tuple[LayerReport, ...]
    python: dict[str, Any] | None


def _build_one(plan: BuildPlan, store: ContentStore, platform: Platform | None, client: RegistryClient | None,
               on_event: EventHandler, file_layers: list[_FileLayer], *, report_files: bool) -> _Built:
    location = _base_location(plan, platform)
    base = resolve_base(location, store, platform, client=client)
    on_event(BaseResolved(base=str(location), digest=base.digest, layers=len(base.layers),
                          platform=str(base.config.platform)))
    created = rfc3339(plan.source_date_epoch)
    config: ImageConfig = base.config
    layers: list[Descriptor] = list(base.layers)
    reports: list[LayerReport] = []
    settings = plan.settings
    python_info: dict[str, Any] | None = None
    if plan.python is not None:
        from .python.deps import dependency_layers

        deps = dependency_layers(plan.python, base, store, plan.project_dir.absolute(), compression=plan.compression,
                                 note=lambda text: on_event(Note(text=text)))
        for d in deps.layers:
            layers.append(d.built.descriptor)
            what = ", ".join(d.wheels[:8]) + (f" and {len(d.wheels) - 8} more" if len(d.wheels) > 8 else "")
            config = config.with_layer(d.built.diff_id, History(
                created=created, created_by=f"ocibuild: python {d.label}" + (f" ({what})" if what else "")))
            label = f"py:{d.label}"
            reports.append(LayerReport(label=label, descriptor=d.built.descriptor, cached=d.built.cached))
            on_event(LayerDone(label=label, descriptor=d.built.descriptor, cached=d.built.cached, seconds=d.seconds,
                               files=len(d.wheels)))
        python_env = deps.env(base.config.config.env_dict().get("PATH", ""))
        python_info = {"target": deps.target.to_dict(), "venv": deps.layout.prefix,
                       "pins": [f"{p.name}=={p.version}" for p in deps.pins],
                       "resolved_from_cache": deps.resolved_from_cache, "downloaded": deps.downloaded}
        settings = replace(settings, env={**python_env, **settings.env})
    for fl in file_layers:
        layers.append(fl.built.descriptor)
        what = _describe(fl.spec, plan.project_dir) + (f" ({fl.label.split(':', 1)[1]})" if ":" in fl.label else "")
        config = config.with_layer(fl.built.diff_id, History(created=created, created_by=what))
        reports.append(LayerReport(label=fl.label, descriptor=fl.built.descriptor, cached=fl.built.cached))
        if report_files:
            on_event(LayerDone(label=fl.label, descriptor=fl.built.descriptor, cached=fl.built.cached,
                               seconds=fl.seconds, files=fl.files))
    config = replace(config, created=created, config=merged_config(config.config, settings))
    image = Image.assemble(config, layers, annotations=_annotations(plan, base, created))
    image.store_metadata(store)
    return _Built(image=image, base=base, reports=tuple(reports), python=python_info)


def _targets(plan: BuildPlan, store: ContentStore, client: RegistryClient | None,
             on_event: EventHandler) -> list[Platform | None]:
    if plan.all_platforms:
        location = plan.base if not plan.base_by_platform else None
        if location is None:
            return [Platform.parse(k) for k in plan.base_by_platform]
        offered = resolve_base(location, store, ANY_PLATFORM, client=client).platforms
        on_event(Note(text=f"platforms {', '.join(map(str, offered))} (all the base offers)"))
        return list(offered)
    if plan.platforms:
        return list(plan.platforms)
    return [plan.platform]


def build(plan: BuildPlan, *, store: ContentStore | None = None, on_event: EventHandler = ignore,
          client: RegistryClient | None = None) -> BuildResult:
    """Build the image ``plan`` describes (one per platform, joined in an index when there are
    several) and write it to every output in ``plan.outputs``. Registry bases and outputs go through
    ``client`` (default: a ``RegistryClient`` with the usual credential sources).

    >>> result = build(BuildPlan(project_dir=Path("."), outputs=(parse_location("oci:out/app:v1"),)))
    ... # doctest: +SKIP
    """
    from .python.resolve import ResolutionError

    store = store or ContentStore.default()
    for output in plan.outputs:
        check_output(output)
    locations = (plan.base, *plan.base_by_platform.values(), *plan.outputs)
    if client is None and any(isinstance(loc, Registry) for loc in locations):
        from .registry import RegistryClient

        client = RegistryClient(on_event=on_event)
    targets = _targets(plan, store, client, on_event)
    if len(targets) > 1 and any(isinstance(o, DockerArchive) for o in plan.outputs):
        raise OutputError(f"a docker archive holds one platform, but {len(targets)} were asked for "
                          f"({', '.join(map(str, targets))}); choose one with --platform, or write oci:/oci-archive:")
    file_layers = _file_layers(plan, store, on_event)
    for fl in file_layers:
        on_event(LayerDone(label=fl.label, descriptor=fl.built.descriptor, cached=fl.built.cached,
                           seconds=fl.seconds, files=fl.files))
    built: list[_Built] = []
    if len(targets) == 1:
        built.append(_build_one(plan, store, targets[0], client, on_event, file_layers, report_files=False))
    else:
        def one(platform: Platform | None) -> _Built | None:
            try:
                return _build_one(plan, store, platform, client, on_event, file_layers, report_files=False)
            except ResolutionError as exc:
                if not plan.all_platforms:
                    raise
                on_event(Note(text=f"skip    {platform}: {exc}"))
                return None

        with ThreadPoolExecutor(max_workers=max(1, min(len(targets), os.cpu_count() or 1))) as pool:
            results = list(pool.map(one, targets))
        built = [b for b in results if b is not None]
        if not built:
            raise ConfigError("no platform of the base can be built (see the lines above for why)")
    artifact: Artifact = built[0].image if len(built) == 1 else Index.assemble(
        [b.image for b in built], annotations={CREATED: rfc3339(plan.source_date_epoch)})
    artifact.store_metadata(store)
    written = []
    mount_from = plan.base.reference if isinstance(plan.base, Registry) else None
    for output in plan.outputs:
        start = time.monotonic()
        write_output(output, artifact, store, mtime=plan.source_date_epoch, client=client, mount_from=mount_from)
        written.append(str(output))
        on_event(OutputDone(output=str(output), digest=artifact.digest, seconds=time.monotonic() - start))
    return BuildResult(image=built[0].image, layers=built[0].reports, outputs=tuple(written), base=built[0].base,
                       python=built[0].python, index=artifact if isinstance(artifact, Index) else None,
                       platforms=tuple(BuildResultPlatform(platform=str(b.image.config.platform),
                                                           digest=str(b.image.digest), layers=b.reports)
                                       for b in built))


def _annotations(plan: BuildPlan, base: BaseImage, created: str) -> Mapping[str, str]:
    out = {CREATED: created}
    if base.digest is not None:
        out[BASE_DIGEST] = str(base.digest)
    if base.name:
        out[BASE_NAME] = base.name
    out.update(plan.settings.annotations)
    return out
