"""The build plan: a frozen, serialisable description of one image build.

Both the build file / CLI (``config.load_plan``) and other build systems (constructing it directly)
produce a ``BuildPlan``; ``build()`` consumes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .layers.compress import Compression
from .spec import Platform
from .transports import Location, Scratch, parse_location


def source_date_epoch(environ: Mapping[str, str] | None = None) -> int:
    """``SOURCE_DATE_EPOCH`` from the environment, else 0 (1970-01-01T00:00:00Z)."""
    value = (environ if environ is not None else os.environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    try:
        epoch = int(value)
    except ValueError:
        raise ConfigError(f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds") from None
    if epoch < 0:
        raise ConfigError(f"SOURCE_DATE_EPOCH={value!r} must not be negative")
    return epoch


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerSpec:
    """Files from ``src`` (a folder or file; relative paths are relative to the project folder)
    at ``dest`` (an absolute path in the image)."""

    src: Path
    dest: str
    exclude: tuple[str, ...] = ()
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.dest


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageSettings:
    """Runtime settings layered over the base's config. ``None`` / empty means "keep the base's"."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    workdir: str | None = None
    user: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PythonSpec:
    """Python dependencies to install into a virtual environment in the image.

    Exactly one input is used: ``requirements`` (requirements.txt, pinned or not), ``lock`` (uv.lock or
    pylock.toml), or, with neither, the project's own ``[project].dependencies``. ``project`` also
    installs the project itself (built as a wheel on the host) in the last layer.
    """

    requirements: Path | None = None
    lock: Path | None = None
    project: bool = False
    venv: str = "/opt/venv"
    interpreter: str | None = None
    python_version: str | None = None
    libc: str | None = None
    libc_version: str | None = None
    index_url: str = ""
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool | None = None
    max_layers: int = 20
    big_wheel_mb: float = 8.0
    bytecode: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildPlan:
    """Everything a build needs.

    >>> plan = BuildPlan(project_dir=Path("examples/hello"), base=Scratch(),
    ...                  layers=(LayerSpec(src=Path("."), dest="/app"),))
    """

    project_dir: Path
    base: Location = field(default_factory=Scratch)
    platform: Platform | None = None
    platforms: tuple[Platform, ...] = ()  # several: one image each, joined in an index
    all_platforms: bool = False  # every platform the base offers (and the dependencies support)
    base_by_platform: Mapping[str, Location] = field(default_factory=dict)  # "linux/arm64" -> its base
    layers: tuple[LayerSpec, ...] = ()
    settings: ImageSettings = field(default_factory=ImageSettings)
    compression: Compression = field(default_factory=Compression)
    outputs: tuple[Location, ...] = ()
    python: PythonSpec | None = None
    source_date_epoch: int = 0
    uid: int = 0
    gid: int = 0

    def with_outputs(self, *outputs: str | Location) -> BuildPlan:
        return replace(self, outputs=tuple(parse_location(o) if isinstance(o, str) else o for o in outputs))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (for ``--json`` and logs)."""
        s = self.settings
        return {
            "project_dir": str(self.project_dir),
            "base": str(self.base),
            "platform": str(self.platform) if self.platform else None,
            "layers": [{"src": str(x.src), "dest": x.dest, "exclude": list(x.exclude)} for x in self.layers],
            "entrypoint": list(s.entrypoint) if s.entrypoint is not None else None,
            "cmd": list(s.cmd) if s.cmd is not None else None,
            "workdir": s.workdir,
            "user": s.user,
            "env": dict(s.env),
            "labels": dict(s.labels),
            "annotations": dict(s.annotations),
            "ports": list(s.ports),
            "compression": str(self.compression),
            "outputs": [str(o) for o in self.outputs],
            "source_date_epoch": self.source_date_epoch,
        }

