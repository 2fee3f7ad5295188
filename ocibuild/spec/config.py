"""The image configuration: runtime defaults, rootfs diff_ids and history."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .canonical import canonical_json
from .digest import Digest
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
    def from_dict(cls, data: Mapping[str, Any] | None) -> ContainerConfig:
        data = data or {}
        entrypoint = data.get("Entrypoint")
        cmd = data.get("Cmd")
        return cls(
            user=str(data.get("User") or ""),
            exposed_ports=tuple(sorted((data.get("ExposedPorts") or {}).keys())),
            env=tuple(data.get("Env") or ()),
            entrypoint=tuple(entrypoint) if entrypoint is not None else None,
            cmd=tuple(cmd) if cmd is not None else None,
            volumes=tuple(sorted((data.get("Volumes") or {}).keys())),
            working_dir=str(data.get("WorkingDir") or ""),
            labels=dict(data.get("Labels") or {}),
            stop_signal=str(data.get("StopSignal") or ""),
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
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        return cls(
            created=str(data.get("created") or ""),
            created_by=str(data.get("created_by") or ""),
            author=str(data.get("author") or ""),
            comment=str(data.get("comment") or ""),
            empty_layer=bool(data.get("empty_layer", False)),
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
        rootfs = data.get("rootfs") or {}
        if rootfs.get("type", "layers") != "layers":
            raise ValueError(f"image config rootfs.type is {rootfs.get('type')!r}, expected 'layers'")
        return cls(
            platform=Platform.from_dict(data),
            config=ContainerConfig.from_dict(data.get("config")),
            diff_ids=tuple(Digest.parse(d) for d in rootfs.get("diff_ids") or ()),
            history=tuple(History.from_dict(h) for h in data.get("history") or ()),
            created=str(data.get("created") or ""),
            author=str(data.get("author") or ""),
            extra={k: v for k, v in data.items() if k not in _IMAGE_KEYS},
        )

    @classmethod
    def from_json(cls, raw: bytes) -> ImageConfig:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"image config is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("image config is not a JSON object")
        return cls.from_dict(data)

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
