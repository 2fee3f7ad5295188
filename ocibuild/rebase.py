"""Rebase: put an image's own layers on a new base without building anything (``crane rebase``).

An image ocibuild built records its base in two manifest annotations: ``org.opencontainers.image.
base.digest`` (the base's manifest for that platform) and, for a registry base, ``...base.name``. A
build also keeps that manifest and its config in the content store, so the old base is found again:

1. named by the caller (``old_base``: any location), else
2. in the content store, by the digest annotation, else
3. in the registry ``base.name`` names, by that digest.

The old base's layers must be the image's first layers (same digests and diff_ids); the rest are
the image's own. The result is the new base's layers, then the image's own layers (the same blobs:
nothing is rebuilt, compressed or uploaded again), under a config recomputed the way a build would
have made it on the new base (see ``rebase_config``): ``rootfs.diff_ids`` and ``history`` are the new
base's then the image's own, the runtime settings the image took from the old base follow the new
base, and what the image set itself stays. ``created`` and every other field are kept, so the same
inputs give the same digest. The base annotations name the new base.

``rebase`` does the I/O (reading the image and the bases through the store and a registry client);
``rebase_image`` and ``rebase_config`` are pure. Nothing is written: give ``result.artifact`` to
``ocibuild.publish``.

>>> result = rebase("oci:out/app:v1", "oci:bases/debian:v2", store=ContentStore.default())  # doctest: +SKIP
>>> publish(result.artifact, ["oci:out/app:v2"])  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import mutate
from .errors import ConfigError, ImageNotFound, RebaseError, RegistryError, SourceError, StoreError
from .events import BaseResolved, EventHandler, Note, ignore
from .image import Artifact, Image, Index, Layer, MemoryImage, images_of, store_layer
from .spec import (
    ContainerConfig,
    Digest,
    History,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Reference,
    SpecError,
    check_image_manifest,
    parse_manifest_or_index,
    to_oci,
)
from .spec.annotations import BASE_DIGEST, BASE_NAME, DEFAULT_PATH
from .store import ContentStore
from .transports import DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch, parse_location

if TYPE_CHECKING:
    from .attest import Document
    from .registry import RegistryClient
    from .sources.base import ManifestSource

__all__ = ["RebaseResult", "RebasedPlatform", "check_prefix", "find_old_base", "keep_base", "load_artifact",
           "rebase", "rebase_config", "rebase_documents", "rebase_image"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RebasedPlatform:
    """One platform's image of a rebase: the image before and after, and the two bases."""

    platform: str
    image: Image = field(repr=False)
    original: Image = field(repr=False)
    old_base: Image = field(repr=False)
    new_base: Image = field(repr=False)

    @property
    def digest(self) -> Digest:
        return self.image.digest

    @property
    def own_layers(self) -> int:
        """How many of the image's own layers (above the base) were kept as they were."""
        return len(self.image.layers) - len(self.new_base.layers)

    def to_dict(self) -> dict[str, Any]:
        kept = {layer.digest for layer in self.original.layers}
        return {
            "platform": self.platform,
            "digest": str(self.digest),
            "original": str(self.original.digest),
            "old_base": {"digest": str(self.old_base.digest), "layers": len(self.old_base.layers)},
            "new_base": {"digest": str(self.new_base.digest), "layers": len(self.new_base.layers)},
            "own_layers": self.own_layers,
            "new_layers": [str(layer.digest) for layer in self.image.layers if layer.digest not in kept],
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class RebaseResult:
    """What ``rebase`` produced, in memory: the rebased ``artifact`` (an ``Image``, or an ``Index``
    with every platform rebased), the ``original`` it came from and each platform's details.
    Nothing has been written: publish ``artifact`` (``outputs`` is for the caller to fill in)."""

    artifact: Artifact
    original: Artifact = field(repr=False)
    source: str
    new_base: str
    platforms: tuple[RebasedPlatform, ...]
    outputs: tuple[str, ...] = ()
    old_base: str | None = None  # as the caller named it (None: found from the image's annotations)

    @property
    def digest(self) -> str:
        """The rebased artifact's digest (the index's for several platforms, else the manifest's)."""
        return str(self.artifact.digest)

    @property
    def image(self) -> Image:
        """The first platform's rebased image."""
        return self.platforms[0].image

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        image = self.image
        return {
            "digest": self.digest,
            "source": self.source,
            "original": str(self.original.digest),
            "base": self.new_base,
            "manifest": {"mediaType": str(image.manifest.media_type), "digest": str(image.digest),
                         "size": len(image.manifest_bytes)},
            "config": image.manifest.config.to_dict(),
            "platforms": [p.to_dict() for p in self.platforms],
            "outputs": list(self.outputs),
        }


# --------------------------------------------------------------------------------------------------
# pure: the new config and image
# --------------------------------------------------------------------------------------------------


def _follow(own: Any, old: Any, new: Any) -> Any:
    """What a setting becomes: the new base's if the image had the old base's, else the image's own."""
    return new if own == old else own


def _rebased_value(value: str, old: str, new: str) -> str | None:
    """``value`` with the old base's ``old`` (a ``:``-list such as PATH it extended) replaced by ``new``;
    None if ``value`` does not extend ``old``."""
    if not old:
        return None
    if value.endswith(":" + old):
        return value[: -len(old)] + new
    if value.startswith(old + ":"):
        return new + value[len(old):]
    return None


def _rebased_env(own: ContainerConfig, old: ContainerConfig, new: ContainerConfig) -> tuple[str, ...]:
    image_env, old_env, new_env = own.env_dict(), old.env_dict(), new.env_dict()
    env = dict(new_env)
    for key, value in image_env.items():
        before = old_env.get(key)
        if value == before:
            continue  # taken from the old base: follows the new base (dropped if it has none)
        if key == "PATH":  # a runtime's default PATH is what an image without one extends
            before, after = before or DEFAULT_PATH, new_env.get(key) or DEFAULT_PATH
        else:
            after = new_env.get(key, "")
        extended = _rebased_value(value, before or "", after) if after else None
        env[key] = extended if extended is not None else value
    return tuple(f"{k}={v}" for k, v in env.items())


def rebase_config(own: ContainerConfig, old: ContainerConfig, new: ContainerConfig) -> ContainerConfig:
    """The runtime config ``own`` (an image's, built on a base whose config is ``old``) would have on a
    base whose config is ``new``: the inverse of the build's merge (``mutate.merged_config``).

    - ``Env``: a variable with the old base's value was taken from it and now has the new base's value
      (or is gone if the new base has none); one the image set keeps its value, except that a value
      that extends the old base's (``PATH=/opt/venv/bin:<old PATH>``) extends the new base's instead.
      The new base's variables come first, in its order, then the image's own, as in a build.
    - ``Entrypoint``/``Cmd`` (Docker's rule): an image that kept the base's entrypoint and cmd gets the
      new base's; one that set only a cmd keeps it under the new base's entrypoint; one that set an
      entrypoint keeps both of its own.
    - ``User``, ``WorkingDir``, ``StopSignal`` and any other key: the new base's where the image had
      the old base's value, else the image's own.
    - ``Labels``, ``ExposedPorts``, ``Volumes``: the new base's, plus what the image added to the old
      base's (a label the image changed keeps its value).
    """
    if own.entrypoint == old.entrypoint:
        entrypoint = new.entrypoint
        cmd = new.cmd if own.cmd == old.cmd else own.cmd
    else:
        entrypoint, cmd = own.entrypoint, own.cmd
    labels = {**new.labels, **{k: v for k, v in own.labels.items() if old.labels.get(k) != v}}
    extra = {k: v for k, v in new.extra.items() if k not in own.extra and k not in old.extra}
    extra.update({k: _follow(v, old.extra.get(k), new.extra.get(k, v)) for k, v in own.extra.items()})
    return ContainerConfig(
        user=_follow(own.user, old.user, new.user),
        exposed_ports=tuple(sorted({*new.exposed_ports, *(set(own.exposed_ports) - set(old.exposed_ports))})),
        env=_rebased_env(own, old, new),
        entrypoint=entrypoint,
        cmd=cmd,
        volumes=tuple(sorted({*new.volumes, *(set(own.volumes) - set(old.volumes))})),
        working_dir=_follow(own.working_dir, old.working_dir, new.working_dir),
        labels=labels,
        stop_signal=_follow(own.stop_signal, old.stop_signal, new.stop_signal),
        extra=extra,
    )


def _own_history(image: ImageConfig, old: ImageConfig, base_layers: int) -> tuple[History, ...]:
    """The image's history entries after the old base's: after the old base's whole history when it
    is the image's first entries (as a build writes it), else after the entries of its first
    ``base_layers`` layers (and the empty-layer entries that follow them)."""
    history = image.history
    if history[: len(old.history)] == old.history:
        return history[len(old.history):]
    seen, i = 0, 0
    while i < len(history) and (seen < base_layers or history[i].empty_layer):
        seen += 0 if history[i].empty_layer else 1
        i += 1
    return history[i:]


def _short(digest: Digest) -> str:
    return f"{digest.algorithm}:{digest.hex[:12]}"


def check_prefix(image: Image, old_base: Image, where: str = "the image") -> None:
    """Raise ``RebaseError`` unless ``old_base``'s layers (digests and diff_ids) are ``image``'s first."""
    base, own = old_base.layers, image.layers
    fix = "name the base it was built on with --old-base"
    if len(base) > len(own):
        raise RebaseError(f"{where} has {len(own)} layers, fewer than the {len(base)} of its old base "
                          f"{_short(old_base.digest)}: that is not its base; {fix}")
    for i, (b, o) in enumerate(zip(base, own, strict=False)):
        if b.digest != o.digest or b.diff_id != o.diff_id:
            raise RebaseError(f"{where}: the old base {_short(old_base.digest)} is not a prefix of the image (layer "
                              f"{i + 1} is {_short(o.digest)}, the base's is {_short(b.digest)}); {fix}")


def rebase_image(image: Image, old_base: Image, new_base: Image, *, new_base_name: str | None = None,
                 where: str = "the image") -> MemoryImage:
    """``image`` with ``old_base``'s layers (its first ones; ``RebaseError`` if they are not) replaced
    by ``new_base``'s and its config recomputed (see the module and ``rebase_config``). The manifest
    keeps its annotations, with ``base.digest`` set to ``new_base``'s and ``base.name`` to
    ``new_base_name`` (removed if None). Pure: the same inputs give the same bytes."""
    check_prefix(image, old_base, where)
    if new_base.config.platform.os != image.config.platform.os or \
            new_base.config.platform.architecture != image.config.platform.architecture:
        raise RebaseError(f"{where} is a {image.config.platform} image, the new base is "
                          f"{new_base.config.platform}; choose a base for {image.config.platform}")
    n = len(old_base.layers)
    own_layers: tuple[Layer, ...] = image.layers[n:]
    config = replace(
        image.config,
        config=rebase_config(image.config.config, old_base.config.config, new_base.config.config),
        diff_ids=(*new_base.config.diff_ids, *image.config.diff_ids[n:]),
        history=(*new_base.config.history, *_own_history(image.config, old_base.config, n)),
    )
    notes = {k: v for k, v in image.manifest.annotations.items() if k not in (BASE_DIGEST, BASE_NAME)}
    notes[BASE_DIGEST] = str(new_base.digest)
    if new_base_name is not None:
        notes[BASE_NAME] = new_base_name
    return MemoryImage.assemble(config, (*new_base.layers, *own_layers), annotations=notes)


# --------------------------------------------------------------------------------------------------
# I/O: reading the image and the bases
# --------------------------------------------------------------------------------------------------


def _registry_client(client: RegistryClient | None) -> RegistryClient:
    from .registry import RegistryClient

    return client or RegistryClient()


def _artifact_from(source: ManifestSource) -> Artifact:
    from .sources.base import offered, resolve

    raw = source.fetch(source.top)
    try:
        doc = parse_manifest_or_index(raw, source.top.media_type)
    except SpecError as exc:
        raise SourceError(f"{source.where}: {exc}") from None
    if not isinstance(doc, ImageIndex):
        return resolve(source, None)
    images = tuple(resolve(replace(source, top=d), None) for d in offered(doc))
    if not images:
        raise ImageNotFound(f"{source.where}: its index lists no image")
    return mutate.index_of(images, annotations=doc.annotations)


def load_artifact(location: Location, store: ContentStore, *, client: RegistryClient | None = None) -> Artifact:
    """The whole image at ``location``: an ``Image``, or an ``Index`` with every platform's image (each
    as its source serves it: same manifest bytes and digest). Layers of a layout or archive are
    copied into ``store`` (verified); a registry's stay lazy and mountable."""
    if isinstance(location, OciLayout | OciArchive):
        from .sources.layout import open_layout_source

        with open_layout_source(location.path, location.tag, store,
                                archive=isinstance(location, OciArchive)) as (source, _reader):
            return _artifact_from(source)
    if isinstance(location, Registry):
        from .sources.registry import registry_source

        return _artifact_from(registry_source(_registry_client(client), location.reference, store))
    if isinstance(location, DockerArchive):
        from .sources.dockerarchive import load_docker_archive

        return load_docker_archive(location.path, location.reference, store, None)
    raise ConfigError(f"{location}: an image to rebase is read from oci:, oci-archive:, docker-archive: or "
                      "docker:// (e.g. oci:out/app:v1)")


def keep_base(base: Image, store: ContentStore) -> None:
    """Keep ``base``'s manifest and config in ``store``, where ``find_old_base`` finds them by digest
    (a build does this for its base; its layers are in the store already, or lazily fetched)."""
    store.put_bytes(base.manifest_bytes)
    store.put_bytes(base.config_bytes)


def _stored_image(store: ContentStore, digest: Digest) -> Image | None:
    """The image whose manifest is ``digest``, from its manifest and config in ``store`` (its layers
    need not be there: a rebase reads only their descriptors); None if either is not stored."""
    try:
        if not store.has(digest):
            return None
        raw = store.read_bytes(digest)
        manifest = ImageManifest.from_json(raw)
        check_image_manifest(manifest)
        if not store.has(manifest.config.digest):
            return None
        config_raw = store.read_bytes(manifest.config.digest)
        config = ImageConfig.from_json(config_raw)
    except (SpecError, StoreError, OSError):
        return None
    if len(config.diff_ids) != len(manifest.layers):
        return None
    layers = tuple(store_layer(store, replace(d, media_type=to_oci(d.media_type)), diff)
                   for d, diff in zip(manifest.layers, config.diff_ids, strict=True))
    return MemoryImage(manifest=manifest, config=config, config_bytes=config_raw, manifest_bytes=raw, layers=layers)


def find_old_base(image: Image, store: ContentStore, *, client: RegistryClient | None = None,
                  where: str = "the image") -> Image:
    """The base ``image`` was built on, from its ``base.digest`` annotation: its manifest and config in
    ``store`` (kept there by the build), else fetched by digest from the registry its ``base.name``
    annotation names. ``RebaseError`` (asking for ``--old-base``) when it is found nowhere."""
    fix = "name it with --old-base LOCATION"
    text = image.manifest.annotations.get(BASE_DIGEST)
    if not text:
        raise RebaseError(f"{where} does not say which base it was built on (no {BASE_DIGEST} annotation); {fix}")
    try:
        digest = Digest.parse(text)
    except ValueError:
        raise RebaseError(f"{where}: its {BASE_DIGEST} annotation {text!r} is not a digest; {fix}") from None
    found = _stored_image(store, digest)
    if found is not None:
        return found
    name = image.manifest.annotations.get(BASE_NAME)
    if not name:
        raise RebaseError(f"{where} was built on base {_short(digest)}, which is not in the content store "
                          f"{store.root} (and no {BASE_NAME} says where else to look); {fix}")
    from .sources.registry import load_registry

    try:
        ref = Reference.parse(name).with_digest(str(digest))
        return load_registry(_registry_client(client), ref, store, image.config.platform)
    except (ValueError, SourceError, RegistryError) as exc:
        raise RebaseError(f"{where} was built on {name}@{_short(digest)}, which is neither in the content store "
                          f"nor readable from its registry ({str(exc).rstrip('.')}); {fix}") from None


def _location(value: Location | str) -> Location:
    return parse_location(value) if isinstance(value, str) else value


def rebase(image: Location | str | Artifact, new_base: Location | str, *, store: ContentStore,
           old_base: Location | str | None = None, client: RegistryClient | None = None,
           on_event: EventHandler = ignore) -> RebaseResult:
    """Rebase ``image`` (a location, or an ``Image``/``Index`` in hand) onto ``new_base``: every platform
    of an index on the new base's image for that platform. The old base is ``old_base`` if given,
    else found by ``find_old_base``. Registry images and bases go through ``client`` (a default one
    if None); their layers stay lazy (a push to the same registry mounts them).

    Raises ``RebaseError`` when the old base cannot be found or is not a prefix of the image, and
    the errors of the sources when an image or base cannot be read; nothing is written either way
    (publish ``result.artifact``). The new base's manifest and config are kept in ``store``, so a
    later rebase of the result finds its base there."""
    if isinstance(image, Image | Index):
        original: Artifact = image
        where = f"image {_short(image.digest)}"
    else:
        location = _location(image)
        original = load_artifact(location, store, client=client)
        where = str(location)
    target = _location(new_base)
    if isinstance(target, Scratch):
        raise ConfigError("--base scratch: rebasing onto the empty image drops the base; give a base image")
    old_location = _location(old_base) if old_base is not None else None
    name = str(target.reference) if isinstance(target, Registry) else None
    from .sources import resolve_base

    platforms = []
    for one in images_of(original):
        platform = one.config.platform
        label = f"{where} ({platform})" if isinstance(original, Index) else where
        if old_location is not None:
            old = resolve_base(old_location, store, platform, client=client)
        else:
            old = find_old_base(one, store, client=client, where=label)
        check_prefix(one, old, label)  # before the new base is read
        try:
            new = resolve_base(target, store, platform, client=client)
        except ImageNotFound as exc:
            raise RebaseError(f"new base {target}: {str(exc).split('; ')[0]}; give a base that has "
                              f"{platform}") from None
        rebased = rebase_image(one, old, new, new_base_name=name, where=label)
        on_event(BaseResolved(base=str(target), digest=new.digest, layers=len(new.layers), platform=str(platform)))
        keep_base(new, store)
        platforms.append(RebasedPlatform(platform=str(platform), image=rebased, original=one, old_base=old,
                                         new_base=new))
        on_event(Note(text=f"rebase  {platform}: base {_short(old.digest)} ({len(old.layers)} layers) -> "
                           f"{_short(new.digest)} ({len(new.layers)} layers), {len(one.layers) - len(old.layers)} "
                           f"own layers kept"))
    artifact: Artifact
    if isinstance(original, Index):
        artifact = mutate.index_of([p.image for p in platforms], annotations=original.index.annotations)
    else:
        artifact = platforms[0].image
    return RebaseResult(artifact=artifact, original=original, source=where, new_base=str(target),
                        platforms=tuple(platforms), old_base=str(old_location) if old_location is not None else None)


def rebase_documents(result: RebaseResult, *, store: ContentStore, sbom: str = "spdx", provenance: bool = True,
                     epoch: int = 0) -> list[Document]:
    """The evidence a rebase attaches (as a build does): per rebased image an SBOM (``sbom``: ``spdx``,
    ``cyclonedx`` or ``none``) made by walking its layers (the new base's packages, the wheels' own
    metadata; no build inputs are known, so no wheel file hashes), and with ``provenance`` a SLSA
    provenance of the rebase (``REBASE_BUILD_TYPE``: the image, the old and the new base by digest).
    Deterministic: the same rebase gives the same bytes."""
    import re
    from pathlib import Path

    from .attest import IN_TOTO_JSON, Document, documents
    from .attest.provenance import rebase_provenance
    from .build import BuildInputs, BuildResult, BuildResultPlatform
    from .plan import BuildPlan

    out: list[Document] = []
    first = result.platforms[0]
    if sbom != "none":
        # what the SBOM walk needs of a build: each image with its base (the layers below it are the base's)
        view = BuildResult(
            artifact=result.artifact, image=first.image, layers=(), base=first.new_base, store=store,
            plan=BuildPlan(project_dir=Path(re.sub(r"[^A-Za-z0-9._-]+", "-", result.source).strip("-") or "image"),
                           source_date_epoch=epoch),
            platforms=tuple(BuildResultPlatform(platform=p.platform, digest=str(p.digest), layers=(), image=p.image,
                                                inputs=BuildInputs(base=p.new_base, base_location=result.new_base))
                            for p in result.platforms))
        out += documents(view, kind=sbom, provenance=False)
    if provenance:
        multi = isinstance(result.artifact, Index)
        name = result.source
        deps = [("image", result.source, "", p.original.digest.hex, p.platform) for p in result.platforms]
        deps += [("old-base", result.old_base or "", "", p.old_base.digest.hex, p.platform) for p in result.platforms]
        deps += [("base-image", result.new_base, "", p.new_base.digest.hex, p.platform) for p in result.platforms]
        payload = rebase_provenance(
            [(f"{name} ({p.platform})" if multi else name, p.image) for p in result.platforms],
            (name, result.artifact) if multi else None,
            {"image": result.source, "base": result.new_base, "oldBase": result.old_base}, deps, epoch)
        subjects = [p.image.descriptor(with_platform=True) for p in result.platforms]
        if multi:
            subjects.append(result.artifact.descriptor())
        out += [Document(artifact_type=IN_TOTO_JSON, media_type=IN_TOTO_JSON, subject=s, payload=payload)
                for s in subjects]
    return out

