"""Pure functions that make new images from old ones (go-containerregistry's ``mutate``).

Nothing here does I/O: layers keep their own bytes, and every function returns a new value.

>>> from ocibuild import mutate
>>> image = mutate.append(base, mutate.Addendum(layer=my_layer, created_by="COPY app /app"))  # doctest: +SKIP
>>> image = mutate.with_settings(image, ImageSettings(entrypoint=("python3", "/app/main.py")))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .image import Image, Layer, MemoryImage, MemoryIndex
from .spec import ContainerConfig, History
from .spec.annotations import CREATED, rfc3339

if TYPE_CHECKING:
    from .plan import ImageSettings


@dataclass(frozen=True, kw_only=True, slots=True)
class Addendum:
    """A layer to append and what the config's history says about it."""

    layer: Layer
    created_by: str = ""
    comment: str = ""
    created: str | None = None  # None: the image's own ``created`` time


def append(base: Image, *addenda: Addendum | Layer) -> MemoryImage:
    """``base`` with layers on top, each with a history entry; the manifest keeps base's annotations.

    A bare ``Layer`` is appended with an empty history entry."""
    config = base.config
    layers: list[Layer] = list(base.layers)
    for item in addenda:
        add = item if isinstance(item, Addendum) else Addendum(layer=item)
        created = add.created if add.created is not None else config.created
        config = config.with_layer(add.layer.diff_id, History(created=created, created_by=add.created_by,
                                                              comment=add.comment))
        layers.append(add.layer)
    return MemoryImage.assemble(config, layers, annotations=base.manifest.annotations)


def merged_config(base: ContainerConfig, s: ImageSettings) -> ContainerConfig:
    """The base's runtime config with ``s`` on top (Docker's rules: setting an entrypoint without a
    cmd clears the base's cmd)."""
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


def with_settings(image: Image, settings: ImageSettings) -> MemoryImage:
    """``image`` with ``settings`` merged into its runtime config (``ImageSettings.annotations``
    are manifest annotations: see ``with_annotations``)."""
    config = replace(image.config, config=merged_config(image.config.config, settings))
    return MemoryImage.assemble(config, image.layers, annotations=image.manifest.annotations)


def with_created(image: Image, epoch: int) -> MemoryImage:
    """``image`` whose config says it was created at ``epoch`` (seconds since 1970, UTC)."""
    config = replace(image.config, created=rfc3339(epoch))
    return MemoryImage.assemble(config, image.layers, annotations=image.manifest.annotations)


def with_annotations(image: Image, annotations: Mapping[str, str]) -> MemoryImage:
    """``image`` whose manifest carries exactly ``annotations``."""
    return MemoryImage.assemble(image.config, image.layers, annotations=annotations)


def index_of(images: Sequence[Image], *, created: int | None = None,
             annotations: Mapping[str, str] | None = None) -> MemoryIndex:
    """An OCI index over ``images`` (each entry with its platform); ``created`` (an epoch) adds the
    ``org.opencontainers.image.created`` annotation."""
    notes = dict(annotations or {})
    if created is not None:
        notes = {CREATED: rfc3339(created), **notes}
    return MemoryIndex.assemble(images, annotations=notes)
