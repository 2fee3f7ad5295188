"""The image configuration: runtime defaults, rootfs diff_ids and history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .canonical import canonical_json
from .digest import Digest
from .document import (
    SpecError,
    as_object,
    convert,
    get_bool,
    get_items,
    get_object,
    get_str,
    get_str_list,
    get_str_map,
    parse_object,
)
from .platform import Platform

# Keys of the "config" object that ContainerConfig models; all others are kept verbatim in ``extra``.
_CONTAINER_KEYS = {
    "User": "user",
    "ExposedPorts": "exposed_ports",
    "Env": "env",
    "Entrypoint": "entrypoint",
    "Cmd": "cmd",
    "Volumes": "volumes",
    "WorkingDir": "working_dir",
    "Labels": "labels",
    "StopSignal": "stop_signal",
}
_IMAGE_KEYS = {"architecture", "os", "variant", "os.version", "os.features", "created", "author",
               "config", "rootfs", "history"}


@dataclass(frozen=True, kw_only=True, slots=True)
class ContainerConfig:
    """The ``config`` object: how a container of this image runs by default."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, path: str = "config") -> ContainerConfig:
        """Parse the ``config`` object (None or null: all defaults); ``SpecError`` naming the field
        if one has the wrong type (an ``Env`` given as a string is refused, not split)."""
        data = as_object(data, path) if data is not None else {}
        get_bool(data, "ArgsEscaped", path)
        return cls(
            user=get_str(data, "User", path),
            exposed_ports=tuple(sorted(get_object(data, "ExposedPorts", path) or {})),
            env=get_str_list(data, "Env", path) or (),
            entrypoint=get_str_list(data, "Entrypoint", path),
            cmd=get_str_list(data, "Cmd", path),
            volumes=tuple(sorted(get_object(data, "Volumes", path) or {})),
            working_dir=get_str(data, "WorkingDir", path),
            labels=get_str_map(data, "Labels", path),
            stop_signal=get_str(data, "StopSignal", path),
            extra={k: v for k, v in data.items() if k not in _CONTAINER_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        return out

    def env_dict(self) -> dict[str, str]:
        """``Env`` as an ordered mapping (later entries win)."""
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class History:
    """One history entry; ``empty_layer`` entries add no layer."""

    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "history") -> History:
        data = as_object(data, path)
        return cls(
            created=get_str(data, "created", path),
            created_by=get_str(data, "created_by", path),
            author=get_str(data, "author", path),
            comment=get_str(data, "comment", path),
            empty_layer=get_bool(data, "empty_layer", path),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("created", "created_by", "author", "comment"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageConfig:
    """An OCI image configuration (also reads Docker's, which has the same shape)."""

    platform: Platform
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[Digest, ...] = ()
    history: tuple[History, ...] = ()
    created: str = ""
    author: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageConfig:
        """Parse an image config object; ``SpecError`` naming the field if one is mistyped."""
        data = as_object(data, "")
        rootfs = get_object(data, "rootfs", "") or {}
        kind = get_str(rootfs, "type", "rootfs") or "layers"
        if kind != "layers":
            raise SpecError(f"'rootfs.type' is {kind[:200]!r}, expected 'layers'")
        diff_ids = get_str_list(rootfs, "diff_ids", "rootfs") or ()
        return cls(
            platform=Platform.from_dict(data),
            config=ContainerConfig.from_dict(get_object(data, "config", "")),
            diff_ids=tuple(convert(f"rootfs.diff_ids[{i}]", Digest.parse, d) for i, d in enumerate(diff_ids)),
            history=get_items(data, "history", "", History.from_dict),
            created=get_str(data, "created", ""),
            author=get_str(data, "author", ""),
            extra={k: v for k, v in data.items() if k not in _IMAGE_KEYS},
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ImageConfig:
        return cls.from_dict(parse_object(raw, "image config"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(self.platform.to_dict())
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        out["config"] = self.config.to_dict()
        out["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in self.diff_ids]}
        if self.history:
            out["history"] = [h.to_dict() for h in self.history]
        return out

    def to_json(self) -> bytes:
        """Canonical bytes; their sha256 is the config digest."""
        return canonical_json(self.to_dict())

    def with_layer(self, diff_id: Digest, history: History) -> ImageConfig:
        """A copy with one more layer and its history entry."""
        return replace(self, diff_ids=(*self.diff_ids, diff_id), history=(*self.history, history))
