"""Progress events. The library emits them; the CLI decides how to show them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .spec import Descriptor, Digest


@dataclass(frozen=True, kw_only=True, slots=True)
class BaseResolved:
    """The base image for one platform is known: where from, its digest (None for scratch), layers."""

    base: str
    digest: Digest | None
    layers: int
    platform: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerDone:
    """A layer the build adds is ready: built now, or ``cached`` (found by its inputs, nothing done)."""

    label: str
    descriptor: Descriptor
    cached: bool
    seconds: float
    files: int
    platform: str | None = None
    """The platform this layer is for (``linux/arm64``); None for a layer every platform shares."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildStarted:
    """A build knows what it makes: the platforms (``linux/amd64`` ...; ``[]`` for the host's only)."""

    platforms: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerExplained:
    """Why a layer was built and not taken from the cache (``build --explain``): one line per cause,
    e.g. ``app/server.py: content changed`` or ``numpy 2.1.0 -> 2.1.1``."""

    label: str
    platform: str | None
    causes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputDone:
    """An output (layout, archive or registry) has been written completely."""

    output: str
    digest: Digest
    seconds: float


TransferKind = Literal["uploaded", "exists", "mounted", "downloaded", "cached"]
"""How a blob reached (or was found in) its place."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BlobTransferred:
    """A blob moved to or from a registry: ``how`` is uploaded, exists, mounted or downloaded (or cached)."""

    registry: str
    repository: str
    digest: Digest
    size: int
    how: TransferKind
    seconds: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Progress:
    """Bytes moved so far for one blob (emitted at most a few times a second)."""

    digest: Digest
    done: int
    total: int
    action: Literal["push", "pull"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Pushed:
    """A manifest (or index) was stored in a registry under ``reference``."""

    reference: str
    digest: Digest


@dataclass(frozen=True, kw_only=True, slots=True)
class Note:
    """A line of information about a step (e.g. the target Python found, dependencies resolved);
    ``warning``: something went wrong that the build worked around (shown even with ``--quiet``)."""

    text: str
    warning: bool = False


Event = (BuildStarted | BaseResolved | LayerDone | LayerExplained | OutputDone | BlobTransferred | Progress | Pushed
         | Note)
"""Everything the library reports while it works."""

EventHandler = Callable[[Event], None]
"""Where events go: the CLI renders them, a library caller may log or ignore them."""


def ignore(_: Event) -> None:
    """The default handler: drop events."""


def human_size(n: int) -> str:
    """``n`` bytes for people: ``553 B``, ``28.4 MB`` (decimal units, as the build log prints them).

    >>> human_size(28_400_000)
    '28.4 MB'
    """
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
