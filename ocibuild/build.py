"""Orchestration: plan -> base -> layers -> config -> image -> outputs. Emits events, prints nothing."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import LayerError
from .events import BaseResolved, EventHandler, LayerDone, Note, OutputDone, ignore
from .image import Image
from .layers import TarOptions, build_layer, collect
from .layers.builder import BuiltLayer
from .plan import BuildPlan, ImageSettings, LayerSpec
from .registry import RegistryClient
from .sinks import check_output, write_output
from .sources import BaseImage, resolve_base
from .spec import ContainerConfig, Descriptor, History, ImageConfig
from .store import ContentStore
from .transports import DockerArchive, OciArchive, OciLayout, Registry

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerReport:
    label: str
    descriptor: Descriptor
    cached: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildResult:
    """What a build produced: the image (manifest, config) and the layers it added."""

    image: Image
    layers: tuple[LayerReport, ...]
    outputs: tuple[str, ...]
    base: BaseImage = field(repr=False)
    python: dict[str, Any] | None = None

    @property
    def digest(self) -> str:
        return str(self.image.digest)

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": str(self.image.digest),
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


def build_file_layer(spec: LayerSpec, plan: BuildPlan, store: ContentStore, *,
                     skip: list[Path] | None = None) -> tuple[BuiltLayer, int]:
    """Build (or fetch from the cache) the layer for one ``LayerSpec``; return it and its file count."""
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
    built = build_layer(entries, store, compression=plan.compression,
                        options=TarOptions(uid=plan.uid, gid=plan.gid, mtime=plan.source_date_epoch))
    return built, sum(1 for e in entries if e.kind == "file")


def build(plan: BuildPlan, *, store: ContentStore | None = None, on_event: EventHandler = ignore,
          client: RegistryClient | None = None) -> BuildResult:
    """Build the image ``plan`` describes and write it to every output in ``plan.outputs``.
    Registry bases and outputs go through ``client`` (default: a ``RegistryClient`` with the usual
    credential sources).

    >>> result = build(BuildPlan(project_dir=Path("."), outputs=(parse_location("oci:out/app:v1"),)))
    ... # doctest: +SKIP
    """
    store = store or ContentStore.default()
    for output in plan.outputs:
        check_output(output)
    if client is None and any(isinstance(loc, Registry) for loc in (plan.base, *plan.outputs)):
        client = RegistryClient(on_event=on_event)
    base = resolve_base(plan.base, store, plan.platform, client=client)
    on_event(BaseResolved(base=str(plan.base), digest=base.digest, layers=len(base.layers),
                          platform=str(base.config.platform)))
    created = rfc3339(plan.source_date_epoch)
    skip = [*_local_outputs(plan), store.root]
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
    for spec in plan.layers:
        start = time.monotonic()
        built, files = build_file_layer(spec, plan, store, skip=skip)
        layers.append(built.descriptor)
        history = History(created=created, created_by=_describe(spec, plan.project_dir))
        config = config.with_layer(built.diff_id, history)
        reports.append(LayerReport(label=spec.label, descriptor=built.descriptor, cached=built.cached))
        on_event(LayerDone(label=spec.label, descriptor=built.descriptor, cached=built.cached,
                           seconds=time.monotonic() - start, files=files))
    config = replace(config, created=created, config=merged_config(config.config, settings))
    image = Image.assemble(config, layers, annotations=_annotations(plan, base, created))
    image.store_metadata(store)
    written = []
    for output in plan.outputs:
        start = time.monotonic()
        mount_from = plan.base.reference if isinstance(plan.base, Registry) else None
        write_output(output, image, store, mtime=plan.source_date_epoch, client=client, mount_from=mount_from)
        written.append(str(output))
        on_event(OutputDone(output=str(output), digest=image.digest, seconds=time.monotonic() - start))
    return BuildResult(image=image, layers=tuple(reports), outputs=tuple(written), base=base, python=python_info)


def _annotations(plan: BuildPlan, base: BaseImage, created: str) -> Mapping[str, str]:
    out = {CREATED: created}
    if base.digest is not None:
        out[BASE_DIGEST] = str(base.digest)
    if base.name:
        out[BASE_NAME] = base.name
    out.update(plan.settings.annotations)
    return out
