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


Event = BaseResolved | LayerDone | OutputDone
EventHandler = Callable[[Event], None]


def ignore(_: Event) -> None:
    """The default handler: drop events."""
