"""An image value: parsed manifest + config whose blobs live in the content store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import SourceError
from .spec import Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, MediaType
from .store import ContentStore


@dataclass(frozen=True, kw_only=True, slots=True)
class Image:
    """A single-platform image. ``manifest.config`` always describes ``config_bytes``."""

    manifest: ImageManifest
    config: ImageConfig
    config_bytes: bytes
    manifest_bytes: bytes
    base_name: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def assemble(cls, config: ImageConfig, layers: Sequence[Descriptor],
                 annotations: Mapping[str, str] | None = None) -> Image:
        """Build manifest and config bytes from a config and layer descriptors."""
        if len(layers) != len(config.diff_ids):
            raise SourceError(
                f"image has {len(layers)} layers but its config lists {len(config.diff_ids)} diff_ids"
            )
        config_bytes = config.to_json()
        manifest = ImageManifest(
            config=Descriptor(media_type=MediaType.OCI_CONFIG, digest=Digest.of(config_bytes),
                              size=len(config_bytes)),
            layers=tuple(layers),
            annotations=dict(annotations or {}),
        )
        return cls(manifest=manifest, config=config, config_bytes=config_bytes,
                   manifest_bytes=manifest.to_json())

    @property
    def digest(self) -> Digest:
        """The manifest digest: the image's identity."""
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

    def store_metadata(self, store: ContentStore) -> None:
        """Put config and manifest bytes into the store (layers are already there)."""
        store.put_bytes(self.config_bytes)
        store.put_bytes(self.manifest_bytes)

    def blobs(self) -> list[Descriptor]:
        """Config then layers: every blob the manifest references."""
        return [self.manifest.config, *self.manifest.layers]

    def all_blobs(self) -> list[Descriptor]:
        """Every blob an output needs, the manifest last."""
        return [*self.blobs(), self.descriptor()]


@dataclass(frozen=True, kw_only=True, slots=True)
class Index:
    """A multi-platform image: an OCI image index over single-platform images."""

    images: tuple[Image, ...]
    index: ImageIndex
    index_bytes: bytes

    @classmethod
    def assemble(cls, images: Sequence[Image], annotations: Mapping[str, str] | None = None) -> Index:
        index = ImageIndex(manifests=tuple(img.descriptor(with_platform=True) for img in images),
                           annotations=dict(annotations or {}))
        return cls(images=tuple(images), index=index, index_bytes=index.to_json())

    @property
    def digest(self) -> Digest:
        return Digest.of(self.index_bytes)

    def descriptor(self, annotations: Mapping[str, str] | None = None) -> Descriptor:
        return Descriptor(media_type=MediaType.OCI_INDEX, digest=self.digest, size=len(self.index_bytes),
                          annotations=dict(annotations or {}))

    def store_metadata(self, store: ContentStore) -> None:
        for image in self.images:
            image.store_metadata(store)
        store.put_bytes(self.index_bytes)

    def all_blobs(self) -> list[Descriptor]:
        """Every blob of every platform (shared layers once), each manifest, and the index last."""
        seen: dict[Digest, Descriptor] = {}
        for image in self.images:
            for d in image.all_blobs():
                seen.setdefault(d.digest, d)
        return [*seen.values(), self.descriptor()]


Artifact = Image | Index
