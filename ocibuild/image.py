"""The image model every source and sink speaks: ``Layer``, ``Image`` and ``Index`` protocols.

Modelled on go-containerregistry's ``pkg/v1``: small read-only interfaces, values computed from
raw bytes, layer content opened on demand (a remote layer is fetched only when ``compressed()``
is first called). Concrete values:

- ``BlobLayer``: a layer described by a descriptor + diff_id whose compressed bytes come from an
  opener (a stored blob, a file, a lazily fetched remote blob). ``store_layer`` and ``lazy_layer``
  make the usual ones; ``Mountable`` wraps a layer with the repository it can be mounted from.
- ``MemoryImage``: manifest and config bytes in memory over a tuple of layers.
- ``MemoryIndex``: an OCI image index over images.

The pure functions that make new images from old ones live in ``ocibuild.mutate``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from .errors import SourceError
from .spec import Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, MediaType

if TYPE_CHECKING:
    from .spec import Reference
    from .store import ContentStore


@runtime_checkable
class Layer(Protocol):
    """One filesystem layer: its identity and its bytes, compressed (as pushed) or not (the tar)."""

    @property
    def digest(self) -> Digest:
        """sha256 of the compressed blob (what manifests and registries name)."""
        ...

    @property
    def diff_id(self) -> Digest:
        """sha256 of the uncompressed tar (what the config's ``rootfs.diff_ids`` lists)."""
        ...

    @property
    def size(self) -> int:
        """Size of the compressed blob in bytes."""
        ...

    @property
    def media_type(self) -> MediaType | str:
        """The blob's media type (OCI layer types)."""
        ...

    def descriptor(self) -> Descriptor:
        """The descriptor a manifest lists for this layer."""
        ...

    def compressed(self) -> BinaryIO:
        """A fresh stream of the blob's bytes (each call opens a new one)."""
        ...

    def uncompressed(self) -> BinaryIO:
        """A fresh stream of the layer's tar, decompressed by what the bytes are (gzip, zstd, plain)."""
        ...


@runtime_checkable
class Image(Protocol):
    """A single-platform image: manifest and config (parsed and raw) and its layers in order."""

    @property
    def manifest(self) -> ImageManifest:
        """The parsed manifest; ``manifest.config`` describes ``config_bytes``."""
        ...

    @property
    def config(self) -> ImageConfig:
        """The parsed image config."""
        ...

    @property
    def manifest_bytes(self) -> bytes:
        """The manifest exactly as stored and pushed."""
        ...

    @property
    def config_bytes(self) -> bytes:
        """The config exactly as stored and pushed."""
        ...

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers, bottom first, matching ``manifest.layers`` and ``config.diff_ids``."""
        ...

    @property
    def digest(self) -> Digest:
        """The manifest digest: the image's identity."""
        ...

    def descriptor(self, annotations: Mapping[str, str] | None = None, *,
                   with_platform: bool = False) -> Descriptor:
        """A descriptor of the manifest (for an index or a layout's ``index.json``)."""
        ...


@runtime_checkable
class Index(Protocol):
    """A multi-platform image: an OCI image index over single-platform images."""

    @property
    def index(self) -> ImageIndex:
        """The parsed index; each entry carries its platform."""
        ...

    @property
    def index_bytes(self) -> bytes:
        """The index exactly as stored and pushed."""
        ...

    @property
    def images(self) -> tuple[Image, ...]:
        """The images the index lists, in its order."""
        ...

    @property
    def digest(self) -> Digest:
        """The index digest."""
        ...

    def descriptor(self, annotations: Mapping[str, str] | None = None) -> Descriptor:
        """A descriptor of the index."""
        ...


Artifact = Image | Index
"""What a build produces and a sink writes."""


def images_of(artifact: Artifact) -> tuple[Image, ...]:
    """The single-platform images of ``artifact`` (one for an image)."""
    if isinstance(artifact, Index):
        return artifact.images
    return (artifact,)


# --------------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------------


def open_uncompressed(raw: BinaryIO) -> BinaryIO:
    """Wrap ``raw`` (a layer blob stream) so reads return the tar, whatever the compression.

    The format is taken from the magic bytes (gzip, zstd or plain tar), so a layer whose media type
    names the wrong compression is still read correctly; closing the result closes ``raw``.
    """
    from .layers.compress import open_decompressed

    return open_decompressed(raw)


@dataclass(frozen=True, kw_only=True, slots=True)
class BlobLayer:
    """A layer whose compressed bytes come from ``opener``; everything else from its descriptor.

    A new layer source is this plus an opener: see ``store_layer`` and ``lazy_layer``.
    """

    desc: Descriptor
    diff: Digest
    opener: Callable[[], BinaryIO] = field(compare=False, repr=False)

    @property
    def digest(self) -> Digest:
        return self.desc.digest

    @property
    def diff_id(self) -> Digest:
        return self.diff

    @property
    def size(self) -> int:
        return self.desc.size

    @property
    def media_type(self) -> MediaType | str:
        return self.desc.media_type

    def descriptor(self) -> Descriptor:
        return self.desc

    def compressed(self) -> BinaryIO:
        return self.opener()

    def uncompressed(self) -> BinaryIO:
        return open_uncompressed(self.opener())


def store_layer(store: ContentStore, desc: Descriptor, diff_id: Digest) -> Layer:
    """A layer whose blob is in ``store``, or else in the store's shared cache (``--cache-repo``: a
    layer another machine built, mounted from there or fetched on first read)."""
    if store.shared is not None and not store.has(desc.digest):
        return store.shared.layer(store, desc, diff_id)
    return BlobLayer(desc=desc, diff=diff_id, opener=lambda: store.open(desc.digest))


def lazy_layer(store: ContentStore, desc: Descriptor, diff_id: Digest,
               fetch: Callable[[Descriptor, ContentStore], object],
               check: Callable[[], None] | None = None) -> BlobLayer:
    """A layer fetched into ``store`` (verified by ``fetch``) the first time its bytes are read;
    ``check`` (e.g. the diff_id check) runs once, after the blob is in the store and before any of
    its bytes are handed out. A failed check runs again on the next open."""
    lock = threading.Lock()
    checked = False

    def opener() -> BinaryIO:
        nonlocal checked
        with lock:
            if not store.has(desc.digest):
                fetch(desc, store)
            if check is not None and not checked:
                check()
                checked = True
        return store.open(desc.digest)

    return BlobLayer(desc=desc, diff=diff_id, opener=opener)


@dataclass(frozen=True, kw_only=True, slots=True)
class Mountable:
    """A layer that also exists in ``source``'s repository, so a push to the same registry can
    mount it (``POST /blobs/uploads/?mount=…&from=…``) instead of uploading it."""

    layer: Layer
    source: Reference

    @property
    def digest(self) -> Digest:
        return self.layer.digest

    @property
    def diff_id(self) -> Digest:
        return self.layer.diff_id

    @property
    def size(self) -> int:
        return self.layer.size

    @property
    def media_type(self) -> MediaType | str:
        return self.layer.media_type

    def descriptor(self) -> Descriptor:
        return self.layer.descriptor()

    def compressed(self) -> BinaryIO:
        return self.layer.compressed()

    def uncompressed(self) -> BinaryIO:
        return self.layer.uncompressed()


def mount_source(layer: Layer) -> Reference | None:
    """The repository ``layer`` can be mounted from, if it is ``Mountable``."""
    return layer.source if isinstance(layer, Mountable) else None


# --------------------------------------------------------------------------------------------------
# images and indexes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryImage:
    """An ``Image`` with its manifest and config bytes in memory (layers open their own bytes)."""

    manifest: ImageManifest
    config: ImageConfig
    config_bytes: bytes
    manifest_bytes: bytes
    layers: tuple[Layer, ...] = ()

    @classmethod
    def assemble(cls, config: ImageConfig, layers: Sequence[Layer],
                 annotations: Mapping[str, str] | None = None) -> MemoryImage:
        """Serialise ``config`` and a manifest over ``layers`` (whose diff_ids the config lists)."""
        if len(layers) != len(config.diff_ids):
            raise SourceError(
                f"image has {len(layers)} layers but its config lists {len(config.diff_ids)} diff_ids"
            )
        config_bytes = config.to_json()
        manifest = ImageManifest(
            config=Descriptor(media_type=MediaType.OCI_CONFIG, digest=Digest.of(config_bytes),
                              size=len(config_bytes)),
            layers=tuple(layer.descriptor() for layer in layers),
            annotations=dict(annotations or {}),
        )
        return cls(manifest=manifest, config=config, config_bytes=config_bytes,
                   manifest_bytes=manifest.to_json(), layers=tuple(layers))

    @classmethod
    def from_raw(cls, manifest_bytes: bytes, config_bytes: bytes, layers: Sequence[Layer]) -> MemoryImage:
        """An image from its stored bytes (a source's few lines: raw manifest, raw config, layers)."""
        return cls(manifest=ImageManifest.from_json(manifest_bytes), config=ImageConfig.from_json(config_bytes),
                   config_bytes=config_bytes, manifest_bytes=manifest_bytes, layers=tuple(layers))

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest_bytes)

    def descriptor(self, annotations: Mapping[str, str] | None = None, *,
                   with_platform: bool = False) -> Descriptor:
        return Descriptor(
            media_type=self.manifest.media_type,
            digest=self.digest,
            size=len(self.manifest_bytes),
            annotations=dict(annotations or {}),
            platform=self.config.platform if with_platform else None,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryIndex:
    """An ``Index`` with its bytes in memory."""

    images: tuple[Image, ...]
    index: ImageIndex
    index_bytes: bytes

    @classmethod
    def assemble(cls, images: Sequence[Image], annotations: Mapping[str, str] | None = None) -> MemoryIndex:
        index = ImageIndex(manifests=tuple(img.descriptor(with_platform=True) for img in images),
                           annotations=dict(annotations or {}))
        return cls(images=tuple(images), index=index, index_bytes=index.to_json())

    @property
    def digest(self) -> Digest:
        return Digest.of(self.index_bytes)

    def descriptor(self, annotations: Mapping[str, str] | None = None) -> Descriptor:
        return Descriptor(media_type=MediaType.OCI_INDEX, digest=self.digest, size=len(self.index_bytes),
                          annotations=dict(annotations or {}))


@dataclass(frozen=True, kw_only=True, slots=True)
class Blob:
    """One blob a sink writes: its descriptor and how to open it (config bytes, a layer, a manifest)."""

    descriptor: Descriptor
    open: Callable[[], BinaryIO] = field(compare=False, repr=False)
    layer: Layer | None = field(default=None, compare=False, repr=False)


def _bytes_blob(desc: Descriptor, data: bytes) -> Blob:
    import io

    return Blob(descriptor=desc, open=lambda: io.BytesIO(data))


def image_blobs(image: Image) -> list[Blob]:
    """The config then the layers of ``image``: every blob its manifest references."""
    return [_bytes_blob(image.manifest.config, image.config_bytes),
            *(Blob(descriptor=layer.descriptor(), open=layer.compressed, layer=layer) for layer in image.layers)]


def all_blobs(artifact: Artifact) -> list[Blob]:
    """Every blob an output needs, each once: configs and layers of every platform, each
    manifest, and the top-level manifest or index last."""
    seen: dict[Digest, Blob] = {}
    for image in images_of(artifact):
        for blob in image_blobs(image):
            seen.setdefault(blob.descriptor.digest, blob)
        if isinstance(artifact, Index):
            seen.setdefault(image.digest, _bytes_blob(image.descriptor(), image.manifest_bytes))
    if isinstance(artifact, Index):
        top = _bytes_blob(artifact.descriptor(), artifact.index_bytes)
    else:
        top = _bytes_blob(artifact.descriptor(), artifact.manifest_bytes)
    return [*seen.values(), top]
