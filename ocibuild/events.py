"""Progress events. The library emits them; the CLI decides how to show them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .spec import Descriptor, Digest


@dataclass(frozen=True, kw_only=True, slots=True)
class BaseResolved:
    base: str
    digest: Digest | None
    layers: int
    platform: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerDone:
    label: str
    descriptor: Descriptor
    cached: bool
    seconds: float
    files: int


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputDone:
    output: str
    digest: Digest
    seconds: float




@dataclass(frozen=True, kw_only=True, slots=True)
class BlobTransferred:
    """A blob moved to or from a registry: ``how`` is uploaded, exists, mounted or downloaded (or cached)."""

    registry: str
    repository: str
    digest: Digest
    size: int
    how: str
    seconds: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Progress:
    """Bytes moved so far for one blob (emitted at most a few times a second)."""

    digest: Digest
    done: int
    total: int
    action: str  # "push" or "pull"


@dataclass(frozen=True, kw_only=True, slots=True)
class Pushed:
    """A manifest (or index) was stored in a registry under ``reference``."""

    reference: str
    digest: Digest


@dataclass(frozen=True, kw_only=True, slots=True)
class Note:
    """A line of information about a step (e.g. the target Python found, dependencies resolved)."""

    text: str


Event = BaseResolved | LayerDone | OutputDone | BlobTransferred | Progress | Pushed | Note
EventHandler = Callable[[Event], None]


def ignore(_: Event) -> None:
    """The default handler: drop events."""
